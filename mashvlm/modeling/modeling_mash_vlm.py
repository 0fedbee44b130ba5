"""MASH-VLM: a LLaVA-style video LLM with DST-attention and Harmonic-RoPE (paper §3).

The paper's math lives in small public functions that tests call directly:

- :func:`build_video_tokens`: spatial and temporal tokens from projected CLIP features (§3.1).
- :func:`harmonic_position_ids`: the balanced and distinct position streams (§3.2, eq. 4-5).
- :func:`harmonic_rotary_angles`: which stream each rotary frequency uses (§3.2, eq. 6).
- :func:`dst_attention_mask`: the DST-attention mask and every ablation of Tables 5-6 (§3.3).

The model itself is laid out like transformers' ``LlavaForConditionalGeneration`` so LLaVA-1.5
checkpoints load by key; the LLM is transformers' own ``LlamaModel`` whose rotary embedding takes the
two position streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch import nn
from transformers import AutoModel, GenerationMixin, LlamaModel, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from .configuration_mash_vlm import MashVlmConfig
from .processing_mash_vlm import IGNORE_INDEX

__all__ = [
    "TokenType",
    "token_types_from_input_ids",
    "build_video_tokens",
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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Temporal and spatial tokens of one video (or a batch of videos), paper §3.1.

    Args:
        patch_features: projected patch features ``z``, ``[T, N, D]`` or ``[B, T, N, D]``; N = g*g
            patches in row-major grid order.
        cls_features: projected CLS feature of each frame, ``[T, D]`` or ``[B, T, D]``.
        num_segments: contiguous temporal segments averaged for the spatial tokens (as equal as
            possible, the first ``T % num_segments`` one frame longer: ``torch.tensor_split``).
        pool: side of the spatial average pooling window applied to each segment's g x g grid.

    Returns:
        ``(temporal, spatial)``: temporal ``[M, D]`` with M = 3T - 1 (T CLS tokens, T spatially
        pooled tokens, T - 1 frame-difference tokens), spatial ``[num_segments * (g/pool)^2, D]``
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
    grid = math.isqrt(num_patches)
    if grid * grid != num_patches or grid % pool:
        raise ValueError(f"N = {num_patches} patches must form a square grid whose side is divisible by {pool}")
    if frames < num_segments:
        raise ValueError(f"need at least num_segments = {num_segments} frames, got T = {frames}")

    temporal = torch.cat(
        [cls_features, spatially_pooled_tokens(patch_features), frame_difference_tokens(patch_features)], dim=1
    )
    spatial = segment_pooled_tokens(patch_features, num_segments, pool)
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


def _runs(types: list[int]) -> list[tuple[int, int]]:
    """Run-length encoding ``[(type, length), ...]``."""
    runs: list[tuple[int, int]] = []
    for t in types:
        if runs and runs[-1][0] == t:
            runs[-1] = (t, runs[-1][1] + 1)
        else:
            runs.append((t, 1))
    return runs


def _layout_row(types: list[int]) -> tuple[list[int], list[int]]:
    """Balanced positions and video-block indices for the non-padding tokens of one sample.

    A video block is a run of temporal tokens followed by a run of spatial tokens (either may be
    absent). It occupies L = max(M, N) balanced IDs, right-aligned (DESIGN §5).
    """
    balanced: list[int] = []
    video: list[int] = []
    counter, block, i = 0, -1, 0
    runs = _runs(types)
    while i < len(runs):
        kind, length = runs[i]
        if kind == TokenType.TEXT:
            balanced.extend(range(counter, counter + length))
            video.extend([-1] * length)
            counter += length
            i += 1
            continue
        num_temporal = length if kind == TokenType.TEMPORAL else 0
        num_spatial = length if kind == TokenType.SPATIAL else 0
        if kind == TokenType.TEMPORAL and i + 1 < len(runs) and runs[i + 1][0] == TokenType.SPATIAL:
            num_spatial = runs[i + 1][1]
            i += 1
        i += 1
        span = max(num_temporal, num_spatial)
        block += 1
        balanced.extend(range(counter + span - num_temporal, counter + span))
        balanced.extend(range(counter + span - num_spatial, counter + span))
        video.extend([block] * (num_temporal + num_spatial))
        counter += span
    return balanced, video


def _layout(token_types: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(balanced, video_index)`` ``[B, S]``; padding gets 0 and -1."""
    balanced = torch.zeros(token_types.shape, dtype=torch.long)
    video = torch.full(token_types.shape, -1, dtype=torch.long)
    types_cpu, valid_cpu = token_types.detach().cpu(), valid.detach().cpu()
    for b in range(token_types.shape[0]):
        keep = valid_cpu[b].nonzero().squeeze(1)
        row_balanced, row_video = _layout_row(types_cpu[b, keep].tolist())
        balanced[b, keep] = torch.tensor(row_balanced, dtype=torch.long)
        video[b, keep] = torch.tensor(row_video, dtype=torch.long)
    return balanced.to(token_types.device), video.to(token_types.device)


def video_block_index(token_types: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, S]`` index (0, 1, ...) of the video block each visual token belongs to; -1 for text and padding."""
    return _layout(token_types, _valid_mask(token_types, attention_mask))[1]


def harmonic_position_ids(token_types: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The two position streams of Harmonic-RoPE, ``[2, B, S]``: row 0 balanced, row 1 distinct.

    Both are 0-based and count only the non-padding tokens of each sample (padding on either side,
    or anywhere, gets 0).

    - distinct: 0, 1, 2, ... over every token (standard RoPE, eq. 4).
    - balanced: text tokens take consecutive IDs; a video block of M temporal and N spatial tokens
      starting at counter c takes L = max(M, N) IDs, right-aligned: spatial j -> c + L - N + j,
      temporal i -> c + L - M + i; the counter becomes c + L (eq. 5 for N >= M).
    """
    valid = _valid_mask(token_types, attention_mask)
    balanced, _ = _layout(token_types, valid)
    distinct = (valid.long().cumsum(dim=1) - 1).clamp(min=0) * valid
    return torch.stack([balanced, distinct])


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

    def allowed(self, q_idx, k_idx, q_type, k_type, q_video, k_video) -> torch.Tensor:
        """May query q attend key k? Element-wise over broadcastable tensors (also a flex mask_mod)."""
        causal = k_idx <= q_idx
        same_video = (q_video >= 0) & (q_video == k_video)
        # Plain ints: compiled flex-attention mis-evaluates comparisons with IntEnum members on CPU.
        temporal_id, spatial_id = int(TokenType.TEMPORAL), int(TokenType.SPATIAL)
        q_temporal, q_spatial = q_type == temporal_id, q_type == spatial_id
        k_temporal, k_spatial = k_type == temporal_id, k_type == spatial_id
        temporal_ok = causal if self.temporal == "causal" else torch.ones_like(causal)
        spatial_ok = causal if self.spatial == "causal" else torch.ones_like(causal)
        within = (
            (q_temporal & k_temporal & temporal_ok)
            | (q_spatial & k_spatial & spatial_ok)
            | (q_spatial & k_temporal & self.spatial_attends_temporal)
            | (q_temporal & k_spatial & self.temporal_attends_spatial)
        )
        # Text, other videos and everything across a video's boundary is plain causal.
        return torch.where(same_video, within, causal)


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
    valid = _valid_mask(token_types, attention_mask)
    _, video = _layout(token_types, valid)
    return _dense_mask(rule, token_types, video, valid, q_offset=0)[:, None] & valid[:, None, :, None]


def _dense_mask(
    rule: _DstRule, token_types: torch.Tensor, video: torch.Tensor, valid: torch.Tensor, q_offset: int
) -> torch.Tensor:
    """``[B, S - q_offset, S]`` rule mask for the queries at positions ``q_offset..S-1``; padding keys off."""
    seq = token_types.shape[1]
    k_idx = torch.arange(seq, device=token_types.device)
    q_idx = k_idx[q_offset:]
    allowed = rule.allowed(
        q_idx[None, :, None],
        k_idx[None, None, :],
        token_types[:, q_offset:, None],
        token_types[:, None, :],
        video[:, q_offset:, None],
        video[:, None, :],
    )
    return allowed & valid[:, None, :]


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
    from torch.nn.attention.flex_attention import create_block_mask

    rule = _DstRule(temporal, spatial, spatial_attends_temporal, temporal_attends_spatial)
    valid = _valid_mask(token_types, attention_mask)
    _, video = _layout(token_types, valid)
    batch, seq = token_types.shape

    def mask_mod(b, h, q, k):
        q_pos = q + q_offset
        return (
            rule.allowed(q_pos, k, token_types[b, q_pos], token_types[b, k], video[b, q_pos], video[b, k])
            & valid[b, k]
            & valid[b, q_pos]
        )

    return create_block_mask(mask_mod, batch, None, seq - q_offset, seq, device=token_types.device)


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
    def get_video_features(self, pixel_values_videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[V, T, 3, H, W]`` frames -> ``(temporal [V, M, D], spatial [V, N, D])`` video tokens."""
        if pixel_values_videos.dim() != 5:
            raise ValueError(
                f"pixel_values_videos must be [num_videos, T, 3, H, W], got {tuple(pixel_values_videos.shape)}"
            )
        videos, frames = pixel_values_videos.shape[:2]
        pixels = pixel_values_videos.flatten(0, 1).to(dtype=self.vision_tower.dtype)
        tower_trains = any(p.requires_grad for p in self.vision_tower.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and tower_trains):
            hidden = self.vision_tower(pixels, output_hidden_states=True).hidden_states
        features = self.multi_modal_projector(hidden[self.config.vision_feature_layer])  # [V*T, 1+N, D]
        features = features.view(videos, frames, features.shape[1], features.shape[2])
        return build_video_tokens(
            features[:, :, 1:], features[:, :, 0], self.config.num_segments, self.config.spatial_pool
        )

    def _scatter_video_tokens(
        self, inputs_embeds: torch.Tensor, token_types: torch.Tensor, pixel_values_videos: torch.Tensor
    ) -> torch.Tensor:
        temporal, spatial = self.get_video_features(pixel_values_videos)
        for kind, tokens in ((TokenType.TEMPORAL, temporal), (TokenType.SPATIAL, spatial)):
            slots = token_types == kind
            if int(slots.sum()) != tokens.shape[0] * tokens.shape[1]:
                raise ValueError(
                    f"the prompt has {int(slots.sum())} {kind.name.lower()} placeholder tokens but the "
                    f"{tokens.shape[0]} video(s) give {tokens.shape[0]} x {tokens.shape[1]}; expand each "
                    f"<video> with MashVlmProcessor (num_frames={self.config.num_frames})"
                )
            inputs_embeds = inputs_embeds.masked_scatter(
                slots.unsqueeze(-1), tokens.reshape(-1, tokens.shape[-1]).to(inputs_embeds.dtype)
            )
        return inputs_embeds

    # -- attention mask for the configured backend --------------------------------------------------
    def _llm_attention_mask(
        self, token_types: torch.Tensor, attention_mask: torch.Tensor | None, past_length: int, dtype: torch.dtype
    ):
        batch, q_len = token_types.shape
        key_types = torch.cat(
            [token_types.new_full((batch, past_length), TokenType.TEXT), token_types], dim=1
        )  # cached keys are all earlier than every query, so the rule treats them like text
        if attention_mask is None:
            attention_mask = torch.ones_like(key_types)
        elif attention_mask.shape != key_types.shape:
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)}; with {past_length} cached tokens and "
                f"{q_len} new ones it must be [batch, {past_length + q_len}] (a 2D mask over the whole sequence)"
            )
        rule_kwargs = self.config.dst_attention_kwargs
        implementation = self.config.text_config._attn_implementation or "sdpa"
        if implementation == "flex_attention":
            return dst_block_mask(key_types, attention_mask, q_offset=past_length, **rule_kwargs)
        valid = attention_mask.bool()
        rule = _DstRule(**rule_kwargs)
        _, video = _layout(key_types, valid)
        allowed = _dense_mask(rule, key_types, video, valid, q_offset=past_length)[:, None]
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
        **kwargs,
    ) -> BaseModelOutputWithPast:
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
        if pixel_values_videos is not None:
            inputs_embeds = self._scatter_video_tokens(inputs_embeds, token_types, pixel_values_videos)
        elif has_video_slots:
            raise ValueError("input_ids contain video placeholder tokens but no pixel_values_videos were given")

        past_length = cache.get_seq_length() if cache is not None else 0
        if position_ids is None:
            if past_length:
                raise ValueError(
                    "continuing from a KV cache needs position_ids: both Harmonic-RoPE streams depend on the "
                    "whole sequence. Use generate(), or pass harmonic_position_ids(types, mask)[..., -new:]"
                )
            position_ids = harmonic_position_ids(token_types, attention_mask)
        llm_mask = self._llm_attention_mask(token_types, attention_mask, past_length, inputs_embeds.dtype)
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
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """As any transformers causal LM. ``share_prompt_prefix=True`` (training, with ``labels``) runs the
        tokens that every row starts with once for the whole batch (:func:`shared_prefix_length`): the
        same loss and gradients up to float rounding, for less compute; the output then has no logits.
        ``num_items_in_batch`` (the Trainer's count of supervised tokens over the whole global batch) turns
        the loss into a sum over this batch divided by it, so that gradient accumulation and data
        parallelism weigh every token alike, as one big batch would."""
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
                    num_items_in_batch=num_items_in_batch, **kwargs
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
                                 prefix: int, num_items_in_batch=None, **kwargs) -> CausalLMOutputWithPast:
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

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        kwargs.pop("position_ids", None)
        model_inputs = super().prepare_inputs_for_generation(input_ids, attention_mask=attention_mask, **kwargs)
        # Both streams are recomputed from the whole sequence so far: generated tokens are text and so
        # continue each stream by +1, with no state kept between steps.
        types = token_types_from_input_ids(
            input_ids, self.config.video_temporal_token_id, self.config.video_spatial_token_id
        )
        new_tokens = model_inputs["input_ids"].shape[1]
        model_inputs["position_ids"] = harmonic_position_ids(types, attention_mask)[..., -new_tokens:]
        return model_inputs
