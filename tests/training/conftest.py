"""A tiny synthetic world shared by the training and study tests (built once per session, ~1 s)."""

from __future__ import annotations

import pytest

from mashvlm.synth import WorldConfig, build_world

TINY_MODEL = dict(image_size=32, patch_size=8, num_frames=4, text_hidden=64, text_layers=2)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    config = WorldConfig(height=32, width=32, frames=8, n_train=48, n_test_usual=8, n_test_unusual=8,
                         n_test_scene_only=8, n_test_motion=8, n_train_motion=8)
    return build_world(tmp_path_factory.mktemp("world"), config, seed=1, workers=1, progress=False)


@pytest.fixture(scope="session")
def tiny_model_kwargs():
    return dict(TINY_MODEL)
