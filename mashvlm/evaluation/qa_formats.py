"""Converters from the original zero-shot QA releases to the ``test_q.json`` / ``test_a.json`` layout
that ``mashvlm eval qa`` reads (docs/evaluation.md, "Zero-shot QA").

Formats, as read in the public sources named here (no guessing; see the docs for what is inferred):

- **MSRVTT-QA / MSVD-QA** (Xu et al. 2017): ``{train,val,test}_qa.json``, a JSON list of records with
  ``id`` (the question id), ``question``, ``answer`` and ``video_id`` (an integer; MSRVTT-QA records also
  carry ``category_id``). Fields as read by xudejing/video-question-answering ``util/dataset.py`` and
  yukw777/video-vlm-eval ``video_vlm_eval/dataset/{msrvtt_qa,msvd_qa}.py``.
  MSRVTT-QA videos are ``video{video_id}.mp4``. MSVD-QA ``video_id`` N is the clip ``vidN``
  (xudejing's ``preprocess_msvdqa.py`` reads ``vid{1..1970}.avi``); MSVD's own files are named by the
  YouTube clip, and ``youtube_mapping.txt`` (one ``<youtube clip> vidN`` pair a line) maps one to the other.
- **TGIF-QA FrameQA** (Jang et al. 2017): ``Test_frameqa_question.csv``, tab-separated with a header
  ``gif_name question answer type vid_id key description`` (YunseokJANG/tgif-qa ``dataset/``); ``type``
  0/1/2/3 is Object/Number/Color/Location. ``vid_id`` (``FRAMEQA<n>``) identifies the question.

Parsing is pure (text in, :class:`QaPair` list out) and refuses malformed input with a
:class:`FormatError` naming the file, the record or line, and the field; duplicate question ids are refused.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mashvlm.errors import FormatError

FORMATS = ("msrvtt-qa", "msvd-qa", "tgif-frameqa")
DATASET_OF = {"msrvtt-qa": "msrvtt", "msvd-qa": "msvd", "tgif-frameqa": "tgif"}  # for ``eval qa --dataset``
FRAMEQA_TYPES = {0: "object", 1: "number", 2: "color", 3: "location"}  # tgif-qa dataset/README.md
FRAMEQA_REQUIRED = ("gif_name", "question", "answer", "type", "vid_id")
_MSVD_VID = re.compile(r"vid([0-9]+)")


@dataclass(frozen=True)
class QaPair:
    """One question in the ``test_q`` / ``test_a`` layout."""

    question_id: str | int
    video_name: str
    question: str
    answer: str
    type: int | None

    def question_record(self) -> dict[str, Any]:
        return {"video_name": self.video_name, "question": self.question, "question_id": self.question_id}

    def answer_record(self) -> dict[str, Any]:
        return {"answer": self.answer, "type": self.type, "question_id": self.question_id}


# --- MSRVTT-QA / MSVD-QA -------------------------------------------------------------------------------
def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_field(path: str, i: int, record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if _is_int(value):  # an answer like 2 written as a number: the same answer
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise FormatError(path, None, f"[{i}].{key}", f"needs a non-empty string, got {value!r}")
    return value


def parse_xu_records(text: str, path: str) -> list[tuple[int | str, str, str, int]]:
    """The records of an MSRVTT-QA / MSVD-QA ``*_qa.json``: ``(id, question, answer, video_id)`` each."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise FormatError(path, err.lineno, None, f"not JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise FormatError(path, None, None, "expected a JSON list of {id, question, answer, video_id} records")
    if not data:
        raise FormatError(path, None, None, "no questions in the file")
    out = []
    for i, record in enumerate(data):
        if not isinstance(record, Mapping):
            raise FormatError(path, None, f"[{i}]", "each record must be an object")
        qid, video_id = record.get("id"), record.get("video_id")
        if not (_is_int(qid) or (isinstance(qid, str) and qid.strip())):
            raise FormatError(path, None, f"[{i}].id", f"needs the question id (an integer), got {qid!r}")
        if not _is_int(video_id) or video_id < 0:
            raise FormatError(path, None, f"[{i}].video_id", f"needs a video number >= 0, got {video_id!r}")
        out.append((qid, _text_field(path, i, record, "question"), _text_field(path, i, record, "answer"), video_id))
    return out


def parse_youtube_mapping(text: str, path: str) -> dict[int, str]:
    """``youtube_mapping.txt``: ``{N: youtube clip name}`` from lines ``<clip> vidN``."""
    mapping: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        match = _MSVD_VID.fullmatch(parts[1]) if len(parts) == 2 else None
        if match is None:
            raise FormatError(path, lineno, None, f"expected '<youtube clip> vidN', got {line.strip()!r}")
        number = int(match.group(1))
        if number in mapping:
            raise FormatError(path, lineno, None, f"vid{number} is mapped twice")
        mapping[number] = parts[0]
    if not mapping:
        raise FormatError(path, None, None, "no '<youtube clip> vidN' lines")
    return mapping


def _refuse_duplicate(seen: dict[str, str], qid: object, where: str, path: str, field: str,
                      line: int | None = None) -> None:
    key = str(qid)
    if key in seen:
        raise FormatError(path, line, field, f"question id {qid!r} occurs twice ({seen[key]} and {where})")
    seen[key] = where


def convert_msrvtt(text: str, path: str) -> list[QaPair]:
    """MSRVTT-QA records -> pairs; the video of ``video_id`` N is ``videoN``."""
    pairs, seen = [], {}
    for i, (qid, question, answer, video_id) in enumerate(parse_xu_records(text, path)):
        _refuse_duplicate(seen, qid, f"record [{i}]", path, f"[{i}].id")
        pairs.append(QaPair(qid, f"video{video_id}", question, answer, None))
    return pairs


def convert_msvd(text: str, path: str, mapping: Mapping[int, str] | None = None,
                 mapping_path: str | None = None) -> list[QaPair]:
    """MSVD-QA records -> pairs. ``video_id`` N names the clip ``vidN``, or, given ``youtube_mapping.txt``,
    the YouTube clip name MSVD's own files carry."""
    pairs, seen = [], {}
    for i, (qid, question, answer, video_id) in enumerate(parse_xu_records(text, path)):
        _refuse_duplicate(seen, qid, f"record [{i}]", path, f"[{i}].id")
        if mapping is None:
            name = f"vid{video_id}"
        elif video_id in mapping:
            name = mapping[video_id]
        else:
            raise FormatError(path, None, f"[{i}].video_id",
                              f"vid{video_id} is not in the mapping {mapping_path or ''} (another mapping file?)")
        pairs.append(QaPair(qid, name, question, answer, None))
    return pairs


# --- TGIF-QA FrameQA --------------------------------------------------------------------------------------
def convert_tgif_frameqa(text: str, path: str) -> list[QaPair]:
    """``Test_frameqa_question.csv`` (tab-separated, header line) -> pairs; the video is ``{gif_name}.gif``.
    Read without quote handling (a ``"`` is text): a row must have exactly the header's number of fields."""
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or not any(c.strip() for c in rows[0]):
        raise FormatError(path, 1, None, "empty file; expected a tab-separated header line")
    header = [c.strip() for c in rows[0]]
    if "a1" in header:
        raise FormatError(path, 1, None, "a multiple-choice TGIF-QA file (action/transition); zero-shot QA "
                          "uses FrameQA only (Test_frameqa_question.csv)")
    absent = [c for c in FRAMEQA_REQUIRED if c not in header]
    if absent:
        raise FormatError(path, 1, None, f"header lacks {', '.join(absent)}: not a FrameQA file "
                          f"(expected columns {' '.join(FRAMEQA_REQUIRED)} ..., tab-separated)")
    col = {name: header.index(name) for name in FRAMEQA_REQUIRED}
    pairs, seen = [], {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise FormatError(path, lineno, None, f"{len(row)} tab-separated fields, the header has {len(header)}")
        values = {name: row[i].strip() for name, i in col.items()}
        for name in ("gif_name", "question", "answer", "vid_id"):
            if not values[name]:
                raise FormatError(path, lineno, name, "is empty")
        try:
            qtype = int(values["type"])
        except ValueError:
            qtype = -1
        if qtype not in FRAMEQA_TYPES:
            raise FormatError(path, lineno, "type", f"{values['type']!r} is not a FrameQA type 0-3")
        _refuse_duplicate(seen, values["vid_id"], f"line {lineno}", path, "vid_id", lineno)
        pairs.append(QaPair(values["vid_id"], values["gif_name"], values["question"], values["answer"], qtype))
    if not pairs:
        raise FormatError(path, None, None, "no questions after the header")
    return pairs


def convert(fmt: str, text: str, path: str, mapping_text: str | None = None,
            mapping_path: str | None = None) -> list[QaPair]:
    """Convert the text of an original annotation file of format ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "msrvtt-qa":
        return convert_msrvtt(text, path)
    if fmt == "msvd-qa":
        mapping = None if mapping_text is None else parse_youtube_mapping(mapping_text, mapping_path or "mapping")
        return convert_msvd(text, path, mapping, mapping_path)
    if fmt == "tgif-frameqa":
        return convert_tgif_frameqa(text, path)
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")


def split_records(pairs: Sequence[QaPair]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(test_q records, test_a records)`` in the input's order."""
    return [p.question_record() for p in pairs], [p.answer_record() for p in pairs]


def read_text(path: str | os.PathLike[str], what: str) -> str:
    """The text of an input file; :class:`~mashvlm.errors.UsageError` when there is none."""
    from mashvlm.errors import UsageError

    try:
        with open(path, encoding="utf-8-sig") as fh:  # a BOM would hide the first column name
            return fh.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such {what} file") from None
    except UnicodeDecodeError as err:
        raise FormatError(path, None, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
