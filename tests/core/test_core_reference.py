"""An independent, literal reference implementation of the paper's rules and randomized comparisons.

Nothing here is shared with the library: the layouts are generated as lists of segments (text runs and
video blocks), the expected position IDs, block indices and masks are computed from those segments with
plain Python loops straight from DESIGN §2-§5, and the library only sees the flattened token types.
"""

import math
from dataclasses import dataclass

import pytest
import torch
from torch.nn.attention.flex_attention import create_mask

from mashvlm import (
    build_video_tokens,
    dst_attention_mask,
    dst_block_mask,
    harmonic_position_ids,
    video_block_index,
)

# DESIGN §3, written out rather than imported.
TEXT, TEMPORAL, SPATIAL = 0, 1, 2
NUM_CASES = 200


# ---------------------------------------------------------------------------------------------
# Random layouts
# ---------------------------------------------------------------------------------------------


def randint(gen, low, high):
    """A random int in [low, high]."""
    return int(torch.randint(low, high + 1, (1,), generator=gen))


@dataclass
class Sample:
    """One sample: segments ``("text", n)`` or ``("video", M, N)`` and the padding around them."""

    segments: list
    left_pad: int
    right_pad: int


def random_segments(gen):
    """0-3 videos with random M, N in 1..6 (so M > N, M < N and M == N all occur), text runs of 0-3 between."""
    segments = [("text", randint(gen, 0, 3))]
    for _ in range(randint(gen, 0, 3)):
        segments.append(("video", randint(gen, 1, 6), randint(gen, 1, 6)))
        segments.append(("text", randint(gen, 0, 3)))
    segments = [s for s in segments if s != ("text", 0)]
    return segments or [("text", 1)]


def segments_length(segments):
    return sum(s[1] if s[0] == "text" else s[1] + s[2] for s in segments)


def random_batch(gen):
    """1-4 samples padded on the left, on the right, or not at all (then every sample has the same length)."""
    batch = [random_segments(gen) for _ in range(randint(gen, 1, 4))]
    side = ["left", "right", "none"][randint(gen, 0, 2)]
    if side == "none":
        width = max(segments_length(s) for s in batch)
        batch = [s + [("text", width - segments_length(s))] if segments_length(s) < width else s for s in batch]
        return [Sample(s, 0, 0) for s in batch]
    width = max(segments_length(s) for s in batch) + randint(gen, 0, 2)
    samples = []
    for segments in batch:
        pad = width - segments_length(segments)
        samples.append(Sample(segments, pad, 0) if side == "left" else Sample(segments, 0, pad))
    return samples


def to_tensors(samples, gen):
    """``(token_types, attention_mask)`` ``[B, S]``. Padding positions get random token types: a padded slot's
    type must not matter."""
    rows, masks = [], []
    for sample in samples:
        row = [randint(gen, 0, 2) for _ in range(sample.left_pad)]
        for segment in sample.segments:
            if segment[0] == "text":
                row += [TEXT] * segment[1]
            else:
                row += [TEMPORAL] * segment[1] + [SPATIAL] * segment[2]
        row += [randint(gen, 0, 2) for _ in range(sample.right_pad)]
        rows.append(row)
        masks.append([0] * sample.left_pad + [1] * segments_length(sample.segments) + [0] * sample.right_pad)
    return torch.tensor(rows), torch.tensor(masks)


def random_switches(gen):
    """One random setting of the Table 5/6 switches."""
    return {
        "temporal": ["causal", "bidirectional"][randint(gen, 0, 1)],
        "spatial": ["causal", "bidirectional"][randint(gen, 0, 1)],
        "spatial_attends_temporal": bool(randint(gen, 0, 1)),
        "temporal_attends_spatial": bool(randint(gen, 0, 1)),
    }


# ---------------------------------------------------------------------------------------------
# The reference: literal loops over positions (DESIGN §4, §5)
# ---------------------------------------------------------------------------------------------


def reference_layout(sample):
    """Per position of one sample: ``(types, valid, balanced, distinct, block)`` lists, walking the segments.

    distinct: 0, 1, 2, ... over non-padding tokens. balanced: text takes the counter and increments it;
    a video of M temporal, N spatial tokens at counter c spans L = max(M, N): temporal i -> c + L - M + i,
    spatial j -> c + L - N + j, then the counter becomes c + L. Padding: 0, 0, block -1.
    """
    types, valid, balanced, distinct, block = [], [], [], [], []
    for _ in range(sample.left_pad):
        types.append(None), valid.append(False), balanced.append(0), distinct.append(0), block.append(-1)
    counter, video = 0, 0
    for segment in sample.segments:
        if segment[0] == "text":
            for _ in range(segment[1]):
                types.append(TEXT), valid.append(True), balanced.append(counter), block.append(-1)
                distinct.append(len(distinct) - sample.left_pad)
                counter += 1
            continue
        _, m, n = segment
        span = max(m, n)
        for i in range(m):
            types.append(TEMPORAL), valid.append(True), balanced.append(counter + span - m + i), block.append(video)
            distinct.append(len(distinct) - sample.left_pad)
        for j in range(n):
            types.append(SPATIAL), valid.append(True), balanced.append(counter + span - n + j), block.append(video)
            distinct.append(len(distinct) - sample.left_pad)
        counter += span
        video += 1
    for _ in range(sample.right_pad):
        types.append(None), valid.append(False), balanced.append(0), distinct.append(0), block.append(-1)
    return types, valid, balanced, distinct, block


def reference_may_attend(q, k, types, valid, block, switches):
    """The DESIGN §4 table, row by row."""
    if not (valid[q] and valid[k]):
        return False
    if types[q] == TEXT:
        return k <= q
    if types[k] == TEXT:
        return k < q
    if block[k] != block[q]:
        return k < q
    if types[q] == TEMPORAL and types[k] == TEMPORAL:
        return k <= q if switches["temporal"] == "causal" else True
    if types[q] == SPATIAL and types[k] == SPATIAL:
        return k <= q if switches["spatial"] == "causal" else True
    if types[q] == SPATIAL and types[k] == TEMPORAL:
        return switches["spatial_attends_temporal"]
    return switches["temporal_attends_spatial"]


def reference_mask(samples, switches):
    """``[B, 1, S, S]`` bool."""
    masks = []
    for sample in samples:
        types, valid, _, _, block = reference_layout(sample)
        size = len(types)
        masks.append(
            [[reference_may_attend(q, k, types, valid, block, switches) for k in range(size)] for q in range(size)]
        )
    return torch.tensor(masks)[:, None]


def reference_video_tokens(z, cls, num_segments=4, pool=2):
    """Temporal ``[3T - 1, D]`` and spatial ``[num_segments * (g/pool)^2, D]`` tokens of one video (DESIGN §2)."""
    frames, patches, _ = z.shape
    grid = math.isqrt(patches)
    temporal = [cls[t] for t in range(frames)]
    temporal += [sum(z[t, n] for n in range(patches)) / patches for t in range(frames)]
    temporal += [sum(z[t + 1, n] - z[t, n] for n in range(patches)) / patches for t in range(frames - 1)]
    sizes = [frames // num_segments + (1 if s < frames % num_segments else 0) for s in range(num_segments)]
    spatial, start = [], 0
    for size in sizes:
        segment = range(start, start + size)
        start += size
        for row in range(grid // pool):
            for col in range(grid // pool):
                cells = [(row * pool + i) * grid + col * pool + j for i in range(pool) for j in range(pool)]
                spatial.append(sum(z[t, n] for t in segment for n in cells) / (size * len(cells)))
    return torch.stack(temporal), torch.stack(spatial)


# ---------------------------------------------------------------------------------------------
# Sanity of the reference itself on the paper's example
# ---------------------------------------------------------------------------------------------


def test_reference_reproduces_eq5():
    """The reference gives eq. 5 (0-based) for N = 4 spatial, M = 2 temporal, then 2 text tokens."""
    _, _, balanced, distinct, block = reference_layout(Sample([("video", 2, 4), ("text", 2)], 0, 0))
    assert balanced == [2, 3, 0, 1, 2, 3, 4, 5]
    assert distinct == list(range(8))
    assert block == [0] * 6 + [-1, -1]


# ---------------------------------------------------------------------------------------------
# Randomized comparisons
# ---------------------------------------------------------------------------------------------


def random_cases():
    gen = torch.Generator().manual_seed(20240)
    for case in range(NUM_CASES):
        samples = random_batch(gen)
        types, mask = to_tensors(samples, gen)
        yield case, samples, types, mask, random_switches(gen)


def test_random_layouts_cover_the_interesting_cases():
    """The generator does produce M > N, M < N, M == N, 3 videos, left and right padding and batch 4."""
    seen = set()
    for _, samples, _, _, _ in random_cases():
        seen.add(("batch", len(samples)))
        for sample in samples:
            videos = [s for s in sample.segments if s[0] == "video"]
            seen.add(("videos", len(videos)))
            seen.update(("m>n" if m > n else "m<n" if m < n else "m=n") for _, m, n in videos)
            seen.add("left" if sample.left_pad else "right" if sample.right_pad else "unpadded")
    for needed in [("batch", 4), ("videos", 0), ("videos", 3), "m>n", "m<n", "m=n", "left", "right", "unpadded"]:
        assert needed in seen


def test_harmonic_position_ids_match_reference():
    """Both position streams equal the literal DESIGN §5 rule on 200 random batches."""
    for case, samples, types, mask, _ in random_cases():
        expected = torch.tensor([[reference_layout(s)[i] for s in samples] for i in (2, 3)])
        got = harmonic_position_ids(types, mask)
        assert torch.equal(got, expected), f"case {case}: {samples}"


def test_video_block_index_matches_reference():
    """Video block indices (0, 1, ... per sample; -1 for text and padding) on 200 random batches."""
    for case, samples, types, mask, _ in random_cases():
        expected = torch.tensor([reference_layout(s)[4] for s in samples])
        assert torch.equal(video_block_index(types, mask), expected), f"case {case}: {samples}"


def test_dst_attention_mask_matches_reference():
    """The DST mask equals the literal DESIGN §4 table on 200 random batches, each with random switches."""
    for case, samples, types, mask, switches in random_cases():
        got = dst_attention_mask(types, mask, **switches)
        assert torch.equal(got, reference_mask(samples, switches)), f"case {case}: {samples} {switches}"


def test_build_video_tokens_matches_reference():
    """Video tokens equal the literal DESIGN §2 rule for random T in 4..9, grid 2/4/6, D 1..3, batched or not."""
    gen = torch.Generator().manual_seed(7)
    for case in range(NUM_CASES):
        frames, grid, dim = randint(gen, 4, 9), 2 * randint(gen, 1, 3), randint(gen, 1, 3)
        batch = randint(gen, 0, 2)  # 0: unbatched
        shape = (batch,) if batch else ()
        z = torch.randn(*shape, frames, grid * grid, dim, generator=gen, dtype=torch.float64)
        cls = torch.randn(*shape, frames, dim, generator=gen, dtype=torch.float64)
        temporal, spatial = build_video_tokens(z, cls)
        for b in range(max(batch, 1)):
            ref_temporal, ref_spatial = reference_video_tokens(z[b] if batch else z, cls[b] if batch else cls)
            got_temporal, got_spatial = (temporal[b], spatial[b]) if batch else (temporal, spatial)
            torch.testing.assert_close(got_temporal, ref_temporal, msg=f"case {case} temporal")
            torch.testing.assert_close(got_spatial, ref_spatial, msg=f"case {case} spatial")


@pytest.mark.parametrize("case", range(6))
def test_dst_block_mask_matches_dense_mask(case):
    """The flex-attention BlockMask encodes the same rule as the dense mask, also for queries q_offset..S-1."""
    gen = torch.Generator().manual_seed(100 + case)
    samples = random_batch(gen)
    types, mask = to_tensors(samples, gen)
    switches = random_switches(gen)
    batch, seq = types.shape
    q_offset = 0 if case < 2 else randint(gen, 1, seq - 1) if seq > 1 else 0
    block_mask = dst_block_mask(types, mask, q_offset=q_offset, **switches)
    dense = create_mask(block_mask.mask_mod, batch, 1, seq - q_offset, seq)
    expected = dst_attention_mask(types, mask, **switches)[:, :, q_offset:]
    assert torch.equal(dense, expected), f"{samples} {switches} q_offset={q_offset}"
