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
    messages: list[dict] = []
    if prompt.system is not None:
        messages.append({"role": "system", "content": prompt.system})
    messages.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": prompt.user}]})
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (f" {prompt.answer_prefix}" if prompt.answer_prefix else "")


class MashVlmEvalModel:
    """:class:`EvalModel` for a MASH-VLM checkpoint directory or an in-memory model + processor."""

    def __init__(self, model: Any, processor: Any, name: str = "mash-vlm"):
        self.model = model.eval()
        self.processor = processor
        self.name = name
        self.num_frames = int(processor.num_frames)

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
        import torch

        texts = [mashvlm_prompt_text(self.processor, p) for p in prompts]
        # The frames are decoded once; the processor normalises them once per prompt of the batch.
        inputs = self.processor(texts, videos=[frames] * len(texts)).to(self.model.device)
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        tok = self.processor.tokenizer
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
                eos_token_id=tok.eos_token_id,
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return list(self.processor.batch_decode(new_tokens, skip_special_tokens=True))
