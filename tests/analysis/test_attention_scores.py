"""The attention-score math (Fig. 6 and 8) on hand-made attention tensors with known answers."""

import math

import pytest
import torch

from mashvlm.analysis.attention import (
    METRICS,
    aggregate_scores,
    answer_query_mask,
    attention_by_key_type,
    attention_scores,
)
from mashvlm.modeling.modeling_mash_vlm import TokenType

X, T, S = int(TokenType.TEXT), int(TokenType.TEMPORAL), int(TokenType.SPATIAL)
# system text, 2 temporal, 3 spatial, then question/answer text: 8 positions.
TYPES = torch.tensor([[X, T, T, S, S, S, X, X]])


def _row(weights: dict[int, float], length: int = 8) -> list[float]:
    row = [0.0] * length
    for k, w in weights.items():
        row[k] = w
    assert math.isclose(sum(row), 1.0)
    return row


def _layer(rows_head0: dict[int, list[float]], rows_head1: dict[int, list[float]]) -> torch.Tensor:
    """[1, 2, 8, 8] with the given rows (others: all mass on key 0)."""
    probs = torch.zeros(1, 2, 8, 8)
    probs[..., 0] = 1.0
    for head, rows in enumerate((rows_head0, rows_head1)):
        for q, row in rows.items():
            probs[0, head, q] = torch.tensor(row)
    return probs


def test_masses_average_over_heads_and_answer_queries_only():
    # Answer queries 6 and 7. Head 0, query 6: 0.5 spatial (keys 3, 4), 0.2 temporal, 0.3 text.
    # Head 1, query 6: all on spatial key 5. Query 7: head 0 all temporal, head 1 all text.
    layer = _layer(
        {6: _row({3: 0.25, 4: 0.25, 1: 0.2, 0: 0.3}), 7: _row({2: 1.0}), 5: _row({1: 1.0})},
        {6: _row({5: 1.0}), 7: _row({6: 1.0}), 5: _row({2: 1.0})},
    )
    answer = torch.tensor([[False] * 6 + [True, True]])
    mass = attention_by_key_type([layer, _layer({}, {})], TYPES, answer)
    assert mass.shape == (2, 1, 3)
    # Layer 0: spatial (0.5 + 1 + 0 + 0) / 4, temporal (0.2 + 0 + 1 + 0) / 4, text (0.3 + 0 + 0 + 1) / 4.
    torch.testing.assert_close(mass[0, 0, [X, T, S]], torch.tensor([1.3, 1.2, 1.5]) / 4)
    # Layer 1: every row on key 0 (text).
    torch.testing.assert_close(mass[1, 0], torch.tensor([1.0, 0.0, 0.0]))
    # Query 5 (spatial, all on temporal keys) is not an answer query: it must not leak in.
    only_5 = attention_by_key_type([layer], TYPES, torch.tensor([[False] * 5 + [True, False, False]]))
    torch.testing.assert_close(only_5[0, 0], torch.tensor([0.0, 1.0, 0.0]))


def test_scores_per_token_and_video_internal_masses():
    layer = _layer(
        {6: _row({3: 0.3, 1: 0.6, 0: 0.1}), 7: _row({4: 0.3, 2: 0.6, 7: 0.1}),
         3: _row({3: 0.5, 4: 0.5}), 4: _row({1: 0.5, 4: 0.5}), 5: _row({5: 1.0}),
         1: _row({1: 1.0}), 2: _row({1: 0.5, 5: 0.5})},
        {6: _row({3: 0.3, 1: 0.6, 0: 0.1}), 7: _row({4: 0.3, 2: 0.6, 7: 0.1}),
         3: _row({3: 1.0}), 4: _row({4: 1.0}), 5: _row({5: 1.0}),
         1: _row({1: 1.0}), 2: _row({2: 1.0})},
    )
    answer = torch.tensor([[False] * 6 + [True, True]])
    scores = attention_scores([layer], TYPES, answer)
    assert set(scores) == set(METRICS) and all(len(v) == 1 for v in scores.values())
    assert scores["spatial_to_text"][0] == pytest.approx(0.3)
    assert scores["temporal_to_text"][0] == pytest.approx(0.6)
    assert scores["text_to_text"][0] == pytest.approx(0.1)
    assert scores["spatial_to_text_per_token"][0] == pytest.approx(0.3 / 3)  # 3 spatial tokens
    assert scores["temporal_to_text_per_token"][0] == pytest.approx(0.6 / 2)  # 2 temporal tokens
    # Spatial queries 3, 4, 5 over both heads: only (head 0, query 4) puts 0.5 on a temporal key.
    assert scores["temporal_to_spatial"][0] == pytest.approx(0.5 / 6)
    # Temporal queries 1, 2: only (head 0, query 2) puts 0.5 on a spatial key.
    assert scores["spatial_to_temporal"][0] == pytest.approx(0.5 / 4)


def test_answer_queries_are_the_positions_predicting_answer_tokens_not_eos():
    eos = 2
    labels = torch.tensor([[-100, -100, -100, 41, 42, eos]])
    assert answer_query_mask(labels, eos).tolist() == [[False, False, True, True, False, False]]
    # Without an eos id the query predicting </s> counts too.
    assert answer_query_mask(labels).tolist() == [[False, False, True, True, True, False]]


def test_shapes_that_do_not_match_are_refused():
    layer = torch.full((1, 2, 8, 8), 1 / 8)
    with pytest.raises(ValueError, match="queries"):
        attention_by_key_type([layer], TYPES, torch.ones(1, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="not \\[B=1"):
        attention_by_key_type([layer[..., :7]], TYPES, torch.ones(1, 8, dtype=torch.bool))


def test_aggregate_means_each_category_over_questions_then_layers():
    def scores(spatial: list[float]) -> dict[str, list[float]]:
        return {m: [0.0] * len(spatial) for m in METRICS} | {"spatial_to_text": spatial}

    groups = aggregate_scores(
        [("scene", scores([0.2, 0.4])), ("action", scores([0.1, 0.3])), ("scene", scores([0.4, 0.0]))]
    )
    assert list(groups) == ["action", "scene"]
    assert groups["scene"]["n"] == 2
    assert groups["scene"]["per_layer"]["spatial_to_text"] == pytest.approx([0.3, 0.2])
    assert groups["scene"]["layer_mean"]["spatial_to_text"] == pytest.approx(0.25)
    assert groups["action"]["layer_mean"]["spatial_to_text"] == pytest.approx(0.2)
