"""Instruction-tuning data in the VideoChat2 JSON format.

A file is a JSON list of records ``{"video": "<path relative to the video root>", "QA": [{"i": ..., "q": ...,
"a": ...}, ...]}`` with optional ``"start"`` / ``"end"`` (seconds: only that clip of the video is sampled),
as released in VideoChat2-IT (OpenGVLab/Ask-Anything, ``video_chat2/dataset/it_dataset.py``). ``i`` is an
optional instruction put before the question; ``q`` may be empty (the caption datasets put the whole
request in ``i``). ``video`` may name a folder of frame images. Each record becomes one example per QA
pair (``turns="single"``, the default: later answers cannot leak into earlier questions) or one
multi-turn conversation (``turns="multi"``). Loss is on the answers only.

Errors name the file, the line where the record starts (1-based), the record's index in the list and
the field. A video that fails to decode during training is skipped and counted, never fatal
(:class:`VideoInstructionDataset`, :class:`VideoInstructionCollator`, ``mashvlm.training.skips``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import FormatError, MashVlmError
from ..modeling.processing_mash_vlm import IGNORE_INDEX, MashVlmProcessor
from ..video import VideoDecodeError, read_video_frames

# Key of the marker example that stands for a sample whose video failed to decode.
SKIPPED = "skipped"
# A batch whose every sample was skipped is refilled from the samples after them (at most this many tried).
REFILL_TRIES = 8
# How an example carries its video: pixels, or a frozen tower's output for them (VideoInstructionDataset).
VIDEO_KEYS = ("pixel_values_videos", "video_tower_features")


class DataFormatError(FormatError):
    """A training file is malformed. The message names the file, the line where the record starts, the
    record's index in the JSON list and the field: ``train.json:12: record 3: field 'video' ...``."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str, *, record: int | None = None,
                 field: str | None = None):
        super().__init__(path, line, field, message)
        self.record = record
        where = self.path if line is None else f"{self.path}:{line}"
        what = "" if record is None else f" record {record}:"
        self.args = (f"{where}:{what} {message}",)


class AllSamplesSkipped(MashVlmError, RuntimeError):
    """Every sample of a batch, and the samples after them, failed to decode: the data is broken."""


@dataclass(frozen=True)
class InstructionRecord:
    video: str
    turns: tuple[tuple[str, str], ...]
    start: float | None = None  # seconds: only this clip of the video is sampled
    end: float | None = None
    source: str = ""  # the dataset (mixture entry) it came from
    fps: float | None = None  # of a frame folder, to place start / end


_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")


def json_list_with_lines(path: str | os.PathLike, text: str) -> list[tuple[int, object]]:
    """The items of the top-level JSON list ``text``, each with the (1-based) line it starts on.

    Parsed item by item with the C decoder (``raw_decode``), a few times slower than ``json.loads``: only
    used to place errors. A file that is not a JSON list raises :class:`DataFormatError` (with the line).
    """
    decoder = json.JSONDecoder()
    out: list[tuple[int, object]] = []
    try:
        at = _JSON_WHITESPACE.match(text, 0).end()
        if text[at:at + 1] == "[":
            at = _JSON_WHITESPACE.match(text, at + 1).end()
            line, counted = 1, 0
            closed = text[at:at + 1] == "]"
            while not closed:
                item, end = decoder.raw_decode(text, at)
                line += text.count("\n", counted, at)
                counted = at
                out.append((line, item))
                at = _JSON_WHITESPACE.match(text, end).end()
                if text[at:at + 1] == ",":
                    at = _JSON_WHITESPACE.match(text, at + 1).end()
                    continue
                if text[at:at + 1] != "]":
                    break
                closed = True
            if closed and not text[at + 1:].strip(" \t\n\r"):
                return out
        data = json.loads(text)  # not a well-formed list: let the full parser say why
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"not valid JSON ({err.msg}, column {err.colno})") from None
    raise DataFormatError(path, None, f"expected a JSON list of {{'video', 'QA'}} records, got {type(data).__name__}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_record(path: Path, line: int | None, index: int, record: object, root: Path, *, source: str = "",
                 fps: float | None = None) -> InstructionRecord:
    """One VideoChat2 record, validated; raises :class:`DataFormatError` naming the field."""

    def error(message: str, field: str | None) -> DataFormatError:
        return DataFormatError(path, line, message, record=index, field=field)

    if not isinstance(record, dict):
        raise error("expected an object with 'video' and 'QA'", None)
    video = record.get("video")
    if video is None and "image" in record:
        raise error("field 'image': image records are not supported (MASH-VLM tunes on videos); "
                    "leave image datasets out of the mixture", "image")
    if not isinstance(video, str) or not video:
        raise error("field 'video' must be a non-empty string", "video")
    if os.path.isabs(video) or ".." in video.split("/"):  # (os.path, not pathlib: 430k records)
        raise error(f"field 'video' ({video!r}) must be a path inside the video root", "video")
    clip = {}
    for key in ("start", "end"):
        value = record.get(key)
        if value is not None and not (_number(value) and value >= 0):
            raise error(f"field '{key}' must be a number of seconds >= 0, got {value!r}", key)
        clip[key] = None if value is None else float(value)
    if clip["start"] is not None and clip["end"] is not None and clip["end"] <= clip["start"]:
        raise error(f"field 'end' ({clip['end']}) must be after 'start' ({clip['start']})", "end")
    qa = record.get("QA")
    if not isinstance(qa, list) or not qa:
        raise error("field 'QA' must be a non-empty list", "QA")
    turns = []
    for j, item in enumerate(qa):
        if not isinstance(item, dict):
            raise error(f"QA[{j}] must be an object", f"QA[{j}]")
        if not isinstance(item.get("a"), str) or not item["a"].strip():
            raise error(f"QA[{j}].a must be a non-empty string", f"QA[{j}].a")
        for key in ("i", "q"):
            if not isinstance(item.get(key) or "", str):
                raise error(f"QA[{j}].{key} must be a string", f"QA[{j}].{key}")
        question = f"{(item.get('i') or '').strip()} {(item.get('q') or '').strip()}".strip()
        if not question:
            raise error(f"QA[{j}]: 'i' and 'q' are both empty (nothing is asked)", f"QA[{j}].q")
        turns.append((question, item["a"].strip()))
    return InstructionRecord(os.path.join(root, video), tuple(turns), clip["start"], clip["end"], source, fps)


def parse_videochat2(
    path: str | os.PathLike, video_root: str | os.PathLike | None = None, *, source: str = "",
    fps: float | None = None,
) -> tuple[list[InstructionRecord], list[DataFormatError]]:
    """The valid records of a VideoChat2-format file and an error for each invalid one.

    A file that cannot be read as a JSON list raises :class:`DataFormatError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, None, "no such annotation file") from None
    except IsADirectoryError:
        raise DataFormatError(path, None, "is a folder; give the JSON annotation file") from None
    except UnicodeDecodeError as err:
        raise DataFormatError(path, None, f"not UTF-8 text ({err})") from None
    root = Path(video_root) if video_root is not None else path.parent
    try:
        items = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, err.lineno, f"not valid JSON ({err.msg}, column {err.colno})") from None
    if not isinstance(items, list):
        raise DataFormatError(path, None, f"expected a JSON list of {{'video', 'QA'}} records, got {type(items).__name__}")
    records, errors = [], []
    lines: list[int] | None = None  # where each record starts: found only when one is invalid (rare)
    for index, item in enumerate(items):
        try:
            records.append(parse_record(path, None, index, item, root, source=source, fps=fps))
        except DataFormatError:
            if lines is None:
                lines = [line for line, _ in json_list_with_lines(path, text)]
            try:
                parse_record(path, lines[index], index, item, root, source=source, fps=fps)
            except DataFormatError as err:
                errors.append(err)
    return records, errors


def load_videochat2_json(
    path: str | os.PathLike, video_root: str | os.PathLike | None = None, *, source: str = "",
    fps: float | None = None,
) -> list[InstructionRecord]:
    """Read and validate a VideoChat2-format file; video paths must stay inside ``video_root`` (default: the
    file's folder). The first invalid record raises its :class:`DataFormatError` (saying how many more)."""
    records, errors = parse_videochat2(path, video_root, source=source, fps=fps)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.args = (f"{first.args[0]} (and {len(errors) - 1} more invalid records in this file; "
                          "`mashvlm data check` lists them all)",)
        raise first
    return records


class VideoInstructionDataset(Dataset):
    """Examples ``{input_ids, labels, pixel_values_videos}`` for :class:`MashVlmForConditionalGeneration`.

    Videos are read by :func:`mashvlm.video.read_video_frames` (every format, the same frame sampling,
    only the sampled frames decoded). Decoded and preprocessed videos are cached in memory when
    ``cache_videos`` (the synthetic world fits easily; a real mixture does not). With ``tower_features``
    (a frozen vision tower: pixels ``[T, 3, H, W]`` -> its output ``[T, 1+N, D]``), the cache holds that
    output instead and examples carry it as ``video_tower_features``: the tower runs once per video, not
    once per step. A video that fails to decode raises its :class:`VideoDecodeError`, or with
    ``skip_undecodable`` gives the marker ``{"skipped": {"index", "dataset", "video", "error"}}`` that
    :class:`VideoInstructionCollator` drops and reports. Only typed decode errors are caught: anything else
    is a bug and propagates.
    """

    def __init__(
        self,
        records: list[InstructionRecord],
        processor: MashVlmProcessor,
        *,
        turns: str = "single",
        cache_videos: bool = True,
        skip_undecodable: bool = False,
        tower_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if turns not in ("single", "multi"):
            raise ValueError(f"turns must be 'single' or 'multi', got {turns!r}")
        if tower_features is not None and not cache_videos:
            raise ValueError("tower_features computes each video's tower output once and caches it; "
                             "it needs cache_videos=True")
        self.processor = processor
        self.records = records
        if turns == "single":
            self.items = [(r, (turn,)) for r in records for turn in r.turns]
        else:
            self.items = [(r, r.turns) for r in records]
        self.cache: dict[tuple, torch.Tensor] | None = {} if cache_videos else None
        self.skip_undecodable = skip_undecodable
        self.tower_features = tower_features
        self.video_key = "pixel_values_videos" if tower_features is None else "video_tower_features"

    def __len__(self) -> int:
        return len(self.items)

    def video_input(self, video: str, start: float | None = None, end: float | None = None,
                    fps: float | None = None) -> torch.Tensor:
        """The video as examples carry it (under ``video_key``): its pixels, or the tower's output for them."""
        key = (video, start, end)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        frames = read_video_frames(video, self.processor.num_frames, start=start, end=end, fps=fps)
        value = self.processor.preprocess_video(frames)
        if self.tower_features is not None:
            value = self.tower_features(value)
        if self.cache is not None:
            self.cache[key] = value
        return value

    def __getitem__(self, index: int) -> dict:
        record, turns = self.items[index]
        try:
            video = self.video_input(record.video, record.start, record.end, record.fps)
        except VideoDecodeError as err:
            if not self.skip_undecodable:
                raise
            return {SKIPPED: {"index": index, "dataset": record.source, "video": record.video, "error": str(err)}}
        example = self.processor.encode_conversation(turns)
        example[self.video_key] = video
        return example


@dataclass
class VideoInstructionCollator:
    """Right-pads ``input_ids`` (pad id) and ``labels`` (-100); stacks videos ``[B, T, 3, H, W]`` (or their
    tower outputs, ``video_tower_features``; text-only examples, without either, give a batch without
    them). ``share_prompt_prefix`` asks the model to run the rows' common system prompt once (see
    ``MashVlmForConditionalGeneration.forward``).

    Skipped-sample markers (:class:`VideoInstructionDataset` with ``skip_undecodable``) are dropped, so a
    broken video costs its one sample; the batch then carries their descriptions under ``"skipped"`` (the
    collator runs in the DataLoader workers: this is how the counts reach the training process, which
    must pop them before the forward, ``mashvlm.training.skips.SkipCountingTrainer``). A batch whose
    every sample was skipped is refilled with the first decodable sample among the ``REFILL_TRIES`` after
    them in ``dataset`` (seen twice that epoch), so the step runs as usual (every process of a
    distributed run takes part); when none decodes, :class:`AllSamplesSkipped` stops the run.
    """

    pad_token_id: int
    share_prompt_prefix: bool = False
    dataset: VideoInstructionDataset | None = None  # to refill a batch whose every sample was skipped

    def __call__(self, examples: list[dict]) -> dict:
        skipped = [e[SKIPPED] for e in examples if SKIPPED in e]
        examples = [e for e in examples if SKIPPED not in e]
        if not examples:
            examples = [self._refill(skipped)]
        length = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = example["input_ids"]
            labels[row, :n] = example["labels"]
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        for key in VIDEO_KEYS:
            if key in examples[0]:
                batch[key] = torch.stack([e[key] for e in examples])
        if self.share_prompt_prefix:
            batch["share_prompt_prefix"] = True
        if skipped:
            batch[SKIPPED] = skipped
        return batch

    def _refill(self, skipped: list[dict]) -> dict:
        first = skipped[0]
        if self.dataset is not None and len(self.dataset):
            last = max(s["index"] for s in skipped)
            for step in range(1, REFILL_TRIES + 1):
                example = self.dataset[(last + step) % len(self.dataset)]
                if SKIPPED not in example:
                    return example
        raise AllSamplesSkipped(
            f"every sample of a batch failed to decode, and the {REFILL_TRIES} after them too (first: "
            f"{first['dataset']}: {first['error']}); the data is broken: run `mashvlm data check` on it"
        )
