"""MASH-VLM: a LLaVA-style video LLM with DST-attention and Harmonic-RoPE (paper §3).

The paper's math lives in small public functions that tests call directly:

- :func:`build_video_tokens`: spatial and temporal tokens from projected CLIP features (§3.1).
- :func:`sequence_layout`: video blocks and both position streams of a batch (:class:`SequenceLayout`).
- :func:`harmonic_position_ids`: the balanced and distinct position streams (§3.2, eq. 4-5).
- :func:`harmonic_rotary_angles`: which stream each rotary frequency uses (§3.2, eq. 6).
- :func:`dst_attention_mask`: the DST-attention mask and every ablation of Tables 5-6 (§3.3).

The model itself is laid out like transformers' ``LlavaForConditionalGeneration`` so LLaVA-1.5
checkpoints load by key; the LLM is transformers' own ``LlamaModel`` whose rotary embedding takes the
two position streams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, LlamaModel, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from .configuration_mash_vlm import (
    TEMPORAL_TOKEN_TYPES,
    MashVlmConfig,
    canonical_temporal_tokens,
    select_video_token_counts,
)
from .processing_mash_vlm import IGNORE_INDEX

__all__ = [
    "TokenType",
    "token_types_from_input_ids",
    "build_video_tokens",
    "SequenceLayout",
    "sequence_layout",
    "video_block_index",
    "harmonic_position_ids",
    "shared_prefix_length",
    "harmonic_rotary_angles",
    "dst_attention_mask",
    "dst_block_mask",
    "HarmonicRotaryEmbedding",
    "MashVlmPreTrainedModel",
    "MashVlmModel",
    "MashVlmForConditionalGeneration",
]


class TokenType(IntEnum):
    """Kind of each sequence position (DESIGN §3)."""

    TEXT = 0
    TEMPORAL = 1
    SPATIAL = 2


def token_types_from_input_ids(
    input_ids: torch.Tensor, video_temporal_token_id: int, video_spatial_token_id: int
) -> torch.Tensor:
    """``[B, S]`` token types: the placeholder ids mark temporal and spatial slots, all else is text."""
    types = torch.full_like(input_ids, TokenType.TEXT)
    types[input_ids == video_temporal_token_id] = TokenType.TEMPORAL
    types[input_ids == video_spatial_token_id] = TokenType.SPATIAL
    return types


# --------------------------------------------------------------------------------------------------
# §3.1 Video tokens
# --------------------------------------------------------------------------------------------------


def build_video_tokens(
    patch_features: torch.Tensor,
    cls_features: torch.Tensor,
    num_segments: int = 4,
    pool: int = 2,
    *,
    temporal_tokens: Sequence[str] = TEMPORAL_TOKEN_TYPES,
    spatial_tokens: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal and spatial tokens of one video (or a batch of videos), paper §3.1.

    Args:
        patch_features: projected patch features ``z``, ``[T, N, D]`` or ``[B, T, N, D]``; N = g*g
            patches in row-major grid order.
        cls_features: projected CLS feature of each frame, ``[T, D]`` or ``[B, T, D]``.
        num_segments: contiguous temporal segments averaged for the spatial tokens (as equal as
            possible, the first ``T % num_segments`` one frame longer: ``torch.tensor_split``).
        pool: side of the spatial average pooling window applied to each segment's g x g grid.
        temporal_tokens: the temporal components to build, from ``"cls"``, ``"pooled"``, ``"frame_diff"``
            (Table 8's ablations); they are concatenated in that order whatever the order given.
        spatial_tokens: whether to build the spatial tokens (else the spatial result has 0 tokens).

    Returns:
        ``(temporal, spatial)``: temporal ``[M, D]``, with all three components M = 3T - 1 (T CLS tokens, T
        spatially pooled tokens, T - 1 frame-difference tokens), spatial ``[num_segments * (g/pool)^2, D]``
        (segment-major, row-major inside a segment); each with a leading B if the input had one.
    """
    batched = patch_features.dim() == 4
    if not batched:
        patch_features, cls_features = patch_features.unsqueeze(0), cls_features.unsqueeze(0)
    if patch_features.dim() != 4 or cls_features.dim() != 3:
        raise ValueError(
            "patch_features must be [T, N, D] or [B, T, N, D] and cls_features [T, D] or [B, T, D]; got "
            f"{tuple(patch_features.shape)} and {tuple(cls_features.shape)}"
        )
    batch, frames, num_patches, dim = patch_features.shape
    if cls_features.shape != (batch, frames, dim):
        raise ValueError(f"cls_features {tuple(cls_features.shape)} does not match {(batch, frames, dim)}")
    components = canonical_temporal_tokens(temporal_tokens)
    if spatial_tokens:
        grid = math.isqrt(num_patches)
        if grid * grid != num_patches or grid % pool:
            raise ValueError(f"N = {num_patches} patches must form a square grid whose side is divisible by {pool}")
        if frames < num_segments:
            raise ValueError(f"need at least num_segments = {num_segments} frames, got T = {frames}")

    build = {
        "cls": lambda: cls_features,
        "pooled": lambda: spatially_pooled_tokens(patch_features),
        "frame_diff": lambda: frame_difference_tokens(patch_features),
    }
    empty = patch_features.new_empty(batch, 0, dim)
    temporal = torch.cat([build[name]() for name in components], dim=1) if components else empty
    spatial = segment_pooled_tokens(patch_features, num_segments, pool) if spatial_tokens else empty
    if not batched:
        temporal, spatial = temporal[0], spatial[0]
    return temporal, spatial


def spatially_pooled_tokens(patch_features: torch.Tensor) -> torch.Tensor:
    """``[B, T, D]``: the mean over the N patches of each frame."""
    return patch_features.mean(dim=2)


def frame_difference_tokens(patch_features: torch.Tensor) -> torch.Tensor:
    """``[B, T-1, D]``: ``mean_n(z[t+1, n] - z[t, n])``, built literally as the paper writes it."""
    return (patch_features[:, 1:] - patch_features[:, :-1]).mean(dim=2)


def segment_pooled_tokens(patch_features: torch.Tensor, num_segments: int, pool: int) -> torch.Tensor:
    """``[B, num_segments * (g/pool)^2, D]``: temporal mean per segment, then pool x pool spatial mean."""
    batch, _, num_patches, dim = patch_features.shape
    grid = math.isqrt(num_patches)
    segments = torch.stack([seg.mean(dim=1) for seg in torch.tensor_split(patch_features, num_segments, dim=1)], 1)
    cells = grid // pool
    segments = segments.view(batch, num_segments, cells, pool, cells, pool, dim).mean(dim=(3, 5))
    return segments.reshape(batch, num_segments * cells * cells, dim)


# --------------------------------------------------------------------------------------------------
# Sequence layout: video blocks and the two position streams (§3.2)
# --------------------------------------------------------------------------------------------------


def _valid_mask(token_types: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return torch.ones_like(token_types, dtype=torch.bool)
    if attention_mask.shape != token_types.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} must match token_types {tuple(token_types.shape)}"
        )
    return attention_mask.bool()


class SequenceLayout(NamedTuple):
    """Where the video blocks are and the two Harmonic-RoPE position streams, each ``[B, S]`` (DESIGN §3, §5).

    A video block is a run of temporal tokens followed by a run of spatial tokens (either may be absent);
    padding is skipped wherever it is.
    """

    valid: torch.Tensor  # bool, False on padding
    video_block: torch.Tensor  # 0, 1, ... per sample for the tokens of each video block; -1 for text and padding
    balanced: torch.Tensor  # balanced position stream; 0 on padding
    distinct: torch.Tensor  # distinct position stream (0, 1, 2, ... over non-padding tokens); 0 on padding

    @property
    def position_ids(self) -> torch.Tensor:
        """``[2, B, S]``: row 0 balanced, row 1 distinct (what the rotary embedding takes)."""
        return torch.stack([self.balanced, self.distinct])


def _previous_valid(values: torch.Tensor, valid: torch.Tensor, before_first: int) -> torch.Tensor:
    """``values`` at the closest non-padding position strictly before each position (``before_first`` if none)."""
    batch, seq = valid.shape
    position = torch.arange(seq, device=valid.device).expand(batch, seq)
    last_valid = torch.where(valid, position, -1).cummax(dim=1).values
    previous = torch.cat([last_valid.new_full((batch, 1), -1), last_valid[:, :-1]], dim=1)
    return values.gather(1, previous.clamp(min=0)).masked_fill(previous < 0, before_first)


def _exclusive_cumsum(x: torch.Tensor) -> torch.Tensor:
    """``[B, K] -> [B, K + 1]``: entry k is the sum of the first k entries."""
    return torch.cat([x.new_zeros(x.shape[0], 1), x.cumsum(dim=1)], dim=1)


def sequence_layout(token_types: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SequenceLayout:
    """Video blocks and both position streams of a batch, with tensor operations on its device (no host sync).

    Balanced IDs (DESIGN §5): text tokens take the counter c and advance it by 1; a block of M temporal and N
    spatial tokens takes L = max(M, N) IDs, right-aligned: temporal i -> c + L - M + i, spatial
    j -> c + L - N + j, and advances the counter by L. With per-block counts from one scatter, c is the number
    of text tokens before plus the spans of the blocks before.
    """
    valid = _valid_mask(token_types, attention_mask)
    batch, seq = token_types.shape
    temporal = valid & (token_types == TokenType.TEMPORAL)
    spatial = valid & (token_types == TokenType.SPATIAL)
    text = valid & ~temporal & ~spatial
    visual = temporal | spatial
    # A block starts at a visual token after text (or at the start), or at a temporal run after a spatial run.
    previous = _previous_valid(token_types, valid, int(TokenType.TEXT))
    starts = visual & ((previous == TokenType.TEXT) | (temporal & (previous == TokenType.SPATIAL)))
    blocks_so_far = starts.long().cumsum(dim=1)
    video_block = torch.where(visual, blocks_so_far - 1, -1)

    # Per block (slot `seq` collects text and padding): M, N and their running totals.
    slot = torch.where(visual, video_block, seq)
    counts = torch.zeros(2, batch, seq + 1, dtype=torch.long, device=token_types.device)
    counts[0].scatter_add_(1, slot, temporal.long())
    counts[1].scatter_add_(1, slot, spatial.long())
    num_temporal, num_spatial = counts[0, :, :seq], counts[1, :, :seq]
    span_before = _exclusive_cumsum(torch.maximum(num_temporal, num_spatial))  # [B, seq + 1]

    text_before = text.long().cumsum(dim=1) - text.long()
    # Text follows blocks_so_far complete blocks; a visual token follows the blocks before its own.
    blocks_before = torch.where(visual, video_block, blocks_so_far)
    counter = text_before + span_before.gather(1, blocks_before)

    block = video_block.clamp(min=0)
    span = span_before.gather(1, block + 1) - span_before.gather(1, block)
    own_count = torch.where(temporal, num_temporal.gather(1, block), num_spatial.gather(1, block))
    own_before = torch.where(
        temporal, _exclusive_cumsum(num_temporal).gather(1, block), _exclusive_cumsum(num_spatial).gather(1, block)
    )
    rank = torch.where(temporal, temporal.long().cumsum(dim=1), spatial.long().cumsum(dim=1)) - 1 - own_before
    balanced = torch.where(visual, counter + span - own_count + rank, counter) * valid
    distinct = (valid.long().cumsum(dim=1) - 1).clamp(min=0) * valid
    return SequenceLayout(valid, video_block, balanced, distinct)


def video_block_index(token_types: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, S]`` index (0, 1, ...) of the video block each visual token belongs to; -1 for text and padding."""
    return sequence_layout(token_types, attention_mask).video_block


def harmonic_position_ids(token_types: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The two position streams of Harmonic-RoPE, ``[2, B, S]``: row 0 balanced, row 1 distinct.

    Both are 0-based and count only the non-padding tokens of each sample (padding on either side,
    or anywhere, gets 0).

    - distinct: 0, 1, 2, ... over every token (standard RoPE, eq. 4).
    - balanced: text tokens take consecutive IDs; a video block of M temporal and N spatial tokens
      starting at counter c takes L = max(M, N) IDs, right-aligned: spatial j -> c + L - N + j,
      temporal i -> c + L - M + i; the counter becomes c + L (eq. 5 for N >= M).
    """
    return sequence_layout(token_types, attention_mask).position_ids


def shared_prefix_length(
    input_ids: torch.Tensor, token_types: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor
) -> int:
    """How many leading tokens every row of a training batch shares without any loss on them or on the
    token after them (0 if that is none, or the batch has one row).

    In instruction tuning that is the chat template's system prompt, up to the first video token: about
    a third of each of the study's sequences. Text before any video attends only to earlier text and
    takes the positions 0, 1, 2, ... in both Harmonic-RoPE streams, so its keys and values are the same
    in every row and can be computed once per batch (``share_prompt_prefix``).
    """
    batch, length = input_ids.shape
    if batch < 2:
        return 0
    shared = (input_ids == input_ids[:1]).all(dim=0) & (token_types == TokenType.TEXT).all(dim=0)
    if attention_mask is not None:
        shared &= attention_mask.bool().all(dim=0)
    unsupervised = (labels == IGNORE_INDEX).all(dim=0)
    run = int((shared & unsupervised).long().cumprod(dim=0).sum())
    if run < length and not bool(unsupervised[run]):
        run -= 1  # the prefix's last position predicts the next token: that label must be ignored too
    return max(0, min(run, length - 1))


def harmonic_rotary_angles(
    position_ids: torch.Tensor, inv_freq: torch.Tensor, rope_variant: str = "harmonic"
) -> torch.Tensor:
    """Rotation angles ``[B, S, d/2]`` for the two streams ``position_ids`` ``[2, B, S]`` (eq. 6).

    Frequency index k (``inv_freq[k]``) rotates by the balanced stream when k is even and by the
    distinct stream when k is odd (``"harmonic"``); ``"balanced"`` / ``"distinct"`` use one stream
    for every k (Table 7).
    """
    balanced, distinct = position_ids[0], position_ids[1]
    k = torch.arange(inv_freq.shape[0], device=inv_freq.device)
    if rope_variant == "harmonic":
        use_balanced = k % 2 == 0
    elif rope_variant == "balanced":
        use_balanced = torch.ones_like(k, dtype=torch.bool)
    elif rope_variant == "distinct":
        use_balanced = torch.zeros_like(k, dtype=torch.bool)
    else:
        raise ValueError(f"unknown rope_variant {rope_variant!r}; use 'harmonic', 'balanced' or 'distinct'")
    positions = torch.where(use_balanced, balanced[..., None], distinct[..., None]).float()
    return positions * inv_freq.float()


class HarmonicRotaryEmbedding(LlamaRotaryEmbedding):
    """Llama's rotary embedding fed by the two position streams.

    ``position_ids`` ``[2, B, S]`` gives Harmonic-RoPE; a plain ``[B, S]`` is standard RoPE. cos/sin
    keep Llama's rotate_half layout (dim i pairs with i + d/2, both at ``inv_freq[i]``).
    """

    def __init__(self, config, rope_variant: str = "harmonic"):
        super().__init__(config)
        self.rope_variant = rope_variant

    @torch.no_grad()
    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if position_ids.dim() == 2:
            return super().forward(x, position_ids)
        freqs = harmonic_rotary_angles(position_ids.to(x.device), self.inv_freq.to(x.device), self.rope_variant)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos() * self.attention_scaling
        sin = emb.sin() * self.attention_scaling
        return cos.to(dtype=x.dtype), sin.to(dtype=x.dtype)


# --------------------------------------------------------------------------------------------------
# §3.3 DST-attention
# --------------------------------------------------------------------------------------------------


class KeySpans(NamedTuple):
    """The keys each query may attend under DST-attention, ``[B, Q]`` each, as key indices: every key
    ``k < prefix_end`` and every key ``span_start <= k < span_end`` (padding keys are then taken out)."""

    prefix_end: torch.Tensor
    span_start: torch.Tensor
    span_end: torch.Tensor

    def allowed(self, k_idx: torch.Tensor) -> torch.Tensor:
        """May each query attend key ``k_idx``? Element-wise over broadcastable tensors (also a flex mask_mod)."""
        return (k_idx < self.prefix_end) | ((k_idx >= self.span_start) & (k_idx < self.span_end))


@dataclass(frozen=True)
class _DstRule:
    temporal: str = "causal"
    spatial: str = "bidirectional"
    spatial_attends_temporal: bool = False
    temporal_attends_spatial: bool = False

    def __post_init__(self):
        for name in ("temporal", "spatial"):
            if getattr(self, name) not in ("causal", "bidirectional"):
                raise ValueError(f"{name} must be 'causal' or 'bidirectional', got {getattr(self, name)!r}")

    def key_spans(self, token_types: torch.Tensor, layout: SequenceLayout, offset: int = 0) -> KeySpans:
        """The DESIGN §4 table as at most two key intervals per query (indices shifted by ``offset``).

        Everything before a query's video block is earlier text or an earlier video, which the query
        attends whatever its kind; nothing after its block is ever attended. Inside a block of temporal keys
        ``[block_start, spatial_start)`` and spatial keys ``[spatial_start, block_end)``:

        - temporal query: causal ``[0, q]`` or bidirectional ``[0, spatial_start)``, plus the spatial keys
          if ``temporal_attends_spatial``;
        - spatial query: with ``spatial_attends_temporal`` causal ``[0, q]`` or bidirectional
          ``[0, block_end)``; without it ``[0, block_start)`` plus its spatial keys ``[spatial_start, q]``
          or ``[spatial_start, block_end)``;
        - text query (and padding): ``[0, q]``.

        Padding inside those intervals is removed by the key padding mask.
        """
        valid, block = layout.valid, layout.video_block
        batch, seq = token_types.shape
        position = torch.arange(seq, device=token_types.device).expand(batch, seq)
        temporal = valid & (token_types == int(TokenType.TEMPORAL))
        spatial = valid & (token_types == int(TokenType.SPATIAL))
        # Per block (slot `seq` collects text and padding): first index, first spatial index, end.
        slot = block.masked_fill(block < 0, seq)
        per_block = position.new_full((batch, seq + 1), seq)
        first = per_block.scatter_reduce(1, slot, position, "amin")
        first_spatial = per_block.scatter_reduce(1, slot, position.masked_fill(~spatial, seq), "amin")
        end = torch.zeros_like(per_block).scatter_reduce(1, slot, position + 1, "amax")
        block_start, block_end = first.gather(1, slot), end.gather(1, slot)
        spatial_start = torch.minimum(first_spatial, end).gather(1, slot)  # = block_end if the block has none

        through_q, none = position + 1, torch.zeros_like(position)
        temporal_prefix = through_q if self.temporal == "causal" else spatial_start
        temporal_span = (spatial_start, block_end) if self.temporal_attends_spatial else (none, none)
        spatial_own_end = through_q if self.spatial == "causal" else block_end
        if self.spatial_attends_temporal:
            spatial_prefix, spatial_span = spatial_own_end, (none, none)
        else:
            spatial_prefix, spatial_span = block_start, (spatial_start, spatial_own_end)

        def by_kind(temporal_value, spatial_value, text_value):
            return torch.where(temporal, temporal_value, torch.where(spatial, spatial_value, text_value))

        return KeySpans(
            by_kind(temporal_prefix, spatial_prefix, through_q) + offset,
            by_kind(temporal_span[0], spatial_span[0], none) + offset,
            by_kind(temporal_span[1], spatial_span[1], none) + offset,
        )


def dst_attention_mask(
    token_types: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    temporal: str = "causal",
    spatial: str = "bidirectional",
    spatial_attends_temporal: bool = False,
    temporal_attends_spatial: bool = False,
) -> torch.Tensor:
    """The DST-attention mask, ``[B, 1, S, S]`` bool, True = query (row) may attend key (column).

    For query q and key k, both non-padding (DESIGN §4):

    - text query: k <= q; visual query with a text key or a key of another video: k < q;
    - temporal -> temporal of the same video: ``temporal="causal"`` k <= q, ``"bidirectional"`` always;
    - spatial -> spatial of the same video: likewise with ``spatial``;
    - spatial query -> temporal key of the same video only if ``spatial_attends_temporal``;
    - temporal query -> spatial key of the same video only if ``temporal_attends_spatial``.

    Rows and columns of padding are all False. The defaults are MASH-VLM's; ``spatial="causal",
    spatial_attends_temporal=True`` gives exactly the causal mask of a plain LLaVA model.
    """
    rule = _DstRule(temporal, spatial, spatial_attends_temporal, temporal_attends_spatial)
    layout = sequence_layout(token_types, attention_mask)
    spans = rule.key_spans(token_types, layout)
    no_keys_for_padding = KeySpans(*(bound.masked_fill(~layout.valid, 0) for bound in spans))
    return _dense_mask(no_keys_for_padding, layout.valid)[:, None]


def _dense_mask(spans: KeySpans, valid: torch.Tensor) -> torch.Tensor:
    """``[B, Q, K]`` bool mask of the queries of ``spans`` over keys ``0..K-1``; padding keys (``valid`` ``[B, K]``)
    off. The intervals of :meth:`KeySpans.allowed`, read as rows of a table ``before[e] = (k < e)``: row
    copies instead of broadcast comparisons, which are many times slower on CPU."""
    keys = valid.shape[1]
    before = torch.ones(keys + 1, keys, dtype=torch.bool, device=valid.device).tril_(diagonal=-1)
    in_span = before[spans.span_end] & ~before[spans.span_start]
    return (before[spans.prefix_end] | in_span) & valid[:, None, :]


def _block_mask(spans: KeySpans, valid: torch.Tensor, q_offset: int):
    """The flex-attention ``BlockMask`` of queries ``q_offset..K-1`` over keys ``0..K-1``; ``spans`` and ``valid``
    are ``[B, K]`` (rows before ``q_offset`` unused); padding rows and keys off."""
    from torch.nn.attention.flex_attention import create_block_mask

    batch, keys = valid.shape

    def mask_mod(b, h, q, k):
        # Indexed at q + q_offset in full-length tensors: the compiled CPU kernel fails to build for [B, 1] ones.
        row = KeySpans(*(bound[b, q + q_offset] for bound in spans))
        return row.allowed(k) & valid[b, k] & valid[b, q + q_offset]

    return create_block_mask(mask_mod, batch, None, keys - q_offset, keys, device=valid.device)


def dst_block_mask(
    token_types: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    q_offset: int = 0,
    temporal: str = "causal",
    spatial: str = "bidirectional",
    spatial_attends_temporal: bool = False,
    temporal_attends_spatial: bool = False,
):
    """The same rule as :func:`dst_attention_mask` as a flex-attention ``BlockMask``.

    Queries are positions ``q_offset..S-1`` (for decoding with a KV cache), keys ``0..S-1``.
    """
    rule = _DstRule(temporal, spatial, spatial_attends_temporal, temporal_attends_spatial)
    layout = sequence_layout(token_types, attention_mask)
    spans = rule.key_spans(token_types, layout)
    return _block_mask(spans, layout.valid, q_offset)


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


class MashVlmMultiModalProjector(nn.Module):
    """LLaVA-1.5's 2-layer MLP projector (same parameter names, so checkpoints load by key)."""

    def __init__(self, config: MashVlmConfig):
        super().__init__()
        self.linear_1 = nn.Linear(
            config.vision_config.hidden_size, config.text_config.hidden_size, bias=config.multimodal_projector_bias
        )
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(
            config.text_config.hidden_size, config.text_config.hidden_size, bias=config.multimodal_projector_bias
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class MashVlmPreTrainedModel(PreTrainedModel):
    config: MashVlmConfig
    config_class = MashVlmConfig
    base_model_prefix = "model"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer", "CLIPEncoderLayer"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_flash_attn = False
    _supports_attention_backend = False

    def _check_and_adjust_attn_implementation(self, attn_implementation, is_init_check=False, **kwargs):
        if attn_implementation is not None and "flash" in str(attn_implementation):
            raise ValueError(
                f"attn_implementation={attn_implementation!r} cannot take MASH-VLM's DST-attention mask "
                "(flash-attention kernels accept only causal or padding masks, so the spatial/temporal "
                "pattern would be silently dropped). Use 'sdpa' (default), 'flex_attention' or 'eager'."
            )
        return super()._check_and_adjust_attn_implementation(attn_implementation, is_init_check, **kwargs)


class MashVlmModel(MashVlmPreTrainedModel):
    """Vision tower + projector + LLM, without the LM head (like ``LlavaModel``)."""

    def __init__(self, config: MashVlmConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = MashVlmMultiModalProjector(config)
        self.language_model = LlamaModel(config.text_config)
        # Parameter-free swap: the state dict stays that of a plain LlamaModel.
        self.language_model.rotary_emb = HarmonicRotaryEmbedding(config.text_config, config.rope_variant)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    # -- video features -------------------------------------------------------------------------
    def get_tower_features(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        """``[V, T, 3, H, W]`` frames -> the tower's ``vision_feature_layer`` output ``[V, T, 1+N, D_vision]``
        (CLS first), before the projector. A frozen tower's output is fixed per video, so training may
        compute it once and pass it as ``video_tower_features`` (``mashvlm.training``, ``cache_tower_features``).
        """
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                f"pixel_values_videos must be [num_videos, T, 3, H, W], got {tuple(pixel_values_videos.shape)}"
            )
        videos, frames = pixel_values_videos.shape[:2]
        pixels = pixel_values_videos.flatten(0, 1).to(dtype=self.vision_tower.dtype)
        tower_trains = any(p.requires_grad for p in self.vision_tower.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and tower_trains):
            hidden = self.vision_tower(pixels, output_hidden_states=True).hidden_states
        selected = hidden[self.config.vision_feature_layer]
        return selected.view(videos, frames, selected.shape[1], selected.shape[2])

    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor | None = None,
        video_token_types: str = "both",
        video_tower_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[V, T, 3, H, W]`` frames (or their ``get_tower_features``) -> ``(temporal [V, M, D], spatial
        [V, N, D])`` video tokens.

        The config says which tokens a video has (``temporal_tokens``, ``spatial_tokens``); inference may keep
        only one kind (``video_token_types``, Table 10), and the other then has 0 tokens.
        """
        select_video_token_counts(self.config.num_temporal_tokens, self.config.num_spatial_tokens, video_token_types)
        if (pixel_values_videos is None) == (video_tower_features is None):
            raise ValueError("pass exactly one of pixel_values_videos and video_tower_features")
        if video_tower_features is None:
            video_tower_features = self.get_tower_features(pixel_values_videos)
        elif video_tower_features.dim() != 4:
            raise ValueError(
                "video_tower_features must be [num_videos, T, 1+N, D_vision] (get_tower_features), got "
                f"{tuple(video_tower_features.shape)}"
            )
        features = self.multi_modal_projector(video_tower_features.to(self.vision_tower.dtype))  # [V, T, 1+N, D]
        return build_video_tokens(
            features[:, :, 1:],
            features[:, :, 0],
            self.config.num_segments,
            self.config.spatial_pool,
            temporal_tokens=self.config.temporal_tokens if video_token_types != "spatial" else (),
            spatial_tokens=self.config.spatial_tokens and video_token_types != "temporal",
        )

    def _scatter_video_tokens(
        self,
        inputs_embeds: torch.Tensor,
        token_types: torch.Tensor,
        pixel_values_videos: torch.Tensor | None,
        video_token_types: str = "both",
        video_tower_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        temporal, spatial = self.get_video_features(pixel_values_videos, video_token_types, video_tower_features)
        for kind, tokens in ((TokenType.TEMPORAL, temporal), (TokenType.SPATIAL, spatial)):
            slots = token_types == kind
            if int(slots.sum()) != tokens.shape[0] * tokens.shape[1]:
                raise ValueError(
                    f"the prompt has {int(slots.sum())} {kind.name.lower()} placeholder tokens but the "
                    f"{tokens.shape[0]} video(s) give {tokens.shape[0]} x {tokens.shape[1]} "
                    f"(video_token_types={video_token_types!r}); expand each <video> with a MashVlmProcessor "
                    f"made for this config (num_frames={self.config.num_frames}, temporal_tokens="
                    f"{self.config.temporal_tokens}, spatial_tokens={self.config.spatial_tokens}) and the same "
                    "video_token_types"
                )
            if tokens.shape[1]:
                inputs_embeds = inputs_embeds.masked_scatter(
                    slots.unsqueeze(-1), tokens.reshape(-1, tokens.shape[-1]).to(inputs_embeds.dtype)
                )
        return inputs_embeds

    # -- attention mask for the configured backend --------------------------------------------------
    def _llm_attention_mask(
        self,
        token_types: torch.Tensor,
        attention_mask: torch.Tensor | None,
        past_length: int,
        dtype: torch.dtype,
        layout: SequenceLayout | None = None,
    ):
        """The DST mask of the new tokens' queries over all keys, built once per forward for every layer.

        Cached keys are all earlier than every query, so the rule treats them like text, and only the new
        tokens' layout is needed (``layout``, if the caller has it already). A single new token (a decoding
        step) may attend every non-padding key under every rule: the earlier keys are text or another video
        to it, and its own block is itself; so its mask is the padding mask and no layout is derived at all.
        """
        batch, q_len = token_types.shape
        if attention_mask is None:
            attention_mask = torch.ones(batch, past_length + q_len, dtype=torch.long, device=token_types.device)
        elif attention_mask.shape != (batch, past_length + q_len):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}; with {past_length} cached tokens and "
                f"{q_len} new ones it must be [batch, {past_length + q_len}] (a 2D mask over the whole sequence)"
            )
        valid = attention_mask.bool()
        implementation = self.config.text_config._attn_implementation or "sdpa"
        if q_len == 1 and implementation != "flex_attention":
            allowed = valid[:, None, None, :]
        else:
            if q_len == 1:  # its own block at most: the same spans as a text query
                through_q = torch.full_like(token_types, past_length + 1)
                spans = KeySpans(through_q, torch.zeros_like(through_q), torch.zeros_like(through_q))
            else:
                if layout is None:
                    layout = sequence_layout(token_types, attention_mask[:, past_length:])
                rule = _DstRule(**self.config.dst_attention_kwargs)
                spans = rule.key_spans(token_types, layout, offset=past_length)
            if implementation == "flex_attention":
                cached_rows = torch.zeros_like(valid[:, :past_length], dtype=torch.long)
                spans = KeySpans(*(torch.cat([cached_rows, bound], dim=1) for bound in spans))
                return _block_mask(spans, valid, q_offset=past_length)
            allowed = _dense_mask(spans, valid)[:, None]
        if implementation == "sdpa":
            return allowed
        # eager (and any other kernel taking an additive mask)
        return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        use_cache: bool | None = None,
        token_types: torch.LongTensor | None = None,
        video_token_types: str = "both",
        video_tower_features: torch.FloatTensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """``video_token_types``: ``"both"``, or only the ``"spatial"`` or ``"temporal"`` tokens of each video
        (Table 10); the prompt then holds placeholders of that kind only (``MashVlmProcessor`` with the same
        option), so the others are not in the sequence at all. ``video_tower_features``: the videos'
        ``get_tower_features``, in place of ``pixel_values_videos`` (a frozen tower's output computed once)."""
        legacy_cache = kwargs.pop("past_key_values", None)  # pre-v5 name of `cache`
        cache = cache if cache is not None else legacy_cache
        if token_types is None:
            if input_ids is None:
                raise ValueError("pass input_ids (or token_types with inputs_embeds) so video slots can be found")
            token_types = token_types_from_input_ids(
                input_ids, self.config.video_temporal_token_id, self.config.video_spatial_token_id
            )
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        has_video_slots = bool((token_types != TokenType.TEXT).any())
        if pixel_values_videos is not None or video_tower_features is not None:
            inputs_embeds = self._scatter_video_tokens(
                inputs_embeds, token_types, pixel_values_videos, video_token_types, video_tower_features
            )
        elif has_video_slots:
            raise ValueError(
                "input_ids contain video placeholder tokens but no pixel_values_videos (or video_tower_features)"
                " were given"
            )

        past_length = cache.get_seq_length() if cache is not None else 0
        layout = None
        if position_ids is None:
            if past_length:
                raise ValueError(
                    "continuing from a KV cache needs position_ids: both Harmonic-RoPE streams depend on the "
                    "whole sequence. Use generate(), or pass harmonic_position_ids(types, mask)[..., -new:]"
                )
            layout = sequence_layout(token_types, attention_mask)
            position_ids = layout.position_ids
        llm_mask = self._llm_attention_mask(token_types, attention_mask, past_length, inputs_embeds.dtype, layout)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=llm_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )


class MashVlmForConditionalGeneration(MashVlmPreTrainedModel, GenerationMixin):
    """MASH-VLM with a language-modelling head; ``forward`` and ``generate`` as for any transformers model."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}

    def __init__(self, config: MashVlmConfig):
        super().__init__(config)
        self.model = MashVlmModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    @property
    def vision_tower(self) -> nn.Module:
        return self.model.vision_tower

    @property
    def multi_modal_projector(self) -> nn.Module:
        return self.model.multi_modal_projector

    @property
    def language_model(self) -> LlamaModel:
        return self.model.language_model

    @classmethod
    def from_llava(cls, path, *, dtype="auto", return_processor: bool = False, **config_overrides):
        """Initialise from a local LLaVA-1.5 checkpoint in transformers' llava-hf layout.

        Copies vision tower, projector and LLM weights, adds the two placeholder tokens to the
        tokenizer and resizes the embeddings. ``config_overrides`` set MASH-VLM options.
        Returns the model, or ``(model, processor)`` with ``return_processor=True``.
        """
        from .conversion import load_llava_as_mashvlm

        model, processor = load_llava_as_mashvlm(path, dtype=dtype, **config_overrides)
        return (model, processor) if return_processor else model

    def freeze_vision_tower(self) -> None:
        """Freeze the CLIP tower, as in the paper's instruction tuning (its forward then runs without grad)."""
        self.model.vision_tower.requires_grad_(False)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        token_types: torch.LongTensor | None = None,
        share_prompt_prefix: bool = False,
        video_token_types: str = "both",
        video_tower_features: torch.FloatTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """As any transformers causal LM. ``share_prompt_prefix=True`` (training, with ``labels``) runs the
        tokens that every row starts with once for the whole batch (:func:`shared_prefix_length`): the
        same loss and gradients up to float rounding, for less compute; the output then has no logits.
        ``num_items_in_batch`` (the Trainer's count of supervised tokens over the whole global batch) turns
        the loss into a sum over this batch divided by it, so that gradient accumulation and data
        parallelism weigh every token alike, as one big batch would. ``video_token_types``: which kinds of
        video tokens the prompt holds (``MashVlmModel.forward``, Table 10); ``video_tower_features``: the
        tower's output in place of ``pixel_values_videos`` (``MashVlmModel.get_tower_features``)."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        # Gradient checkpointing turns the cache off, so the prefix could not be handed on: run it all then.
        if (share_prompt_prefix and labels is not None and input_ids is not None and cache is None
                and not self.is_activation_checkpointing):
            if position_ids is not None or inputs_embeds is not None:
                raise ValueError("share_prompt_prefix works from input_ids alone (no position_ids, inputs_embeds)")
            if token_types is None:
                token_types = token_types_from_input_ids(
                    input_ids, self.config.video_temporal_token_id, self.config.video_spatial_token_id
                )
            prefix = shared_prefix_length(input_ids, token_types, attention_mask, labels)
            if prefix > 0:
                return self._loss_with_shared_prefix(
                    input_ids, pixel_values_videos, attention_mask, labels, token_types, prefix,
                    num_items_in_batch=num_items_in_batch, video_token_types=video_token_types,
                    video_tower_features=video_tower_features, **kwargs
                )
        outputs = self.model(
            input_ids=input_ids,
            pixel_values_videos=pixel_values_videos,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            token_types=token_types,
            video_token_types=video_token_types,
            video_tower_features=video_tower_features,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size,
                                      num_items_in_batch=num_items_in_batch)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )

    def _loss_with_shared_prefix(self, input_ids, pixel_values_videos, attention_mask, labels, token_types,
                                 prefix: int, num_items_in_batch=None, video_token_types: str = "both",
                                 video_tower_features=None, **kwargs) -> CausalLMOutputWithPast:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        positions = harmonic_position_ids(token_types, attention_mask)
        head = self.model(input_ids=input_ids[:1, :prefix], attention_mask=attention_mask[:1, :prefix],
                          position_ids=positions[:, :1, :prefix], use_cache=True, **kwargs)
        cache = head.cache
        cache.batch_repeat_interleave(input_ids.shape[0])  # a copy per row; gradients flow back to the one run
        tail = self.model(
            input_ids=input_ids[:, prefix:],
            pixel_values_videos=pixel_values_videos,
            attention_mask=attention_mask,
            position_ids=positions[:, :, prefix:],
            cache=cache,
            use_cache=True,
            token_types=token_types[:, prefix:],
            video_token_types=video_token_types,
            video_tower_features=video_tower_features,
            **kwargs,
        )
        # Logits only where there is a loss: the answers are a few tokens of each sequence.
        targets = labels[:, prefix + 1 :]
        supervised = targets != IGNORE_INDEX
        logits = self.lm_head(tail.last_hidden_state[:, :-1][supervised])
        if num_items_in_batch is None:
            loss = nn.functional.cross_entropy(logits.float(), targets[supervised])
        else:  # as transformers' ForCausalLMLoss: a sum over the global batch's supervised tokens
            loss = nn.functional.cross_entropy(logits.float(), targets[supervised], reduction="sum")
            loss = loss / torch.as_tensor(num_items_in_batch, device=loss.device)
        return CausalLMOutputWithPast(loss=loss)

    def _prepare_position_ids_for_generation(self, inputs_tensor, model_kwargs):
        """Both Harmonic-RoPE streams, computed once before the first forward of ``generate`` (``[2, B, S]``).

        transformers' generation loop keeps them in its model kwargs, hands the prompt's to the prefill and
        appends ``last + 1`` per generated token, so a decoding step never looks at the layout again (the
        way Qwen2-VL keeps its 3D positions). Generated tokens are text, which continues both streams by +1
        from the prompt's last token: with right alignment that is the end of its video block, if any.
        Padding after a sample's last token (right padding) takes that token's positions here instead of 0,
        so the streams continue from it; padding is masked out of attention, so no logit changes.
        """
        input_ids = model_kwargs.get("input_ids")
        if input_ids is None or input_ids.shape[1] == 0:
            input_ids = inputs_tensor
        if input_ids.dim() != 2 or input_ids.dtype not in (torch.int, torch.long):
            text_positions = super()._prepare_position_ids_for_generation(inputs_tensor, model_kwargs)
            return text_positions.expand(inputs_tensor.shape[0], -1)[None].repeat(2, 1, 1)  # no video known
        types = token_types_from_input_ids(
            input_ids, self.config.video_temporal_token_id, self.config.video_spatial_token_id
        )
        layout = sequence_layout(types, model_kwargs.get("attention_mask"))
        positions = layout.position_ids
        latest = torch.where(layout.valid, positions, 0).cummax(dim=-1).values  # the highest IDs so far
        return torch.where(layout.valid, positions, latest)
