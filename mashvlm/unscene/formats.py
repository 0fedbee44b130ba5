"""UNSCENE file formats: validation, dataclasses and JSONL input/output.

Four formats (documented in ``docs/unscene.md``):

* video annotations (JSONL, one video per line),
* questions (JSONL, built from the annotations by :mod:`mashvlm.unscene.builder`),
* predictions (JSONL, one model answer per question),
* results (JSON, written by :mod:`mashvlm.unscene.scoring`).

Every reading function validates as it goes and raises :class:`FormatError` naming the file, the line
and the field, so a user can fix a thousand-line file without guessing.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError
from ..files import JsonlLine, read_jsonl

# Values fixed by the benchmark (paper section 4, DESIGN section 7).
UNUSUAL = "unusual_context"
SCENE_ONLY = "scene_only"
SETS = (UNUSUAL, SCENE_ONLY)
ACTION = "action"
SCENE = "scene"
OPEN_ENDED = "open_ended"
CATEGORIES = (ACTION, SCENE, OPEN_ENDED)
GROUND_TRUTH = "ground_truth"
HALLUCINATION = "hallucination"
KINDS = (GROUND_TRUTH, HALLUCINATION)
# A ground-truth question is answered "yes", its hallucination twin "no".
EXPECTED_ANSWER = {GROUND_TRUTH: "yes", HALLUCINATION: "no"}
OPEN_ENDED_PROMPT = "Describe the video in detail."

ANNOTATION_FIELDS = (
    "video_id",
    "video",
    "set",
    "action",
    "scene",
    "hallucinated_actions",
    "hallucinated_scenes",
)
QUESTION_FIELDS = (
    "question_id",
    "video_id",
    "video",
    "set",
    "category",
    "pair_id",
    "kind",
    "question",
    "answer",
    "label",
    "action",
    "scene",
    "hallucinated_actions",
    "hallucinated_scenes",
)
PREDICTION_FIELDS = ("question_id", "prediction", "error")


# --------------------------------------------------------------------------------------------------
# Field checks


def normalize_label(label: str) -> str:
    """Comparison form of an action or scene label: lower case, single spaces, no edge punctuation."""
    text = label.replace("_", " ").lower()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .,;:!?\"'")


def check_video_path(value: str) -> str | None:
    """Why ``value`` is not a safe path relative to the video root, or None when it is.

    Paths must stay inside the root: no absolute paths, no drive letters, no ``..`` components. Both
    ``/`` and ``\\`` count as separators so a Windows-style escape is caught on POSIX too.
    """
    if not value.strip():
        return "must be a non-empty path relative to the video root"
    if "\x00" in value:
        return "contains a NUL character"
    parts = re.split(r"[\\/]", value)
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or value.startswith("~"):
        return f"must be relative to the video root, got absolute path {value!r}"
    if ".." in parts:
        return f"must stay inside the video root, '..' is not allowed: {value!r}"
    return None


def resolve_video_path(video_root: str | os.PathLike[str], relative: str) -> str:
    """Join a validated relative path to the root, refusing anything that lands outside it."""
    problem = check_video_path(relative)
    if problem:
        raise ValueError(f"video path {problem}")
    root = os.path.abspath(os.fspath(video_root))
    joined = os.path.normpath(os.path.join(root, *re.split(r"[\\/]", relative)))
    if os.path.commonpath([root, joined]) != root:  # belt and braces after the lexical check
        raise ValueError(f"video path {relative!r} escapes the video root {root}")
    return joined


class _Checker:
    """Field accessors for one line, raising FormatError with the file, line and field."""

    def __init__(self, path: str | os.PathLike[str], line: JsonlLine, known_fields: tuple[str, ...]):
        self.path = path
        self.lineno = line.lineno
        self.record = line.record
        for key in self.record:
            if key in known_fields:
                continue
            # Unknown fields are allowed (extra metadata), but a near-miss of a known one is a typo
            # that would otherwise silently drop data.
            close = difflib.get_close_matches(key, known_fields, n=1, cutoff=0.85)
            if close:
                self.fail(key, f"unknown field; did you mean '{close[0]}'?")

    def fail(self, field: str | None, message: str) -> None:
        raise FormatError(self.path, self.lineno, field, message)

    def string(self, field: str, *, required: bool = True, nullable: bool = False) -> str | None:
        if field not in self.record:
            if required:
                self.fail(field, "missing (required)")
            return None
        value = self.record[field]
        if value is None:
            if nullable:
                return None
            self.fail(field, "must be a non-empty string, got null")
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {type(value).__name__} {value!r}")
        if not value.strip():
            self.fail(field, "must not be empty")
        return value

    def choice(self, field: str, options: tuple[str, ...]) -> str:
        value = self.string(field)
        if value not in options:
            self.fail(field, f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
        return value  # type: ignore[return-value]

    def video(self, field: str = "video") -> str:
        value = self.string(field)
        assert value is not None
        problem = check_video_path(value)
        if problem:
            self.fail(field, problem)
        return value

    def label_list(self, field: str) -> tuple[str, ...] | None:
        value = self.record.get(field)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(field, f"must be a list of strings or null, got {type(value).__name__}")
        if not value:
            self.fail(field, "must not be an empty list (use null or leave it out)")
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(field, f"item {i} must be a non-empty string, got {item!r}")
            key = normalize_label(item)
            if key in seen:
                self.fail(field, f"item {i} {item!r} repeats item {seen[key]}")
            seen[key] = i
        return tuple(value)


# --------------------------------------------------------------------------------------------------
# Video annotations


@dataclass(frozen=True)
class VideoAnnotation:
    video_id: str
    video: str
    set: str
    action: str | None
    scene: str
    hallucinated_actions: tuple[str, ...] | None = None
    hallucinated_scenes: tuple[str, ...] | None = None
    lineno: int = 0

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "video_id": self.video_id,
            "video": self.video,
            "set": self.set,
            "action": self.action,
            "scene": self.scene,
        }
        if self.hallucinated_actions is not None:
            record["hallucinated_actions"] = list(self.hallucinated_actions)
        if self.hallucinated_scenes is not None:
            record["hallucinated_scenes"] = list(self.hallucinated_scenes)
        return record


def parse_annotation(path: str | os.PathLike[str], line: JsonlLine) -> VideoAnnotation:
    c = _Checker(path, line, ANNOTATION_FIELDS)
    video_id = c.string("video_id")
    video = c.video()
    vset = c.choice("set", SETS)
    if vset == UNUSUAL:
        action = c.string("action")
    else:
        if c.record.get("action") is not None:
            c.fail(
                "action",
                f"must be null for a scene_only video (it has no action), got {c.record['action']!r}",
            )
        action = None
    scene = c.string("scene")
    h_actions = c.label_list("hallucinated_actions")
    h_scenes = c.label_list("hallucinated_scenes")
    # A candidate equal to the truth would make a "no" question whose right answer is "yes".
    if h_actions and action and normalize_label(action) in {normalize_label(a) for a in h_actions}:
        c.fail("hallucinated_actions", f"contains the ground-truth action {action!r}")
    if h_scenes and scene and normalize_label(scene) in {normalize_label(s) for s in h_scenes}:
        c.fail("hallucinated_scenes", f"contains the ground-truth scene {scene!r}")
    return VideoAnnotation(
        video_id=video_id,
        video=video,
        set=vset,
        action=action,  # type: ignore[arg-type]
        scene=scene,
        hallucinated_actions=h_actions,  # type: ignore[arg-type]
        hallucinated_scenes=h_scenes,
        lineno=line.lineno,
    )


def _load_unique(path, parse, key: str, what: str) -> list[Any]:
    """Parse every line of a JSONL file; the ``key`` field must be unique and the file non-empty."""
    items: list[Any] = []
    first_line: dict[str, int] = {}
    for line in read_jsonl(path).lines:
        item = parse(path, line)
        value = getattr(item, key)
        if value in first_line:
            raise FormatError(
                path, line.lineno, key, f"duplicate {key} {value!r} (first on line {first_line[value]})"
            )
        first_line[value] = line.lineno
        items.append(item)
    if not items:
        raise FormatError(path, None, None, f"no {what} in the file")
    return items


def load_annotations(path: str | os.PathLike[str]) -> list[VideoAnnotation]:
    """Read and validate a video-annotation file; video ids must be unique."""
    return _load_unique(path, parse_annotation, "video_id", "videos")


# --------------------------------------------------------------------------------------------------
# Questions


@dataclass(frozen=True)
class Question:
    question_id: str
    video_id: str
    video: str
    set: str
    category: str
    question: str
    pair_id: str | None = None
    kind: str | None = None
    answer: str | None = None
    label: str | None = None  # the action/scene label the binary question asks about
    # Open-ended records carry the ground truth (action is None for scene-only videos) and the
    # hallucination candidates, which the offline judge uses.
    action: str | None = None
    scene: str | None = None
    hallucinated_actions: tuple[str, ...] | None = None
    hallucinated_scenes: tuple[str, ...] | None = None
    lineno: int = 0

    @property
    def is_binary(self) -> bool:
        return self.category != OPEN_ENDED

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "question_id": self.question_id,
            "video_id": self.video_id,
            "video": self.video,
            "set": self.set,
            "category": self.category,
        }
        if self.is_binary:
            record.update(pair_id=self.pair_id, kind=self.kind, question=self.question, answer=self.answer)
            if self.label is not None:
                record["label"] = self.label
        else:
            record.update(
                pair_id=None,
                kind=None,
                question=self.question,
                answer=None,
                action=self.action,
                scene=self.scene,
            )
            if self.hallucinated_actions is not None:
                record["hallucinated_actions"] = list(self.hallucinated_actions)
            if self.hallucinated_scenes is not None:
                record["hallucinated_scenes"] = list(self.hallucinated_scenes)
        return record


def parse_question(path: str | os.PathLike[str], line: JsonlLine) -> Question:
    c = _Checker(path, line, QUESTION_FIELDS)
    common = dict(
        question_id=c.string("question_id"),
        video_id=c.string("video_id"),
        video=c.video(),
        set=c.choice("set", SETS),
        category=c.choice("category", CATEGORIES),
        question=c.string("question"),
        lineno=line.lineno,
    )
    if common["category"] == OPEN_ENDED:
        for field in ("pair_id", "kind", "answer"):
            if c.record.get(field) is not None:
                c.fail(field, "must be null for an open_ended question")
        action = c.string("action", required=False, nullable=True)
        if common["set"] == UNUSUAL and action is None:
            c.fail("action", "the ground-truth action is required for an unusual_context video")
        if common["set"] == SCENE_ONLY and action is not None:
            c.fail("action", "must be null for a scene_only video")
        return Question(
            **common,
            action=action,
            scene=c.string("scene"),  # type: ignore[arg-type]
            hallucinated_actions=c.label_list("hallucinated_actions"),
            hallucinated_scenes=c.label_list("hallucinated_scenes"),
        )
    if common["set"] == SCENE_ONLY and common["category"] == SCENE:
        c.fail("category", "scene_only videos have action questions only (DESIGN section 7)")
    kind = c.choice("kind", KINDS)
    answer = c.choice("answer", ("yes", "no"))
    if answer != EXPECTED_ANSWER[kind]:
        c.fail("answer", f"a {kind} question must have answer {EXPECTED_ANSWER[kind]!r}, got {answer!r}")
    return Question(
        **common,
        pair_id=c.string("pair_id"),
        kind=kind,
        answer=answer,  # type: ignore[arg-type]
        label=c.string("label", required=False, nullable=True),
    )


def load_questions(path: str | os.PathLike[str]) -> list[Question]:
    """Read and validate a questions file, including the pair structure across lines."""
    questions = _load_unique(path, parse_question, "question_id", "questions")
    check_question_structure(path, questions)
    return questions


def check_question_structure(path: str | os.PathLike[str], questions: list[Question]) -> None:
    """Cross-line checks: consistent videos, exactly one ground-truth and one hallucination per pair."""
    videos: dict[str, Question] = {}
    open_ended: dict[str, Question] = {}
    pairs: dict[str, list[Question]] = {}
    for q in questions:
        first = videos.setdefault(q.video_id, q)
        for field in ("video", "set"):
            if getattr(q, field) != getattr(first, field):
                raise FormatError(
                    path,
                    q.lineno,
                    field,
                    f"{getattr(q, field)!r} differs from {getattr(first, field)!r} given for "
                    f"video {q.video_id!r} on line {first.lineno}",
                )
        if q.is_binary:
            pairs.setdefault(q.pair_id, []).append(q)  # type: ignore[arg-type]
        elif q.video_id in open_ended:
            raise FormatError(
                path,
                q.lineno,
                "category",
                f"second open_ended question for video {q.video_id!r} (first on line "
                f"{open_ended[q.video_id].lineno})",
            )
        else:
            open_ended[q.video_id] = q
    for pair_id, members in pairs.items():
        first = members[0]
        for q in members[1:]:
            for field in ("video_id", "category"):
                if getattr(q, field) != getattr(first, field):
                    raise FormatError(
                        path,
                        q.lineno,
                        field,
                        f"pair {pair_id!r} mixes {getattr(first, field)!r} (line {first.lineno}) "
                        f"and {getattr(q, field)!r}",
                    )
        kinds = sorted(q.kind for q in members)  # type: ignore[type-var]
        if kinds != sorted(KINDS):
            raise FormatError(
                path,
                members[-1].lineno,
                "pair_id",
                f"pair {pair_id!r} must have exactly one ground_truth and one hallucination "
                f"question, found {kinds}",
            )


# --------------------------------------------------------------------------------------------------
# Predictions


@dataclass(frozen=True)
class Prediction:
    question_id: str
    prediction: str | None
    error: str | None = None
    lineno: int = 0

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"question_id": self.question_id, "prediction": self.prediction}
        if self.error is not None:
            record["error"] = self.error
        return record


def parse_prediction(path: str | os.PathLike[str], line: JsonlLine) -> Prediction:
    c = _Checker(path, line, PREDICTION_FIELDS)
    qid = c.string("question_id")
    if "prediction" not in c.record:
        c.fail("prediction", "missing (required; null when the model failed, with 'error' set)")
    pred = c.record["prediction"]
    if pred is not None and not isinstance(pred, str):
        c.fail("prediction", f"must be a string (the raw model text) or null, got {type(pred).__name__}")
    error = c.string("error", required=False, nullable=True)
    if pred is None and error is None:
        c.fail("error", "a null prediction needs an 'error' saying why the model gave no answer")
    assert qid is not None
    return Prediction(question_id=qid, prediction=pred, error=error, lineno=line.lineno)


@dataclass
class PredictionFile:
    predictions: dict[str, Prediction]
    truncated_tail: bool = False


def load_predictions(
    path: str | os.PathLike[str],
    *,
    known_question_ids: Iterable[str] | None = None,
    allow_truncated_tail: bool = True,
) -> PredictionFile:
    """Read and validate predictions; ids must be unique and (if given) belong to the question set."""
    known = set(known_question_ids) if known_question_ids is not None else None
    read = read_jsonl(path, allow_truncated_tail=allow_truncated_tail)
    preds: dict[str, Prediction] = {}
    for line in read.lines:
        p = parse_prediction(path, line)
        if p.question_id in preds:
            raise FormatError(
                path,
                p.lineno,
                "question_id",
                f"duplicate prediction for {p.question_id!r} (first on line {preds[p.question_id].lineno})",
            )
        if known is not None and p.question_id not in known:
            raise FormatError(
                path,
                p.lineno,
                "question_id",
                f"{p.question_id!r} is not in the questions file (wrong questions file?)",
            )
        preds[p.question_id] = p
    return PredictionFile(predictions=preds, truncated_tail=read.truncated_tail)


def iter_pairs(questions: Iterable[Question]) -> Iterator[tuple[str, Question, Question]]:
    """(pair_id, ground-truth question, hallucination question) in file order of first appearance."""
    pairs: dict[str, dict[str, Question]] = {}
    for q in questions:
        if q.is_binary:
            pairs.setdefault(q.pair_id, {})[q.kind] = q  # type: ignore[index,arg-type]
    for pair_id, members in pairs.items():
        yield pair_id, members[GROUND_TRUTH], members[HALLUCINATION]
