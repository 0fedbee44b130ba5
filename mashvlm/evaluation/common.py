"""Shared machinery: resumable answering grouped by video, results JSON + text table.

Answers are appended to ``predictions.jsonl`` one line at a time (fsynced), so a killed run keeps every
answer it got and a re-run never asks twice (a cut-off last line is repaired): the mechanism of
:mod:`mashvlm.predictions`, shared with UNSCENE's runner (and its ``.lock``). A question whose video
does not decode, or whose model call raises, is recorded with ``"prediction": null`` and its error; the
benchmarks count it as wrong, never drop it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mashvlm.errors import FormatError, UsageError
from mashvlm.files import JsonlReadResult, read_jsonl, write_json_atomic, write_jsonl_atomic
from mashvlm.predictions import (
    PredictionsFileLocked,  # noqa: F401 - raised by run_generation, importable here
    PredictionsRun,
    RunAborted,  # noqa: F401 - raised by run_generation, importable here
    RunStats,
    format_error,
    load_for_resume,
)

from .model import ChatPrompt, EvalModel


@dataclass(frozen=True)
class VideoRef:
    """A video to sample: a file or a frame folder, optionally a clip ``[start, end)`` in seconds.
    ``fps`` is the frame rate of a frame folder (it has no timestamps of its own)."""

    path: str
    start: float | None = None
    end: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class EvalItem:
    """One question: its id, its video, the prompt, and how its raw output becomes the prediction."""

    item_id: str
    video: VideoRef
    prompt: ChatPrompt


def load_frames(video: VideoRef, num_frames: int) -> np.ndarray:
    """``uint8 [T, H, W, 3]`` frames at segment middles (``mashvlm.video.read_video_frames``)."""
    from mashvlm.video import read_video_frames

    fps = video.fps if os.path.isdir(video.path) else None  # a frame folder's rate (Episodic Reasoning: 3)
    return read_video_frames(video.path, num_frames, start=video.start, end=video.end, fps=fps)


GenerationStats = RunStats  # the evaluations' name for the one stats record (``total``, ``summary()``)


def load_predictions(
    path: Path, known_ids: set[str], *, retry_errors: bool, stats: RunStats
) -> dict[str, dict[str, Any]]:
    """The predictions already in ``path`` (validated, then a cut-off tail repaired)."""
    return load_for_resume(path, lambda p: _read_predictions(p, known_ids), failed=_failed,
                           to_record=lambda r: r, retry_errors=retry_errors, stats=stats)


def _failed(record: dict[str, Any]) -> bool:
    return record["prediction"] is None


def _read_predictions(path: Path, known_ids: set[str]) -> tuple[dict[str, dict[str, Any]], JsonlReadResult]:
    """Every whole line of ``path`` validated as a prediction of this benchmark, by ``id``."""
    read = read_jsonl(path, allow_truncated_tail=True)
    records: dict[str, dict[str, Any]] = {}
    for line in read.lines:
        rec = line.record
        item_id = rec.get("id")
        if not isinstance(item_id, str) or "prediction" not in rec:
            raise FormatError(path, line.lineno, "id", "not a prediction line (needs 'id' and 'prediction')")
        if item_id not in known_ids:
            raise FormatError(path, line.lineno, "id", f"{item_id!r} is not a question of this benchmark "
                              "(another run's file? use another --output-dir)")
        if rec["prediction"] is not None and not isinstance(rec["prediction"], str):
            raise FormatError(path, line.lineno, "prediction", "must be a string or null")
        records[item_id] = rec
    return records, read


def run_generation(
    model: EvalModel,
    items: Sequence[EvalItem],
    output: str | os.PathLike[str],
    *,
    max_new_tokens: int,
    retry_errors: bool = False,
    progress: bool = True,
    desc: str = "eval",
    max_consecutive_failures: int = 10,
    postprocess: Callable[[EvalItem, str], str] = lambda item, text: text,
) -> tuple[dict[str, dict[str, Any]], RunStats]:
    """Answer every item not yet in ``output``; returns ``({id: record}, stats)`` for all items.

    Items are grouped by video (path and clip): each video is decoded once and all its questions go
    to the model in one ``generate`` call. ``postprocess(item, raw)`` turns the raw continuation into
    the recorded prediction (the raw text is kept too). After ``max_consecutive_failures`` videos in a
    row lost to model (not video) errors, :class:`RunAborted`; 0 never stops. Another run writing
    ``output`` at the same time: :class:`PredictionsFileLocked` (see :mod:`mashvlm.predictions`).
    """
    output = Path(output)
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise FormatError(output, None, "id", f"question id {dup!r} occurs twice in the benchmark files")
    stats = RunStats(total_questions=len(items))
    with PredictionsRun(output, stats) as run:
        records = load_predictions(output, set(ids), retry_errors=retry_errors, stats=stats)
        stats.already_answered = len(records)
        groups: dict[VideoRef, list[EvalItem]] = {}
        for it in items:
            if it.item_id not in records:
                groups.setdefault(it.video, []).append(it)
        run.start({video: len(g) for video, g in groups.items()}, max_consecutive_failures=max_consecutive_failures,
                  progress=progress, desc=desc)
        for video, group in groups.items():
            texts, err = _generate_group(model, video, group, max_new_tokens)
            for it, raw in zip(group, texts, strict=True):
                if err is None:
                    rec = {"id": it.item_id, "prediction": postprocess(it, raw), "raw": raw, "error": None}
                else:
                    rec = {"id": it.item_id, "prediction": None, "raw": None, "error": format_error(err)}
                run.add(rec, err, video=video, video_name=video.path)
                records[it.item_id] = rec
            run.check()
    return records, stats


def _generate_group(
    model: EvalModel, video: VideoRef, group: Sequence[EvalItem], max_new_tokens: int
) -> tuple[list[str | None], BaseException | None]:
    try:
        if not os.path.exists(video.path):
            raise FileNotFoundError(f"video not found: {video.path}")
        frames = load_frames(video, model.num_frames)
        texts = model.generate(frames, [it.prompt for it in group], max_new_tokens=max_new_tokens)
        if not isinstance(texts, (list, tuple)) or len(texts) != len(group):
            raise TypeError(f"generate returned {type(texts).__name__} of the wrong length for {len(group)} prompts")
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"generate returned {type(t).__name__}, not str")
        return list(texts), None
    except Exception as err:  # noqa: BLE001 - recorded and counted, never dropped
        return [None] * len(group), err


def read_json_list(path: str | os.PathLike[str], *, missing: str = "no such file", what: str = "") -> list[Any]:
    """The top-level JSON list of a benchmark's annotation file. :class:`UsageError` ``"{path}: {missing}"``
    when there is no such file; :class:`FormatError` when it is not JSON or not a list (``what`` says of
    what, e.g. ``" of questions"``). The entries are the caller's to check."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: {missing}") from None
    except json.JSONDecodeError as err:
        raise FormatError(path, err.lineno, None, f"not JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise FormatError(path, None, None, f"expected a JSON list{what}")
    return data


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain tab-separated table, the layout of the paper's tables (first column the row name)."""
    return "\n".join("\t".join(str(c) for c in r) for r in [header, *rows]) + "\n"


def write_results(output_dir: Path, name: str, results: dict[str, Any], table: str,
                  samples: Sequence[dict[str, Any]]) -> None:
    """``{name}_results.json``, ``{name}_table.txt`` and per-sample ``{name}_samples.jsonl``."""
    from mashvlm.files import write_text_atomic

    write_json_atomic(output_dir / f"{name}_results.json", results)
    write_text_atomic(output_dir / f"{name}_table.txt", table)
    write_jsonl_atomic(output_dir / f"{name}_samples.jsonl", samples)
