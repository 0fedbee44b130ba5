"""The actor: one sprite, the same in every frame of every action; only its trajectory tells the action.

Positions are drawn so that, at any single time, the actor's centre is uniform over the positions where
the whole sprite fits, for every action alike: the start point of the "unfolded" trajectory is uniform on
a period of a triangle wave (a reflection off the frame edges), and folding a uniform variable shifted by
any displacement stays uniform. Size is drawn from one range for all actions. So a single frame carries
no information about the action (checked in the tests), while the motion over time does.

Motion parameters are in frame heights and seconds, so the world can be rendered at other sizes and
frame rates. Ranges (per video; phase uniform, horizontal direction +-1):

=========  ==============================================================================
jumping    vertical bounce ``-A|sin(pi t / P)|``, A 0.22-0.32, bounce period P 1.0-1.4 s
dribbling  same bounce, small and fast: A 0.09-0.13, P 0.5-0.7 s
running    steady horizontal translation, 0.40-0.55 heights/s
skiing     steady diagonal descent, 0.22-0.30 heights/s on each axis
swimming   slow horizontal drift 0.12-0.18 heights/s, plus a vertical bob A 0.04-0.06, P 0.8-1.2 s
waving     fast horizontal oscillation, A 0.10-0.15, P 0.55-0.75 s
boxing     one-sided forward jabs (fast out, slower back, rest), reach 0.22-0.30, every 1.0-1.3 s
spinning   circular orbit, radius 0.12-0.18, period 0.8-1.2 s
=========  ==============================================================================

``STANDING_STILL`` (not an action label) keeps the start position for the whole clip.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["ACTOR_SIZE_RANGE", "MOTIONS", "STANDING_STILL", "actor_track", "draw_actor", "sprite_extent"]

# Sprite height as a fraction of the frame height (same range for every action).
ACTOR_SIZE_RANGE = (0.24, 0.34)

# Fixed look: dark outline so it stands out on bright and dark scenes alike, bright fills.
OUTLINE_RGB = np.asarray([20, 20, 25], np.float64)
BODY_RGB = np.asarray([235, 40, 200], np.float64)
HEAD_RGB = np.asarray([255, 215, 60], np.float64)
BELT_RGB = np.asarray([40, 225, 235], np.float64)

# Shape, in units of the sprite height, relative to its centre (v grows downwards).
_HEAD_V, _HEAD_R = -0.30, 0.17
_BODY_V, _BODY_A, _BODY_B = 0.13, 0.19, 0.30

Motion = Callable[[np.random.Generator, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _phase(rng: np.random.Generator) -> float:
    return float(rng.uniform(0, 2 * np.pi))


def _sign(rng: np.random.Generator) -> float:
    return float(rng.choice([-1.0, 1.0]))


def _bounce(amp: tuple[float, float], period: tuple[float, float]) -> Motion:
    def motion(rng, t):
        a, p, ph = rng.uniform(*amp), rng.uniform(*period), _phase(rng)
        return np.zeros_like(t), -a * np.abs(np.sin(np.pi * t / p + ph))

    return motion


def _running(rng, t):
    v, d = rng.uniform(0.40, 0.55), _sign(rng)
    return d * v * t, np.zeros_like(t)


def _skiing(rng, t):
    vx, vy, d = rng.uniform(0.22, 0.30), rng.uniform(0.22, 0.30), _sign(rng)
    return d * vx * t, vy * t


def _swimming(rng, t):
    v, d = rng.uniform(0.12, 0.18), _sign(rng)
    a, p, ph = rng.uniform(0.04, 0.06), rng.uniform(0.8, 1.2), _phase(rng)
    return d * v * t, a * np.sin(2 * np.pi * t / p + ph)


def _waving(rng, t):
    a, p, ph = rng.uniform(0.10, 0.15), rng.uniform(0.55, 0.75), _phase(rng)
    return a * np.sin(2 * np.pi * t / p + ph), np.zeros_like(t)


def _boxing(rng, t):
    reach, p, d = rng.uniform(0.22, 0.30), rng.uniform(1.0, 1.3), _sign(rng)
    cycle = np.mod(t / p + rng.uniform(0, 1), 1.0)
    # Jab: out in the first 20% of the cycle, back over the next 35%, then a guard pause.
    jab = np.where(cycle < 0.2, cycle / 0.2, np.where(cycle < 0.55, 1 - (cycle - 0.2) / 0.35, 0.0))
    return d * reach * jab, np.zeros_like(t)


def _spinning(rng, t):
    r, p, ph, d = rng.uniform(0.12, 0.18), rng.uniform(0.8, 1.2), _phase(rng), _sign(rng)
    ang = d * 2 * np.pi * t / p + ph
    return r * np.cos(ang), r * np.sin(ang)


MOTIONS: dict[str, Motion] = {
    "jumping": _bounce((0.22, 0.32), (1.0, 1.4)),
    "running": _running,
    "spinning": _spinning,
    "waving": _waving,
    "boxing": _boxing,
    "skiing": _skiing,
    "swimming": _swimming,
    "dribbling": _bounce((0.09, 0.13), (0.5, 0.7)),
}

# A person who does none of the actions: shown in the control scenes in training, so that a person there
# is not new at test time while no action label is ever seen with those scenes. Not an action label.
STANDING_STILL = "standing still"


def _still(rng, t):
    return np.zeros_like(t), np.zeros_like(t)


_TRACKS: dict[str, Motion] = {**MOTIONS, STANDING_STILL: _still}


def _outline(size: float) -> float:
    """Outline width in sprite-height units: at least one pixel."""
    return max(1.0, 0.07 * size) / size


def sprite_extent(size: float) -> tuple[float, float, float]:
    """(half width, extent above centre, extent below centre) of the sprite in pixels."""
    o = _outline(size)
    return (_BODY_A + o) * size, (-_HEAD_V + _HEAD_R + o) * size, (_BODY_V + _BODY_B + o) * size


def _fold(u: np.ndarray, length: float) -> np.ndarray:
    """Triangle wave of period ``2 * length``: motion reflects off the edges of ``[0, length]``."""
    m = np.mod(u, 2 * length)
    return np.where(m < length, m, 2 * length - m)


def actor_track(
    action: str, rng: np.random.Generator, height: int, width: int, frames: int, fps: float
) -> tuple[np.ndarray, float]:
    """Centres ``float [frames, 2]`` (x, y in pixels) and the sprite height (pixels) of one video."""
    if action not in _TRACKS:
        raise KeyError(f"unknown action {action!r}; known: {sorted(_TRACKS)}")
    size = float(rng.uniform(*ACTOR_SIZE_RANGE) * height)
    half_w, up, down = sprite_extent(size)
    lo_x, len_x = half_w + 0.5, max(width - 2 * half_w - 1.0, 1.0)
    lo_y, len_y = up + 0.5, max(height - up - down - 1.0, 1.0)
    u0 = rng.uniform(0, 2 * len_x)  # uniform over one fold period -> uniform position at every time
    v0 = rng.uniform(0, 2 * len_y)
    t = np.arange(frames, dtype=np.float64) / fps
    dx, dy = _TRACKS[action](rng, t)
    xs = lo_x + _fold(u0 + dx * height, len_x)
    ys = lo_y + _fold(v0 + dy * height, len_y)
    return np.stack([xs, ys], axis=1), size


def draw_actor(frames: np.ndarray, centers: np.ndarray, size: float) -> None:
    """Paint the sprite into ``float [T, H, W, 3]`` frames in place, at ``centers`` (pixels)."""
    _, h, w, _ = frames.shape
    xs = np.arange(w, dtype=np.float64)[None, None, :] + 0.5
    ys = np.arange(h, dtype=np.float64)[None, :, None] + 0.5
    u = (xs - centers[:, 0, None, None].astype(np.float64)) / size
    v = (ys - centers[:, 1, None, None].astype(np.float64)) / size
    o = _outline(size)
    head_d = np.sqrt(u**2 + (v - _HEAD_V) ** 2)
    body_n = (u / _BODY_A) ** 2 + ((v - _BODY_V) / _BODY_B) ** 2
    body_o = (u / (_BODY_A + o)) ** 2 + ((v - _BODY_V) / (_BODY_B + o)) ** 2
    head, body = head_d < _HEAD_R, body_n < 1
    frames[(head_d < _HEAD_R + o) | (body_o < 1)] = OUTLINE_RGB
    frames[body] = BODY_RGB
    frames[body & (np.abs(v - (_BODY_V + 0.04)) < 0.05)] = BELT_RGB
    frames[head] = HEAD_RGB
