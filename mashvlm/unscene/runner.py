"""Asking a video model the UNSCENE questions, resumably.

The plug-in interface is :class:`VideoQAModel`: an object with ``answer(video_path, question) -> str``,
optionally ``answer_batch(video_path, questions) -> list[str]`` to answer several questions about one
video in one go, or ``answer_videos(requests)`` to answer the questions about several videos in one
batch (:class:`MultiVideoQAModel`). MASH-VLM checkpoints are wrapped by :class:`MashVlmVideoQA`; any
other model is loaded from the user's own code with :func:`load_model_class` (``package.module:ClassName``).

Predictions are appended one JSON line at a time and fsynced as soon as they are known (a batch at a
time for batched models), so a run killed at any moment keeps every answer it got; re-running skips
the question ids already in the file (a truncated last line from the kill is cut off and counted). A question whose ``answer`` raises is recorded with
``"prediction": null`` and ``"error": "<type>: <message>"``: the scorer counts it as wrong and the
video as failed, so a video that does not decode stays in the denominator.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mashvlm.commands import parse_key_values
from mashvlm.errors import FormatError, UsageError
from mashvlm.files import JsonlReadResult

# The resumable-predictions mechanism is shared with ``mashvlm eval``; its names stay importable here.
from mashvlm.predictions import (
    PredictionsFileLocked,  # noqa: F401 - public name of this module too
    PredictionsRun,
    RunAborted,  # noqa: F401 - public name of this module too
    RunStats,
    format_error,
    is_data_error,  # noqa: F401 - public name of this module too
    load_for_resume,
)
from mashvlm.unscene.formats import load_predictions
from mashvlm.unscene.paths import resolve_video_path
from mashvlm.unscene.records import Prediction, Question


@runtime_checkable
class VideoQAModel(Protocol):
    """What the runner needs from a model.

    ``answer`` gets the absolute path of a video file and one question, and returns the model's raw
    text reply. Raise an exception when the video cannot be read (any exception is recorded as a
    failure of that question; see :func:`is_data_error` for which ones count as data problems).
    """

    def answer(self, video_path: str, question: str) -> str: ...


@runtime_checkable
class BatchVideoQAModel(VideoQAModel, Protocol):
    """Optional: answer every question about one video at once (decode the video once)."""

    def answer_batch(self, video_path: str, questions: Sequence[str]) -> list[str]: ...


@runtime_checkable
class MultiVideoQAModel(VideoQAModel, Protocol):
    """Optional: answer the questions about several videos in one batch.

    ``requests`` is ``[(video_path, questions), ...]``; the result has one item per request, in order:
    the list of answers to its questions, or the exception that stopped that video (a video that does
    not decode fails only its own questions). The runner sends at most ``batch_size`` questions per call.
    """

    def answer_videos(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> Sequence[Sequence[str] | BaseException]: ...


class MashVlmVideoQA:
    """:class:`MultiVideoQAModel` adapter for a MASH-VLM checkpoint directory (greedy decoding).

    ``mashvlm.inference`` (and with it torch and transformers) is imported here, not at module load,
    so that the rest of UNSCENE works without the model stack. Each video is decoded and encoded once
    for all of its questions, and the questions of several videos are generated in one left-padded
    batch (``VideoChat.answer_videos``); the answers are those of one question at a time.
    ``video_tokens``: ``"both"``, ``"spatial"`` or ``"temporal"``, the video tokens in each prompt (Table 10).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_new_tokens: int = 256,
        video_tokens: str = "both",
    ):
        from mashvlm.inference import VideoChat

        torch_dtype: Any = None
        if dtype is not None:
            import torch

            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise UsageError(f"unknown torch dtype {dtype!r} (use e.g. bfloat16, float16, float32)")
        self.chat = VideoChat.from_pretrained(
            os.fspath(model_dir), device=device, dtype=torch_dtype, video_token_types=video_tokens
        )
        self.max_new_tokens = max_new_tokens
        self.name = Path(model_dir).name

    def answer(self, video_path: str, question: str) -> str:
        return self.chat.answer(video_path, question, max_new_tokens=self.max_new_tokens)

    def answer_batch(self, video_path: str, questions: Sequence[str]) -> list[str]:
        (result,) = self.answer_videos([(video_path, questions)])
        if isinstance(result, BaseException):
            raise result
        return list(result)

    def answer_videos(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[str] | BaseException]:
        results: list[list[str] | BaseException] = []
        frames, questions, decoded = [], [], []
        for i, (video_path, qs) in enumerate(requests):
            try:
                frames.append(self.chat.processor.load_video(video_path))
            except Exception as err:  # noqa: BLE001 - this video's failure, recorded by the runner
                results.append(err)
                continue
            results.append([])
            questions.append(list(qs))
            decoded.append(i)
        if decoded:
            answers = self.chat.answer_videos(frames, questions, max_new_tokens=self.max_new_tokens)
            for i, texts in zip(decoded, answers, strict=True):
                results[i] = texts
        return results


def parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> model kwargs; values are parsed as JSON when they can be (numbers, true, lists)."""
    return parse_key_values(items, "--model-arg", identifiers=True)


def load_model_class(spec: str, kwargs: dict[str, Any] | None = None) -> VideoQAModel:
    """Instantiate ``package.module:ClassName(**kwargs)`` from the user's own importable code.

    Only a normal import: no pickles, no remote code. The current directory is on the import path
    so a model class in a local file works without installing it.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ModelClassError(f"--model-class expects 'package.module:ClassName', got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        # Only the named module itself (or its package) missing is the user's typo; an import failing
        # inside their module is their code's error and keeps its traceback.
        if err.name is None or not (module_name == err.name or module_name.startswith(err.name + ".")):
            raise
        raise ModelClassError(
            f"--model-class {spec}: no module named {err.name!r} (run from the folder that holds it, or "
            "install it)"
        ) from None
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ModelClassError(f"{module_name!r} has no attribute {attr!r}") from None
    kwargs = kwargs or {}
    try:
        inspect.signature(target).bind(**kwargs)
    except TypeError as err:
        raise ModelClassError(f"--model-arg does not fit {spec}: {err}") from None
    except ValueError:  # no signature to inspect (a builtin): let the call itself decide
        pass
    model = target(**kwargs)
    if not callable(getattr(model, "answer", None)):
        raise ModelClassError(f"{spec} does not implement answer(video_path, question) -> str")
    return model


class ModelClassError(UsageError, TypeError):
    """``--model-class`` / ``--model-arg`` do not name an importable model with ``answer()``."""


TASKS = ("all", "binary", "open_ended")


def select_tasks(questions: Iterable[Question], tasks: str = "all") -> list[Question]:
    """The questions of ``tasks``: ``"all"``, ``"binary"`` (the yes/no pairs) or ``"open_ended"``."""
    if tasks not in TASKS:
        raise UsageError(f"tasks must be one of {', '.join(TASKS)}, got {tasks!r}")
    return [q for q in questions if tasks == "all" or q.is_binary == (tasks == "binary")]


def prepare_predictions_file(
    path: str | os.PathLike[str],
    questions: Sequence[Question],
    *,
    retry_errors: bool = False,
    stats: RunStats | None = None,
    retry_ids: Collection[str] | None = None,
) -> dict[str, Prediction]:
    """Load existing predictions for a resume and repair the file; returns the ones to keep.

    Every line must be a prediction for one of ``questions``. Only then is a cut-off last line
    (the start of a JSON object after whole lines: a kill during a write) cut off and counted;
    anything else raises :class:`FormatError` and leaves the file as it was. With ``retry_errors``
    the recorded failures (only those in ``retry_ids``, if given: the questions about to be asked)
    are removed from the file (atomically) so they are asked again.
    """

    def read(p: Path) -> tuple[dict[str, Prediction], JsonlReadResult]:
        loaded = load_predictions(p, known_question_ids=[q.question_id for q in questions])
        return loaded.predictions, loaded.read

    return load_for_resume(
        path,
        read,
        failed=lambda p: p.failed,
        to_record=Prediction.to_record,
        retry_errors=retry_errors,
        stats=stats if stats is not None else RunStats(),
        retry_ids=retry_ids,
    )


def run_model(
    model: VideoQAModel,
    questions: Sequence[Question],
    video_root: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    tasks: str = "all",
    retry_errors: bool = False,
    max_consecutive_failures: int = 10,
    batch_size: int = 16,
    progress: bool = True,
    on_answer: Callable[[Prediction], None] | None = None,
) -> RunStats:
    """Ask ``model`` every question not yet in ``output``; append each prediction as it comes.

    ``questions`` is the whole questions file: ``output`` may hold answers to any of them.
    ``tasks`` (see :func:`select_tasks`) narrows what is asked; ``retry_errors`` then retries only
    the failures among the selected questions.

    Questions are grouped by video in file order. ``batch_size`` caps the questions per model call:
    a :class:`MultiVideoQAModel` gets whole videos packed up to it, an ``answer_batch`` model one
    video at a time (in pieces of ``batch_size``), any other model one question at a time. Any
    exception from the model is recorded as that question's failure. After
    ``max_consecutive_failures`` videos in a row fail with errors that are not data errors (a broken
    model, not a broken video) the run stops with :class:`RunAborted`; what was written stays, and
    ``retry_errors`` asks the failures again. 0 never stops.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    selected = select_tasks(questions, tasks)
    stats = RunStats(total_questions=len(selected))
    with PredictionsRun(output, stats) as run:
        existing = prepare_predictions_file(
            output,
            questions,
            retry_errors=retry_errors,
            stats=stats,
            retry_ids={q.question_id for q in selected},
        )
        pending: dict[str, list[Question]] = {}
        for q in selected:
            if q.question_id in existing:
                stats.already_answered += 1
            else:
                pending.setdefault(q.video_id, []).append(q)
        run.start(
            {video_id: len(qs) for video_id, qs in pending.items()},
            max_consecutive_failures=max_consecutive_failures,
            progress=progress,
            desc="unscene run",
        )
        pack = callable(getattr(model, "answer_videos", None))
        for call in _model_calls(pending, batch_size, pack):
            for q, text, err in _answer_call(model, video_root, call):
                if err is None:
                    pred = Prediction(q.question_id, text)
                else:
                    pred = Prediction(q.question_id, None, format_error(err))
                run.add(pred.to_record(), err, video=q.video_id)
                if on_answer is not None:
                    on_answer(pred)
            run.check()  # after the call's answers are written
    return stats


def _model_calls(pending: dict[str, list[Question]], batch_size: int, pack: bool) -> Iterator[list[Question]]:
    """The questions of each model call, in file order: at most ``batch_size`` questions of one video;
    with ``pack``, consecutive whole videos share a call while they fit (a video is split only when it
    alone has more than ``batch_size`` questions)."""
    call: list[Question] = []
    for video_questions in pending.values():
        if call and (not pack or len(call) + len(video_questions) > batch_size):
            yield call
            call = []
        for i in range(0, len(video_questions), batch_size):
            call.extend(video_questions[i : i + batch_size])
            if len(call) == batch_size:
                yield call
                call = []
    if call:
        yield call


def _answer_call(
    model: VideoQAModel, video_root: str | os.PathLike[str], questions: Sequence[Question]
) -> Iterator[tuple[Question, str | None, BaseException | None]]:
    """(question, text, error) for each question of one model call, yielded as soon as each is known.

    Yielding one answer at a time lets the caller write it before the next (slow) question is
    asked, so a kill loses at most the answer (or the batch) being generated.
    """
    videos: dict[str, list[Question]] = {}
    for q in questions:
        videos.setdefault(q.video_id, []).append(q)
    paths: dict[str, str] = {}
    for video_id, qs in videos.items():
        try:
            path = resolve_video_path(video_root, qs[0].video)
            if not os.path.exists(path):
                raise FileNotFoundError(f"video not found: {path}")
            paths[video_id] = path
        except (ValueError, FileNotFoundError) as err:
            yield from ((q, None, err) for q in qs)
    videos = {v: qs for v, qs in videos.items() if v in paths}
    if not videos:
        return
    answer_videos = getattr(model, "answer_videos", None)
    answer_batch = getattr(model, "answer_batch", None)
    if callable(answer_videos) or (callable(answer_batch) and len(questions) > 1):
        requests = [(paths[v], [q.question for q in qs]) for v, qs in videos.items()]
        try:
            if callable(answer_videos):
                results = _checked_length(answer_videos(requests), len(requests), "answer_videos", "videos")
            else:
                results = [answer_batch(*requests[0])]  # one video per call
        except Exception as err:  # noqa: BLE001 - recorded, never dropped
            results = [err] * len(requests)
        for qs, result in zip(videos.values(), results, strict=True):
            if not isinstance(result, BaseException):
                try:
                    result = _checked_length(result, len(qs), "the model", "questions")
                except TypeError as err:
                    result = err
            if isinstance(result, BaseException):
                yield from ((q, None, result) for q in qs)
            else:
                yield from ((q, *_checked(t)) for q, t in zip(qs, result, strict=True))
        return
    for qs in videos.values():
        for q in qs:
            try:
                result = _checked(model.answer(paths[q.video_id], q.question))
            except Exception as err:  # noqa: BLE001 - recorded, never dropped
                result = (None, err)
            yield (q, *result)


def _checked_length(items: object, expected: int, who: str, what: str) -> list:
    if not isinstance(items, (list, tuple)) or len(items) != expected:
        raise TypeError(f"{who} returned {type(items).__name__} of the wrong length for {expected} {what}")
    return list(items)


def _checked(text: object) -> tuple[str | None, BaseException | None]:
    if isinstance(text, str):
        return text, None
    return None, TypeError(f"the model returned {type(text).__name__}, not str")


def check_predictions_path(path: str | os.PathLike[str], question_ids: Iterable[str] | None = None) -> None:
    """Fail early, before a model is loaded, if an existing predictions file is not resumable.

    With ``question_ids`` (the whole questions file) its ids are checked against them too.
    """
    p = Path(path)
    if p.exists():
        try:
            load_predictions(p, known_question_ids=question_ids)
        except FormatError as err:
            raise FormatError(
                err.path, err.line, err.field, f"{err.reason} (cannot resume from this predictions file)"
            ) from None
