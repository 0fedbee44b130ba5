"""Fake video-QA models implementing the runner's plug-in interface (loaded via --model-class)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence


class VideoDecodeError(ValueError):
    """Stands in for mashvlm.video.VideoDecodeError (the runner recognises it by name)."""


class OracleModel:
    """Answers binary questions from a table {question text: answer}, describes videos from another.

    Videos whose file name contains one of ``broken`` raise VideoDecodeError, like a corrupt file.
    Every call is appended (and fsynced) to ``calls_log`` if given, to prove what was asked when.
    """

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        default: str = "Yes.",
        broken: Sequence[str] = (),
        calls_log: str | None = None,
        delay: float = 0.0,
    ):
        self.answers = answers or {}
        self.default = default
        self.broken = tuple(broken)
        self.calls_log = calls_log
        self.delay = delay
        self.calls: list[tuple[str, str]] = []

    def answer(self, video_path: str, question: str) -> str:
        self.calls.append((video_path, question))
        if self.calls_log:
            with open(self.calls_log, "a", encoding="utf-8") as fh:
                fh.write(f"{os.path.basename(video_path)}\t{question}\n")
                fh.flush()
                os.fsync(fh.fileno())
        if self.delay:
            time.sleep(self.delay)
        if any(b in os.path.basename(video_path) for b in self.broken):
            raise VideoDecodeError(f"cannot decode {video_path}: moov atom not found")
        return self.answers.get(question, self.default)


class BatchModel(OracleModel):
    """Same answers, through the optional batched interface."""

    def __init__(self, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.batches: list[tuple[str, list[str]]] = []

    def answer_batch(self, video_path: str, questions: Sequence[str]) -> list[str]:
        self.batches.append((video_path, list(questions)))
        return [self.answers.get(q, self.default) for q in questions]


class CrashingModel:
    """A broken model: every call fails with an error that is not about the video."""

    def __init__(self) -> None:
        self.calls = 0

    def answer(self, video_path: str, question: str) -> str:
        self.calls += 1
        raise RuntimeError("CUDA error: device-side assert triggered")


class KilledAfter(OracleModel):
    """Simulates a kill: raises KeyboardInterrupt (not an Exception) on call number ``n + 1``."""

    def __init__(self, n: int, **kwargs: object):
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.n = n

    def answer(self, video_path: str, question: str) -> str:
        if len(self.calls) >= self.n:
            raise KeyboardInterrupt
        return super().answer(video_path, question)
