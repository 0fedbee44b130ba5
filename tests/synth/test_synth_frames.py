"""What a single frame tells and what only motion tells, checked with simple probes on rendered clips.

The world is useful only if the shortcut is real and the task is learnable: one frame must tell the
scene, no single frame may tell the action (the actor looks the same and sits anywhere in every action),
and the motion over time must tell the action.
"""

from __future__ import annotations

import numpy as np
import pytest

from mashvlm.synth import ACTIONS, SCENES, WorldConfig, render_video

CHANCE = 1 / len(ACTIONS)


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-6)


def _ridge_accuracy(x: np.ndarray, y: np.ndarray, lam: float) -> float:
    """Held-out accuracy (every third sample) of a one-vs-rest ridge classifier."""
    x = np.c_[_standardise(x), np.ones(len(x))]
    test = np.arange(len(x)) % 3 == 0
    targets = np.eye(y.max() + 1)[y]
    w = np.linalg.solve(x[~test].T @ x[~test] + lam * np.eye(x.shape[1]), x[~test].T @ targets[~test])
    return float(((x[test] @ w).argmax(1) == y[test]).mean())


def _knn_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Held-out accuracy of a 1-nearest-neighbour classifier: catches non-linear leaks a ridge misses."""
    x = _standardise(x)
    test = np.arange(len(x)) % 3 == 0
    d = ((x[test][:, None] - x[~test][None]) ** 2).sum(-1)
    return float((y[~test][d.argmin(1)] == y[test]).mean())


@pytest.fixture(scope="module")
def clips():
    """40 clips per action, each in a uniformly drawn scene, one random frame of each kept as a probe."""
    config, rng = WorldConfig(height=32, width=32), np.random.default_rng(0)
    out = []
    for a, action in enumerate(ACTIONS):
        for _ in range(40):
            s = int(rng.integers(len(SCENES)))
            clip = render_video(action, SCENES[s], int(rng.integers(1 << 30)), config)
            out.append((a, s, int(rng.integers(config.frames)), clip))
    return config, out


def test_one_frame_tells_the_scene(clips):
    _, data = clips
    frames = np.stack([c.frames[t].astype(np.float32).reshape(8, 4, 8, 4, 3).mean((1, 3)).ravel()
                       for _, _, t, c in data])
    scenes = np.array([s for _, s, _, _ in data])
    assert _ridge_accuracy(frames, scenes, lam=10.0) > 0.95


def test_no_single_frame_tells_the_action(clips):
    _, data = clips
    actions = np.array([a for a, _, _, _ in data])
    frames = np.stack([c.frames[t].astype(np.float32).reshape(8, 4, 8, 4, 3).mean((1, 3)).ravel()
                       for _, _, t, c in data])
    assert _ridge_accuracy(frames, actions, lam=10.0) < 2 * CHANCE
    # The actor itself: where it is and how big, at one moment, is the same distribution for every action.
    geometry = np.stack([[*c.centers[t], c.actor_size] for _, _, t, c in data])
    assert _knn_accuracy(geometry, actions) < 2 * CHANCE
    assert _ridge_accuracy(geometry, actions, lam=1.0) < 2 * CHANCE


def test_motion_over_time_tells_the_action(clips):
    config, data = clips
    actions = np.array([a for a, _, _, _ in data])

    def motion_features(clip):
        step = np.diff(clip.centers, axis=0) / config.height
        accel = np.diff(step, axis=0)
        return np.r_[np.abs(step).mean(0), step.std(0), np.abs(accel).mean(0), np.abs(step.sum(0)),
                     np.abs(step).max(0)]

    motion = np.stack([motion_features(c) for _, _, _, c in data])
    assert _knn_accuracy(motion, actions) > 0.85

