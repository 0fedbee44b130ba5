"""UNSCENE records: the annotation, question and prediction types and their parsers.

Each parser takes one plain record (a dict, as read from a JSONL line or built in memory) and an
optional :class:`~mashvlm.unscene.schema.Source` (file and line) for error messages, validates it
and returns a frozen dataclass; :meth:`to_record` goes back. Reading whole files, and the checks
across records, are in :mod:`mashvlm.unscene.formats`. The formats are documented in
``docs/unscene.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mashvlm.unscene.paths import check_video_path
from mashvlm.unscene.schema import RecordChecker, Source

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


def normalize_label(label: str) -> str:
    """Comparison form of an action or scene label: lower case, single spaces, no edge punctuation."""
    text = label.replace("_", " ").lower()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .,;:!?\"'")


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


def parse_annotation(record: Mapping[str, Any], source: Source | None = None) -> VideoAnnotation:
    """Validate one video-annotation record; errors name ``source`` (file, line) and the field."""
    c = RecordChecker(record, ANNOTATION_FIELDS, source=source, what="annotation record")
    video_id = c.required_string("video_id")
    video = c.checked_string("video", check_video_path)
    vset = c.choice("set", SETS)
    if vset == UNUSUAL:
        action = c.required_string("action")
    else:
        if record.get("action") is not None:
            c.fail(
                "action", f"must be null for a scene_only video (it has no action), got {record['action']!r}"
            )
        action = None
    scene = c.required_string("scene")
    h_actions = c.string_list("hallucinated_actions", key=normalize_label)
    h_scenes = c.string_list("hallucinated_scenes", key=normalize_label)
    # A candidate equal to the truth would make a "no" question whose right answer is "yes".
    if h_actions and action and normalize_label(action) in {normalize_label(a) for a in h_actions}:
        c.fail("hallucinated_actions", f"contains the ground-truth action {action!r}")
    if h_scenes and normalize_label(scene) in {normalize_label(s) for s in h_scenes}:
        c.fail("hallucinated_scenes", f"contains the ground-truth scene {scene!r}")
    return VideoAnnotation(
        video_id=video_id,
        video=video,
        set=vset,
        action=action,
        scene=scene,
        hallucinated_actions=h_actions,
        hallucinated_scenes=h_scenes,
        lineno=c.lineno,
    )


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


def parse_question(record: Mapping[str, Any], source: Source | None = None) -> Question:
    """Validate one question record (the pair structure across records is checked by
    :func:`mashvlm.unscene.formats.check_question_structure`)."""
    c = RecordChecker(record, QUESTION_FIELDS, source=source, what="question record")
    question_id = c.required_string("question_id")
    video_id = c.required_string("video_id")
    video = c.checked_string("video", check_video_path)
    vset = c.choice("set", SETS)
    category = c.choice("category", CATEGORIES)
    question = c.required_string("question")
    common = dict(
        question_id=question_id,
        video_id=video_id,
        video=video,
        set=vset,
        category=category,
        question=question,
        lineno=c.lineno,
    )
    if category == OPEN_ENDED:
        for field in ("pair_id", "kind", "answer"):
            if record.get(field) is not None:
                c.fail(field, "must be null for an open_ended question")
        action = c.string("action", required=False, nullable=True)
        if vset == UNUSUAL and action is None:
            c.fail("action", "the ground-truth action is required for an unusual_context video")
        if vset == SCENE_ONLY and action is not None:
            c.fail("action", "must be null for a scene_only video")
        return Question(
            **common,
            action=action,
            scene=c.required_string("scene"),
            hallucinated_actions=c.string_list("hallucinated_actions", key=normalize_label),
            hallucinated_scenes=c.string_list("hallucinated_scenes", key=normalize_label),
        )
    if vset == SCENE_ONLY and category == SCENE:
        c.fail("category", "scene_only videos have action questions only (DESIGN section 7)")
    kind = c.choice("kind", KINDS)
    answer = c.choice("answer", ("yes", "no"))
    if answer != EXPECTED_ANSWER[kind]:
        c.fail("answer", f"a {kind} question must have answer {EXPECTED_ANSWER[kind]!r}, got {answer!r}")
    return Question(
        **common,
        pair_id=c.required_string("pair_id"),
        kind=kind,
        answer=answer,
        label=c.string("label", required=False, nullable=True),
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


def parse_prediction(record: Mapping[str, Any], source: Source | None = None) -> Prediction:
    """Validate one prediction record: the model's raw text, or null with the ``error`` that says why."""
    c = RecordChecker(record, PREDICTION_FIELDS, source=source, what="prediction record")
    qid = c.required_string("question_id")
    if "prediction" not in record:
        c.fail("prediction", "missing (required; null when the model failed, with 'error' set)")
    pred = record["prediction"]
    if pred is not None and not isinstance(pred, str):
        c.fail("prediction", f"must be a string (the raw model text) or null, got {type(pred).__name__}")
    error = c.string("error", required=False, nullable=True)
    if pred is None and error is None:
        c.fail("error", "a null prediction needs an 'error' saying why the model gave no answer")
    return Prediction(question_id=qid, prediction=pred, error=error, lineno=c.lineno)


def iter_pairs(questions: Iterable[Question]) -> Iterator[tuple[str, Question, Question]]:
    """(pair_id, ground-truth question, hallucination question) in file order of first appearance."""
    pairs: dict[str, dict[str, Question]] = {}
    for q in questions:
        if q.is_binary:
            pairs.setdefault(q.pair_id, {})[q.kind] = q  # type: ignore[index,arg-type]
    for pair_id, members in pairs.items():
        yield pair_id, members[GROUND_TRUTH], members[HALLUCINATION]
