"""UNSCENE files: loading annotation, question and prediction files, and the checks across records.

Four formats (documented in ``docs/unscene.md``):

* video annotations (JSONL, one video per line),
* questions (JSONL, built from the annotations by :mod:`mashvlm.unscene.builder`),
* predictions (JSONL, one model answer per question),
* results (JSON, written by :mod:`mashvlm.unscene.scoring`).

Each record is validated by its parser in :mod:`mashvlm.unscene.records`; this module adds what
needs the whole file (unique ids, the pair structure, predictions that belong to the questions).
Every error is a :class:`FormatError` naming the file, the line and the field, so a user can fix a
thousand-line file without guessing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mashvlm.errors import FormatError
from mashvlm.files import JsonlReadResult, read_jsonl
from mashvlm.unscene.records import (
    KINDS,
    Prediction,
    Question,
    VideoAnnotation,
    parse_annotation,
    parse_prediction,
    parse_question,
)
from mashvlm.unscene.schema import Source

__all__ = [
    "PredictionFile",
    "check_question_structure",
    "check_unique",
    "load_annotations",
    "load_predictions",
    "load_questions",
]

T = TypeVar("T")


def check_unique(path: str | os.PathLike[str], items: Sequence[Any], key: str, what: str) -> None:
    """The ``key`` field of ``items`` (records carrying their ``lineno``) must be unique, and there
    must be at least one item (``what`` names them in the message)."""
    first_line: dict[Any, int] = {}
    for item in items:
        value = getattr(item, key)
        if value in first_line:
            raise FormatError(
                path, item.lineno, key, f"duplicate {key} {value!r} (first on line {first_line[value]})"
            )
        first_line[value] = item.lineno
    if not items:
        raise FormatError(path, None, None, f"no {what} in the file")


def _parse_file(path: str | os.PathLike[str], parse: Callable[[Any, Source], T]) -> list[T]:
    return [parse(line.record, Source(path, line.lineno)) for line in read_jsonl(path).lines]


def load_annotations(path: str | os.PathLike[str]) -> list[VideoAnnotation]:
    """Read and validate a video-annotation file; video ids must be unique."""
    annotations = _parse_file(path, parse_annotation)
    check_unique(path, annotations, "video_id", "videos")
    return annotations


def load_questions(path: str | os.PathLike[str]) -> list[Question]:
    """Read and validate a questions file, including the pair structure across lines."""
    questions = _parse_file(path, parse_question)
    check_unique(path, questions, "question_id", "questions")
    check_question_structure(path, questions)
    return questions


def check_question_structure(path: str | os.PathLike[str], questions: Sequence[Question]) -> None:
    """Checks across questions: consistent videos, one open-ended question per video, exactly one
    ground-truth and one hallucination question per pair. ``path`` names the source in errors."""
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


@dataclass
class PredictionFile:
    predictions: dict[str, Prediction]
    # How the file was read: with a cut-off last line to repair (repair_truncated_tail) or not.
    read: JsonlReadResult

    @property
    def truncated_tail(self) -> bool:
        return self.read.truncated_tail


def load_predictions(
    path: str | os.PathLike[str],
    *,
    known_question_ids: Iterable[str] | None = None,
    allow_truncated_tail: bool = True,
) -> PredictionFile:
    """Read and validate predictions; ids must be unique and (if given) belong to the question set.

    An empty file is a valid file with no predictions. With ``allow_truncated_tail`` a cut-off last
    line (a run killed mid-write, see :func:`mashvlm.files.read_jsonl`) is reported, not raised;
    since every whole line was validated as a prediction, the file may then be repaired with
    :func:`mashvlm.files.repair_truncated_tail` and ``result.read``.
    """
    known = set(known_question_ids) if known_question_ids is not None else None
    read = read_jsonl(path, allow_truncated_tail=allow_truncated_tail)
    preds: dict[str, Prediction] = {}
    for line in read.lines:
        try:
            p = parse_prediction(line.record, Source(path, line.lineno))
        except FormatError as err:
            if preds or {"question_id", "prediction"} <= line.record.keys():
                raise
            raise FormatError(
                err.path, err.line, err.field, f"{err.reason} (not a predictions file?)"
            ) from None
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
    return PredictionFile(predictions=preds, read=read)
