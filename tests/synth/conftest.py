"""Fixtures of the synthetic-world tests (helpers are fixtures: no sys.path tricks under importlib mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mashvlm.synth import WorldConfig, build_world


def _tiny_config(**overrides) -> WorldConfig:
    """A small world that builds in about a second: 32x32 frames, 96 videos."""
    base = dict(height=32, width=32, n_train=40, n_test_usual=16, n_test_unusual=16, n_test_scene_only=8,
                n_test_motion=16, n_train_motion=16)
    base.update(overrides)
    return WorldConfig(**base)


def _world_files(root: Path) -> dict[str, bytes]:
    """Every file of a world directory, relative path -> bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def tiny_config():
    return _tiny_config


@pytest.fixture(scope="session")
def world_files():
    return _world_files


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """One tiny world built once for the read-only tests."""
    root = tmp_path_factory.mktemp("world")
    return build_world(root, _tiny_config(), seed=3, workers=1, progress=False)
