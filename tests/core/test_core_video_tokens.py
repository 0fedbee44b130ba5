"""build_video_tokens against hand-worked cases (paper §3.1, DESIGN §2)."""

import pytest
import torch

from mashvlm import build_video_tokens


def linear_features(frames, grid):
    """Hand-computable features, D = 2: ``z[t, n] = (n + 100 t, t^2)``, CLS ``(1000 + t, -t)``."""
    t = torch.arange(frames, dtype=torch.float64)[:, None]
    n = torch.arange(grid * grid, dtype=torch.float64)[None, :]
    patch = torch.stack([n + 100 * t, (t**2).expand(frames, grid * grid)], dim=-1)
    cls = torch.stack([1000 + t[:, 0], -t[:, 0]], dim=-1)
    return patch, cls


def test_hand_worked_t5_grid4():
    """T = 5 frames, 4x4 grid, D = 2. Temporal = T CLS, T spatial means, T-1 frame differences;
    spatial = 4 segments of tensor_split (frames {0,1}, {2}, {3}, {4}) each 2x2-pooled to 2x2 cells,
    segment-major, row-major over the pooled cells. Every value worked out by hand."""
    patch, cls = linear_features(5, 4)
    temporal, spatial = build_video_tokens(patch, cls)

    # mean_n(n) = 7.5 over the 16 patches; frame differences (100, (t+1)^2 - t^2).
    expected_temporal = torch.tensor(
        [
            [1000, 0], [1001, -1], [1002, -2], [1003, -3], [1004, -4],  # CLS
            [7.5, 0], [107.5, 1], [207.5, 4], [307.5, 9], [407.5, 16],  # spatial means
            [100, 1], [100, 3], [100, 5], [100, 7],  # frame differences
        ],
        dtype=torch.float64,
    )  # fmt: skip
    # Pooled cells of the row-major 4x4 grid: {0,1,4,5} -> 2.5, {2,3,6,7} -> 4.5,
    # {8,9,12,13} -> 10.5, {10,11,14,15} -> 12.5. Segment time means: 100t -> 50, 200, 300, 400;
    # t^2 -> 0.5, 4, 9, 16.
    cells = torch.tensor([2.5, 4.5, 10.5, 12.5], dtype=torch.float64)
    expected_spatial = torch.cat(
        [
            torch.stack([cells + shift, torch.full((4,), square, dtype=torch.float64)], dim=-1)
            for shift, square in ((50, 0.5), (200, 4.0), (300, 9.0), (400, 16.0))
        ]
    )
    assert temporal.shape == (3 * 5 - 1, 2)
    assert spatial.shape == (16, 2)
    torch.testing.assert_close(temporal, expected_temporal)
    torch.testing.assert_close(spatial, expected_spatial)


def test_hand_worked_t6_grid2_one_cell_per_segment():
    """T = 6 splits into segments of 2, 2, 1, 1 frames (the first T % 4 take one extra); a 2x2 grid pools
    to one cell, so the 4 spatial tokens are the segment means of the frame means."""
    patch, cls = linear_features(6, 2)
    temporal, spatial = build_video_tokens(patch, cls)
    # Frame mean of ch0 is 1.5 + 100 t; ch1 is t^2.
    expected_spatial = torch.tensor(
        [[1.5 + 50, 0.5], [1.5 + 250, 6.5], [1.5 + 400, 16.0], [1.5 + 500, 25.0]], dtype=torch.float64
    )
    torch.testing.assert_close(spatial, expected_spatial)
    assert temporal.shape == (17, 2)
    torch.testing.assert_close(temporal[6:12, 0], 1.5 + 100 * torch.arange(6, dtype=torch.float64))
    torch.testing.assert_close(temporal[12:, 1], torch.tensor([1.0, 3, 5, 7, 9], dtype=torch.float64))


def test_frame_difference_is_mean_of_patchwise_differences():
    """Temporal tokens on random features: CLS, then mean_n z[t, n], then mean_n(z[t+1, n] - z[t, n])."""
    gen = torch.Generator().manual_seed(0)
    patch = torch.randn(4, 16, 3, generator=gen, dtype=torch.float64)
    cls = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    temporal, _ = build_video_tokens(patch, cls)
    for t in range(3):
        torch.testing.assert_close(temporal[8 + t], (patch[t + 1] - patch[t]).mean(0))
    torch.testing.assert_close(temporal[:4], cls)
    torch.testing.assert_close(temporal[4:8], patch.mean(1))


def test_batched_equals_unbatched():
    """``[B, T, N, D]`` / ``[B, T, D]`` gives ``[B, M, D]`` / ``[B, N', D]``, each row the unbatched result."""
    gen = torch.Generator().manual_seed(1)
    patch = torch.randn(3, 5, 16, 4, generator=gen)
    cls = torch.randn(3, 5, 4, generator=gen)
    temporal, spatial = build_video_tokens(patch, cls)
    assert temporal.shape == (3, 14, 4)
    assert spatial.shape == (3, 16, 4)
    for b in range(3):
        one_temporal, one_spatial = build_video_tokens(patch[b], cls[b])
        torch.testing.assert_close(temporal[b], one_temporal)
        torch.testing.assert_close(spatial[b], one_spatial)


def test_n_spatial_tokens_equals_n_patches_with_default_pooling():
    """With 4 segments and 2x2 pooling, N spatial tokens = g^2 patches (paper: z_spatial in R^{N x D})."""
    for grid in (2, 4, 6):
        patch = torch.zeros(4, grid * grid, 1)
        _, spatial = build_video_tokens(patch, torch.zeros(4, 1))
        assert spatial.shape == (grid * grid, 1)


@pytest.mark.parametrize(
    ("frames", "num_patches"),
    [(4, 9), (4, 36 - 1), (3, 16), (1, 4)],
    ids=["odd-grid", "not-square", "T=3", "T=1"],
)
def test_invalid_inputs_raise(frames, num_patches):
    """The grid must be square with an even side (2x2 pooling) and T >= num_segments = 4."""
    with pytest.raises(ValueError):
        build_video_tokens(torch.zeros(frames, num_patches, 2), torch.zeros(frames, 2))


def test_mismatched_cls_shape_raises():
    """cls_features must be ``[T, D]`` matching the patch features."""
    with pytest.raises(ValueError):
        build_video_tokens(torch.zeros(4, 16, 2), torch.zeros(5, 2))


# Table 8's ablations: the temporal components (CLS, spatially pooled "SP", frame difference "F-Diff") and
# whether spatial tokens ("TP") are built. Hand-worked on linear_features(5, 4), as in test_hand_worked_t5_grid4.
CLS_T5 = [[1000, 0], [1001, -1], [1002, -2], [1003, -3], [1004, -4]]
POOLED_T5 = [[7.5, 0], [107.5, 1], [207.5, 4], [307.5, 9], [407.5, 16]]
FRAME_DIFF_T5 = [[100, 1], [100, 3], [100, 5], [100, 7]]


@pytest.mark.parametrize(
    ("components", "expected_rows"),
    [
        ((), []),
        (("pooled",), POOLED_T5),
        (("pooled", "cls"), CLS_T5 + POOLED_T5),  # given in any order, concatenated CLS first
        (("frame_diff", "pooled", "cls"), CLS_T5 + POOLED_T5 + FRAME_DIFF_T5),
        (("cls", "frame_diff"), CLS_T5 + FRAME_DIFF_T5),
    ],
    ids=["none", "SP", "SP+CLS", "SP+CLS+F-Diff", "CLS+F-Diff"],
)
def test_temporal_components_hand_worked(components, expected_rows):
    patch, cls = linear_features(5, 4)
    temporal, spatial = build_video_tokens(patch, cls, temporal_tokens=components)
    expected = torch.tensor(expected_rows, dtype=torch.float64).reshape(-1, 2)
    assert temporal.shape == (len(expected_rows), 2)
    torch.testing.assert_close(temporal, expected)
    torch.testing.assert_close(spatial, build_video_tokens(patch, cls)[1])  # spatial tokens unaffected


def test_without_spatial_tokens():
    """``spatial_tokens=False`` gives ``[0, D]`` (``[B, 0, D]`` batched) spatial tokens and the same temporal
    ones; the spatial requirements (square even grid, T >= num_segments) then do not apply."""
    patch, cls = linear_features(5, 4)
    temporal, spatial = build_video_tokens(patch, cls, spatial_tokens=False)
    assert spatial.shape == (0, 2)
    torch.testing.assert_close(temporal, build_video_tokens(patch, cls)[0])
    batched_temporal, batched_spatial = build_video_tokens(patch[None], cls[None], spatial_tokens=False)
    assert batched_spatial.shape == (1, 0, 2)
    torch.testing.assert_close(batched_temporal[0], temporal)
    # 3 frames on a 3x3 grid: no spatial tokens possible, temporal ones fine (M = 3T - 1 = 8).
    temporal, spatial = build_video_tokens(torch.ones(3, 9, 2), torch.zeros(3, 2), spatial_tokens=False)
    assert temporal.shape == (8, 2) and spatial.shape == (0, 2)
    torch.testing.assert_close(temporal[3:6], torch.ones(3, 2))  # pooled
    torch.testing.assert_close(temporal[6:], torch.zeros(2, 2))  # frame differences of constant frames


@pytest.mark.parametrize("components", [("cls", "cls"), ("pooled", "spatial")], ids=["repeated", "unknown"])
def test_invalid_temporal_components_raise(components):
    patch, cls = linear_features(4, 2)
    with pytest.raises(ValueError, match="temporal_tokens"):
        build_video_tokens(patch, cls, temporal_tokens=components)
