"""Harmonic-RoPE position streams and rotary angles against hand-worked cases (paper §3.2, DESIGN §3, §5).

Layouts are written as strings: ``.`` text, ``T`` temporal, ``S`` spatial, ``_`` padding.
"""

import pytest
import torch
from mash_core_helpers import build_model

from mashvlm import TokenType, harmonic_position_ids, harmonic_rotary_angles, video_block_index

CODES = {".": TokenType.TEXT, "T": TokenType.TEMPORAL, "S": TokenType.SPATIAL, "_": TokenType.TEXT}


def layout(*rows):
    """``(token_types, attention_mask)`` ``[B, S]`` from equal-length layout strings."""
    types = torch.tensor([[int(CODES[c]) for c in row] for row in rows])
    mask = torch.tensor([[0 if c == "_" else 1 for c in row] for row in rows])
    return types, mask


def positions(row):
    """``(balanced, distinct)`` lists of one layout string."""
    types, mask = layout(row)
    ids = harmonic_position_ids(types, mask)
    assert ids.shape == (2, 1, len(row))
    assert ids.dtype == torch.long
    return ids[0, 0].tolist(), ids[1, 0].tolist()


def test_token_type_values():
    """DESIGN §3: TEXT = 0, TEMPORAL = 1, SPATIAL = 2."""
    assert (int(TokenType.TEXT), int(TokenType.TEMPORAL), int(TokenType.SPATIAL)) == (0, 1, 2)


def test_eq5_video_first_n4_m2():
    """Eq. 5 with N = 4, M = 2 and 0-based IDs: spatial 0..N-1, temporal N-M..N-1, then text N, N+1."""
    balanced, distinct = positions("TTSSSS..")
    assert balanced == [2, 3, 0, 1, 2, 3, 4, 5]
    assert distinct == list(range(8))


def test_text_video_text_m_less_than_n():
    """Leading text shifts the block by the counter c = 2: temporal c+N-M.., spatial c.., text after c+N."""
    balanced, distinct = positions("..TTSSSS..")
    assert balanced == [0, 1, 4, 5, 2, 3, 4, 5, 6, 7]
    assert distinct == list(range(10))


def test_text_video_text_m_greater_than_n():
    """M = 3 > N = 2: the block spans L = max(M, N) = 3 IDs, right-aligned; temporal c..c+2, spatial c+1..c+2."""
    balanced, distinct = positions(".TTTSS.")
    assert balanced == [0, 1, 2, 3, 2, 3, 4]
    assert distinct == list(range(7))


def test_text_video_text_m_equals_n():
    """M = N = 2: temporal and spatial tokens share the same IDs."""
    balanced, _ = positions(".TTSS.")
    assert balanced == [0, 1, 2, 1, 2, 3]


def test_two_videos_in_one_sample():
    """Each video block is placed at the counter when it starts; text between them continues the counter."""
    balanced, distinct = positions(".TTSSS.TSS.")
    # video 1 at c = 1 (M=2, N=3, L=3): T 2,3  S 1,2,3; text 4; video 2 at c = 5 (M=1, N=2, L=2): T 6  S 5,6
    assert balanced == [0, 2, 3, 1, 2, 3, 4, 6, 5, 6, 7]
    assert distinct == list(range(11))


def test_adjacent_videos_without_text_between():
    """A temporal run after a spatial run starts a new video block."""
    balanced, _ = positions("TTSSSTSS.")
    assert balanced == [1, 2, 0, 1, 2, 4, 3, 4, 5]


@pytest.mark.parametrize("padded", ["___..TTSSSS..", "..TTSSSS..___", "_..TTSSSS..__"], ids=["left", "right", "both"])
def test_padding_gets_zero_and_shifts_nothing(padded):
    """Padding (on either side) gets ID 0 in both streams; the other tokens get the IDs of the unpadded layout."""
    balanced, distinct = positions(padded)
    ref_balanced, ref_distinct = positions("..TTSSSS..")
    keep = [i for i, c in enumerate(padded) if c != "_"]
    assert [balanced[i] for i in keep] == ref_balanced
    assert [distinct[i] for i in keep] == ref_distinct
    assert all(balanced[i] == 0 and distinct[i] == 0 for i, c in enumerate(padded) if c == "_")


def test_distinct_row_counts_non_padding_tokens():
    """Row 1 (distinct) is 0..n-1 over the non-padding tokens of each sample (eq. 4, 0-based)."""
    types, mask = layout("__.TTSSS.TS", ".TSS.TTS___", "...........")
    distinct = harmonic_position_ids(types, mask)[1]
    for b in range(3):
        keep = mask[b].bool()
        assert distinct[b, keep].tolist() == list(range(int(keep.sum())))


def test_text_only_streams_are_equal():
    """With no video the balanced and distinct streams coincide (so Harmonic-RoPE is plain RoPE)."""
    types, mask = layout("__......", "........")
    ids = harmonic_position_ids(types, mask)
    assert torch.equal(ids[0], ids[1])


def test_batch_rows_are_independent_and_mask_defaults_to_all_ones():
    """Each sample is laid out on its own; ``attention_mask=None`` means no padding."""
    rows = (".TTSSSS..", "TTTSS.TSS", ".........")
    types, _ = layout(*rows)
    batched = harmonic_position_ids(types)
    for b, row in enumerate(rows):
        balanced, distinct = positions(row)
        assert batched[0, b].tolist() == balanced
        assert batched[1, b].tolist() == distinct


def test_video_block_index():
    """Visual tokens get the index of their video block (0, 1, ... per sample); text and padding get -1."""
    types, mask = layout("_.TTSS.TS.", "TSTS______")
    assert video_block_index(types, mask).tolist() == [
        [-1, -1, 0, 0, 0, 0, -1, 1, 1, -1],
        [0, 0, 1, 1, -1, -1, -1, -1, -1, -1],
    ]


INV_FREQ = torch.tensor([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("harmonic", [5.0, 14.0, 15.0, 28.0]),  # even k: balanced 5; odd k: distinct 7
        ("balanced", [5.0, 10.0, 15.0, 20.0]),
        ("distinct", [7.0, 14.0, 21.0, 28.0]),
    ],
)
def test_harmonic_rotary_angles(variant, expected):
    """Eq. 6: frequency index k rotates by balanced * inv_freq[k] for even k, distinct * inv_freq[k] for odd k;
    the "balanced" / "distinct" variants use one stream for every k (Table 7)."""
    position_ids = torch.tensor([[[0, 5]], [[0, 7]]])  # [2, B=1, S=2]
    angles = harmonic_rotary_angles(position_ids, INV_FREQ, variant)
    assert angles.shape == (1, 2, 4)
    assert angles[0, 0].tolist() == [0.0] * 4
    assert angles[0, 1].tolist() == expected


def test_harmonic_rotary_angles_rejects_unknown_variant():
    """Only "harmonic", "balanced" and "distinct" exist."""
    with pytest.raises(ValueError):
        harmonic_rotary_angles(torch.zeros(2, 1, 1, dtype=torch.long), INV_FREQ, "mixed")


@pytest.mark.parametrize("variant", ["harmonic", "balanced", "distinct"])
def test_model_rotary_embedding_pairs_dim_i_with_i_plus_half(variant):
    """The LLM's rotary embedding gives cos/sin in transformers' rotate_half layout: dims i and i + d/2 both
    rotate by frequency k = i of harmonic_rotary_angles ("even/odd" indexes inv_freq, not head dims)."""
    rotary = build_model(rope_variant=variant).model.language_model.rotary_emb
    types, mask = layout("..TTTSSSSS..", "__.TTSS.TSS.")
    position_ids = harmonic_position_ids(types, mask)
    x = torch.zeros(2, 12, 8)
    cos, sin = rotary(x, position_ids)
    angles = harmonic_rotary_angles(position_ids, rotary.inv_freq, variant)
    half = angles.shape[-1]
    assert cos.shape == (2, 12, 2 * half)
    for part in (slice(0, half), slice(half, 2 * half)):
        torch.testing.assert_close(cos[..., part], angles.cos())
        torch.testing.assert_close(sin[..., part], angles.sin())
