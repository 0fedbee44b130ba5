"""Validation of every input file: errors name the file, the line and the field."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest
from unscene_helpers import ANNOTATIONS, write_jsonl

from mashvlm.errors import FormatError
from mashvlm.files import read_jsonl, repair_truncated_tail
from mashvlm.unscene.builder import build_questions
from mashvlm.unscene.formats import check_unique, load_annotations, load_predictions, load_questions
from mashvlm.unscene.paths import check_video_path, resolve_video_path
from mashvlm.unscene.records import UNUSUAL, parse_annotation, parse_prediction
from mashvlm.unscene.schema import Source


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
    anns = [parse_annotation(r) for r in ANNOTATIONS]
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
    assert pf.read.valid_bytes == len('{"question_id": "a", "prediction": "yes"}\n')
    # the same damage in the middle of the file is an error, not a silent skip
    path.write_text(
        '{"question_id": "b", "predi\n{"question_id": "a", "prediction": "yes"}\n', encoding="utf-8"
    )
    with pytest.raises(FormatError, match=r"p.jsonl:1: not valid JSON"):
        load_predictions(path)


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (random.Random(0).randbytes(4096), 1, "not valid UTF-8"),  # random bytes
        (bytes(range(256)) * 4, 1, "not valid JSON"),  # every byte value, newlines included
        (b"\x00" * 64, 1, "not the start of a JSON object"),  # an empty-but-binary file
        (b'[{"question_id": "a", "prediction": "yes"}]', 1, "expected a JSON object, got an array"),
        (b'[{"question_id": "a", "prediction": "ye', 1, "not the start of a JSON object"),
        (b"just some notes\nmore notes", 1, "not valid JSON"),
        (b"some notes, no newline", 1, "not the start of a JSON object"),
        (b'{"question_id": "a", "prediction": "yes"}\nnot json', 2, "not the start of a JSON object"),
        (
            b'{"video_id": "s1", "video": "s/1.mp4"}\n{"question_id": "a", "pre',
            1,
            "missing (required) (not a predictions file?)",
        ),
        (b'{"question_id": "a", "prediction": "yes"}\n{oops\n{"question_id": "b", "pr', 2, "not valid JSON"),
    ],
)
def test_only_a_cut_off_prediction_is_a_truncated_tail(
    tmp_path: Path, content: bytes, line: int, fragment: str
) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        load_predictions(path)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == content


def test_empty_predictions_file_is_valid(tmp_path: Path) -> None:
    for content in (b"", b"\n\n", b"\xef\xbb\xbf"):
        path = tmp_path / "p.jsonl"
        path.write_bytes(content)
        pf = load_predictions(path, known_question_ids=["a"])
        assert pf.predictions == {} and not pf.truncated_tail


def test_cut_off_first_record_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes('{"question_id": "a", "prediction": "caf\u00e9'.encode()[:-1])  # cut inside 'é'
    pf = load_predictions(path)
    assert pf.predictions == {} and pf.truncated_tail
    repair_truncated_tail(path, pf.read)
    assert path.read_bytes() == b""


# --------------------------------------------------------------------------------------------------
# records built in memory


def test_records_parse_without_a_file() -> None:
    ann = parse_annotation(ANNOTATIONS[2])
    assert ann.video_id == "u1" and ann.lineno == 0 and ann.to_record()["set"] == UNUSUAL
    with pytest.raises(FormatError) as info:
        parse_annotation(dict(ANNOTATIONS[2], set="unusual"))
    assert str(info.value).startswith("annotation record: field 'set': must be one of")
    with pytest.raises(FormatError) as info:
        parse_prediction({"question_id": "a", "prediction": None}, Source("p.jsonl", 7))
    assert str(info.value).startswith("p.jsonl:7: field 'error':")
    with pytest.raises(FormatError, match="expected a JSON object, got list"):
        parse_annotation([1, 2])  # type: ignore[arg-type]


def test_relabelled_records_keep_their_lines(tmp_path: Path) -> None:
    # what the study does with usual-context videos: ask them the unusual-context layout
    path = write_jsonl(tmp_path / "usual.jsonl", [dict(ANNOTATIONS[2], set="usual_context")] * 2)
    usual = [
        parse_annotation({**line.record, "set": UNUSUAL}, Source(path, line.lineno))
        for line in read_jsonl(path).lines
    ]
    assert [a.set for a in usual] == [UNUSUAL, UNUSUAL]
    with pytest.raises(FormatError, match=r"usual.jsonl:2: field 'video_id': duplicate video_id 'u1'"):
        check_unique(path, usual, "video_id", "videos")


# --------------------------------------------------------------------------------------------------
# a file that is not a predictions file is refused, never "repaired"

NOT_PREDICTIONS = {
    "random": random.Random(1).randbytes(2048),
    "nul": b"\x00" * 100,
    "array": b'[{"question_id": "s1/action/ground_truth", "prediction": "yes"}]',
    "text": b"notes about the run, no newline",
    "annotations": "".join(json.dumps(r) + "\n" for r in ANNOTATIONS).encode()[:-40],
    "bad middle": b'{"question_id": "s1/action/ground_truth", "prediction": "yes"}\n{x\n{"question_id": "s1',
}


def _questions_file(tmp_path: Path) -> Path:
    anns = [parse_annotation(r) for r in ANNOTATIONS]
    return write_jsonl(tmp_path / "questions.jsonl", [q.to_record() for q in build_questions(anns, seed=0)])


@pytest.mark.parametrize("name", sorted(NOT_PREDICTIONS))
def test_run_refuses_a_non_predictions_output(tmp_path: Path, video_root: Path, name: str, capsys) -> None:
    from mashvlm.cli import main

    questions = _questions_file(tmp_path)
    out = tmp_path / "out.jsonl"
    out.write_bytes(NOT_PREDICTIONS[name])
    args = ["unscene", "run", "--questions", str(questions), "--video-root", str(video_root), "-o", str(out)]
    capsys.readouterr()
    assert main([*args, "--model-class", "unscene_fake_models:OracleModel", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}:") and "cannot resume" in err[0]
    assert out.read_bytes() == NOT_PREDICTIONS[name]


@pytest.mark.parametrize("name", sorted(NOT_PREDICTIONS))
def test_run_model_leaves_a_non_predictions_output_untouched(
    tmp_path: Path, video_root: Path, name: str
) -> None:
    from unscene_fake_models import OracleModel

    from mashvlm.unscene.runner import run_model

    questions = load_questions(_questions_file(tmp_path))
    out = tmp_path / "out.jsonl"
    out.write_bytes(NOT_PREDICTIONS[name])
    model = OracleModel()
    with pytest.raises(FormatError) as info:  # without the CLI's early check too
        run_model(model, questions, video_root, out, progress=False)
    assert info.value.path == str(out) and "\n" not in str(info.value)
    assert out.read_bytes() == NOT_PREDICTIONS[name] and not model.calls


@pytest.mark.parametrize("name", sorted(NOT_PREDICTIONS))
def test_score_refuses_a_non_predictions_file(tmp_path: Path, name: str, capsys) -> None:
    from mashvlm.cli import main

    questions = _questions_file(tmp_path)
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(NOT_PREDICTIONS[name])
    capsys.readouterr()
    assert main(["unscene", "score", "--questions", str(questions), "--predictions", str(preds)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {preds}:") and not captured.out
    assert preds.read_bytes() == NOT_PREDICTIONS[name]


def test_score_and_run_accept_an_empty_predictions_file(tmp_path: Path, video_root: Path, capsys) -> None:
    from mashvlm.cli import main

    questions = _questions_file(tmp_path)
    preds = tmp_path / "preds.jsonl"
    preds.write_bytes(b"")
    assert main(["unscene", "score", "--questions", str(questions), "--predictions", str(preds)]) == 0
    assert "no prediction" in capsys.readouterr().err  # every question counts as missing
    args = [
        "unscene",
        "run",
        "--questions",
        str(questions),
        "--video-root",
        str(video_root),
        "-o",
        str(preds),
    ]
    assert main([*args, "--model-class", "unscene_fake_models:OracleModel", "--no-progress"]) == 0
    assert len(load_predictions(preds).predictions) == len(load_questions(questions))
