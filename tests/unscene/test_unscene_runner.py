"""The runner: failures recorded, resume after a kill, nothing asked twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from unscene_fake_models import BatchModel, CrashingModel, KilledAfter, OracleModel, VideoDecodeError
from unscene_helpers import ANNOTATIONS, read_jsonl

from mashvlm.cli import main as cli_main
from mashvlm.files import dumps_line
from mashvlm.files import read_jsonl as formats_read_jsonl
from mashvlm.unscene.builder import build_questions
from mashvlm.unscene.records import parse_annotation
from mashvlm.unscene.runner import (
    MashVlmVideoQA,
    MultiVideoQAModel,
    RunAborted,
    VideoQAModel,
    is_data_error,
    load_model_class,
    parse_model_args,
    run_model,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _questions():
    anns = [parse_annotation(r) for r in ANNOTATIONS]
    return build_questions(anns, seed=0)


def test_fake_models_satisfy_the_protocol() -> None:
    assert isinstance(OracleModel(), VideoQAModel)
    assert isinstance(BatchModel(), VideoQAModel)


def test_decode_failures_are_recorded_not_dropped(tmp_path: Path, video_root: Path) -> None:
    questions = _questions()
    out = tmp_path / "pred.jsonl"
    model = OracleModel(broken=["u2"])
    stats = run_model(model, questions, video_root, out, progress=False)
    records = read_jsonl(out)
    assert [r["question_id"] for r in records] == [q.question_id for q in questions]
    failed = [r for r in records if r.get("error")]
    assert {r["question_id"].split("/")[0] for r in failed} == {"u2"}
    assert len(failed) == 5  # 4 binary + 1 open-ended
    assert all(r["prediction"] is None for r in failed)
    assert failed[0]["error"].startswith("VideoDecodeError: cannot decode")
    assert stats.failed == 5 and stats.failed_videos == {"u2"} and stats.answered == len(questions) - 5
    # the model got absolute paths inside the video root
    assert all(os.path.isabs(p) and p.startswith(str(video_root)) for p, _ in model.calls)


def test_missing_video_file_is_a_recorded_failure(tmp_path: Path, video_root: Path) -> None:
    (video_root / "unusual" / "u1.mp4").unlink()
    model = OracleModel()
    run_model(model, _questions(), video_root, tmp_path / "p.jsonl", progress=False)
    errors = {r["question_id"]: r["error"] for r in read_jsonl(tmp_path / "p.jsonl") if r.get("error")}
    assert set(errors) == {
        "u1/action/ground_truth",
        "u1/action/hallucination",
        "u1/scene/ground_truth",
        "u1/scene/hallucination",
        "u1/open_ended",
    }
    assert all(e.startswith("FileNotFoundError: video not found") for e in errors.values())
    assert not any("u1.mp4" in p for p, _ in model.calls)  # the model was never asked about it


def test_resume_after_interrupt_never_asks_twice(tmp_path: Path, video_root: Path) -> None:
    questions = _questions()
    out = tmp_path / "pred.jsonl"
    first = KilledAfter(7)
    with pytest.raises(KeyboardInterrupt):
        run_model(first, questions, video_root, out, progress=False)
    done = [r["question_id"] for r in read_jsonl(out)]
    assert len(done) == 7
    second = OracleModel()
    stats = run_model(second, questions, video_root, out, progress=False)
    assert stats.already_answered == 7 and stats.asked == len(questions) - 7
    # nothing answered in the first run is asked again (compare by (video, question): several videos
    # share a question text)
    first_keys = {(Path(p).name, q) for p, q in first.calls}
    second_keys = {(Path(p).name, q) for p, q in second.calls}
    assert len(first_keys) == 7 and not first_keys & second_keys
    assert sorted(r["question_id"] for r in read_jsonl(out)) == sorted(q.question_id for q in questions)
    # a third run has nothing to do
    third = OracleModel()
    assert run_model(third, questions, video_root, out, progress=False).asked == 0 and not third.calls


def test_truncated_last_line_is_repaired_and_counted(tmp_path: Path, video_root: Path) -> None:
    questions = _questions()
    out = tmp_path / "pred.jsonl"
    good = "".join(dumps_line({"question_id": q.question_id, "prediction": "Yes."}) for q in questions[:3])
    out.write_text(good + '{"question_id": "' + questions[3].question_id + '", "predic', encoding="utf-8")
    model = OracleModel()
    stats = run_model(model, questions, video_root, out, progress=False)
    assert stats.repaired_truncated_lines == 1 and stats.already_answered == 3
    records = read_jsonl(out)  # every line is valid JSON again
    assert [r["question_id"] for r in records] == [q.question_id for q in questions]
    assert len(model.calls) == len(questions) - 3  # the torn answer was asked again, the others were not


def test_resume_refuses_a_foreign_predictions_file(tmp_path: Path, video_root: Path) -> None:
    out = tmp_path / "pred.jsonl"
    out.write_text(dumps_line({"question_id": "someone-else/q1", "prediction": "yes"}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"pred.jsonl:1: field 'question_id'.*not in the questions file"):
        run_model(OracleModel(), _questions(), video_root, out, progress=False)


def test_retry_errors(tmp_path: Path, video_root: Path) -> None:
    questions = _questions()
    out = tmp_path / "pred.jsonl"
    run_model(OracleModel(broken=["u3"]), questions, video_root, out, progress=False)
    fixed = OracleModel()
    stats = run_model(fixed, questions, video_root, out, progress=False)
    assert not fixed.calls  # without --retry-errors the recorded failures stand
    stats = run_model(fixed, questions, video_root, out, retry_errors=True, progress=False)
    assert stats.retried_errors == 5 and len(fixed.calls) == 5
    records = read_jsonl(out)
    assert len(records) == len(questions) and len({r["question_id"] for r in records}) == len(questions)
    assert not any(r.get("error") for r in records)


def test_broken_model_stops_the_run(tmp_path: Path, video_root: Path) -> None:
    model = CrashingModel()
    with pytest.raises(RunAborted, match="failed on 2 videos in a row.*CUDA error"):
        run_model(
            model, _questions(), video_root, tmp_path / "p.jsonl", max_consecutive_failures=2, progress=False
        )
    records = read_jsonl(tmp_path / "p.jsonl")
    assert len(records) == 6  # both scene-only videos, three questions each
    assert all(r["error"].startswith("RuntimeError: CUDA error") for r in records)
    # decode errors are data problems and never stop a run
    run_model(
        OracleModel(broken=["s", "u"]),
        _questions(),
        video_root,
        tmp_path / "q.jsonl",
        max_consecutive_failures=1,
        progress=False,
    )
    assert len(read_jsonl(tmp_path / "q.jsonl")) == len(_questions())


def test_batch_interface(tmp_path: Path, video_root: Path) -> None:
    questions = _questions()
    model = BatchModel(answers={"Is someone surfing in the video?": "No."})
    run_model(model, questions, video_root, tmp_path / "p.jsonl", progress=False)
    assert [Path(v).name for v, _ in model.batches] == ["s1.mp4", "s2.mp4", "u1.mp4", "u2.mp4", "u3.mp4"]
    assert len(model.batches[2][1]) == 5 and not model.calls
    preds = {r["question_id"]: r["prediction"] for r in read_jsonl(tmp_path / "p.jsonl")}
    assert preds["u3/action/ground_truth"] == "No."


class PackedModel(OracleModel):
    """Same answers through ``answer_videos``; a broken video fails its own questions only."""

    def __init__(self, crash: bool = False, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.crash = crash
        self.packed: list[list[tuple[str, list[str]]]] = []

    def answer_videos(self, requests):
        self.packed.append([(Path(v).stem, list(qs)) for v, qs in requests])
        if self.crash:
            raise RuntimeError("CUDA error: out of memory")
        return [
            VideoDecodeError(f"cannot decode {v}") if any(b in v for b in self.broken)
            else [self.answers.get(q, self.default) for q in qs]
            for v, qs in requests
        ]


def test_batch_size_packs_whole_videos(tmp_path: Path, video_root: Path) -> None:
    questions = _questions()  # s1, s2: 3 questions; u1, u2, u3: 5
    answers = {"Is someone surfing in the video?": "No."}
    model = PackedModel(answers=answers, broken=["u2"])
    assert isinstance(model, MultiVideoQAModel)
    run_model(model, questions, video_root, tmp_path / "p.jsonl", batch_size=8, progress=False)
    assert [[(v, len(qs)) for v, qs in call] for call in model.packed] == [
        [("s1", 3), ("s2", 3)], [("u1", 5)], [("u2", 5)], [("u3", 5)]
    ]
    records = read_jsonl(tmp_path / "p.jsonl")
    assert [r["question_id"] for r in records] == [q.question_id for q in questions]
    preds = {r["question_id"]: r for r in records}
    assert preds["u3/action/ground_truth"]["prediction"] == "No." and preds["u1/open_ended"]["prediction"] == "Yes."
    assert {qid.split("/")[0] for qid, r in preds.items() if r.get("error")} == {"u2"}
    # 4: a video with more questions is split, and nothing is sent past the cap
    small = PackedModel()
    run_model(small, questions, video_root, tmp_path / "q.jsonl", batch_size=4, progress=False)
    assert [[(v, len(qs)) for v, qs in call] for call in small.packed] == [
        [("s1", 3)], [("s2", 3)], [("u1", 4)], [("u1", 1)], [("u2", 4)], [("u2", 1)], [("u3", 4)], [("u3", 1)]
    ]
    # an answer_batch model gets one video per call, in pieces of at most batch_size
    batch = BatchModel()
    run_model(batch, questions, video_root, tmp_path / "r.jsonl", batch_size=4, progress=False)
    assert [(Path(v).stem, len(qs)) for v, qs in batch.batches] == [
        ("s1", 3), ("s2", 3), ("u1", 4), ("u2", 4), ("u3", 4)
    ]
    assert len(batch.calls) == 3  # the single leftover question of each unusual video
    with pytest.raises(ValueError, match="batch_size"):
        run_model(batch, questions, video_root, tmp_path / "s.jsonl", batch_size=0, progress=False)


def test_broken_packed_model_stops_the_run(tmp_path: Path, video_root: Path) -> None:
    model = PackedModel(crash=True)
    with pytest.raises(RunAborted, match="failed on 2 videos in a row.*out of memory"):
        run_model(model, _questions(), video_root, tmp_path / "p.jsonl", max_consecutive_failures=2, batch_size=8,
                  progress=False)
    assert len(read_jsonl(tmp_path / "p.jsonl")) == 6 and len(model.packed) == 1  # s1 + s2, one call


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

    texts = [q.question for q in _questions()] + ["Yes.", "No.", "The person is surfing in a pool."]
    processor, config = tiny_processor_and_config(texts)
    path = tmp_path_factory.mktemp("mash")
    tiny_model(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_mashvlm_batched_answers_equal_one_at_a_time(tmp_path: Path, video_root: Path, tiny_checkpoint) -> None:
    """The MASH-VLM adapter: each video decoded once, questions of several videos in one batch, and the
    answers those of asking each question alone."""
    import numpy as np

    from mashvlm.video import write_video

    rng = np.random.default_rng(0)
    for ann in ANNOTATIONS:  # real videos in place of the placeholders
        write_video(video_root / ann["video"], rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8), fps=8.0)
    (video_root / "unusual" / "u2.mp4").write_bytes(b"not a video")
    questions = _questions()
    model = MashVlmVideoQA(tiny_checkpoint, device="cpu", max_new_tokens=4)
    decoded: list[str] = []
    load_video = model.chat.processor.load_video
    model.chat.processor.load_video = lambda path, **kw: decoded.append(Path(path).stem) or load_video(path, **kw)
    run_model(model, questions, video_root, tmp_path / "batched.jsonl", batch_size=8, progress=False)
    assert decoded == ["s1", "s2", "u1", "u2", "u3"]  # once per video
    batched = {r["question_id"]: r for r in read_jsonl(tmp_path / "batched.jsonl")}
    assert batched["u2/open_ended"]["error"].startswith("CorruptVideoError")  # a VideoDecodeError
    for q in questions:
        if q.video_id != "u2":
            alone = model.chat.answer(str(video_root / q.video), q.question, max_new_tokens=4)
            assert batched[q.question_id]["prediction"] == alone, q.question_id
    assert len({r["prediction"] for r in batched.values()}) > 2
    # the command line, another batch size: the same answers
    questions_file = tmp_path / "questions.jsonl"
    questions_file.write_text("".join(dumps_line(q.to_record()) for q in questions), encoding="utf-8")
    run = ["unscene", "run", "--questions", str(questions_file), "--video-root", str(video_root), "--no-progress",
           "--model", str(tiny_checkpoint), "--device", "cpu", "--max-new-tokens", "4"]
    assert cli_main([*run, "-o", str(tmp_path / "cli.jsonl"), "--batch-size", "3"]) == 0
    assert {r["question_id"]: r for r in read_jsonl(tmp_path / "cli.jsonl")} == batched


def test_batch_size_option_is_checked(tmp_path: Path, annotations_file: Path, video_root: Path, capsys) -> None:
    questions = tmp_path / "q.jsonl"
    assert cli_main(["unscene", "build", "--annotations", str(annotations_file), "-o", str(questions)]) == 0
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage error
        cli_main(["unscene", "run", "--questions", str(questions), "--video-root", str(video_root),
                  "-o", str(tmp_path / "p.jsonl"), "--model-class", "unscene_fake_models:OracleModel",
                  "--batch-size", "0"])
    assert exit_info.value.code == 2 and "--batch-size: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists()


def test_is_data_error() -> None:
    class VideoDecodeError(ValueError):
        pass

    class CorruptVideo(VideoDecodeError):
        pass

    assert is_data_error(CorruptVideo("x")) and is_data_error(FileNotFoundError("x"))
    assert not is_data_error(RuntimeError("x")) and not is_data_error(ValueError("x"))


def test_load_model_class() -> None:
    model = load_model_class(
        "unscene_fake_models:OracleModel", parse_model_args(['default="No."', "delay=0"])
    )
    assert isinstance(model, OracleModel) and model.default == "No." and model.delay == 0
    assert parse_model_args(['broken=["a"]', "name=plain text"]) == {"broken": ["a"], "name": "plain text"}
    with pytest.raises(ValueError, match="package.module:ClassName"):
        load_model_class("unscene_fake_models.OracleModel")
    with pytest.raises(ValueError, match="no attribute"):
        load_model_class("unscene_fake_models:Nope")
    with pytest.raises(TypeError, match="does not implement answer"):
        load_model_class("pathlib:PurePath")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_model_args(["novalue"])


def test_importing_unscene_does_not_import_the_model_stack() -> None:
    code = (
        "import sys\n"
        "import mashvlm.unscene, mashvlm.unscene.cli, mashvlm.unscene.runner, mashvlm.unscene.scoring\n"
        "import mashvlm.unscene.judge, mashvlm.unscene.builder, mashvlm.unscene.candidates\n"
        "heavy = [m for m in ('torch', 'transformers', 'openai') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path: Path, annotations_file: Path, video_root: Path) -> None:
    """A real process killed with SIGKILL mid-run; the re-run loses and repeats nothing."""
    questions_file = tmp_path / "q.jsonl"
    out = tmp_path / "pred.jsonl"
    calls = tmp_path / "calls.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    base = [sys.executable, "-m", "mashvlm.unscene.cli"]
    subprocess.run(
        [*base, "build", "--annotations", str(annotations_file), "-o", str(questions_file)],
        check=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
    )
    run = [
        *base,
        "run",
        "--questions",
        str(questions_file),
        "--video-root",
        str(video_root),
        "-o",
        str(out),
        "--model-class",
        "unscene_fake_models:OracleModel",
        "--model-arg",
        f"calls_log={calls}",
        "--model-arg",
        "delay=0.05",
        "--no-progress",
    ]
    proc = subprocess.Popen(run, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if out.exists() and out.read_text(encoding="utf-8").count("\n") >= 6:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it was killed: {proc.stderr.read().decode()}")
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    # what the killed run had fully written (a torn last line is not an answer)
    answered_before = {
        line.record["question_id"] for line in formats_read_jsonl(out, allow_truncated_tail=True).lines
    }
    calls_before = calls.read_text(encoding="utf-8").splitlines()
    questions = {r["question_id"]: r for r in read_jsonl(questions_file)}
    assert 6 <= len(answered_before) <= len(calls_before) < len(questions)

    result = subprocess.run(run, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    ids = [r["question_id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == len(questions)  # every question exactly once, nothing lost
    calls_after = calls.read_text(encoding="utf-8").splitlines()[len(calls_before) :]
    asked_after = {tuple(line.split("\t")) for line in calls_after}
    for qid in answered_before:  # nothing answered before the kill was asked again
        q = questions[qid]
        assert (Path(q["video"]).name, q["question"]) not in asked_after, qid
    # in total, at most the one question in flight at the kill was asked twice
    assert len(calls_before) + len(calls_after) - len(questions) <= 1
