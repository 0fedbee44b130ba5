"""mashvlm.predictions: the resumable-predictions mechanism shared by UNSCENE and the evaluations."""

from __future__ import annotations

from pathlib import Path

import pytest

from mashvlm.errors import FormatError
from mashvlm.files import dumps_line, read_jsonl
from mashvlm.predictions import PredictionsFileLocked, PredictionsRun, RunAborted, RunStats, load_for_resume


def _read(path: Path):
    read = read_jsonl(path, allow_truncated_tail=True)
    out = {}
    for line in read.lines:
        if "key" not in line.record:
            raise FormatError(path, line.lineno, "key", "missing")
        out[line.record["key"]] = line.record
    return out, read


def _load(path: Path, stats: RunStats, **kw):
    return load_for_resume(
        path, _read, failed=lambda r: r["out"] is None, to_record=lambda r: r, stats=stats, **kw
    )


def test_retry_removes_only_the_selected_failures_and_rewrites_the_rest_byte_for_byte(tmp_path):
    path = tmp_path / "p.jsonl"
    records = [{"key": "a", "out": None}, {"key": "b", "out": "x"}, {"key": "c", "out": None}]
    path.write_text("".join(dumps_line(r) for r in records) + '{"key": "d"', encoding="utf-8")
    stats = RunStats()
    kept = _load(path, stats, retry_errors=True, retry_ids={"a", "b"})
    assert list(kept) == ["b", "c"] and stats.retried_errors == 1 and stats.repaired_truncated_lines == 1
    assert path.read_text(encoding="utf-8") == dumps_line(records[1]) + dumps_line(records[2])


def test_no_file_is_no_predictions_and_a_bad_line_leaves_the_file_alone(tmp_path):
    assert _load(tmp_path / "none.jsonl", RunStats(), retry_errors=True) == {}
    path = tmp_path / "p.jsonl"
    path.write_text('{"other": 1}\n{"key": "d"', encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(FormatError, match="key"):
        _load(path, RunStats(), retry_errors=True)
    assert path.read_bytes() == before


def test_a_run_counts_appends_and_stops_after_whole_broken_videos(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "sub" / "p.jsonl"
    stats = RunStats(total_questions=7)
    broken = RuntimeError("model down")
    added = []
    aborted = pytest.raises(RunAborted, match="failed on 2 videos in a row .*RuntimeError: model down")
    with aborted, PredictionsRun(path, stats) as run:
        run.start({"v1": 2, "v2": 1, "v3": 1, "v4": 2, "v5": 1}, max_consecutive_failures=2, progress=False)

        def add(key, err, video, **kw):
            run.add({"key": key}, err, video=video, **kw)
            added.append(key)

        add("1a", broken, "v1")
        add("1b", broken, "v1")  # v1 broken: streak 1
        add("2a", FileNotFoundError("gone"), "v2")  # a data error: not the model's, streak 0
        add("3a", broken, "v3", video_name="three.mp4")  # streak 1
        run.check()
        add("4a", broken, "v4")
        run.check()  # v4 is half done: still 1
        add("4b", broken, "v4")  # streak 2
        run.check()
        add("5a", None, "v5")  # never reached
    assert added == ["1a", "1b", "2a", "3a", "4a", "4b"]
    assert stats.asked == 6 and stats.answered == 0 and stats.failed == 6 and stats.elapsed_s > 0
    assert stats.failed_videos == {"v1", "v2", "three.mp4", "v4"}
    assert [line.record["key"] for line in read_jsonl(path).lines] == added  # every one written
    with open(path.with_name("p.jsonl.lock"), "w") as fh:  # released on the way out
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(PredictionsFileLocked), PredictionsRun(path, RunStats()):
            pass


def test_an_answer_resets_the_streak_and_zero_never_stops(tmp_path):
    for limit, pending in ((1, {"v1": 2}), (0, {"v1": 1, "v2": 1})):
        with PredictionsRun(tmp_path / f"p{limit}.jsonl", RunStats()) as run:
            run.start(pending, max_consecutive_failures=limit, progress=False)
            run.add({"key": "a"}, RuntimeError("x"), video="v1")
            run.add({"key": "b"}, None if limit else RuntimeError("x"), video="v2" if not limit else "v1")
            run.check()  # limit 1: v1 has an answer, not broken; limit 0: never stops
