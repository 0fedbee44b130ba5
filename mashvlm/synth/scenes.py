"""Procedural scene backgrounds, drawn with numpy on a canvas that may be wider than the frame.

Every scene is a function ``(rng, y, x, width) -> float RGB image`` over normalised coordinates: ``y`` runs
0..1 down the frame height and ``x`` 0..``width`` across, in units of the frame *height*, so shapes keep
their aspect whatever the frame size. Per video the palette is jittered, the layout moved and static
texture noise added; one frame is enough to tell the scene (the tests check it with a per-frame
classifier). A camera pan renders a wider canvas and slides a window over it (``pan_crop``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["SCENE_DRAWERS", "draw_scene", "pan_crop"]

Color = np.ndarray  # float [3]
Drawer = Callable[[np.random.Generator, np.ndarray, np.ndarray, float], np.ndarray]


def _jit(rng: np.random.Generator, rgb: tuple[int, int, int], amount: float = 16.0) -> Color:
    """A palette colour moved per video, so no scene is one fixed colour."""
    return np.clip(np.asarray(rgb, dtype=np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def _paint(img: np.ndarray, mask: np.ndarray, color: np.ndarray) -> None:
    img[mask] = color if color.ndim == 1 else color[mask]


def _resize_bilinear(small: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear upsampling of a 2D grid to ``h x w`` (smooth low-frequency texture)."""
    sh, sw = small.shape
    ys = np.linspace(0, sh - 1, h, dtype=np.float64)
    xs = np.linspace(0, sw - 1, w, dtype=np.float64)
    y0 = np.minimum(ys.astype(int), sh - 2)
    x0 = np.minimum(xs.astype(int), sw - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    a = small[y0][:, x0]
    b = small[y0][:, x0 + 1]
    c = small[y0 + 1][:, x0]
    d = small[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Zero-mean, unit-ish noise varying over about ``h / cells`` pixels."""
    gh = max(cells, 2) + 1
    gw = max(int(round(cells * w / h)), 2) + 1
    return _resize_bilinear(rng.standard_normal((gh, gw)).astype(np.float64), h, w)


def _band(v: np.ndarray, center: float | np.ndarray, half: float) -> np.ndarray:
    return np.abs(v - center) < half


# ---------------------------------------------------------------------------------------------- scenes


def _beach(rng, y, x, width):
    sky, sea, sand = _jit(rng, (140, 200, 240)), _jit(rng, (25, 110, 190)), _jit(rng, (232, 206, 150))
    horizon = rng.uniform(0.26, 0.36)
    shore = horizon + rng.uniform(0.18, 0.26) + 0.02 * np.sin(x * rng.uniform(9, 15) + rng.uniform(0, 6.3))
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = sand
    _paint(img, y < shore, sea)
    # Foam stripes on the sea and a brighter sky towards the horizon.
    foam = (y >= horizon) & (y < shore) & (np.sin((y - horizon) * 70 + 2 * np.sin(x * 7)) > 0.85)
    _paint(img, foam, np.minimum(sea + 70, 255))
    _paint(img, _band(y, shore, 0.02), np.asarray([245, 245, 240], np.float64))
    sky_grad = sky[None, None, :] * (0.85 + 0.25 * (y / horizon))[..., None]
    _paint(img, y < horizon, np.clip(sky_grad, 0, 255))
    sun = (y - rng.uniform(0.07, 0.15)) ** 2 + (x - rng.uniform(0.2, width - 0.2)) ** 2 < rng.uniform(
        0.05, 0.07
    ) ** 2
    _paint(img, sun, _jit(rng, (255, 230, 90), 8))
    return img


def _snowy_mountain(rng, y, x, width):
    sky, rock, snow = _jit(rng, (95, 155, 225)), _jit(rng, (105, 110, 130)), _jit(rng, (245, 248, 252), 6)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = np.clip(sky[None, None, :] * (0.8 + 0.35 * y)[..., None], 0, 255)
    n = max(2, int(np.ceil(width / 0.55)))
    for i in range(n):  # peaks spread across the canvas so every panned window shows one
        px = (i + rng.uniform(0.15, 0.85)) * width / n
        py = rng.uniform(0.1, 0.32)
        slope = rng.uniform(1.0, 1.6)
        ridge = py + slope * np.abs(x - px)
        _paint(img, y > ridge, rock * rng.uniform(0.85, 1.1))
        cap = (y > ridge) & (y < py + rng.uniform(0.14, 0.26) + 0.03 * np.sin(x * 45))
        _paint(img, cap, snow)
    _paint(img, y > rng.uniform(0.74, 0.84) + 0.03 * np.sin(x * rng.uniform(4, 8)), snow)
    return img


def _basketball_court(rng, y, x, width):
    wall, floor, line = _jit(rng, (45, 55, 95)), _jit(rng, (210, 140, 70)), _jit(rng, (250, 250, 245), 5)
    paint = _jit(rng, (170, 40, 40), 25)
    top = rng.uniform(0.14, 0.24)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = floor
    planks = (np.mod(x * rng.uniform(18, 26), 1.0) < 0.12) & (y > top)
    _paint(img, planks, floor * 0.86)
    cx = rng.uniform(0.35, 0.65) * width
    key = (np.abs(x - (cx + rng.choice([-1, 1]) * 0.65)) < 0.17) & (y > top + 0.05)
    _paint(img, key, paint)
    circle = np.sqrt((x - cx) ** 2 + (y - rng.uniform(0.55, 0.7)) ** 2)
    lines = _band(y, top + 0.05, 0.014) | (_band(x, cx, 0.014) & (y > top + 0.05)) | _band(circle, 0.2, 0.014)
    _paint(img, lines & (y > top), line)
    _paint(img, y < top, wall)
    return img


def _boxing_ring(rng, y, x, width):
    dark, canvas = _jit(rng, (28, 26, 36), 8), _jit(rng, (40, 80, 175), 20)
    rope_colors = [_jit(rng, (215, 35, 40), 15), _jit(rng, (240, 240, 240), 8), _jit(rng, (215, 35, 40), 15)]
    floor = rng.uniform(0.56, 0.66)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = dark
    _paint(img, y >= floor, canvas)
    _paint(img, _band(y, floor, 0.02), canvas * 0.6)
    post_gap = rng.uniform(0.7, 0.95)
    offset = rng.uniform(0, post_gap)
    post = (np.mod(x - offset, post_gap) < 0.06) & (y > 0.18) & (y < floor)
    post_red = np.mod(np.floor((x - offset) / post_gap), 2) == 0
    _paint(img, post & post_red, _jit(rng, (200, 30, 30)))
    _paint(img, post & ~post_red, _jit(rng, (30, 60, 200)))
    spacing = rng.uniform(0.11, 0.14)
    for k, color in enumerate(rope_colors):
        _paint(img, _band(y, floor - (k + 1) * spacing, 0.018), color)
    return img


def _swimming_pool(rng, y, x, width):
    deck, water = _jit(rng, (205, 200, 185)), _jit(rng, (30, 145, 215), 14)
    red, white = _jit(rng, (220, 40, 40), 12), np.asarray([245, 245, 245], np.float64)
    edge = rng.uniform(0.08, 0.15)
    img = np.empty(y.shape + (3,), np.float64)
    caustic = np.sin(x * 31 + 2.5 * np.sin(y * 23 + rng.uniform(0, 6.3))) * np.sin(y * 27 + 2 * np.sin(x * 17))
    img[:] = np.clip(water[None, None, :] * (1 + 0.12 * caustic[..., None]), 0, 255)
    spacing = rng.uniform(0.19, 0.25)
    dash = np.mod(x * rng.uniform(7, 10), 1.0) < 0.5
    for k in range(1, 6):
        rope = _band(y, edge + k * spacing, 0.02)
        _paint(img, rope & dash, red)
        _paint(img, rope & ~dash, white)
    _paint(img, y < edge, deck)
    _paint(img, _band(y, edge, 0.015), deck * 0.7)
    return img


def _ice_rink(rng, y, x, width):
    crowd, board, ice = _jit(rng, (55, 50, 65), 10), _jit(rng, (250, 250, 250), 4), _jit(rng, (222, 236, 248), 6)
    red, blue = _jit(rng, (210, 30, 40), 15), _jit(rng, (30, 70, 200), 15)
    top = rng.uniform(0.14, 0.22)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = ice
    cx = rng.uniform(0.3, 0.7) * width
    _paint(img, _band(x, cx, 0.02) & (y > top), red)
    for side in (-1, 1):
        _paint(img, _band(x, cx + side * rng.uniform(0.42, 0.55), 0.028) & (y > top), blue)
    ring = np.sqrt((x - cx) ** 2 + (y - rng.uniform(0.55, 0.7)) ** 2)
    _paint(img, _band(ring, 0.16, 0.013), blue)
    _paint(img, y < top, board)
    _paint(img, _band(y, top - 0.01, 0.012), _jit(rng, (240, 200, 30), 10))
    _paint(img, y < top - 0.07, crowd)
    return img


def _running_track(rng, y, x, width):
    grass, track, line = _jit(rng, (70, 150, 65)), _jit(rng, (190, 78, 55), 14), _jit(rng, (248, 248, 248), 4)
    infield = rng.uniform(0.18, 0.3)
    bend = rng.uniform(-0.12, 0.12)
    yb = y + bend * (x - width / 2) ** 2  # gently curved lanes
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = track
    spacing = rng.uniform(0.12, 0.16)
    lanes = (np.mod(yb - infield, spacing) < 0.022) & (yb > infield)
    _paint(img, lanes, line)
    _paint(img, yb < infield, grass)
    _paint(img, (yb < infield) & (np.mod(x * 12 + yb * 3, 1.0) < 0.5), grass * 0.88)  # mowing stripes
    return img


def _playground(rng, y, x, width):
    sky, grass = _jit(rng, (150, 205, 245)), _jit(rng, (95, 175, 70))
    sand, red, yellow = _jit(rng, (225, 200, 140)), _jit(rng, (215, 45, 40)), _jit(rng, (250, 205, 30), 10)
    horizon = rng.uniform(0.3, 0.42)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = grass
    _paint(img, y < horizon, sky)
    pit = ((x - rng.uniform(0.3, width - 0.3)) / 0.35) ** 2 + ((y - rng.uniform(0.75, 0.88)) / 0.1) ** 2 < 1
    _paint(img, pit, sand)
    n = max(1, int(np.ceil(width / 0.9)))
    for i in range(n):  # one climbing frame + slide per ~0.9 units of width
        fx = (i + rng.uniform(0.2, 0.5)) * width / n
        base = rng.uniform(0.62, 0.72)
        top = rng.uniform(0.2, 0.3)
        posts = (_band(x, fx, 0.025) | _band(x, fx + 0.25, 0.025)) & (y > top) & (y < base)
        _paint(img, posts, red)
        _paint(img, _band(y, top, 0.022) & (x > fx - 0.03) & (x < fx + 0.28), red)
        slide = _band(y, top + (x - fx - 0.25) * 0.9, 0.035) & (x > fx + 0.25) & (y < base + 0.02)
        _paint(img, slide, yellow)
    return img


def _library(rng, y, x, width):
    wood = _jit(rng, (115, 72, 40), 12)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = wood * 0.55  # dark back of the shelves
    row_h = rng.uniform(0.2, 0.26)
    start = rng.uniform(-0.05, 0.05)
    palette = np.asarray(
        [(150, 30, 35), (30, 70, 130), (40, 110, 60), (190, 150, 60), (90, 50, 110), (200, 190, 170)], np.float64
    )
    xs = x[0]
    for r in range(int(np.ceil(1 / row_h)) + 1):
        shelf = start + (r + 1) * row_h
        widths = rng.uniform(0.035, 0.07, 200)
        edges = np.cumsum(widths)
        book = np.minimum(np.searchsorted(edges, xs), len(edges) - 1)  # book index of every column
        colors = np.clip(palette[rng.integers(0, len(palette), 200)] + rng.uniform(-20, 20, (200, 3)), 0, 255)
        heights = rng.uniform(0.65, 0.92, 200) * row_h
        in_row = (y < shelf) & (y > shelf - heights[book][None, :])
        gaps = xs >= edges[book] - 0.006  # thin dark gap between books
        _paint(img, in_row & ~gaps[None, :], colors[book][None, :, :].repeat(y.shape[0], 0))
        _paint(img, _band(y, shelf + 0.015, 0.018), wood)
    return img


def _kitchen(rng, y, x, width):
    tile, grout = _jit(rng, (236, 232, 218), 8), _jit(rng, (170, 168, 160), 10)
    cab, counter = _jit(rng, (120, 160, 150), 25), _jit(rng, (70, 70, 75), 12)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = tile
    step = rng.uniform(0.09, 0.13)
    grid = (np.mod(x, step) < 0.012) | (np.mod(y, step) < 0.012)
    _paint(img, grid, grout)
    upper = rng.uniform(0.16, 0.24)
    top = rng.uniform(0.58, 0.66)
    _paint(img, y < upper, cab)
    _paint(img, y > top, cab * 0.9)
    doors = np.mod(x + rng.uniform(0, 0.3), 0.3) < 0.015
    _paint(img, doors & ((y < upper) | (y > top + 0.06)), cab * 0.6)
    _paint(img, _band(y, top + 0.03, 0.035), counter)
    return img


def _office(rng, y, x, width):
    wall, desk = _jit(rng, (196, 200, 208), 10), _jit(rng, (92, 98, 112), 12)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = wall
    # A row of window panes (pale blue) above desks, the panes' frames dark grey.
    top, bottom = rng.uniform(0.12, 0.18), rng.uniform(0.42, 0.5)
    pane = rng.uniform(0.22, 0.3)
    in_pane = (np.mod(x + rng.uniform(0, pane), pane) > 0.03) & (y > top) & (y < bottom)
    _paint(img, (y > top - 0.02) & (y < bottom + 0.02), _jit(rng, (70, 72, 80), 8))
    _paint(img, in_pane, _jit(rng, (150, 190, 225), 12))
    desk_top = rng.uniform(0.68, 0.74)
    _paint(img, y > desk_top, desk)
    _paint(img, _band(y, desk_top, 0.012), desk * 0.6)
    return img


def _garage(rng, y, x, width):
    concrete, door = _jit(rng, (128, 126, 120), 10), _jit(rng, (110, 130, 150), 14)
    img = np.empty(y.shape + (3,), np.float64)
    img[:] = concrete
    # A roll-up door: horizontal slats, over an oil-stained floor.
    floor = rng.uniform(0.7, 0.78)
    slat = rng.uniform(0.05, 0.07)
    _paint(img, y < floor, door)
    _paint(img, (y < floor) & (np.mod(y + rng.uniform(0, slat), slat) < 0.012), door * 0.55)
    _paint(img, _band(y, floor, 0.015), _jit(rng, (235, 200, 40), 10))  # yellow kerb line
    return img


SCENE_DRAWERS: dict[str, Drawer] = {
    "beach": _beach,
    "snowy mountain": _snowy_mountain,
    "library": _library,
    "basketball court": _basketball_court,
    "boxing ring": _boxing_ring,
    "swimming pool": _swimming_pool,
    "ice rink": _ice_rink,
    "kitchen": _kitchen,
    "running track": _running_track,
    "playground": _playground,
    "office": _office,
    "garage": _garage,
}


def draw_scene(scene: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One static ``float64 [height, width, 3]`` background of ``scene`` in 0..255, with texture noise."""
    if scene not in SCENE_DRAWERS:
        raise KeyError(f"unknown scene {scene!r}; known: {sorted(SCENE_DRAWERS)}")
    rows = (np.arange(height, dtype=np.float64) + 0.5) / height
    cols = (np.arange(width, dtype=np.float64) + 0.5) / height
    y, x = np.meshgrid(rows, cols, indexing="ij")
    img = SCENE_DRAWERS[scene](rng, y, x, width / height)
    # Static texture: smooth brightness blotches plus fine grain, different per video.
    img = img * (1 + 0.06 * _smooth_noise(rng, height, width, 4)[..., None])
    img = img + rng.normal(0, 4.0, (height, width, 1)).astype(np.float64)
    return np.clip(img, 0, 255)


def pan_crop(canvas: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Windows ``[T, H, width, 3]`` of ``canvas`` starting at fractional column ``offsets`` (bilinear)."""
    x0 = np.floor(offsets).astype(int)
    frac = (offsets - x0).astype(np.float64)[:, None, None, None]
    cols = x0[:, None] + np.arange(width)[None, :]  # [T, width]
    cols_next = np.minimum(cols + 1, canvas.shape[1] - 1)
    left = canvas[:, cols].transpose(1, 0, 2, 3)  # [T, H, width, 3]
    right = canvas[:, cols_next].transpose(1, 0, 2, 3)
    return left * (1 - frac) + right * frac
