"""Render one synthetic video in memory: a scene (maybe panned) plus, unless scene-only, the actor."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mashvlm.synth.actors import actor_track, draw_actor
from mashvlm.synth.config import WorldConfig
from mashvlm.synth.scenes import draw_scene, pan_crop

__all__ = ["Clip", "render_video", "video_seed", "plan_seed", "child_rng", "camera_pan"]


@dataclass
class Clip:
    """A rendered video and what generated it."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    action: str | None  # None: scene only
    scene: str
    centers: np.ndarray | None  # float [T, 2] actor centre (x, y) in pixels; None without actor
    actor_size: float | None  # sprite height in pixels
    pan: float  # camera pan in pixels per frame (signed); 0.0 for a static camera


def _split_code(split: str) -> int:
    return zlib.crc32(split.encode("utf-8"))


def video_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one video: a function of (world seed, split, index) only, so any video can be redone alone."""
    return np.random.SeedSequence([int(seed), _split_code(split), 1, int(index)])


def plan_seed(seed: int, split: str) -> np.random.SeedSequence:
    """The seed of a split's label plan (which action in which scene, and the order)."""
    return np.random.SeedSequence([int(seed), _split_code(split), 0, 0])


def child_rng(ss: np.random.SeedSequence, key: int) -> np.random.Generator:
    """An independent stream of ``ss``; unlike ``ss.spawn`` it is stateless, so the same key gives the same stream."""
    return np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (key,)))


# Stream keys under a video's seed: separate streams so that, e.g., adding a draw to the actor code does
# not change the scenes, and the QA sampling never changes the pixels.
SCENE_STREAM, CAMERA_STREAM, ACTOR_STREAM, QA_STREAM = 0, 1, 2, 3


def camera_pan(ss: np.random.SeedSequence, config: WorldConfig) -> float:
    """Camera pan of the video seeded by ``ss``, in pixels per frame (signed); 0.0 for a static camera."""
    cam = child_rng(ss, CAMERA_STREAM)
    wants_pan, speed, direction = cam.random(), cam.uniform(*config.pan_speed), cam.choice([-1.0, 1.0])
    if not config.pan or wants_pan >= config.pan_prob:
        return 0.0
    return float(direction * speed * config.height / config.fps)


def render_video(
    action: str | None,
    scene: str,
    seed: int | np.random.SeedSequence,
    config: WorldConfig | None = None,
) -> Clip:
    """Render ``action`` (or no actor when None) in ``scene``; deterministic in (action, scene, seed, config)."""
    config = config or WorldConfig()
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    h, w, t = config.height, config.width, config.frames

    pan = camera_pan(ss, config)
    travel = abs(pan) * (t - 1)
    canvas_w = w + (int(np.ceil(travel)) + 1 if pan else 0)
    canvas = draw_scene(scene, child_rng(ss, SCENE_STREAM), h, canvas_w)
    if pan:
        offsets = (0.0 if pan > 0 else travel) + pan * np.arange(t)
        frames = pan_crop(canvas, offsets, w)
    else:
        frames = np.repeat(canvas[None], t, axis=0)

    centers, size = None, None
    if action is not None:
        centers, size = actor_track(action, child_rng(ss, ACTOR_STREAM), h, w, t, config.fps)
        draw_actor(frames, centers, size)
    out = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return Clip(frames=out, action=action, scene=scene, centers=centers, actor_size=size, pan=float(pan))
