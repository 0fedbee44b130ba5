"""Resumable predictions files: the one mechanism behind ``mashvlm unscene run`` and ``mashvlm eval``.

A run appends one JSON line per answer to its predictions file (fsynced as soon as it is known), so a
run killed at any moment keeps every answer it got, and a re-run asks only what is missing. On
resume every whole line is validated as a prediction of this benchmark (another run's file is
refused) before a cut-off last line from the kill is repaired; ``--retry-errors`` removes the recorded
failures (atomically) so they are asked again. A failed answer is recorded with its error and
counted, never dropped; after ``max_consecutive_failures`` videos in a row lost to model (not video)
errors the run stops with :class:`RunAborted`. Two runs writing one file at once are refused by a
lock, ``<file>.lock`` (POSIX only).

What differs between benchmarks is passed in: how a file's lines are read and validated (the id
field, the record), whether a record is a failure, and how it is written back. Kept free of torch so
that UNSCENE stays light to import.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

from mashvlm.errors import MashVlmError
from mashvlm.files import JsonlReadResult, append_jsonl, repair_truncated_tail, write_jsonl_atomic

__all__ = [
    "PredictionsFileLocked",
    "PredictionsRun",
    "RunAborted",
    "RunStats",
    "exclusive_lock",
    "format_error",
    "is_data_error",
    "load_for_resume",
]

R = TypeVar("R")


class RunAborted(MashVlmError, RuntimeError):
    """The run stopped because the model failed on too many videos in a row."""

    exit_code = 1  # the command line tells "the model kept failing" (1) from bad input (2)


class PredictionsFileLocked(MashVlmError, RuntimeError):
    """Another run is writing the same predictions file (its ``.lock`` is held)."""


def is_data_error(err: BaseException) -> bool:
    """True for failures caused by the video file rather than by the model.

    Missing files, ``mashvlm.video.VideoDecodeError`` (or any exception class named
    ``VideoDecodeError`` in its hierarchy, for third-party models) and PyAV errors. These never
    stop a run; other errors do after ``max_consecutive_failures`` videos in a row.
    """
    if isinstance(err, (FileNotFoundError, IsADirectoryError)):
        return True
    for cls in type(err).__mro__:
        if cls.__name__ == "VideoDecodeError" or cls.__module__.split(".")[0] == "av":
            return True
    return False


def format_error(err: BaseException) -> str:
    """``"<type>: <message>"`` on one line, at most 500 characters of message: the recorded ``error``."""
    message = str(err).strip().replace("\n", " ")
    if len(message) > 500:
        message = message[:500] + "..."
    return f"{type(err).__name__}: {message}"


@dataclass
class RunStats:
    """What one run did to its predictions file (``summary()`` is the line the commands print)."""

    total_questions: int = 0
    already_answered: int = 0
    asked: int = 0
    answered: int = 0
    failed: int = 0
    retried_errors: int = 0
    repaired_truncated_lines: int = 0
    failed_videos: set[str] = field(default_factory=set)
    elapsed_s: float = 0.0

    @property
    def total(self) -> int:
        """The questions of the run (the evaluations' name for :attr:`total_questions`)."""
        return self.total_questions

    def summary(self) -> str:
        return (
            f"{self.answered} answered, {self.failed} failed ({len(self.failed_videos)} video(s)), "
            f"{self.already_answered} already in the file, {self.repaired_truncated_lines} truncated "
            f"line(s) repaired, {self.retried_errors} error(s) retried, {self.elapsed_s:.1f}s"
        )


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Stop two runs from appending to the same predictions file at once (POSIX only).

    The lock is ``<path>.lock``, held with ``flock`` for the duration; the kernel releases it when a
    killed run's process ends, so a stale lock file never blocks a re-run.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no lock, documented
        yield
        return
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "w") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PredictionsFileLocked(f"another run is writing {path} (lock {lock_path} is held)") from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def load_for_resume(
    path: str | os.PathLike[str],
    read: Callable[[Path], tuple[Mapping[str, R], JsonlReadResult]],
    *,
    failed: Callable[[R], bool],
    to_record: Callable[[R], Mapping[str, Any]],
    retry_errors: bool,
    stats: RunStats,
    retry_ids: Collection[str] | None = None,
) -> dict[str, R]:
    """The predictions to keep from ``path`` (``{}`` when there is no file), the file repaired.

    ``read(path)`` validates every whole line as a prediction of this benchmark (raising
    :class:`~mashvlm.errors.FormatError` for anything else, the file left as it was) and returns
    ``({id: prediction}, read_result)`` from ``read_jsonl(..., allow_truncated_tail=True)``. Only then
    is a cut-off last line cut off and counted. With ``retry_errors`` the predictions that are
    ``failed`` (only those in ``retry_ids``, if given: the questions about to be asked) are removed
    and the rest rewritten atomically with ``to_record``, so they are asked again.
    """
    path = Path(path)
    if not path.exists():
        return {}
    predictions, read_result = read(path)
    repair_truncated_tail(path, read_result)  # after every whole line was validated, never before
    stats.repaired_truncated_lines += int(read_result.truncated_tail)
    kept = dict(predictions)
    if retry_errors:
        retry = {i for i, p in kept.items() if failed(p) and (retry_ids is None or i in retry_ids)}
        if retry:
            kept = {i: p for i, p in kept.items() if i not in retry}
            write_jsonl_atomic(path, (to_record(p) for p in kept.values()))
            stats.retried_errors += len(retry)
    return kept


class _FailureStreak:
    """Counts the videos in a row that lost every pending question to model (not video) errors."""

    def __init__(self, limit: int, pending: Mapping[Hashable, int]):
        self.limit = limit
        self.total = dict(pending)
        self.answered = dict.fromkeys(pending, 0)
        self.model_failures = dict.fromkeys(pending, 0)
        self.in_a_row = 0
        self.last_error: BaseException | None = None

    def add(self, video: Hashable, err: BaseException | None) -> None:
        if err is not None:
            self.model_failures[video] += int(not is_data_error(err))
            self.last_error = err
        self.answered[video] += 1
        if self.answered[video] == self.total[video]:  # the video is done
            broken = self.model_failures[video] == self.total[video]
            self.in_a_row = self.in_a_row + 1 if broken else 0

    def check(self) -> None:
        if self.limit and self.in_a_row >= self.limit:
            raise RunAborted(
                f"the model failed on {self.in_a_row} videos in a row (last error: "
                f"{format_error(self.last_error)}); stopping. Fix the model, then re-run with "
                "--retry-errors to ask these again."
            )


class PredictionsRun:
    """One run's hold on its predictions file, as a context manager.

    Entering creates the folder, takes the lock (:class:`PredictionsFileLocked` if another run holds
    it) and starts the clock; load what is there with :func:`load_for_resume`, then :meth:`start`
    with the number of pending questions per video and :meth:`add` each answer as soon as it is known
    (appended, fsynced, counted in ``stats``). :meth:`check` after each model call raises
    :class:`RunAborted` after ``max_consecutive_failures`` videos in a row lost to model errors.
    Leaving closes the file and the progress bar, releases the lock and sets ``stats.elapsed_s``.
    """

    def __init__(self, path: str | os.PathLike[str], stats: RunStats):
        self.path = Path(path)
        self.stats = stats
        self._stack = contextlib.ExitStack()
        self._fh: IO[str] | None = None
        self._bar: Any = None
        self._streak = _FailureStreak(0, {})
        self._start = 0.0

    def __enter__(self) -> PredictionsRun:
        self._start = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._stack.enter_context(exclusive_lock(self.path))
        except BaseException:
            self.stats.elapsed_s = time.monotonic() - self._start
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._stack.close()
        finally:
            self.stats.elapsed_s = time.monotonic() - self._start

    def start(
        self,
        pending: Mapping[Hashable, int],
        *,
        max_consecutive_failures: int,
        progress: bool = True,
        desc: str = "run",
    ) -> None:
        """Open the file for appending; ``pending`` is ``{video: questions to ask about it}``."""
        self._fh = self._stack.enter_context(open(self.path, "a", encoding="utf-8"))  # noqa: SIM115 - the stack closes it
        self._streak = _FailureStreak(max_consecutive_failures, pending)
        todo = sum(pending.values())
        if progress and todo:
            from tqdm import tqdm

            self._bar = self._stack.enter_context(contextlib.closing(tqdm(total=todo, desc=desc, unit="q")))

    def add(
        self,
        record: Mapping[str, Any],
        err: BaseException | None,
        *,
        video: Hashable,
        video_name: str | None = None,
    ) -> None:
        """Append one answer (``err`` None) or recorded failure about ``video`` (a key of ``pending``);
        ``video_name`` (default ``video``) is what ``stats.failed_videos`` counts."""
        if self._fh is None:
            raise RuntimeError("PredictionsRun.add before start")
        append_jsonl(self._fh, record)
        self.stats.asked += 1
        if err is None:
            self.stats.answered += 1
        else:
            self.stats.failed += 1
            self.stats.failed_videos.add(str(video) if video_name is None else video_name)
        self._streak.add(video, err)
        if self._bar is not None:
            self._bar.update(1)

    def check(self) -> None:
        """:class:`RunAborted` once the model failed on ``max_consecutive_failures`` videos in a row."""
        self._streak.check()
