"""The evaluations' predictions file: the shared mechanism of mashvlm.predictions, seen through run_generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from eval_helpers import FakeModel

import mashvlm.evaluation.common as common
from mashvlm.errors import FormatError
from mashvlm.evaluation.common import EvalItem, GenerationStats, VideoRef, run_generation
from mashvlm.evaluation.model import ChatPrompt
from mashvlm.files import dumps_line, read_jsonl
from mashvlm.predictions import PredictionsFileLocked, RunAborted, RunStats


@pytest.fixture
def no_decoding(monkeypatch):
    """Frames without decoding: the videos only have to exist."""
    monkeypatch.setattr(common, "load_frames", lambda video, n: np.zeros((n, 4, 4, 3), np.uint8))


def _items(tmp_path: Path, n_videos: int, per_video: int = 2, missing: tuple[int, ...] = ()) -> list[EvalItem]:
    items = []
    for v in range(n_videos):
        path = tmp_path / "videos" / f"v{v}.mp4"
        if v not in missing:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        items += [EvalItem(f"v{v}/q{i}", VideoRef(str(path)), ChatPrompt(f"question {i}")) for i in range(per_video)]
    return items


class BrokenModel(FakeModel):
    """Raises a model (not video) error on every call."""

    def generate(self, frames, prompts, *, max_new_tokens):
        self.calls.append((tuple(frames.shape), list(prompts)))
        raise RuntimeError("CUDA error: device-side assert")


def test_generation_stats_is_the_shared_record():
    assert GenerationStats is RunStats
    stats = GenerationStats(total_questions=3)
    assert stats.total == 3
    assert stats.summary().startswith("0 answered, 0 failed (0 video(s)), 0 already in the file")


def test_a_file_locked_by_another_run_is_refused_and_left_alone(tmp_path, no_decoding):
    fcntl = pytest.importorskip("fcntl")  # the lock is POSIX only
    out = tmp_path / "out" / "mvbench_predictions.jsonl"
    out.parent.mkdir()
    out.write_bytes(b'{"id": "v0/q0", "prediction": "A", "raw": "A", "error": null}\n{"id": "v0')  # cut-off tail
    before = out.read_bytes()
    model = FakeModel(lambda p: "B")
    with open(out.with_name(out.name + ".lock"), "w") as held:  # another run holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(PredictionsFileLocked, match=r"another run is writing .*mvbench_predictions.jsonl \(lock "):
            run_generation(model, _items(tmp_path, 2), out, max_new_tokens=4, progress=False)
    assert out.read_bytes() == before and not model.calls  # neither repaired nor appended to
    records, stats = run_generation(model, _items(tmp_path, 2), out, max_new_tokens=4, progress=False)
    assert stats.repaired_truncated_lines == 1 and stats.already_answered == 1 and stats.answered == 3
    assert [r["prediction"] for r in records.values()] == ["A", "B", "B", "B"]


def test_model_failures_in_a_row_stop_the_run_after_recording_them(tmp_path, no_decoding):
    out = tmp_path / "preds.jsonl"
    model = BrokenModel(lambda p: "never")
    with pytest.raises(RunAborted, match="failed on 2 videos in a row .*CUDA error.*--retry-errors"):
        run_generation(model, _items(tmp_path, 4), out, max_new_tokens=4, progress=False,
                       max_consecutive_failures=2)
    lines = [line.record for line in read_jsonl(out).lines]
    assert [r["id"] for r in lines] == ["v0/q0", "v0/q1", "v1/q0", "v1/q1"]  # written before stopping
    assert all(r["prediction"] is None and r["error"].startswith("RuntimeError: CUDA error") for r in lines)
    # The lock was released: a fixed model asks the failures again with retry_errors.
    records, stats = run_generation(FakeModel(lambda p: "ok"), _items(tmp_path, 4), out, max_new_tokens=4,
                                    progress=False, retry_errors=True)
    assert stats.retried_errors == 4 and stats.answered == 8 and stats.failed == 0
    assert all(r["prediction"] == "ok" for r in records.values())
    assert len(read_jsonl(out).lines) == 8


def test_missing_videos_are_counted_never_abort(tmp_path, no_decoding):
    out = tmp_path / "preds.jsonl"
    items = _items(tmp_path, 4, missing=(0, 1, 2))
    records, stats = run_generation(FakeModel(lambda p: "yes"), items, out, max_new_tokens=4, progress=False,
                                    max_consecutive_failures=2)
    assert stats.failed == 6 and len(stats.failed_videos) == 3 and stats.answered == 2 and stats.asked == 8
    assert records["v3/q0"]["prediction"] == "yes"
    assert records["v0/q0"]["error"].startswith("FileNotFoundError: video not found")


def test_a_good_video_resets_the_streak(tmp_path, no_decoding):
    calls = iter([RuntimeError("boom"), None, RuntimeError("boom"), None])

    class Flaky(FakeModel):
        def generate(self, frames, prompts, *, max_new_tokens):
            err = next(calls)
            if err is not None:
                raise err
            return ["fine"] * len(prompts)

    records, stats = run_generation(Flaky(lambda p: ""), _items(tmp_path, 4), tmp_path / "p.jsonl",
                                    max_new_tokens=4, progress=False, max_consecutive_failures=2)
    assert stats.failed == 4 and stats.answered == 4 and len(records) == 8


def test_another_benchmarks_file_is_refused_untouched(tmp_path, no_decoding):
    out = tmp_path / "preds.jsonl"
    out.write_text(dumps_line({"question_id": "x", "prediction": "y"}) + '{"id": "v0', encoding="utf-8")
    before = out.read_bytes()
    with pytest.raises(FormatError, match="not a prediction line"):
        run_generation(FakeModel(lambda p: ""), _items(tmp_path, 1), out, max_new_tokens=4, progress=False)
    assert out.read_bytes() == before  # the cut-off tail is repaired only after every line validated
