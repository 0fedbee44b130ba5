"""dst_attention_mask against hand-written matrices (paper §3.3 eq. 8, Tables 5-6; DESIGN §4).

Layouts: ``.`` text, ``T`` temporal, ``S`` spatial, ``_`` padding. Matrices: one string per query row,
``1`` = the query (row) may attend the key (column).
"""

import pytest
import torch

from mashvlm import TokenType, dst_attention_mask

CODES = {".": TokenType.TEXT, "T": TokenType.TEMPORAL, "S": TokenType.SPATIAL, "_": TokenType.TEXT}

# 2 text + 2 temporal + 3 spatial + 2 text
LAYOUT = "..TTSSS.."


def layout(*rows):
    """``(token_types, attention_mask)`` ``[B, S]`` from equal-length layout strings."""
    types = torch.tensor([[int(CODES[c]) for c in row] for row in rows])
    mask = torch.tensor([[0 if c == "_" else 1 for c in row] for row in rows])
    return types, mask


def matrix(*rows):
    """A ``[S, S]`` bool matrix from ``S`` strings of 0/1."""
    return torch.tensor([[c == "1" for c in row] for row in rows])


def mask_of(row, **switches):
    """The ``[S, S]`` DST mask of one layout string."""
    types, attention_mask = layout(row)
    mask = dst_attention_mask(types, attention_mask, **switches)
    assert mask.shape == (1, 1, len(row), len(row))
    assert mask.dtype == torch.bool
    return mask[0, 0]


def show(mask):
    return "\n".join("".join("1" if v else "0" for v in row) for row in mask.tolist())


# The rows of text queries (0, 1, 7, 8) are plain causal in every setting; only rows 2-6 change.
TEXT_ROWS_BEFORE = ("100000000", "110000000")
TEXT_ROWS_AFTER = ("111111110", "111111111")


def with_video_rows(t2, t3, s4, s5, s6):
    return matrix(*TEXT_ROWS_BEFORE, t2, t3, s4, s5, s6, *TEXT_ROWS_AFTER)


CASES = {
    # MASH (Table 5 row 4, Table 6 row 3): temporal causal, spatial bidirectional, no cross attention.
    "mash-default": (
        {},
        with_video_rows("111000000", "111100000", "110011100", "110011100", "110011100"),
    ),
    # Table 5 row 1: causal / causal, disentangled.
    "temporal-causal-spatial-causal": (
        {"temporal": "causal", "spatial": "causal"},
        with_video_rows("111000000", "111100000", "110010000", "110011000", "110011100"),
    ),
    # Table 5 row 2: bidirectional / bidirectional.
    "temporal-bi-spatial-bi": (
        {"temporal": "bidirectional", "spatial": "bidirectional"},
        with_video_rows("111100000", "111100000", "110011100", "110011100", "110011100"),
    ),
    # Table 5 row 3: bidirectional / causal.
    "temporal-bi-spatial-causal": (
        {"temporal": "bidirectional", "spatial": "causal"},
        with_video_rows("111100000", "111100000", "110010000", "110011000", "110011100"),
    ),
    # Table 6: spatial queries may attend the temporal keys of their video.
    "spatial-attends-temporal": (
        {"spatial_attends_temporal": True},
        with_video_rows("111000000", "111100000", "111111100", "111111100", "111111100"),
    ),
    # Table 6: temporal queries may attend the spatial keys of their video (which come later).
    "temporal-attends-spatial": (
        {"temporal_attends_spatial": True},
        with_video_rows("111011100", "111111100", "110011100", "110011100", "110011100"),
    ),
    # Table 6: no disentangling at all.
    "both-cross-directions": (
        {"spatial_attends_temporal": True, "temporal_attends_spatial": True},
        with_video_rows("111011100", "111111100", "111111100", "111111100", "111111100"),
    ),
    # The plain LLaVA baseline: exactly the causal mask.
    "llava-baseline": (
        {"temporal": "causal", "spatial": "causal", "spatial_attends_temporal": True, "temporal_attends_spatial": False},
        with_video_rows("111000000", "111100000", "111110000", "111111000", "111111100"),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hand_written_mask(name):
    """Every setting of Tables 5 and 6 on the layout 2 text + 2 temporal + 3 spatial + 2 text (DESIGN §4 table)."""
    switches, expected = CASES[name]
    got = mask_of(LAYOUT, **switches)
    assert torch.equal(got, expected), f"{name}:\n{show(got)}\nexpected:\n{show(expected)}"


def test_defaults_are_mash():
    """The keyword defaults are MASH-VLM's: temporal causal, spatial bidirectional, no cross attention."""
    explicit = {
        "temporal": "causal",
        "spatial": "bidirectional",
        "spatial_attends_temporal": False,
        "temporal_attends_spatial": False,
    }
    assert torch.equal(mask_of(LAYOUT), mask_of(LAYOUT, **explicit))


@pytest.mark.parametrize("row", ["..TTSSS..", ".TTTSS.TSSS.", "TS.TTSS", "TTTTS.."])
def test_baseline_is_exactly_causal(row):
    """DESIGN §4: the baseline switches give exactly the causal (lower-triangular) mask."""
    got = mask_of(row, temporal="causal", spatial="causal", spatial_attends_temporal=True)
    assert torch.equal(got, torch.ones(len(row), len(row), dtype=torch.bool).tril())


@pytest.mark.parametrize("padded", ["___..TTSSS..", "..TTSSS..___", "_..TTSSS..__"], ids=["left", "right", "both"])
@pytest.mark.parametrize("name", ["mash-default", "temporal-bi-spatial-bi", "both-cross-directions", "llava-baseline"])
def test_padding_rows_and_columns_are_false(padded, name):
    """Padding keys are never attended and padding queries attend nothing; the rest is the unpadded mask."""
    switches, expected = CASES[name]
    got = mask_of(padded, **switches)
    keep = torch.tensor([c != "_" for c in padded])
    assert not got[~keep].any()
    assert not got[:, ~keep].any()
    assert torch.equal(got[keep][:, keep], expected)


def test_baseline_with_padding_is_causal_restricted_to_non_padding():
    """Baseline mask with padding = causal AND key is non-padding AND query is non-padding."""
    types, mask = layout("__.TTSS.TS.", ".TTSS.TS.__")
    got = dst_attention_mask(types, mask, temporal="causal", spatial="causal", spatial_attends_temporal=True)
    valid = mask.bool()
    causal = torch.ones(11, 11, dtype=torch.bool).tril()
    expected = causal[None] & valid[:, None, :] & valid[:, :, None]
    assert torch.equal(got[:, 0], expected)


def test_two_videos_attend_earlier_video_causally_never_later():
    """A later video's tokens see an earlier video (any type) like text; an earlier video never sees a later one."""
    row = ".TTSS.TS."
    expected = matrix(
        "100000000",
        "110000000",  # video 1 temporal
        "111000000",
        "100110000",  # video 1 spatial: text before, own spatial (bidirectional); not own temporal
        "100110000",
        "111111000",  # text between the videos
        "111111100",  # video 2 temporal: everything earlier, including video 1's spatial tokens
        "111111010",  # video 2 spatial: everything earlier except its own temporal token
        "111111111",
    )
    got = mask_of(row)
    assert torch.equal(got, expected), show(got)


def test_adjacent_videos_are_separate_blocks():
    """Two videos with no text between: the second video's temporal tokens see the first video's spatial
    tokens (an earlier video), while the first video's temporal tokens never see the second video."""
    got = mask_of("TSSTS", temporal_attends_spatial=True)
    expected = matrix(
        "11100",  # video 1 temporal attends its own (later) spatial tokens, not video 2
        "01100",
        "01100",
        "11111",  # video 2 temporal: video 1 causally, its own spatial token
        "11101",
    )
    assert torch.equal(got, expected), show(got)


def test_batch_rows_are_independent():
    """Each sample's mask depends only on its own layout and padding."""
    rows = ("__..TTSSS..", ".TS.TTSS...", "...........")
    types, mask = layout(*rows)
    batched = dst_attention_mask(types, mask)
    assert batched.shape == (3, 1, 11, 11)
    for b, row in enumerate(rows):
        assert torch.equal(batched[b, 0], mask_of(row))


def test_invalid_attention_type_raises():
    """Only "causal" and "bidirectional" are attention types."""
    types, mask = layout(LAYOUT)
    with pytest.raises(ValueError):
        dst_attention_mask(types, mask, temporal="full")
    with pytest.raises(ValueError):
        dst_attention_mask(types, mask, spatial="none")
