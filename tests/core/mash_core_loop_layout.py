"""The sequence layout as it was computed before issue 15: a Python loop over the tokens of each sample on the
host. Kept verbatim as the slow reference that the vectorised ``sequence_layout`` is checked against (tests) and
timed against (``benchmarks/layout_and_mask.py``)."""

import torch

from mashvlm.modeling.modeling_mash_vlm import TokenType

TEXT, TEMPORAL, SPATIAL = int(TokenType.TEXT), int(TokenType.TEMPORAL), int(TokenType.SPATIAL)


def _runs(types):
    """Run-length encoding ``[(type, length), ...]``."""
    runs = []
    for t in types:
        if runs and runs[-1][0] == t:
            runs[-1] = (t, runs[-1][1] + 1)
        else:
            runs.append((t, 1))
    return runs


def _layout_row(types):
    """Balanced positions and video-block indices for the non-padding tokens of one sample."""
    balanced, video = [], []
    counter, block, i = 0, -1, 0
    runs = _runs(types)
    while i < len(runs):
        kind, length = runs[i]
        if kind == TEXT:
            balanced.extend(range(counter, counter + length))
            video.extend([-1] * length)
            counter += length
            i += 1
            continue
        num_temporal = length if kind == TEMPORAL else 0
        num_spatial = length if kind == SPATIAL else 0
        if kind == TEMPORAL and i + 1 < len(runs) and runs[i + 1][0] == SPATIAL:
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


def loop_layout(token_types, valid):
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


def _valid(token_types, attention_mask):
    return torch.ones_like(token_types, dtype=torch.bool) if attention_mask is None else attention_mask.bool()


def loop_harmonic_position_ids(token_types, attention_mask=None):
    """The pre-issue-15 ``harmonic_position_ids``."""
    valid = _valid(token_types, attention_mask)
    balanced, _ = loop_layout(token_types, valid)
    distinct = (valid.long().cumsum(dim=1) - 1).clamp(min=0) * valid
    return torch.stack([balanced, distinct])


def loop_allowed(q_idx, k_idx, q_type, k_type, q_video, k_video, temporal="causal", spatial="bidirectional",
                 spatial_attends_temporal=False, temporal_attends_spatial=False):
    """The pre-issue-15 rule (``_DstRule.allowed``), element-wise over broadcastable tensors."""
    causal = k_idx <= q_idx
    same_video = (q_video >= 0) & (q_video == k_video)
    q_temporal, q_spatial = q_type == TEMPORAL, q_type == SPATIAL
    k_temporal, k_spatial = k_type == TEMPORAL, k_type == SPATIAL
    temporal_ok = causal if temporal == "causal" else torch.ones_like(causal)
    spatial_ok = causal if spatial == "causal" else torch.ones_like(causal)
    within = (
        (q_temporal & k_temporal & temporal_ok)
        | (q_spatial & k_spatial & spatial_ok)
        | (q_spatial & k_temporal & spatial_attends_temporal)
        | (q_temporal & k_spatial & temporal_attends_spatial)
    )
    return torch.where(same_video, within, causal)


def loop_dst_attention_mask(token_types, attention_mask=None, **switches):
    """The pre-issue-15 ``dst_attention_mask`` (loop layout, then the rule broadcast over [B, S, S])."""
    valid = _valid(token_types, attention_mask)
    _, video = loop_layout(token_types, valid)
    idx = torch.arange(token_types.shape[1])
    allowed = loop_allowed(
        idx[None, :, None], idx[None, None, :], token_types[:, :, None], token_types[:, None, :],
        video[:, :, None], video[:, None, :], **switches,
    )
    return (allowed & valid[:, None, :])[:, None] & valid[:, None, :, None]
