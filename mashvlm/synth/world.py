"""The synthetic action-scene world on disk: label plans, mp4s, UNSCENE annotations, instruction data.

A world is fully determined by ``(WorldConfig, seed)``. Each split's label plan comes from its own seed
and each video from a seed of (world seed, split, index), so any video can be regenerated alone and a
rebuild is bit-identical. ``build_world`` writes every file atomically and skips what is already there,
so a killed build is finished by running it again.

Hallucination candidates (the planted bias) of the UNSCENE annotations:

- unusual context, action ``a`` in scene ``s``: actions = the actions typical of ``s``; scenes = the typical
  scene of ``a``;
- scene only, scene ``s``: actions = the actions typical of ``s``; scenes = [] (nothing to ask);
- usual context (a control, ``a`` in its typical scene): actions = every other action, scenes = every
  other scene, since the bias itself names the ground truth there;
- motion control (``a`` in a neutral scene it is never shown in during training, so only its motion
  tells it): as usual context, every other action and every other scene.

Fallback: a scene typical of no action (a neutral scene, e.g. "library") uses every action except the
ground truth, so no list is ever empty where a question needs it, and none holds the ground truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mashvlm.errors import MashVlmError
from mashvlm.files import atomic_path
from mashvlm.synth import templates as T
from mashvlm.synth.actors import STANDING_STILL
from mashvlm.synth.config import SPLITS, WorldConfig
from mashvlm.synth.labels import NEUTRAL_SCENES
from mashvlm.synth.render import QA_STREAM, Clip, camera_pan, child_rng, plan_seed, render_video, video_seed
from mashvlm.video import write_video

__all__ = [
    "CONTROL_SETS",
    "FORMAT_VERSION",
    "UNSCENE_SETS",
    "VideoSpec",
    "World",
    "WorldMismatchError",
    "build_world",
    "hallucination_candidates",
    "instruct_entry",
    "load_world",
    "plan_split",
    "plan_world",
    "render_spec",
    "unscene_record",
]

# 3: the motion control (split test_motion, unscene/motion_control.jsonl) and neutral scenes in train.
# 4: four neutral scenes, each action held out in one of them; 20 % of train is actions in neutral scenes.
# 5: control scenes (office, garage) show in train only a person standing still or no one; the other
#    neutral scenes show every action equally often; no camera pans by default.
# 6: the motion warm-up split (train_motion): actions in neutral scenes, asked what the person does.
# 7: train_motion asks the action yes/no question of every action, and the open one three times.
# 8: train_motion no longer asks the scene pair: it taught that a moving person is never in a control scene.
FORMAT_VERSION = 8

# How often the motion warm-up asks each video "What is the person doing in the video?" (``_motion_qas``).
MOTION_OPEN_REPEATS = 3

# Test split -> UNSCENE set name (the ``set`` field and the annotation file name).
UNSCENE_SETS: dict[str, str] = {
    "test_usual": "usual_context",
    "test_unusual": "unusual_context",
    "test_scene_only": "scene_only",
    "test_motion": "motion_control",
}

# The control sets: asked with every other label as the wrong one, scored apart from UNSCENE.
CONTROL_SETS: tuple[str, ...] = ("usual_context", "motion_control")

CONTACT_SHEET = "contact_sheet.png"
MANIFEST = "manifest.jsonl"
_BUILDING = ".building.json"  # identity of an unfinished build; guards against mixing two configs


class WorldMismatchError(MashVlmError, RuntimeError):
    """The output directory holds (part of) a world with another config or seed."""


@dataclass(frozen=True)
class VideoSpec:
    """One planned video: its id, labels, and where it lives under the world root."""

    split: str
    index: int
    video_id: str
    action: str | None  # None: scene only (no actor)
    scene: str
    typical: bool | None  # action shown in its typical scene; None for scene-only videos
    still: bool = False  # a person standing still (no action label; action is None)

    @property
    def video(self) -> str:
        """Path relative to the world root."""
        return f"videos/{self.split}/{self.video_id}.mp4"


# ------------------------------------------------------------------------------------------- planning


def _spec(config: WorldConfig, split: str, index: int, action: str | None, scene: str) -> VideoSpec:
    if action == STANDING_STILL:  # planned as a pseudo action; not a label
        return VideoSpec(split, index, f"{split}_{index:05d}", None, scene, None, still=True)
    typical = None if action is None else config.typical_scene[action] == scene
    return VideoSpec(split, index, f"{split}_{index:05d}", action, scene, typical)


def _neutral_pairs(config: WorldConfig, n: int) -> list[tuple[str, str]]:
    """``n`` (action, scene) pairs of actions in the neutral scenes that may show them in train, balanced over
    (action, scene), so that a neutral scene favours no action."""
    actions, pairs = config.actions, []
    for i in range(n):
        allowed = config.neutral_train_scenes(actions[i % len(actions)])
        pairs.append((actions[i % len(actions)], allowed[(i // len(actions) + i % len(actions)) % len(allowed)]))
    return pairs


def plan_split(config: WorldConfig, seed: int, split: str) -> list[VideoSpec]:
    """Labels of every video of ``split``, balanced by construction, in a seeded random order.

    train: ``round(empty_frac * n)`` scene-only videos (all scenes, neutral ones too, balanced);
    ``round(still_frac * n)`` videos of a person standing still in a control scene (balanced);
    ``round(neutral_frac * n)`` videos of an action (balanced) in the neutral scenes it is not held out
    in (``WorldConfig.neutral_train_scenes``), in turn; the rest split evenly over the
    actions, each shown in its typical scene ``round(rho * count)`` times and otherwise in a uniformly
    drawn other biased scene. test_usual: actions balanced, typical scene. test_unusual: actions
    balanced, each cycling through its non-typical biased scenes (offset per action, so that every scene
    appears). test_scene_only: biased scenes balanced, no actor. test_motion: actions balanced, each in
    the neutral scene it is held out in (``WorldConfig.motion_control_scene``). train_motion: as train's
    neutral videos, actions balanced over the neutral scenes that show them in train.
    """
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; known: {SPLITS}")
    rng = np.random.default_rng(plan_seed(seed, split))
    n, actions, scenes = config.split_size(split), config.actions, config.scenes
    pairs: list[tuple[str | None, str]] = []
    if split == "train":
        n_empty, n_neutral = int(round(config.empty_frac * n)), int(round(config.neutral_frac * n))
        every_scene = config.all_scenes
        pairs += [(None, every_scene[i % len(every_scene)]) for i in range(n_empty)]
        n_still = int(round(config.still_frac * n))
        pairs += [(STANDING_STILL, config.control_scenes[i % len(config.control_scenes)]) for i in range(n_still)]
        pairs += _neutral_pairs(config, n_neutral)
        n_biased = n - n_empty - n_still - n_neutral
        counts = [n_biased // len(actions) + (i < n_biased % len(actions)) for i in range(len(actions))]
        for action, count in zip(actions, counts, strict=True):
            home = config.typical_scene[action]
            others = [s for s in scenes if s != home]
            n_typical = int(round(config.rho * count))
            pairs += [(action, home)] * n_typical
            pairs += [(action, others[k]) for k in rng.integers(0, len(others), count - n_typical)]
    elif split == "test_usual":
        pairs = [(actions[i % len(actions)], config.typical_scene[actions[i % len(actions)]]) for i in range(n)]
    elif split == "test_unusual":
        for i in range(n):
            action = actions[i % len(actions)]
            others = [s for s in scenes if s != config.typical_scene[action]]
            # Offset by the action too, so that even a small split shows every scene.
            pairs.append((action, others[(i // len(actions) + i % len(actions)) % len(others)]))
    elif split == "train_motion":
        pairs = _neutral_pairs(config, n)
    elif split == "test_motion":
        pairs = [(actions[i % len(actions)], config.motion_control_scene(actions[i % len(actions)])) for i in range(n)]
    else:
        pairs = [(None, scenes[i % len(scenes)]) for i in range(n)]
    order = rng.permutation(len(pairs))
    return [_spec(config, split, i, *pairs[j]) for i, j in enumerate(order)]


def plan_world(config: WorldConfig, seed: int) -> dict[str, list[VideoSpec]]:
    return {split: plan_split(config, seed, split) for split in SPLITS}


def render_spec(config: WorldConfig, seed: int, spec: VideoSpec) -> Clip:
    """Render one planned video exactly as ``build_world`` writes it."""
    actor = STANDING_STILL if spec.still else spec.action
    return render_video(actor, spec.scene, video_seed(seed, spec.split, spec.index), config)


# ---------------------------------------------------------------------------------------- annotations


def hallucination_candidates(
    config: WorldConfig, action: str | None, scene: str, unscene_set: str
) -> tuple[list[str], list[str]]:
    """``(hallucinated_actions, hallucinated_scenes)`` of a video; see the module doc for the rule."""
    others_a = [a for a in config.actions if a != action]
    others_s = [s for s in config.all_scenes if s != scene]
    if action is None:
        return (config.typical_actions(scene) or others_a), []
    if unscene_set in CONTROL_SETS:
        return others_a, others_s
    acts = [a for a in config.typical_actions(scene) if a != action] or others_a
    home = config.typical_scene[action]
    return acts, ([home] if home != scene else others_s)


def unscene_record(config: WorldConfig, spec: VideoSpec) -> dict[str, Any]:
    """The UNSCENE video annotation of a test video."""
    unscene_set = UNSCENE_SETS[spec.split]
    h_actions, h_scenes = hallucination_candidates(config, spec.action, spec.scene, unscene_set)
    return {
        "video_id": spec.video_id,
        "video": spec.video,
        "set": unscene_set,
        "action": spec.action,
        "scene": spec.scene,
        "hallucinated_actions": h_actions,
        "hallucinated_scenes": h_scenes or None,  # UNSCENE: null, not [], when there is nothing to ask
    }


def _open_qas(action: str | None, scene: str) -> list[dict[str, str]]:
    if action is None:
        return [
            T.qa(T.Q_ACTION, T.A_NO_PERSON),
            T.qa(T.Q_SCENE, T.fill(T.A_SCENE, scene=scene)),
            T.qa(T.Q_DESCRIBE, T.fill(T.A_DESCRIBE_EMPTY, scene=scene)),
        ]
    return [
        T.qa(T.Q_ACTION, T.fill(T.A_ACTION, action=action)),
        T.qa(T.Q_SCENE, T.fill(T.A_SCENE, scene=scene)),
        T.qa(T.Q_DESCRIBE, T.fill(T.A_DESCRIBE_ACTION, action=action, scene=scene)),
    ]


def _yn(template: str, answer: bool, **labels: str) -> dict[str, str]:
    return T.qa(T.fill(template, **labels), T.YES if answer else T.NO, yes_no=True)


def _train_qas(config: WorldConfig, spec: VideoSpec, rng: np.random.Generator) -> list[dict[str, str]]:
    """Both answers of each UNSCENE yes/no pair on every video, plus "is it empty?" and open questions.

    Every video gets its action pair (true label: yes, a uniformly drawn wrong one: no; on an empty video
    "is this an empty <scene>?": yes and an action: no) and its scene pair, as UNSCENE asks them. Asking
    both on the same video makes the label in the question the only thing that decides the answer; with a
    random mix of yes/no questions the tiny models learned to say "yes" whenever a person was present.
    """
    action, scene = spec.action, spec.scene
    other_action = str(rng.choice([a for a in config.actions if a != action]))
    other_scene = str(rng.choice([s for s in config.all_scenes if s != scene]))
    if spec.still:  # no action is asked, confirmed or denied: the scene must not learn an answer
        chosen = [
            _yn(T.Q_EMPTY_YN, False, scene=scene),
            _yn(T.Q_SCENE_YN, True, scene=scene),
            _yn(T.Q_SCENE_YN, False, scene=other_scene),
            T.qa(T.Q_SCENE, T.fill(T.A_SCENE, scene=scene)),
        ]
        return [chosen[k] for k in rng.permutation(len(chosen))]
    if action is None:
        yes_no = [
            _yn(T.Q_EMPTY_YN, True, scene=scene),
            _yn(T.Q_ACTION_YN, False, action=other_action),
            _yn(T.Q_EMPTY_YN, False, scene=other_scene),
        ]
    else:
        yes_no = [
            _yn(T.Q_ACTION_YN, True, action=action),
            _yn(T.Q_ACTION_YN, False, action=other_action),
            _yn(T.Q_EMPTY_YN, False, scene=scene),
        ]
    yes_no += [_yn(T.Q_SCENE_YN, True, scene=scene), _yn(T.Q_SCENE_YN, False, scene=other_scene)]
    n_open = min(config.qa_per_video - len(yes_no), 3)
    opens = _open_qas(action, scene)
    chosen = [opens[k] for k in sorted(rng.choice(3, n_open, replace=False))] + yes_no
    return [chosen[k] for k in rng.permutation(len(chosen))]


def _motion_qas(config: WorldConfig, spec: VideoSpec, rng: np.random.Generator) -> list[dict[str, str]]:
    """The motion warm-up's questions: what the person does, openly (an 8-way answer, a far stronger signal
    for learning motion than a yes/no pair) and as a yes/no question about every action.

    A wrong action's "No." is asked for each of the seven, and the true action's "Yes." as often, so that the
    answer is balanced and only the action named in the question decides it: with one drawn wrong action
    per video the models memorised each video's pair and said "Yes." to every held-out one. The open
    question is asked three times so that it keeps its weight among them. No scene is asked: these videos
    show a moving person only in the library or the kitchen, and asked about their scenes the models learned
    that a moving person is never in an office or a garage, the control's scenes (docs/synth.md, "Making
    actions learnable").
    """
    wrong_actions = [a for a in config.actions if a != spec.action]
    qas = [T.qa(T.Q_ACTION, T.fill(T.A_ACTION, action=spec.action))] * MOTION_OPEN_REPEATS
    qas += [_yn(T.Q_ACTION_YN, True, action=spec.action)] * len(wrong_actions)
    qas += [_yn(T.Q_ACTION_YN, False, action=a) for a in wrong_actions]
    return [qas[k] for k in rng.permutation(len(qas))]


def _test_qas(config: WorldConfig, spec: VideoSpec, rng: np.random.Generator) -> list[dict[str, str]]:
    """All open questions plus the UNSCENE dual yes/no pairs, the wrong label drawn from the candidates."""
    h_actions, h_scenes = hallucination_candidates(config, spec.action, spec.scene, UNSCENE_SETS[spec.split])
    out = _open_qas(spec.action, spec.scene)
    if spec.action is None:
        out += [
            _yn(T.Q_EMPTY_YN, True, scene=spec.scene),
            _yn(T.Q_ACTION_YN, False, action=str(rng.choice(h_actions))),
        ]
    else:
        out += [
            _yn(T.Q_ACTION_YN, True, action=spec.action),
            _yn(T.Q_ACTION_YN, False, action=str(rng.choice(h_actions))),
            _yn(T.Q_SCENE_YN, True, scene=spec.scene),
            _yn(T.Q_SCENE_YN, False, scene=str(rng.choice(h_scenes))),
        ]
    return out


def instruct_entry(config: WorldConfig, seed: int, spec: VideoSpec) -> dict[str, Any]:
    """The VideoChat2 instruction entry ``{"video", "QA": [{"i", "q", "a"}, ...]}`` of a video."""
    rng = child_rng(video_seed(seed, spec.split, spec.index), QA_STREAM)
    questions = {"train": _train_qas, "train_motion": _motion_qas}.get(spec.split, _test_qas)
    return {"video": spec.video, "QA": questions(config, spec, rng)}


def _manifest_record(config: WorldConfig, seed: int, spec: VideoSpec) -> dict[str, Any]:
    pan = camera_pan(video_seed(seed, spec.split, spec.index), config)
    return {
        "split": spec.split,
        "index": spec.index,
        "video_id": spec.video_id,
        "video": spec.video,
        "action": spec.action,
        "scene": spec.scene,
        "typical": spec.typical,
        "still": spec.still,
        "pan": round(pan, 6),
    }


# ---------------------------------------------------------------------------------------------- files


def _write_bytes_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly it; returns whether it wrote."""
    if path.is_file() and path.read_bytes() == data:
        return False
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return True


def _jsonl(records: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _identity(config: WorldConfig, seed: int) -> dict[str, Any]:
    # Through JSON so that it compares equal to what was read back from disk (tuples become lists).
    return json.loads(json.dumps({"format_version": FORMAT_VERSION, "seed": int(seed), "config": config.to_dict()}))


def _stored_identity(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        return {"format_version": d.get("format_version"), "seed": d.get("seed"), "config": d.get("config")}
    except (OSError, ValueError):
        return None  # an unreadable marker is treated as absent


def _text_files(config: WorldConfig, seed: int, plan: dict[str, list[VideoSpec]]) -> dict[str, bytes]:
    """Every annotation/instruction file of the world, relative path -> content."""
    files = {MANIFEST: _jsonl(_manifest_record(config, seed, s) for split in SPLITS for s in plan[split])}
    for split, unscene_set in UNSCENE_SETS.items():
        files[f"unscene/{unscene_set}.jsonl"] = _jsonl(unscene_record(config, s) for s in plan[split])
    for split in SPLITS:
        files[f"instruct/{split}.json"] = _json([instruct_entry(config, seed, s) for s in plan[split]])
    return files


def _render_and_write(job: tuple[dict[str, Any], int, VideoSpec, str]) -> str:
    config_dict, seed, spec, path = job
    config = WorldConfig.from_dict(config_dict)
    clip = render_spec(config, seed, spec)
    # Single-threaded: x264's frame and lookahead threads make the bytes depend on timing.
    write_video(path, clip.frames, config.fps, crf=config.crf, threads=1)
    return path


def _content_hash(root: Path, rel_paths: Sequence[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(rel_paths):
        h.update(f"{rel}\t{hashlib.sha256((root / rel).read_bytes()).hexdigest()}\n".encode())
    return "sha256:" + h.hexdigest()


def _clear(root: Path) -> None:
    """Remove what a world build writes (and nothing else in ``root``)."""
    for name in ("videos", "unscene", "instruct"):
        shutil.rmtree(root / name, ignore_errors=True)
    for name in ("world.json", MANIFEST, CONTACT_SHEET, _BUILDING):
        (root / name).unlink(missing_ok=True)


@dataclass
class World:
    """A built world: its root, config, seed, planned videos and content hash."""

    root: Path
    config: WorldConfig
    seed: int
    videos: list[VideoSpec]
    content_hash: str

    def split(self, name: str) -> list[VideoSpec]:
        return [v for v in self.videos if v.split == name]

    def path(self, spec: VideoSpec) -> Path:
        return self.root / spec.video

    def unscene_file(self, unscene_set: str) -> Path:
        return self.root / "unscene" / f"{unscene_set}.jsonl"

    def instruct_file(self, split: str) -> Path:
        return self.root / "instruct" / f"{split}.json"


def load_world(root: str | os.PathLike) -> World:
    """Read a built world's ``world.json`` and manifest (no video is decoded)."""
    root = Path(root)
    meta = json.loads((root / "world.json").read_text())
    if meta.get("format_version") != FORMAT_VERSION:
        raise WorldMismatchError(f"{root}: world format {meta.get('format_version')}, expected {FORMAT_VERSION}; "
                                 "rebuild it (mashvlm synth --force) or use another directory")
    config = WorldConfig.from_dict(meta["config"])
    videos = []
    for line in (root / MANIFEST).read_text().splitlines():
        r = json.loads(line)
        videos.append(VideoSpec(r["split"], r["index"], r["video_id"], r["action"], r["scene"], r["typical"],
                                still=r["still"]))
    return World(root, config, int(meta["seed"]), videos, meta["content_hash"])


def _all_present(root: Path, plan: dict[str, list[VideoSpec]]) -> bool:
    fixed = [MANIFEST, CONTACT_SHEET] + [f"unscene/{s}.jsonl" for s in UNSCENE_SETS.values()]
    fixed += [f"instruct/{s}.json" for s in SPLITS]
    videos = [s.video for split in SPLITS for s in plan[split]]
    return all((root / rel).is_file() for rel in fixed + videos)


def build_world(
    out_dir: str | os.PathLike,
    config: WorldConfig | None = None,
    seed: int = 0,
    *,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> World:
    """Write the world of ``(config, seed)`` under ``out_dir``; skip whatever is already there and right.

    Raises :class:`WorldMismatchError` if ``out_dir`` holds a world (finished or not) of another config or
    seed, unless ``force``, which deletes the world files first and rebuilds everything.
    """
    from tqdm.auto import tqdm

    root = Path(out_dir)
    config = config or WorldConfig()
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    identity = _identity(config, seed)
    plan = plan_world(config, seed)
    if force:
        _clear(root)
    for marker in (root / "world.json", root / _BUILDING):
        stored = _stored_identity(marker)
        if stored is not None and stored != identity:
            old_format = stored["format_version"] != FORMAT_VERSION
            what = (f"a world of format version {stored['format_version']} (this version writes {FORMAT_VERSION})"
                    if old_format else "a world with another config or seed")
            raise WorldMismatchError(
                f"{root} holds {what} ({marker.name}); "
                "use another directory or force=True / --force to replace it"
            )
    if (root / "world.json").is_file() and _all_present(root, plan):
        return load_world(root)

    root.mkdir(parents=True, exist_ok=True)
    _write_bytes_atomic(root / _BUILDING, _json(identity))
    for stale in root.glob("videos/*/*.partial.mp4"):  # left by a killed encoder
        stale.unlink()

    specs = [s for split in SPLITS for s in plan[split]]
    todo = [s for s in specs if not (root / s.video).is_file()]
    jobs = [(config.to_dict(), int(seed), s, str(root / s.video)) for s in todo]
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    bar = tqdm(total=len(jobs), desc="synth videos", unit="video", disable=not progress or not jobs)
    if workers > 1 and len(jobs) > 4 * workers:  # a pool only pays off beyond a handful of videos
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_render_and_write, jobs, chunksize=16):
                bar.update()
    else:
        for job in jobs:
            _render_and_write(job)
            bar.update()
    bar.close()

    text = _text_files(config, seed, plan)
    for rel, data in text.items():
        _write_bytes_atomic(root / rel, data)
    if not (root / CONTACT_SHEET).is_file():
        from mashvlm.synth.contact import contact_sheet

        contact_sheet(root / CONTACT_SHEET, config, seed)

    content_hash = _content_hash(root, [s.video for s in specs] + list(text))
    meta = {
        **identity,
        "generator": "mashvlm.synth",
        "actions": list(config.actions),
        "scenes": list(config.scenes),
        "typical_scene": dict(config.typical_scene),
        "neutral_scenes": list(config.neutral_scenes),
        "neutral_scenes_among_scenes": [s for s in config.scenes if not config.typical_actions(s)],
        "known_neutral_scenes": list(NEUTRAL_SCENES),
        # (action, neutral scene) pairs of the motion control: in test_motion only, never in train
        "motion_control_pairs": {a: config.motion_control_scene(a) for a in config.actions}
        if config.neutral_scenes else {},
        "splits": {
            split: {"count": len(plan[split]), "videos": f"videos/{split}", "instruct": f"instruct/{split}.json"}
            for split in SPLITS
        },
        "unscene": {s: f"unscene/{s}.jsonl" for s in UNSCENE_SETS.values()},
        "manifest": MANIFEST,
        "contact_sheet": CONTACT_SHEET,
        "content_hash": content_hash,
    }
    _write_bytes_atomic(root / "world.json", _json(meta))
    (root / _BUILDING).unlink(missing_ok=True)
    return World(root, config, int(seed), specs, content_hash)
