"""A PNG contact sheet of a world: one row per action (in its typical scene) and one per empty scene."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mashvlm.files import atomic_path
from mashvlm.synth.config import WorldConfig
from mashvlm.synth.render import render_video, video_seed
from mashvlm.video import segment_middle_indices

__all__ = ["contact_sheet"]

_LABEL_W = 170  # pixels of the label column


def contact_sheet(
    path: str | os.PathLike, config: WorldConfig | None = None, seed: int = 0, columns: int = 8
) -> Path:
    """Write the sheet to ``path`` (atomically) and return it; ``columns`` frames per row, sampled as the model does."""
    from PIL import Image, ImageDraw

    config = config or WorldConfig()
    rows: list[tuple[str, np.ndarray]] = []
    picks = segment_middle_indices(config.frames, min(columns, config.frames))
    for i, action in enumerate(config.actions):
        scene = config.typical_scene[action]
        clip = render_video(action, scene, video_seed(seed, "contact", i), config)
        rows.append((f"{action}\nin {scene}", clip.frames[picks]))
    for i, scene in enumerate(config.all_scenes):
        clip = render_video(None, scene, video_seed(seed, "contact", 1000 + i), config)
        rows.append((f"empty\n{scene}" + ("\n(pan)" if clip.pan else ""), clip.frames[picks]))

    scale = max(1, 128 // config.height)  # small frames are enlarged so a person can see them
    h, w = config.height * scale, config.width * scale
    gap = 2
    sheet = Image.new("RGB", (_LABEL_W + len(picks) * (w + gap), len(rows) * (h + gap)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows):
        top = r * (h + gap)
        draw.multiline_text((6, top + 6), label, fill=(0, 0, 0))
        for c, frame in enumerate(frames):
            tile = Image.fromarray(frame).resize((w, h), Image.NEAREST)
            sheet.paste(tile, (_LABEL_W + c * (w + gap), top))
    path = Path(path)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
