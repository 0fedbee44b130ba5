"""Mini benchmark layouts in the official file formats, and a fake model with known answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mashvlm.evaluation.model import ChatPrompt
from mashvlm.video import write_video


def tiny_frames(n: int = 8, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(n, size, size, 3), dtype=np.uint8)


def write_mp4(path: Path, n: int = 8, fps: float = 4.0, seed: int = 0) -> Path:
    return write_video(path, tiny_frames(n, seed=seed), fps=fps, threads=1)


def write_gif(path: Path, n: int = 8) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in tiny_frames(n, seed=3)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path


def write_frame_folder(path: Path, n: int = 12) -> Path:
    from PIL import Image

    path.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(tiny_frames(n, seed=4), start=1):  # MVBench's frames start at 00001.jpg
        Image.fromarray(f).save(path / f"{i:05d}.jpg")
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


class FakeModel:
    """Answers from ``reply(prompt) -> str``; records every generate call (frames shape and prompts)."""

    name = "fake"

    def __init__(self, reply: Callable[[ChatPrompt], str], num_frames: int = 4):
        self.reply = reply
        self.num_frames = num_frames
        self.calls: list[tuple[tuple[int, ...], list[ChatPrompt]]] = []

    def generate(self, frames: np.ndarray, prompts: Sequence[ChatPrompt], *, max_new_tokens: int) -> list[str]:
        self.calls.append((tuple(frames.shape), list(prompts)))
        return [self.reply(p) for p in prompts]
