"""The three documented commands end to end, through ``mashvlm.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from unscene_helpers import read_jsonl, write_jsonl

from mashvlm.cli import main

# Right answers for every binary question of the fixture videos except u2's scene pair, whose
# hallucination question the model wrongly confirms; u3 fails to decode.
ORACLE_NO = "No, that is not in the video."


def _build(tmp_path: Path, annotations_file: Path) -> Path:
    questions = tmp_path / "questions.jsonl"
    assert main(["unscene", "build", "--annotations", str(annotations_file), "-o", str(questions)]) == 0
    return questions


def _answers(questions: Path) -> dict[str, str]:
    answers = {}
    for q in read_jsonl(questions):
        if q["category"] == "open_ended":
            continue
        right = "Yes." if q["answer"] == "yes" else ORACLE_NO
        if q["question_id"] == "u2/scene/hallucination":
            right = "Yes, it does."
        answers[q["question"]] = right
    return answers


def test_build_run_score(tmp_path: Path, annotations_file: Path, video_root: Path, capsys) -> None:
    questions = _build(tmp_path, annotations_file)
    preds = tmp_path / "preds.jsonl"
    # answers keyed by question text; u2's two scene questions differ, so u2 gets the wrong one only
    answers = json.dumps(_answers(questions))
    run = [
        "unscene",
        "run",
        "--questions",
        str(questions),
        "--video-root",
        str(video_root),
        "-o",
        str(preds),
        "--model-class",
        "unscene_fake_models:OracleModel",
        "--model-arg",
        f"answers={answers}",
        "--model-arg",
        'broken=["u3"]',
        "--model-arg",
        "default=An empty ice hockey rink.",
        "--no-progress",
    ]
    assert main(run) == 0
    assert len(read_jsonl(preds)) == 21
    assert main(run) == 0  # resume: nothing left to ask
    assert "0 answered" in capsys.readouterr().out

    out = tmp_path / "results"
    code = main(
        [
            "unscene",
            "score",
            "--questions",
            str(questions),
            "--predictions",
            str(preds),
            "--output-dir",
            str(out),
            "--per-video",
            "--model-name",
            "Oracle",
            "--judge",
            "offline-lexical",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    # scene-only 2/2; unusual action u1, u2 right, u3 failed: 2/3; unusual scene u1 right only: 1/3
    assert results["binary"]["scene_only_action"] == pytest.approx(100.0)
    assert results["binary"]["unusual_action"] == pytest.approx(200 / 3)
    assert results["binary"]["unusual_scene"] == pytest.approx(100 / 3)
    assert results["binary"]["average"] == pytest.approx((100 + 200 / 3 + 100 / 3) / 3)
    counts = results["counts"]
    assert counts["pairs_scored"] == 8 and counts["failed_videos"] == 1 and counts["unparseable_answers"] == 0
    assert counts["failed_questions"] == 5  # u3: four binary + open-ended
    assert results["judge"]["model"] == "offline-lexical (not comparable to GPT-judge scores)"
    assert set(results["open_ended"]) >= {"scene_only_action", "unusual_action", "unusual_scene", "average"}
    table = (out / "results.txt").read_text()
    assert "Oracle" in table and "100.00" in table and "NOT comparable" in table
    per_video = read_jsonl(out / "per_video.jsonl")
    assert [v["video_id"] for v in per_video] == ["s1", "s2", "u1", "u2", "u3"]
    assert per_video[4]["failed"] and per_video[4]["open_ended"]["status"] == "failed"


def test_score_predictions_made_elsewhere_with_a_gpt_judge(
    tmp_path: Path, annotations_file: Path, chat_server, monkeypatch, capsys
) -> None:
    questions = _build(tmp_path, annotations_file)
    preds = [
        {
            "question_id": q["question_id"],
            "prediction": "A man is surfing in a pool." if q["category"] == "open_ended" else "Yes",
        }
        for q in read_jsonl(questions)
    ]
    pred_path = write_jsonl(tmp_path / "other_model.jsonl", preds[:-1])  # the last one is missing
    chat_server.push(("status", 429))
    monkeypatch.setenv("UNSCENE_JUDGE_API_KEY", "from-env")
    monkeypatch.setenv("UNSCENE_JUDGE_BASE_URL", chat_server.url)
    cache = tmp_path / "judge-cache.jsonl"
    args = [
        "unscene",
        "score",
        "--questions",
        str(questions),
        "--predictions",
        str(pred_path),
        "--output-dir",
        str(tmp_path / "r"),
        "--judge",
        "openai",
        "--judge-model",
        "gpt-judge-test",
        "--judge-deadline",
        "10",
        "--judge-timeout",
        "2",
        "--judge-cache",
        str(cache),
    ]
    assert main(args) == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["binary"]["average"] == 0.0  # "Yes" to everything fails every dual pair
    assert results["model"] == "other_model"
    assert results["judge"] == {"model": "gpt-judge-test", "comparable_to_paper": True}
    assert results["counts"]["missing_predictions"] == 1
    assert results["counts"]["open_ended_model_failures"] == 1  # u3's description is missing: scored 0
    assert results["open_ended"]["scene_only_action"] == 4.0  # the fake judge always says 4
    assert chat_server.requests[-1]["auth"] == "Bearer from-env"
    assert "have no prediction" in capsys.readouterr().err
    n = len(chat_server.requests)
    assert main(args) == 0  # re-scoring costs nothing
    assert len(chat_server.requests) == n
    assert json.loads((tmp_path / "r" / "results.json").read_text())["counts"]["judgments_cached"] == 6


def test_bad_input_is_one_clear_line(tmp_path: Path, annotations_file: Path, capsys) -> None:
    questions = _build(tmp_path, annotations_file)
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"question_id": "s1/action/ground_truth", "prediction": "yes"}\n{"question_id": 3}\n')
    assert main(["unscene", "score", "--questions", str(questions), "--predictions", str(preds)]) == 2
    err = capsys.readouterr().err
    assert f"error: {preds}:2: field 'question_id': must be a string" in err
    assert "Traceback" not in err


def test_validate(tmp_path: Path, annotations_file: Path, video_root: Path, capsys) -> None:
    questions = _build(tmp_path, annotations_file)
    capsys.readouterr()
    assert (
        main(
            [
                "unscene",
                "validate",
                "--annotations",
                str(annotations_file),
                "--questions",
                str(questions),
                "--video-root",
                str(video_root),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "5 videos OK" in out and "21 questions OK" in out and "all 5 video files found" in out
    (video_root / "scene" / "s2.mp4").unlink()
    assert (
        main(["unscene", "validate", "--annotations", str(annotations_file), "--video-root", str(video_root)])
        == 2
    )
    assert f"{annotations_file}:2: scene/s2.mp4" in capsys.readouterr().err


def test_run_needs_a_model(tmp_path: Path, annotations_file: Path, video_root: Path) -> None:
    questions = _build(tmp_path, annotations_file)
    with pytest.raises(SystemExit):
        main(
            [
                "unscene",
                "run",
                "--questions",
                str(questions),
                "--video-root",
                str(video_root),
                "-o",
                "x.jsonl",
            ]
        )


def _run_args(questions: Path, video_root: Path, preds: Path, *extra: str) -> list[str]:
    return [
        "unscene",
        "run",
        "--questions",
        str(questions),
        "--video-root",
        str(video_root),
        "-o",
        str(preds),
        "--no-progress",
        *extra,
    ]


def test_tasks_open_ended_after_binary(
    tmp_path: Path, annotations_file: Path, video_root: Path, capsys
) -> None:
    questions = _build(tmp_path, annotations_file)
    preds = tmp_path / "preds.jsonl"
    calls = tmp_path / "calls.log"
    model = ["--model-class", "unscene_fake_models:OracleModel", "--model-arg", f"calls_log={calls}"]
    assert main(_run_args(questions, video_root, preds, "--tasks", "binary", *model)) == 0
    binary = [r["question_id"] for r in read_jsonl(preds)]
    assert len(binary) == 16 and not any(q.endswith("/open_ended") for q in binary)
    calls.unlink()
    capsys.readouterr()
    # the binary answers already in the file belong to the questions file: only the descriptions are asked
    assert main(_run_args(questions, video_root, preds, "--tasks", "open_ended", *model)) == 0
    assert "5 answered" in capsys.readouterr().out
    assert [line.split("\t")[1] for line in calls.read_text().splitlines()] == [
        "Describe the video in detail."
    ] * 5
    ids = [r["question_id"] for r in read_jsonl(preds)]
    assert ids[:16] == binary and len(ids) == len(set(ids)) == 21


def test_tasks_retry_errors_retries_only_the_selected_tasks(
    tmp_path: Path, annotations_file: Path, video_root: Path
) -> None:
    questions = _build(tmp_path, annotations_file)
    preds = tmp_path / "preds.jsonl"
    model = ["--model-class", "unscene_fake_models:OracleModel"]
    assert main(_run_args(questions, video_root, preds, *model, "--model-arg", 'broken=["u3"]')) == 0
    assert sum(bool(r.get("error")) for r in read_jsonl(preds)) == 5
    assert (
        main(_run_args(questions, video_root, preds, *model, "--tasks", "open_ended", "--retry-errors")) == 0
    )
    records = {r["question_id"]: r for r in read_jsonl(preds)}
    assert len(records) == 21 and not records["u3/open_ended"].get("error")
    # the binary failures were not asked, so they stay recorded (not silently dropped from the file)
    assert all(
        records[f"u3/{c}/{k}"]["error"]
        for c in ("action", "scene")
        for k in ("ground_truth", "hallucination")
    )


def test_foreign_predictions_refused_before_the_model_is_loaded(
    tmp_path: Path, annotations_file: Path, video_root: Path, capsys
) -> None:
    questions = _build(tmp_path, annotations_file)
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"question_id": "other/q1", "prediction": "yes"}])
    capsys.readouterr()
    # the model class does not exist: loading it would fail, but the predictions file is checked first
    args = _run_args(questions, video_root, preds, "--model-class", "no_such_module_xyz:Model")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"error: {preds}:1: field 'question_id': 'other/q1' is not in the questions file" in err
    assert "no_such_module_xyz" not in err


def test_locked_predictions_file_is_one_clear_line(
    tmp_path: Path, annotations_file: Path, video_root: Path, capsys
) -> None:
    fcntl = pytest.importorskip("fcntl")  # the lock is POSIX only
    questions = _build(tmp_path, annotations_file)
    preds = tmp_path / "preds.jsonl"
    capsys.readouterr()
    with open(tmp_path / "preds.jsonl.lock", "w") as held:  # another run holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(
            _run_args(questions, video_root, preds, "--model-class", "unscene_fake_models:OracleModel")
        )
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: another run is writing {preds} (lock {preds}.lock is held)"]
    assert not preds.exists() or not read_jsonl(preds)
