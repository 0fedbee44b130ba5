"""MASH-VLM configuration."""

from __future__ import annotations

import functools
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from ..errors import UsageError

ROPE_VARIANTS = ("harmonic", "balanced", "distinct")
ATTENTION_TYPES = ("causal", "bidirectional")
# The components of the temporal tokens, in the order they are concatenated (paper §3.1; Table 8's
# "CLS", "SP" and "F-Diff").
TEMPORAL_TOKEN_TYPES = ("cls", "pooled", "frame_diff")
# Which kinds of a model's video tokens an inference run puts in the sequence (Table 10).
VIDEO_TOKEN_TYPES = ("both", "spatial", "temporal")


def canonical_temporal_tokens(temporal_tokens) -> list[str]:
    """``temporal_tokens`` in concatenation order (CLS, pooled, frame-difference); unknown or repeated
    names are a ``ValueError``."""
    names = list(temporal_tokens)
    unknown = [name for name in names if name not in TEMPORAL_TOKEN_TYPES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"temporal_tokens must be distinct names from {list(TEMPORAL_TOKEN_TYPES)}, got {names!r}"
        )
    return [name for name in TEMPORAL_TOKEN_TYPES if name in names]


def num_temporal_tokens(num_frames: int, temporal_tokens=TEMPORAL_TOKEN_TYPES) -> int:
    """M temporal tokens per video: T CLS, T spatially pooled and T - 1 frame-difference tokens, for the
    components in ``temporal_tokens`` (all three: M = 3T - 1, paper §3.1)."""
    per_component = {"cls": num_frames, "pooled": num_frames, "frame_diff": num_frames - 1}
    return sum(per_component[name] for name in canonical_temporal_tokens(temporal_tokens))


def select_video_token_counts(num_temporal: int, num_spatial: int, video_token_types: str) -> tuple[int, int]:
    """``(M, N)`` placeholders per video block when inference keeps ``video_token_types`` of a model's
    ``num_temporal`` temporal and ``num_spatial`` spatial tokens (Table 10); the others are left out of the
    sequence. Asking for a kind the model has none of is a :class:`UsageError`."""
    if video_token_types not in VIDEO_TOKEN_TYPES:
        raise UsageError(f"video_token_types must be one of {list(VIDEO_TOKEN_TYPES)}, got {video_token_types!r}")
    if video_token_types == "both":
        return num_temporal, num_spatial
    kept = num_temporal if video_token_types == "temporal" else num_spatial
    if kept == 0:
        raise UsageError(
            f"video_token_types={video_token_types!r}, but this model has no {video_token_types} tokens "
            f"({num_temporal} temporal, {num_spatial} spatial per video)"
        )
    return (kept, 0) if video_token_types == "temporal" else (0, kept)


@strict
class MashVlmConfig(PreTrainedConfig):
    r"""Configuration of a MASH-VLM model: a CLIP vision tower, a 2-layer MLP projector and a Llama LLM
    with DST-attention and Harmonic-RoPE (paper §3).

    Args:
        vision_config: `CLIPVisionConfig` or dict. Defaults to CLIP ViT-L/14-336 as in LLaVA-1.5.
        text_config: `LlamaConfig` or dict. Defaults to a Llama-7B (Vicuna) config.
        num_frames: frames T sampled per video (M = 3T - 1 temporal tokens).
        temporal_tokens: which temporal components a video block holds, from `TEMPORAL_TOKEN_TYPES`
            (`"cls"`, `"pooled"`, `"frame_diff"`; always concatenated in that order). All three is the paper's
            model; a subset or none is an ablation of Table 8. M follows (:func:`num_temporal_tokens`).
        spatial_tokens: whether a video block holds the spatial tokens (Table 8's "TP" column).
        num_segments: temporal segments averaged into spatial tokens (paper: 4).
        spatial_pool: side of the spatial average pooling window (paper: 2x2).
        rope_variant: `"harmonic"` (paper), `"balanced"` or `"distinct"` (standard RoPE) — Table 7.
        temporal_attention / spatial_attention: `"causal"` or `"bidirectional"` among temporal /
            spatial tokens of one video — Table 5.
        spatial_attends_temporal / temporal_attends_spatial: whether a spatial (temporal) query may
            attend the temporal (spatial) keys of its own video — Table 6. Both `False` is DST-attention.
        video_temporal_token_id / video_spatial_token_id: placeholder token ids the processor writes.
        vision_feature_layer: CLIP hidden-state index whose CLS and patch features are used.
    """

    model_type = "mash_vlm"

    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={
                "intermediate_size": 4096,
                "hidden_size": 1024,
                "patch_size": 14,
                "image_size": 336,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "vocab_size": 32000,
                "projection_dim": 768,
            },
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_frames: int = 16
    temporal_tokens: list[str] | tuple[str, ...] = TEMPORAL_TOKEN_TYPES
    spatial_tokens: bool = True
    num_segments: int = 4
    spatial_pool: int = 2
    rope_variant: Literal["harmonic", "balanced", "distinct"] = "harmonic"
    temporal_attention: Literal["causal", "bidirectional"] = "causal"
    spatial_attention: Literal["causal", "bidirectional"] = "bidirectional"
    spatial_attends_temporal: bool = False
    temporal_attends_spatial: bool = False
    video_temporal_token_id: int = 32000
    video_spatial_token_id: int = 32001
    vision_feature_layer: int = -2
    projector_hidden_act: str = "gelu"
    multimodal_projector_bias: bool = True
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.rope_variant not in ROPE_VARIANTS:
            raise ValueError(f"rope_variant must be one of {ROPE_VARIANTS}, got {self.rope_variant!r}")
        for name in ("temporal_attention", "spatial_attention"):
            if getattr(self, name) not in ATTENTION_TYPES:
                raise ValueError(f"{name} must be one of {ATTENTION_TYPES}, got {getattr(self, name)!r}")
        self.temporal_tokens = canonical_temporal_tokens(self.temporal_tokens)
        if not self.temporal_tokens and not self.spatial_tokens:
            raise ValueError("a video needs some tokens: temporal_tokens is empty and spatial_tokens is False")
        if self.spatial_tokens and self.num_frames < self.num_segments:
            raise ValueError(
                f"num_frames ({self.num_frames}) must be at least num_segments ({self.num_segments})"
            )
        if self.video_temporal_token_id == self.video_spatial_token_id:
            raise ValueError("video_temporal_token_id and video_spatial_token_id must differ")
        grid = self.vision_config.image_size // self.vision_config.patch_size
        if grid % self.spatial_pool:
            raise ValueError(
                f"the patch grid ({grid}x{grid} = image_size {self.vision_config.image_size} / patch_size "
                f"{self.vision_config.patch_size}) must be divisible by spatial_pool ({self.spatial_pool})"
            )

    @property
    def num_temporal_tokens(self) -> int:
        """M, from the frames and the temporal components (:func:`num_temporal_tokens`; 3T - 1 for all three)."""
        return num_temporal_tokens(self.num_frames, self.temporal_tokens)

    @property
    def num_spatial_tokens(self) -> int:
        """num_segments * (g / pool)^2; with 4 segments and 2x2 pooling this is N = g^2 (0 without spatial tokens)."""
        if not self.spatial_tokens:
            return 0
        grid = self.vision_config.image_size // self.vision_config.patch_size
        return self.num_segments * (grid // self.spatial_pool) ** 2

    @property
    def dst_attention_kwargs(self) -> dict:
        return {
            "temporal": self.temporal_attention,
            "spatial": self.spatial_attention,
            "spatial_attends_temporal": self.spatial_attends_temporal,
            "temporal_attends_spatial": self.temporal_attends_spatial,
        }


def _accept_positional_sub_configs(cls):
    # transformers v5 configs are keyword-only; DESIGN §6 documents `MashVlmConfig(vision_config, text_config)`.
    keyword_init = cls.__init__

    @functools.wraps(keyword_init)
    def __init__(self, vision_config=None, text_config=None, **kwargs):
        keyword_init(self, vision_config=vision_config, text_config=text_config, **kwargs)

    cls.__init__ = __init__
    return cls


_accept_positional_sub_configs(MashVlmConfig)

__all__ = [
    "TEMPORAL_TOKEN_TYPES",
    "VIDEO_TOKEN_TYPES",
    "MashVlmConfig",
    "canonical_temporal_tokens",
    "num_temporal_tokens",
    "select_video_token_counts",
]
