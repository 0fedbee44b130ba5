"""Mini datasets in every source layout (mp4, webm, mkv, avi, gif, frame folder) and mixture files over them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 32  # the tiny model's image size
NUM_FRAMES = 10

# dataset name -> (file suffix or "frames", codec for write_video)
LAYOUTS = {
    "mp4": (".mp4", "libx264"),
    "webm": (".webm", "libvpx-vp9"),
    "mkv": (".mkv", "libx264"),
    "avi": (".avi", "mpeg4"),
    "gif": (".gif", None),
    "frames": ("", None),
}


def frames(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(NUM_FRAMES):
        frame = np.full((SIZE, SIZE, 3), 20 * i, dtype=np.uint8)
        frame[:, : SIZE // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
        out.append(frame)
    return out


def write_source(path: Path, layout: str, seed: int) -> Path:
    """One video in ``layout`` at ``path`` (a folder of PNGs for "frames")."""
    from PIL import Image

    from mashvlm.video import write_video

    images = frames(seed)
    if layout == "gif":
        pil = [Image.fromarray(f) for f in images]
        pil[0].save(path, save_all=True, append_images=pil[1:], duration=100, loop=0)
    elif layout == "frames":
        path.mkdir(parents=True)
        for i, f in enumerate(images):
            Image.fromarray(f).save(path / f"img_{i + 1}.png")
    else:
        write_video(path, images, fps=10, codec=LAYOUTS[layout][1], threads=1)
    return path


def record(video: str, n_qa: int = 2, **extra) -> dict:
    qa = [{"i": "Answer briefly.", "q": f"What happens {k}?", "a": f"Something {k}."} for k in range(n_qa)]
    return {"video": video, "QA": qa, **extra}


def write_annotations(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2))  # one field per line, as released
    return path


def make_layout_datasets(root: Path, layouts=tuple(LAYOUTS), per_dataset: int = 2) -> list[dict]:
    """A dataset per layout: ``per_dataset`` videos with 2 QA each; returns the mixture entries."""
    entries = []
    for n, layout in enumerate(layouts):
        suffix = LAYOUTS[layout][0]
        videos = root / "videos" / layout
        videos.mkdir(parents=True, exist_ok=True)
        names = [f"clip{k}{suffix}" for k in range(per_dataset)]
        for k, name in enumerate(names):
            write_source(videos / name, layout, seed=10 * n + k)
        write_annotations(root / "ann" / f"{layout}.json", [record(name) for name in names])
        entries.append({"name": layout, "annotations": [f"ann/{layout}.json"], "video_root": f"videos/{layout}"})
    return entries


def write_mixture(root: Path, entries: list[dict], name: str = "mixture.json", seed: int = 0) -> Path:
    path = root / name
    path.write_text(json.dumps({"seed": seed, "datasets": entries}, indent=2))
    return path


def add_broken_dataset(root: Path, name: str = "broken") -> dict:
    """A dataset of one good mp4 and one corrupt file (bytes that are no video), 2 QA each."""
    videos = root / "videos" / name
    videos.mkdir(parents=True, exist_ok=True)
    write_source(videos / "good.mp4", "mp4", seed=99)
    (videos / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    write_annotations(root / "ann" / f"{name}.json", [record("good.mp4"), record("bad.mp4")])
    return {"name": name, "annotations": [f"ann/{name}.json"], "video_root": f"videos/{name}"}
