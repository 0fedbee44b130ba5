"""``mashvlm data check``: counts per dataset, every annotation error, missing and undecodable videos,
exit 2 (one error line) where training would fail, 0 otherwise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # mini_mixture (importlib import mode)

from mini_mixture import add_broken_dataset, make_layout_datasets, record, write_annotations, write_mixture  # noqa: E402

from mashvlm.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    return root, make_layout_datasets(root, per_dataset=3)


def test_a_good_mixture_passes_and_is_counted(data, capsys):
    root, entries = data
    mixture = write_mixture(root, [dict(entries[0], samples=2), *entries[1:]], "good.json")
    report = root / "good_report.json"
    assert main(["data", "check", str(mixture), "--num-frames", "4", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("good.json: ok")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:7]}
    assert rows["mp4"] == ["3", "6", "2", "3", "3", "0", "0", "0"]  # records, QA, taken, videos, checked, ...
    assert set(rows) == {"mp4", "webm", "mkv", "avi", "gif", "frames"}
    saved = json.loads(report.read_text())
    assert saved["fatal"] == [] and saved["datasets"]["frames"]["videos_checked"] == 3


def test_a_broken_mixture_lists_every_problem_and_fails(data, capsys):
    root, entries = data
    bad_ann = write_annotations(root / "ann" / "bad.json", [
        record("clip0.mp4"),
        {"video": "clip1.mp4", "QA": [{"q": "Why?"}]},
        {"video": "clip2.mp4", "QA": "none"},
        record("gone.mp4"),
    ])
    bad = {"name": "bad", "annotations": ["ann/bad.json", "ann/absent.json"], "video_root": "videos/mp4"}
    mixture = write_mixture(root, [bad, add_broken_dataset(root), entries[4]], "broken.json")
    report = root / "broken_report.json"
    code = main(["data", "check", str(mixture), "--num-frames", "4", "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("error: ") and "broken.json would not train: bad: 3 annotation errors" in captured.err
    out = captured.out
    assert f"{bad_ann}:17: record 1: QA[0].a must be a non-empty string" in out  # file, line, record, field
    assert "record 2: field 'QA' must be a non-empty list" in out
    assert "absent.json: no such annotation file" in out
    assert "bad: missing video: " in out and "gone.mp4: no such file" in out
    assert "broken: undecodable video: " in out and "bad.mp4: cannot open" in out
    saved = json.loads(report.read_text())
    assert saved["datasets"]["bad"]["records"] == 2 and len(saved["datasets"]["bad"]["missing"]) == 1
    assert len(saved["datasets"]["broken"]["undecodable"]) == 1
    assert saved["datasets"]["gif"]["missing"] == saved["datasets"]["gif"]["undecodable"] == []


def test_broken_videos_alone_fail_only_when_strict_or_all_broken(data, capsys):
    root, entries = data
    mixture = write_mixture(root, [add_broken_dataset(root, "half")], "half.json")
    assert main(["data", "check", str(mixture), "--num-frames", "4"]) == 0  # training skips the one bad video
    assert main(["data", "check", str(mixture), "--num-frames", "4", "--strict"]) == 2
    capsys.readouterr()
    moved = write_mixture(root, [dict(entries[0], video_root="videos/webm")], "moved.json")
    assert main(["data", "check", str(moved), "--num-frames", "4"]) == 2
    assert "none of the 3 checked videos loads (wrong video_root?)" in capsys.readouterr().err


def test_sample_checks_a_random_subset_and_frames_as_in_training(data, capsys):
    root, entries = data
    mixture = write_mixture(root, entries[:2], "sample.json")
    report = root / "sample_report.json"
    assert main(["data", "check", str(mixture), "--sample", "2", "--num-frames", "4", "--report", str(report)]) == 0
    saved = json.loads(report.read_text())
    assert [saved["datasets"][n]["videos_checked"] for n in ("mp4", "webm")] == [2, 2]
    assert saved["datasets"]["mp4"]["videos"] == 3
    # The videos have 10 frames: asking for more than training could sample makes every one fail.
    assert main(["data", "check", str(mixture), "--num-frames", "16"]) == 2
    assert "fewer than the 16 requested" in capsys.readouterr().out


def test_a_malformed_mixture_file_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"datasets": [{"name": "a", "annotations": "a.json", "video_root": ".", "ratio": -1}]}))
    assert main(["data", "check", str(path)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {path}: field 'datasets[0].ratio': must be a number > 0, got -1"
