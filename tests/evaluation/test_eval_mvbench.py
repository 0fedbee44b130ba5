"""MVBench: the protocol's pure functions on hand-worked cases, and a mini benchmark end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import FakeModel, write_frame_folder, write_gif, write_json, write_mp4

from mashvlm.errors import FormatError
from mashvlm.evaluation import mvbench
from mashvlm.evaluation.common import load_frames
from mashvlm.evaluation.run import evaluate_mvbench
from mashvlm.files import read_jsonl


def test_qa_template_and_prompt_match_the_notebook():
    q, a = mvbench.qa_template("What happened after the person took the food?",
                               ["Ate the medicine.", "Tidied up the blanket.", "Took the box."], "Took the box.")
    assert q == ("Question: What happened after the person took the food?\nOptions:\n(A) Ate the medicine.\n"
                 "(B) Tidied up the blanket.\n(C) Took the box.")
    assert a == "(C) Took the box."
    p = mvbench.build_prompt(q)
    assert p.system == mvbench.SYSTEM_PROMPT and p.system.endswith("addresses the question.\n")
    assert p.user == mvbench.SYSTEM_PROMPT + q + "\nOnly give the best option."
    assert p.answer_prefix == "Best option:("


@pytest.mark.parametrize(
    ("pred", "gt", "ok"),
    [
        ("(C) Took the box.", "(C) Took the box.", True),
        ("(c)", "(C) Took the box.", True),
        ("(C. Took", "(C) Took the box.", False),  # "(c" in "(c)" after dropping '.': True? see below
        ("(B) Took the box.", "(C) Took the box.", False),
        ("(", "(C) Took the box.", True),  # the official rule's quirk: an empty answer matches
        ("(C)Took", "(C) x", False),  # first word "(c)took" is not in "(c)", "(c)" in "(c)took" -> True
    ],
)
def test_check_answer_hand_worked(pred, gt, ok):
    # Worked by hand from check_ans: a = pred.lower().split(' ')[0]; b = gt.lower().split(' ')[0];
    # a.replace('.', '') in b or b in a.
    expected = {"(C. Took": True, "(C)Took": True}.get(pred, ok)
    assert mvbench.check_answer(pred, gt) is expected


def test_postprocess_keeps_the_first_line():
    assert mvbench.postprocess(" B) The box.\nBecause ...") == "(B) The box."
    assert mvbench.postprocess("") == "("


def _mini_mvbench(root: Path) -> tuple[Path, Path]:
    json_dir, video_root = root / "json", root / "video"
    write_mp4(video_root / "star/Charades_v1_480/a.mp4", n=16, fps=4.0)  # 4 s
    write_mp4(video_root / "ssv2_video/b.mp4", n=8, seed=1)
    write_gif(video_root / "Moments_in_Time_Raw/videos/c.gif")
    write_frame_folder(video_root / "tvqa/frames_fps3_hq/d")
    write_json(json_dir / "action_sequence.json", [
        {"video": "a.mp4", "question": "q-as-0", "candidates": ["x", "y"], "answer": "x", "start": 1.0, "end": 3.0},
        {"video": "a.mp4", "question": "q-as-1", "candidates": ["x", "y", "z"], "answer": "z", "start": 0, "end": 4},
    ])
    write_json(json_dir / "action_antonym.json", [
        {"video": "b.mp4", "question": "q-aa-0", "candidates": ["p", "q", "r"], "answer": "q"},
        {"video": "missing.mp4", "question": "q-aa-1", "candidates": ["p", "q"], "answer": "p"},
    ])
    write_json(json_dir / "fine_grained_action.json", [
        {"video": "c.gif", "question": "q-fa-0", "candidates": ["m", "n"], "answer": "n"},
    ])
    write_json(json_dir / "episodic_reasoning.json", [
        {"video": "d", "question": "q-er-0", "candidates": ["s", "t"], "answer": "s", "start": 0.5, "end": 3.5},
    ])
    return json_dir, video_root


# The fake model's answers per question: right, wrong, right; the missing video is wrong.
ANSWERS = {"q-as-0": "A) x", "q-as-1": "B) y\nexplanation", "q-aa-0": "B) q", "q-aa-1": "A) p", "q-fa-0": "B) n", "q-er-0": "A) s"}


def _reply(prompt):
    return next(v for k, v in ANSWERS.items() if k in prompt.user)


def test_mini_mvbench_scores_match_hand_worked_values(tmp_path):
    json_dir, video_root = _mini_mvbench(tmp_path)
    model = FakeModel(_reply)
    out = tmp_path / "out"
    results = evaluate_mvbench(model, json_dir, video_root, out, tasks="AS,AA", progress=False)
    # AS: q-as-0 right, q-as-1 wrong (B vs C) -> 50 %; AA: right + missing video (wrong) -> 50 %.
    assert results["accuracy"] == {"AS": 50.0, "AA": 50.0}
    assert results["average"] == 50.0 and results["failed"] == 1
    # Both AS questions share a.mp4 but have different clips: two videos, one question each.
    assert len(model.calls) == 3
    table = (out / "mvbench_table.txt").read_text()
    assert table.splitlines() == ["Model\tAvg\tAS\tAA", "fake\t50.0\t50.0\t50.0"]
    saved = json.loads((out / "mvbench_results.json").read_text())
    assert saved["counts"]["AA"] == {"correct": 1, "total": 2}
    samples = [line.record for line in read_jsonl(out / "mvbench_samples.jsonl").lines]
    missing = next(s for s in samples if s["id"] == "AA/1")
    assert missing["prediction"] is None and "not found" in missing["error"] and missing["correct"] is False
    assert next(s for s in samples if s["id"] == "AS/1")["prediction"] == "(B) y"


def test_mvbench_resume_never_asks_twice_and_repairs_a_cut_tail(tmp_path):
    json_dir, video_root = _mini_mvbench(tmp_path)
    out = tmp_path / "out"
    evaluate_mvbench(FakeModel(_reply), json_dir, video_root, out, tasks="AS,AA", progress=False)
    preds = out / "mvbench_predictions.jsonl"
    lines = preds.read_text().splitlines(keepends=True)
    preds.write_text("".join(lines[:-1]) + lines[-1][:10])  # killed mid-write of the last answer
    again = FakeModel(_reply)
    results = evaluate_mvbench(again, json_dir, video_root, out, tasks="AS,AA", progress=False)
    gen = results["generation"]
    # Only the cut-off answer (the missing video's, recorded last) is asked again; no model call needed.
    assert (gen["already_answered"], gen["answered_now"], gen["failed_now"]) == (3, 0, 1)
    assert gen["repaired_truncated_lines"] == 1 and results["average"] == 50.0
    assert len(again.calls) == 0
    nothing = FakeModel(_reply)
    gen = evaluate_mvbench(nothing, json_dir, video_root, out, tasks="AS,AA", progress=False)["generation"]
    assert (gen["already_answered"], gen["answered_now"], gen["failed_now"], len(nothing.calls)) == (4, 0, 0, 0)
    write_mp4(video_root / "ssv2_video/missing.mp4", n=8)  # the user fixes the video, then retries errors
    third = FakeModel(_reply)
    results = evaluate_mvbench(third, json_dir, video_root, out, tasks="AS,AA", progress=False, retry_errors=True)
    assert len(third.calls) == 1 and results["failed"] == 0


def test_bounds_restrict_the_sampled_frames(tmp_path):
    json_dir, video_root = _mini_mvbench(tmp_path)
    samples = mvbench.load_task(json_dir, video_root, mvbench.TASK_BY_ABBREV["AS"])
    assert (samples[0].video.start, samples[0].video.end) == (1.0, 3.0)
    full = load_frames(samples[1].video, 4)
    clip = load_frames(samples[0].video, 4)
    assert full.shape == clip.shape == (4, 16, 16, 3)
    assert not (full == clip).all()


def test_gif_and_frame_folder_tasks(tmp_path):
    json_dir, video_root = _mini_mvbench(tmp_path)
    results = evaluate_mvbench(FakeModel(_reply), json_dir, video_root, tmp_path / "out", tasks="FA,ER",
                               progress=False)
    assert results["failed"] == 0
    assert results["accuracy"] == {"FA": 100.0, "ER": 100.0}


def test_bad_annotation_is_a_format_error(tmp_path):
    json_dir, video_root = _mini_mvbench(tmp_path)
    write_json(json_dir / "action_antonym.json", [{"video": "b.mp4", "question": "q", "candidates": ["p"],
                                                   "answer": "zzz"}])
    with pytest.raises(FormatError, match="not one of the candidates"):
        evaluate_mvbench(FakeModel(_reply), json_dir, video_root, tmp_path / "out", tasks="AA", progress=False)


def test_tiny_model_runs_the_protocol(tmp_path, monkeypatch):
    monkeypatch.setattr(mvbench, "MAX_NEW_TOKENS", 4)  # a random tiny model never stops by itself
    from mashvlm.evaluation.model import MashVlmEvalModel, mashvlm_prompt_text
    from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

    processor, config = tiny_processor_and_config(["Question: Options: Best option:( (A) (B)"])
    model = MashVlmEvalModel(tiny_model(config), processor, name="tiny")
    text = mashvlm_prompt_text(processor, mvbench.build_prompt("Question: q\nOptions:\n(A) x"))
    assert text.startswith(mvbench.SYSTEM_PROMPT + " USER: <video>\n" + mvbench.SYSTEM_PROMPT)
    assert text.endswith("Only give the best option. ASSISTANT: Best option:(")
    json_dir, video_root = _mini_mvbench(tmp_path)
    results = evaluate_mvbench(model, json_dir, video_root, tmp_path / "out", tasks="AS", progress=False)
    assert results["total"] == 2 and results["failed"] == 0
    preds = [line.record["prediction"] for line in read_jsonl(tmp_path / "out/mvbench_predictions.jsonl").lines]
    assert all(p.startswith("(") and "\n" not in p for p in preds)
