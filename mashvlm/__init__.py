"""MASH-VLM: a video LLM with DST-attention and Harmonic-RoPE, and the UNSCENE benchmark.

Heavy submodules (torch, transformers) load on first use, so ``mashvlm.unscene`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "TokenType": "mashvlm.modeling.modeling_mash_vlm",
    "build_video_tokens": "mashvlm.modeling.modeling_mash_vlm",
    "dst_attention_mask": "mashvlm.modeling.modeling_mash_vlm",
    "dst_block_mask": "mashvlm.modeling.modeling_mash_vlm",
    "harmonic_position_ids": "mashvlm.modeling.modeling_mash_vlm",
    "harmonic_rotary_angles": "mashvlm.modeling.modeling_mash_vlm",
    "video_block_index": "mashvlm.modeling.modeling_mash_vlm",
    "MashVlmConfig": "mashvlm.modeling",
    "MashVlmModel": "mashvlm.modeling",
    "MashVlmForConditionalGeneration": "mashvlm.modeling",
    "MashVlmProcessor": "mashvlm.modeling.processing_mash_vlm",
    "read_video_frames": "mashvlm.video",
    "VideoDecodeError": "mashvlm.video",
    "TruncatedVideoError": "mashvlm.video",
    "ClipRangeError": "mashvlm.video",
    "MashVlmError": "mashvlm.errors",
    "SequenceLayout": "mashvlm.modeling.modeling_mash_vlm",
    "sequence_layout": "mashvlm.modeling.modeling_mash_vlm",
}

__all__ = [
    "ClipRangeError",
    "MashVlmError",
    "SequenceLayout",
    "TruncatedVideoError",
    "sequence_layout",
    "MashVlmConfig",
    "MashVlmForConditionalGeneration",
    "MashVlmModel",
    "MashVlmProcessor",
    "TokenType",
    "VideoDecodeError",
    "build_video_tokens",
    "dst_attention_mask",
    "dst_block_mask",
    "harmonic_position_ids",
    "harmonic_rotary_angles",
    "read_video_frames",
    "video_block_index",
]

if TYPE_CHECKING:  # pragma: no cover
    from .errors import MashVlmError
    from .modeling import MashVlmConfig, MashVlmForConditionalGeneration, MashVlmModel
    from .modeling.modeling_mash_vlm import (
        SequenceLayout,
        TokenType,
        build_video_tokens,
        dst_attention_mask,
        dst_block_mask,
        harmonic_position_ids,
        harmonic_rotary_angles,
        sequence_layout,
        video_block_index,
    )
    from .modeling.processing_mash_vlm import MashVlmProcessor
    from .video import ClipRangeError, TruncatedVideoError, VideoDecodeError, read_video_frames


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        if _LAZY[name].startswith("mashvlm.modeling") and _LAZY[name] != "mashvlm.modeling":
            importlib.import_module("mashvlm.modeling")  # registers the Auto classes
        return getattr(module, name)
    raise AttributeError(f"module 'mashvlm' has no attribute {name!r}")
