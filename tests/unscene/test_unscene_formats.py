"""Validation of every input file: errors name the file, the line and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from unscene_helpers import ANNOTATIONS, write_jsonl

from mashvlm.errors import FormatError
from mashvlm.files import JsonlLine, read_jsonl
from mashvlm.unscene.builder import build_questions
from mashvlm.unscene.formats import (
    check_video_path,
    load_annotations,
    load_predictions,
    load_questions,
    parse_annotation,
    resolve_video_path,
)


def _annotation_error(tmp_path: Path, line2: dict[str, Any] | str) -> FormatError:
    path = tmp_path / "ann.jsonl"
    second = line2 if isinstance(line2, str) else json.dumps(line2)
    path.write_text(json.dumps(ANNOTATIONS[0]) + "\n" + second + "\n", encoding="utf-8")
    with pytest.raises(FormatError) as info:
        load_annotations(path)
    err = info.value
    assert err.path == str(path)
    assert str(path) in str(err)
    return err


def _with(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(ANNOTATIONS[2])  # an unusual-context video
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [
        (_with(video_id=...), "video_id", "missing"),
        (_with(video_id=17), "video_id", "must be a string"),
        (_with(set="unusual"), "set", "must be one of"),
        (_with(action=None), "action", "non-empty string"),
        (_with(set="scene_only"), "action", "must be null for a scene_only video"),
        (_with(scene=""), "scene", "must not be empty"),
        (_with(video="/data/videos/u1.mp4"), "video", "absolute"),
        (_with(video="../other/u1.mp4"), "video", "'..'"),
        (_with(video="clips/../../u1.mp4"), "video", "'..'"),
        (_with(video="..\\secret\\u1.mp4"), "video", "'..'"),
        (_with(video="C:\\videos\\u1.mp4"), "video", "absolute"),
        (_with(video="~/u1.mp4"), "video", "absolute"),
        (_with(hallucinated_actions="dunking"), "hallucinated_actions", "must be a list"),
        (_with(hallucinated_actions=[]), "hallucinated_actions", "empty list"),
        (_with(hallucinated_actions=["dunking", 3]), "hallucinated_actions", "item 1"),
        (_with(hallucinated_actions=["dunking", "Dunking"]), "hallucinated_actions", "repeats item 0"),
        (
            _with(hallucinated_actions=["dunking", "Kicking a ball"]),
            "hallucinated_actions",
            "ground-truth action",
        ),
        (_with(hallucinated_scenes=["Basketball court."]), "hallucinated_scenes", "ground-truth scene"),
        (
            dict(_with(), hallucinated_action=["x"]),
            "hallucinated_action",
            "did you mean 'hallucinated_actions'",
        ),
    ],
)
def test_annotation_errors_name_line_and_field(
    tmp_path: Path, record: dict[str, Any], field: str, fragment: str
) -> None:
    err = _annotation_error(tmp_path, record)
    assert err.line == 2
    assert err.field == field
    assert fragment in str(err)
    assert f":2: field '{field}':" in str(err)


def test_annotation_json_errors(tmp_path: Path) -> None:
    err = _annotation_error(tmp_path, '{"video_id": "x", ')
    assert err.line == 2 and "not valid JSON" in str(err)
    err = _annotation_error(tmp_path, '["not", "an", "object"]')
    assert err.line == 2 and "JSON object" in str(err)


def test_duplicate_video_id(tmp_path: Path) -> None:
    err = _annotation_error(tmp_path, _with(video_id=ANNOTATIONS[0]["video_id"]))
    assert err.field == "video_id" and "first on line 1" in str(err)


def test_valid_annotations_and_extra_fields(tmp_path: Path) -> None:
    records = [dict(r, source_url="https://example.com/v") for r in ANNOTATIONS]
    anns = load_annotations(write_jsonl(tmp_path / "a.jsonl", records))
    assert [a.video_id for a in anns] == ["s1", "s2", "u1", "u2", "u3"]
    assert anns[0].action is None and anns[2].action == "kicking a ball"
    assert anns[2].hallucinated_scenes == (
        "soccer field",
        "indoor soccer arena",
        "soccer stadium",
        "grass field",
    )
    # scene-only videos may leave 'action' out entirely
    records = [{k: v for k, v in ANNOTATIONS[0].items() if k != "action"}]
    assert load_annotations(write_jsonl(tmp_path / "b.jsonl", records))[0].action is None


def test_blank_lines_and_bom_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(ANNOTATIONS[0]).encode()
        + b"\n\n  \n"
        + json.dumps(ANNOTATIONS[1]).encode()
        + b"\n"
    )
    assert [a.video_id for a in load_annotations(path)] == ["s1", "s2"]


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="nope.jsonl: file not found"):
        load_annotations(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../x.mp4", "a/../../x.mp4", "a\\..\\..\\x.mp4", "D:/x.mp4", ""]
)
def test_video_path_escapes_are_refused(tmp_path: Path, bad: str) -> None:
    assert check_video_path(bad) is not None
    with pytest.raises(ValueError):
        resolve_video_path(tmp_path, bad)


def test_video_path_inside_root(tmp_path: Path) -> None:
    assert check_video_path("a/b/../c.mp4") is not None  # '..' refused even when it stays inside
    assert resolve_video_path(tmp_path, "a/b/c.mp4") == str(tmp_path / "a" / "b" / "c.mp4")
    assert resolve_video_path(tmp_path, "./a/c..mp4") == str(tmp_path / "a" / "c..mp4")


# --------------------------------------------------------------------------------------------------
# questions and predictions


def _questions(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    anns = [parse_annotation("x", JsonlLine(i, r)) for i, r in enumerate(ANNOTATIONS, 1)]
    records = [q.to_record() for q in build_questions(anns, seed=0)]
    return write_jsonl(tmp_path / "q.jsonl", records), records


def test_questions_roundtrip(tmp_path: Path) -> None:
    path, records = _questions(tmp_path)
    questions = load_questions(path)
    assert [q.to_record() for q in questions] == records


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda rs: rs[1].update(answer="yes"), "answer", "must have answer 'no'"),
        (lambda rs: rs[0].update(kind="hallucination", answer="no"), "pair_id", "exactly one ground_truth"),
        (lambda rs: rs[1].update(pair_id="s1/other"), "pair_id", "exactly one ground_truth"),
        (lambda rs: rs[1].update(question_id=rs[0]["question_id"]), "question_id", "duplicate"),
        (lambda rs: rs[1].update(video="scene/other.mp4"), "video", "differs"),
        (
            lambda rs: rs[0].update(category="scene"),
            "category",
            "scene_only videos have action questions only",
        ),
        (lambda rs: rs[2].update(answer="yes"), "answer", "must be null for an open_ended"),
        (lambda rs: rs[2].update(action="skiing"), "action", "must be null for a scene_only"),
        (lambda rs: rs[0].update(video="../x.mp4"), "video", "'..'"),
    ],
)
def test_question_errors(tmp_path: Path, mutate: Any, field: str, fragment: str) -> None:
    _, records = _questions(tmp_path)
    mutate(records)
    path = write_jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(FormatError) as info:
        load_questions(path)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert info.value.line is not None and f"bad.jsonl:{info.value.line}:" in str(info.value)


def test_prediction_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    cases = [
        (
            [{"question_id": "a", "prediction": "yes"}, {"question_id": "a", "prediction": "no"}],
            2,
            "question_id",
            "duplicate prediction",
        ),
        ([{"question_id": "a", "prediction": None}], 1, "error", "needs an 'error'"),
        ([{"question_id": "a", "prediction": 1}], 1, "prediction", "must be a string"),
        ([{"question_id": "a"}], 1, "prediction", "missing"),
        ([{"question_id": "zzz", "prediction": "yes"}], 1, "question_id", "not in the questions file"),
    ]
    for records, line, field, fragment in cases:
        write_jsonl(path, records)
        with pytest.raises(FormatError) as info:
            load_predictions(path, known_question_ids=["a", "b"])
        assert (info.value.line, info.value.field) == (line, field)
        assert fragment in str(info.value)


def test_truncated_tail_is_tolerated_only_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"question_id": "a", "prediction": "yes"}\n{"question_id": "b", "predi', encoding="utf-8"
    )
    pf = load_predictions(path)
    assert list(pf.predictions) == ["a"] and pf.truncated_tail
    read = read_jsonl(path, allow_truncated_tail=True)
    assert read.valid_bytes == len('{"question_id": "a", "prediction": "yes"}\n')
    # the same damage in the middle of the file is an error, not a silent skip
    path.write_text(
        '{"question_id": "b", "predi\n{"question_id": "a", "prediction": "yes"}\n', encoding="utf-8"
    )
    with pytest.raises(FormatError, match=r"p.jsonl:1: not valid JSON"):
        load_predictions(path)
