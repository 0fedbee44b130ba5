"""Fixtures shared by several test folders (helpers are fixtures: no sys.path tricks under importlib mode)."""

from __future__ import annotations

import pytest
import torch


def _greedy_reference(model, processor, frames, prompt: str, steps: int) -> str:
    """The slow reference for generation: one full prompt alone, no cache, no padding, a full forward per
    generated token, never a video placeholder."""
    inputs = processor(prompt, videos=frames)
    ids = inputs["input_ids"]
    placeholders = [processor.video_temporal_token_id, processor.video_spatial_token_id]
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, pixel_values_videos=inputs["pixel_values_videos"]).logits[:, -1]
            logits[:, placeholders] = float("-inf")
            nxt = logits.argmax(-1)
            if nxt.item() == processor.tokenizer.eos_token_id:
                break
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    return processor.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


@pytest.fixture(scope="session")
def greedy_reference():
    """``greedy_reference(model, processor, frames, prompt, steps) -> answer``."""
    return _greedy_reference
