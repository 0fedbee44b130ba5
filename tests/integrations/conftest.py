from __future__ import annotations

import numpy as np
import pytest

CORPUS = ["The person is jumping on a beach.", "Is someone running? Yes. No.", "Best option: (A) (B) (C)"]


@pytest.fixture(scope="session")
def tiny_parts():
    """(processor, config) of a tiny MASH-VLM: 32x32 frames, patch 8, T = 4."""
    from mashvlm.modeling.tiny import tiny_processor_and_config

    return tiny_processor_and_config(CORPUS)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_parts):
    """A saved tiny checkpoint directory (random weights, seeded)."""
    from mashvlm.modeling.tiny import tiny_model

    processor, config = tiny_parts
    path = tmp_path_factory.mktemp("ckpt") / "tiny-mashvlm"
    tiny_model(config, seed=3).save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory):
    """Four 8-frame 32x32 videos of different content."""
    from mashvlm.video import write_video

    root = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        frames = rng.integers(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
        paths.append(write_video(root / f"clip{i}.mp4", frames, fps=8.0))
    return paths
