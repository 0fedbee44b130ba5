"""Helpers for the MASH-VLM core tests: the tiny config, weights, prompts and padding.

The tiny model: CLIP 32x32 images with 8x8 patches (a 4x4 grid), 4 frames, a 2-layer Llama with
hidden size 32 and head_dim 8 (4 rotary frequencies). So one video gives M = 3T - 1 = 11 temporal
and N = 4 * (4/2)^2 = 16 spatial tokens (M < N). ``grid=2`` (16x16 images) gives N = 4 < M = 11.
"""

import torch
from transformers import CLIPVisionConfig, LlamaConfig

from mashvlm import MashVlmConfig, MashVlmForConditionalGeneration

VOCAB_SIZE = 100
PAD_ID = 0
TEMPORAL_ID = 98
SPATIAL_ID = 99
NUM_FRAMES = 4
PATCH = 8


def tiny_config(grid=4, **overrides):
    """A tiny MashVlmConfig; ``grid`` is the side of the CLIP patch grid; overrides go to MashVlmConfig."""
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=grid * PATCH,
        patch_size=PATCH,
    )
    text = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=256,
        pad_token_id=PAD_ID,
        bos_token_id=None,
        eos_token_id=None,
    )
    return MashVlmConfig(
        vision,
        text,
        num_frames=NUM_FRAMES,
        video_temporal_token_id=TEMPORAL_ID,
        video_spatial_token_id=SPATIAL_ID,
        **overrides,
    )


def randomize_weights_(model, seed=0, std=0.2):
    """Larger-than-default random weights so that mask / position changes move the logits visibly.

    Norm weights stay 1; every matrix gets N(0, std), every bias N(0, std / 4).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                continue
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
            elif name.endswith("bias"):
                param.copy_(torch.randn(param.shape, generator=gen) * std / 4)
    return model


def build_model(seed=0, grid=4, **overrides):
    """A tiny eval-mode model with deterministic random weights."""
    torch.manual_seed(seed)
    model = MashVlmForConditionalGeneration(tiny_config(grid=grid, **overrides))
    return randomize_weights_(model, seed).eval()


def clone_with(model, **overrides):
    """A model with the same weights as ``model`` but a config changed by ``overrides``."""
    config = model.config.to_dict()
    config.update(overrides)
    other = MashVlmForConditionalGeneration(MashVlmConfig(**config))
    other.load_state_dict(model.state_dict())
    return other.eval()


def video_placeholders(config):
    """The placeholder ids one expanded <video> occupies: M temporal ids, then N spatial ids."""
    return [TEMPORAL_ID] * config.num_temporal_tokens + [SPATIAL_ID] * config.num_spatial_tokens


def random_text(length, gen):
    """``length`` random text ids (never padding or a placeholder)."""
    return torch.randint(1, TEMPORAL_ID, (length,), generator=gen).tolist()


def pad_batch(rows, side="left"):
    """Pad lists of ids to one length: ``(input_ids, attention_mask)``, both ``[B, S]`` long."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        span = slice(width - len(row), width) if side == "left" else slice(0, len(row))
        ids[b, span] = torch.tensor(row)
        mask[b, span] = 1
    return ids, mask


def random_pixels(num_videos, config, seed=0):
    """``[num_videos, T, 3, H, W]`` random frames."""
    size = config.vision_config.image_size
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_videos, config.num_frames, 3, size, size, generator=gen)


def standard_position_ids(attention_mask):
    """Plain RoPE positions counted over non-padding tokens (what transformers' generate uses)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
