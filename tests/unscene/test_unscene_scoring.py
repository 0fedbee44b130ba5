"""The dual metric, worked by hand, and the paper's own Table 2 arithmetic."""

from __future__ import annotations

import random
from typing import Any

import pytest
from unscene_helpers import ANNOTATIONS

from mashvlm.unscene.builder import build_questions
from mashvlm.unscene.records import Prediction, Question, parse_annotation
from mashvlm.unscene.scoring import (
    CATEGORY_KEYS,
    build_results,
    format_table,
    mean_of_categories,
    per_video_records,
    score_binary,
)

# Table 2 of the paper: binary (scene-only action, unusual action, unusual scene, avg) and open-ended.
TABLE2 = {
    "Video-ChatGPT": ((15.31, 5.84, 5.98, 9.04), (2.1, 2.5, 2.3, 2.3)),
    "VideoChat": ((33.61, 22.11, 24.20, 26.64), (2.7, 2.4, 2.7, 2.6)),
    "Chat-UniVi": ((6.66, 22.53, 23.37, 17.52), (1.7, 2.1, 2.5, 2.1)),
    "VideoChat2": ((30.78, 42.00, 51.04, 41.27), (2.8, 2.7, 3.0, 2.8)),
    "ST-LLM": ((24.79, 44.37, 36.30, 35.15), (2.9, 2.8, 3.0, 2.9)),
    "MASH-VLM": ((54.91, 38.39, 80.25, 57.85), (3.5, 2.8, 3.5, 3.3)),
}


@pytest.mark.parametrize("model", sorted(TABLE2))
def test_paper_table2_average_is_mean_of_three_categories(model: str) -> None:
    binary, open_ended = TABLE2[model]
    got = mean_of_categories(dict(zip(CATEGORY_KEYS, binary[:3], strict=True)))
    assert got is not None and round(got, 2) == pytest.approx(binary[3], abs=1e-9)
    got = mean_of_categories(dict(zip(CATEGORY_KEYS, open_ended[:3], strict=True)))
    assert got is not None and round(got, 1) == pytest.approx(open_ended[3], abs=1e-9)


def test_mash_vlm_row_explicitly() -> None:
    assert round((54.91 + 38.39 + 80.25) / 3, 2) == 57.85
    assert mean_of_categories(
        {"scene_only_action": 54.91, "unusual_action": 38.39, "unusual_scene": 80.25}
    ) == pytest.approx(57.85)
    assert (
        mean_of_categories({"scene_only_action": 54.91, "unusual_action": None, "unusual_scene": 1}) is None
    )


def _questions() -> list[Question]:
    anns = [parse_annotation(r) for r in ANNOTATIONS]
    return build_questions(anns, seed=0)


def _preds(mapping: dict[str, Any]) -> dict[str, Prediction]:
    out = {}
    for qid, value in mapping.items():
        if isinstance(value, Exception):
            out[qid] = Prediction(qid, None, f"{type(value).__name__}: {value}")
        else:
            out[qid] = Prediction(qid, value)
    return out


HAND_WORKED = {
    # scene-only / action: both pairs right -> 2/2 = 100 %
    "s1/action/ground_truth": "Yes.",
    "s1/action/hallucination": "No, the rink is empty.",
    "s2/action/ground_truth": "yes",
    "s2/action/hallucination": "**No**",
    # unusual / action: u1 right; u2 ground truth unparseable (and hallucination wrong); u3 failed -> 1/3
    "u1/action/ground_truth": "Yes, someone is kicking a ball.",
    "u1/action/hallucination": "No.",
    "u2/action/ground_truth": "Someone might be doing parkour.",
    "u2/action/hallucination": "Yes, a man washes hands.",
    "u3/action/ground_truth": ValueError("cannot decode"),
    "u3/action/hallucination": ValueError("cannot decode"),
    # unusual / scene: u1 right; u2 right; u3 failed -> 2/3
    "u1/scene/ground_truth": "Yes",
    "u1/scene/hallucination": "No",
    "u2/scene/ground_truth": "Answer: yes",
    "u2/scene/hallucination": "no",
    "u3/scene/ground_truth": ValueError("cannot decode"),
    "u3/scene/hallucination": ValueError("cannot decode"),
}


def test_dual_metric_hand_worked() -> None:
    questions = _questions()
    score = score_binary(questions, _preds(HAND_WORKED))
    assert score.pairs_per_category == {"scene_only_action": 2, "unusual_action": 3, "unusual_scene": 3}
    assert score.correct_per_category == {"scene_only_action": 2, "unusual_action": 1, "unusual_scene": 2}
    assert score.scores["scene_only_action"] == pytest.approx(100.0)
    assert score.scores["unusual_action"] == pytest.approx(100 / 3)
    assert score.scores["unusual_scene"] == pytest.approx(200 / 3)
    # the mean of the three categories (66.67), not the pooled pair accuracy (5/8 = 62.5)
    assert score.average == pytest.approx((100 + 100 / 3 + 200 / 3) / 3)
    assert score.average != pytest.approx(62.5)
    assert (score.unparseable, score.failed, score.missing) == (1, 4, 0)


def test_a_pair_needs_both_answers_right() -> None:
    questions = [q for q in _questions() if q.video_id == "u1" and q.category == "action"]
    for gt, hal, expected in [
        ("Yes", "No", 100.0),
        ("Yes", "Yes", 0.0),
        ("No", "No", 0.0),
        ("No", "Yes", 0.0),
    ]:
        preds = _preds({"u1/action/ground_truth": gt, "u1/action/hallucination": hal})
        assert score_binary(questions, preds).scores["unusual_action"] == expected


def test_missing_and_failed_predictions_stay_in_the_denominator() -> None:
    questions = _questions()
    preds = _preds({k: v for k, v in HAND_WORKED.items() if k != "s1/action/hallucination"})
    score = score_binary(questions, preds)
    assert score.pairs_per_category["scene_only_action"] == 2
    assert score.scores["scene_only_action"] == pytest.approx(50.0)
    assert score.missing == 1
    results = build_results(questions, preds, score, None, model_name="m")
    counts = results["counts"]
    assert counts["pairs_scored"] == 8
    assert counts["missing_predictions"] == 1
    assert counts["unparseable_answers"] == 1
    assert counts["failed_questions"] == 4
    assert counts["failed_videos"] == 1
    assert results["failed_video_ids"] == ["u3"]
    assert results["open_ended"]["average"] is None and results["judge"]["model"] is None
    assert results["binary"]["average"] == pytest.approx((50 + 100 / 3 + 200 / 3) / 3)


def test_table_and_per_video_output() -> None:
    questions = _questions()
    preds = _preds(HAND_WORKED)
    score = score_binary(questions, preds)
    results = build_results(questions, preds, score, None, model_name="MyModel")
    table = format_table(results)
    row = next(line for line in table.splitlines() if line.startswith("MyModel"))
    assert row.split()[1:5] == ["|", "100.00", "33.33", "66.67"]
    assert "66.67" in row.split()[5]
    assert "unparseable answers: 1" in table
    assert "failed questions: 4 on 1 video(s)" in table
    assert "open-ended: not judged" in table
    records = per_video_records(score, None, questions)
    by_id = {r["video_id"]: r for r in records}
    assert [r["video_id"] for r in records] == ["s1", "s2", "u1", "u2", "u3"]
    assert by_id["u3"]["failed"] and not by_id["u1"]["failed"]
    u2_action = next(p for p in by_id["u2"]["pairs"] if p["category"] == "unusual_action")
    assert u2_action["correct"] is False
    assert u2_action["ground_truth"]["status"] == "unparseable"
    assert u2_action["hallucination"]["parsed"] == "yes"


STYLES = [
    ("Yes.", "yes"),
    ("yes, indeed", "yes"),
    ("**Yes**", "yes"),
    ("No.", "no"),
    ("no, there is not", "no"),
    ("**No**", "no"),
    ("No one is there.", "no"),
    ("No people are there.", None),
    ("I am not sure.", None),
]


def test_matches_an_independent_computation_on_random_predictions() -> None:
    rng = random.Random(1234)
    anns = []
    for i in range(60):
        scene_only = rng.random() < 0.45
        anns.append(
            parse_annotation(
                {
                    "video_id": f"v{i:03d}",
                    "video": f"v{i:03d}.mp4",
                    "set": "scene_only" if scene_only else "unusual_context",
                    "action": None if scene_only else f"action {i}",
                    "scene": f"scene {i}",
                    "hallucinated_actions": [f"fake action {i}.{k}" for k in range(4)],
                    "hallucinated_scenes": None if scene_only else [f"fake scene {i}.{k}" for k in range(4)],
                }
            )
        )
    questions = build_questions(anns, seed=7)
    preds: dict[str, Prediction] = {}
    parsed: dict[str, str | None] = {}
    for q in questions:
        if not q.is_binary:
            continue
        roll = rng.random()
        if roll < 0.05:
            continue  # missing
        if roll < 0.10:
            preds[q.question_id] = Prediction(q.question_id, None, "VideoDecodeError: broken")
            parsed[q.question_id] = None
            continue
        text, value = rng.choice(STYLES)
        preds[q.question_id] = Prediction(q.question_id, text)
        parsed[q.question_id] = value
    # independent: group by (set, category, video), a pair is right iff both parse to the expected answer
    right: dict[str, list[int]] = {k: [] for k in CATEGORY_KEYS}
    for ann in anns:
        cats = ["action"] if ann.set == "scene_only" else ["action", "scene"]
        for cat in cats:
            key = {"scene_only": "scene_only_action"}.get(ann.set, f"unusual_{cat}")
            ok_gt = parsed.get(f"{ann.video_id}/{cat}/ground_truth") == "yes"
            ok_hal = parsed.get(f"{ann.video_id}/{cat}/hallucination") == "no"
            right[key].append(int(ok_gt and ok_hal))
    expected = {k: 100 * sum(v) / len(v) for k, v in right.items()}
    score = score_binary(questions, preds)
    for key in CATEGORY_KEYS:
        assert score.scores[key] == pytest.approx(expected[key])
        assert score.pairs_per_category[key] == len(right[key])
    assert score.average == pytest.approx(sum(expected.values()) / 3)
