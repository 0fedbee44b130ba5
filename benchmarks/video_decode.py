"""Data-pipeline throughput of ``read_video_frames``: clips per second decoding 16 frames, seeking to the
sampled frames (``decode="seek"``) against decoding from the start (``decode="full"``), through a torch
DataLoader at 0 and 2 workers, as ratios measured side by side in one process.

The clips are made here with PyAV: 640x360, 30 s at 30 fps, H.264 (libx264, veryfast), a moving
gradient over a drifting noise texture so the encoder has real work. Half use FFmpeg's default keyframe
interval (250 frames, ~8 s), half a 1 s interval (phones, streaming). Generating them takes a while.

    python benchmarks/video_decode.py [--clips 4 --seconds 30 --rounds 3 --epochs 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mashvlm.video import read_video_frames


def make_clip(path: Path, seconds: float, gop: int, seed: int, size=(360, 640), fps: int = 30) -> Path:
    import av

    height, width = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 64, (height + 64, width + 64, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(gop)}
        for i in range(int(seconds * fps)):
            shift = (i * 2) % 64
            base = ((xx + 3 * i) % 256)[..., None] * np.array([0.8, 0.5, 0.3]) + ((yy + i) % 128)[..., None] * 0.5
            frame = np.clip(base + texture[shift : shift + height, shift : shift + width], 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


class Clips(Dataset):
    def __init__(self, paths: list[Path], decode: str, repeat: int):
        self.paths, self.decode, self.repeat = paths, decode, repeat

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(read_video_frames(self.paths[i % len(self.paths)], 16, decode=self.decode))


def clips_per_second(loader: DataLoader, epochs: int) -> float:
    start, count = time.perf_counter(), 0
    for _ in range(epochs):
        for frames in loader:
            assert frames.shape[0] == 16
            count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=4, help="clips to generate (half per keyframe interval)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the machine's speed drifts)")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the clips per timed round")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        groups = {
            gop: [make_clip(Path(tmp) / f"gop{gop}_{i}.mp4", args.seconds, gop, seed=i) for i in range(args.clips // 2)]
            for gop in (250, 30)
        }
        print(f"made {args.clips} clips of 640x360, {args.seconds:g} s at 30 fps in {time.perf_counter() - start:.0f} s")
        print(f"machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
        # Both paths give the same frames (tests/model_io/test_video_formats.py checks it on every format).
        for paths in groups.values():
            assert np.array_equal(read_video_frames(paths[0], 16), read_video_frames(paths[0], 16, decode="full"))
        print(f"\n{'keyframe interval':>18} {'workers':>7} {'full clips/s':>12} {'seek clips/s':>12} {'seek / full':>11}")
        for gop, paths in groups.items():
            for workers in (0, 2):
                loaders = {
                    mode: DataLoader(
                        Clips(paths, mode, repeat=2), batch_size=None, num_workers=workers,
                        persistent_workers=workers > 0,
                    )
                    for mode in ("full", "seek")
                }
                for loader in loaders.values():  # start the workers, warm the file cache
                    clips_per_second(loader, 1)
                rates: dict[str, list[float]] = {"full": [], "seek": []}
                for _ in range(args.rounds):
                    for mode, loader in loaders.items():
                        rates[mode].append(clips_per_second(loader, args.epochs))
                full, seek = (statistics.median(rates[m]) for m in ("full", "seek"))
                print(f"{gop:>14} fr {workers:>7} {full:>12.2f} {seek:>12.2f} {seek / full:>10.2f}x")
                del loaders


if __name__ == "__main__":
    main()
