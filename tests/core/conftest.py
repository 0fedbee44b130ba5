"""Shared tiny-model fixtures for the MASH-VLM core tests (helpers live in ``mash_core_helpers``)."""

import sys
from pathlib import Path

import pytest
import torch

# The helper module sits beside this file; with pytest's --import-mode=importlib nothing puts this
# directory on sys.path, so do it here (conftest.py is loaded before the test modules).
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from mash_core_helpers import build_model, pad_batch, random_pixels, random_text, video_placeholders  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    """The MASH-default tiny model (harmonic RoPE, DST-attention). Do not mutate it in tests."""
    return build_model(seed=0)


@pytest.fixture(scope="session")
def video_batch(tiny_model):
    """A batch of 2: sample 0 left-padded (text, video, text), sample 1 (text, video, text, video, text).

    Returns ``(input_ids, attention_mask, pixel_values_videos)``; videos in order of appearance.
    """
    gen = torch.Generator().manual_seed(1)
    video = video_placeholders(tiny_model.config)
    row0 = random_text(2, gen) + video + random_text(3, gen)
    row1 = random_text(3, gen) + video + random_text(2, gen) + video + random_text(4, gen)
    ids, mask = pad_batch([row0, row1], side="left")
    return ids, mask, random_pixels(3, tiny_model.config, seed=2)
