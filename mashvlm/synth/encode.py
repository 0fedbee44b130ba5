"""Deterministic mp4 writing for the world files.

x264's frame and lookahead threads are not bit-reproducible: under CPU contention (two render workers)
the same frames gave files whose decoded pixels differ. A world must be bit-identical on every rebuild,
so its videos are encoded single-threaded (at 64x64 threads buy nothing anyway).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mashvlm.video import write_video

__all__ = ["write_video_deterministic"]


def write_video_deterministic(path: str | os.PathLike, frames: np.ndarray, fps: float, crf: int = 18) -> Path:
    """Write ``uint8 [T, H, W, 3]`` frames to an H.264 mp4, single-threaded, atomically."""
    return write_video(path, frames, fps, crf=crf, threads=1)
