"""``mashvlm demo`` before the synthetic study exists: describe a generated video with a random tiny model."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def moving_square_video(path: Path, frames: int = 16, size: int = 64) -> Path:
    """A small mp4 of a square crossing a two-colour background."""
    from ..video import write_video

    video = np.zeros((frames, size, size, 3), dtype=np.uint8)
    video[:, : size // 2] = (90, 160, 230)
    video[:, size // 2 :] = (230, 210, 150)
    for t in range(frames):
        x = int(t * (size - 12) / max(1, frames - 1))
        video[t, size // 2 - 6 : size // 2 + 6, x : x + 12] = (200, 40, 40)
    return write_video(path, video, fps=8)


def run(args: argparse.Namespace) -> int:
    from ..cli import main as cli_main
    from ..modeling.tiny import tiny_model, tiny_processor_and_config

    out = Path(args.out)
    model_dir, video = out / "random-tiny-model", out / "example.mp4"
    if not (model_dir / "model.safetensors").is_file():
        processor, config = tiny_processor_and_config(["A person is walking on a beach."])
        tiny_model(config).save_pretrained(model_dir)
        processor.save_pretrained(model_dir)
    moving_square_video(video)
    print(f"NOTE: {model_dir} has RANDOM weights; the answer below is noise, not a description.")
    print(f"$ mashvlm describe {video} --model {model_dir} --max-new-tokens 16")
    return cli_main(["describe", str(video), "--model", str(model_dir), "--max-new-tokens", "16"])
