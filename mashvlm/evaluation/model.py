"""The model interface of the evaluations: the benchmark owns the prompt, the model owns the template.

MVBench needs its own system prompt and an answer prefilled with ``"Best option:("``, which a plain
``answer(video, question)`` cannot express; :class:`EvalModel` takes a :class:`ChatPrompt` instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mashvlm.errors import UsageError


@dataclass(frozen=True)
class ChatPrompt:
    """One turn about one video: ``system`` (None: the model's own), the user text (the video is put
    before it by the model's template) and the start of the answer the model continues from."""

    user: str
    system: str | None = None
    answer_prefix: str = ""


@runtime_checkable
class EvalModel(Protocol):
    """What the evaluation runners need. ``num_frames``: frames the evaluation samples per video."""

    name: str
    num_frames: int

    def generate(self, frames: np.ndarray, prompts: Sequence[ChatPrompt], *, max_new_tokens: int) -> list[str]:
        """Greedy continuations (the text after ``answer_prefix``), one per prompt, all about ``frames``
        (``uint8 [T, H, W, 3]``, decoded once for all of them)."""
        ...


def mashvlm_prompt_text(processor: Any, prompt: ChatPrompt) -> str:
    """The checkpoint's chat-template prompt, with ``prompt``'s system prompt and answer prefix."""
    from mashvlm.inference import render_question

    return render_question(processor, prompt.user, system=prompt.system, answer_prefix=prompt.answer_prefix)


class MashVlmEvalModel:
    """:class:`EvalModel` for a MASH-VLM checkpoint directory or an in-memory model + processor."""

    def __init__(self, model: Any, processor: Any, name: str = "mash-vlm"):
        from mashvlm.inference import VideoChat

        self.chat = VideoChat(model, processor)
        self.name = name
        self.num_frames = int(processor.num_frames)

    @property
    def model(self) -> Any:
        return self.chat.model

    @property
    def processor(self) -> Any:
        return self.chat.processor

    @classmethod
    def from_pretrained(
        cls, model_dir: str | os.PathLike[str], *, device: str | None = None, dtype: str | None = None
    ) -> MashVlmEvalModel:
        import torch

        from mashvlm.inference import VideoChat

        torch_dtype = None
        if dtype is not None:
            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise UsageError(f"unknown torch dtype {dtype!r} (use e.g. bfloat16, float16, float32)")
        chat = VideoChat.from_pretrained(os.fspath(model_dir), device=device, dtype=torch_dtype)
        return cls(chat.model, chat.processor, name=Path(model_dir).name)

    def generate(self, frames: np.ndarray, prompts: Sequence[ChatPrompt], *, max_new_tokens: int) -> list[str]:
        """``VideoChat.answer_videos``: the video is encoded once (once per distinct system prompt, which
        precedes the video in the template) and the prompts are answered in one left-padded batch, with the
        answers of one prompt at a time (stripped of surrounding whitespace)."""
        systems = list(dict.fromkeys(p.system for p in prompts))
        groups = [[i for i, p in enumerate(prompts) if p.system == s] for s in systems]
        answers = self.chat.answer_videos(
            [frames] * len(systems),
            [[prompts[i].user for i in group] for group in groups],
            system=systems,
            answer_prefixes=[[prompts[i].answer_prefix for i in group] for group in groups],
            max_new_tokens=max_new_tokens,
        )
        texts: list[str] = [""] * len(prompts)
        for group, group_answers in zip(groups, answers, strict=True):
            for i, text in zip(group, group_answers, strict=True):
                texts[i] = text
        return texts
