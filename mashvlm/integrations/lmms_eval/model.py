"""The lmms-eval model class for MASH-VLM checkpoints (registered as ``mashvlm``; docs/lmms_eval.md).

lmms-eval hands each request ``(context, ..., doc_to_visual, doc_id, task, split)``; ``doc_to_visual`` of a
video task returns the video's path, which is decoded here with the checkpoint's processor (T frames at
segment middles). A document's frames are decoded once and reused by all its requests (the choices of a
multiple-choice question, the rounds of a conversation).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from lmms_eval.api.instance import GenerationResult, Instance
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from mashvlm.errors import UsageError
from mashvlm.inference import VideoChat
from mashvlm.video import segment_middle_indices

from .prompts import (
    MVBENCH_MAX_NEW_TOKENS,
    MVBENCH_PROMPTS,
    ChatTurns,
    continuation_token_ids,
    is_mvbench_task,
    prompt_text,
    truncate_at_stop,
    videochat2_mvbench_answer,
    videochat2_mvbench_prompt,
)

DEFAULT_MAX_NEW_TOKENS = 256
_FRAME_CACHE_SIZE = 8
# Generation arguments of lmms-eval task configs that map onto transformers' generate.
_SAMPLING_KEYS = ("temperature", "top_p", "top_k")


def _torch_dtype(dtype: str | None) -> torch.dtype | None:
    if dtype in (None, "", "auto"):
        return None
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise UsageError(f"dtype={dtype!r} is not a torch dtype; use auto, bfloat16, float16 or float32")
    return resolved


def _flatten(visuals: Any) -> list:
    if visuals is None:
        return []
    if isinstance(visuals, (str, os.PathLike)) or not isinstance(visuals, Sequence):
        return [visuals]
    flat = []
    for v in visuals:
        flat.extend(_flatten(v) if isinstance(v, (list, tuple)) else [v])
    return flat


@dataclass
class _Job:
    """One generate_until request, ready to batch."""

    index: int
    turns: ChatTurns
    visual: tuple  # (doc_to_visual, task, split, doc_id)
    has_video: bool
    max_new_tokens: int
    options: dict
    until: list[str]
    mvbench: bool

    @property
    def batch_key(self) -> str:
        return json.dumps([self.has_video, self.max_new_tokens, self.options], sort_keys=True, default=str)


def _batches(jobs: list[_Job], batch_size: int) -> Iterator[list[_Job]]:
    """Consecutive jobs sharing generation settings and video presence, at most ``batch_size`` each."""
    batch: list[_Job] = []
    for job in jobs:
        if batch and (job.batch_key != batch[0].batch_key or len(batch) == batch_size):
            yield batch
            batch = []
        batch.append(job)
    if batch:
        yield batch


class MashVlmLmms(lmms):
    """lmms-eval model: ``--model mashvlm --model_args pretrained=DIR[,device=cuda:0][,dtype=bfloat16]
    [,mvbench_prompt=videochat2|lmms_eval] --batch_size N`` (lmms-eval passes its ``--batch_size``).

    ``mvbench_prompt=videochat2`` (default) answers lmms-eval's ``mvbench_*`` tasks under the VideoChat2
    protocol the paper reports (prompt rebuilt from the document, ``"Best option:("`` prefilled, 100 new
    tokens); ``lmms_eval`` uses the task's own prompt and generation settings unchanged.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | str = 1,
        mvbench_prompt: str = "videochat2",
        max_batch_size: int | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise UsageError(f"unknown --model_args for mashvlm: {sorted(unknown)} (known: pretrained, device, "
                             "dtype, batch_size, mvbench_prompt)")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UsageError("the mashvlm lmms-eval model runs in one process; launch lmms-eval without "
                             "accelerate/torchrun and pick the GPU with device=cuda:N")
        try:
            self._batch_size = int(batch_size)
        except (TypeError, ValueError):
            raise UsageError(f"batch_size={batch_size!r}: give a positive integer (auto is not supported)") from None
        if self._batch_size < 1:
            raise UsageError(f"batch_size={batch_size!r}: give a positive integer")
        if mvbench_prompt not in MVBENCH_PROMPTS:
            raise UsageError(f"mvbench_prompt={mvbench_prompt!r}: choose one of {', '.join(MVBENCH_PROMPTS)}")
        self.mvbench_prompt = mvbench_prompt
        chat = VideoChat.from_pretrained(pretrained, device=device, dtype=_torch_dtype(dtype))
        self.model = chat.model
        self.processor = chat.processor
        self._frames_cache: OrderedDict[tuple, list | None] = OrderedDict()
        self._warned_keys: set[str] = set()

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- visuals ------------------------------------------------------------------------------------
    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    def _frames(self, doc_to_visual, task: str, split: str, doc_id: int) -> list | None:
        """The document's T frames (None for a text-only document), decoded once per document."""
        key = (task, split, doc_id)
        if key in self._frames_cache:
            self._frames_cache.move_to_end(key)
            return self._frames_cache[key]
        frames = self._frames_of(_flatten(doc_to_visual(self._doc(task, split, doc_id))), key)
        self._frames_cache[key] = frames
        if len(self._frames_cache) > _FRAME_CACHE_SIZE:
            self._frames_cache.popitem(last=False)
        return frames

    def _frames_of(self, visuals: list, key: tuple) -> list | None:
        if not visuals:
            return None
        num_frames = self.processor.num_frames
        if all(isinstance(v, (str, os.PathLike)) for v in visuals):
            if len(visuals) != 1:
                raise UsageError(f"{key}: MASH-VLM answers about one video, the task gives {len(visuals)}")
            return list(self.processor.load_video(visuals[0]))
        if all(hasattr(v, "convert") for v in visuals):  # PIL images: video frames, or one still image
            images = [np.asarray(v.convert("RGB")) for v in visuals]
            if len(images) == 1:
                return images * num_frames
            if len(images) < num_frames:
                raise UsageError(f"{key}: {len(images)} frames given, the checkpoint needs {num_frames}")
            return [images[i] for i in segment_middle_indices(len(images), num_frames)]
        kinds = sorted({type(v).__name__ for v in visuals})
        raise UsageError(f"{key}: unsupported visual input {kinds}; expected a video path or PIL images")

    # -- generation ---------------------------------------------------------------------------------
    def _generation_options(self, gen_kwargs: dict, mvbench: bool) -> tuple[int, list[str], dict]:
        kwargs = dict(gen_kwargs or {})
        until = kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_new_tokens = int(kwargs.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS))
        do_sample = bool(kwargs.pop("do_sample", False))
        num_beams = int(kwargs.pop("num_beams", 1) or 1)
        options: dict[str, Any] = {"do_sample": do_sample}
        sampling = {k: kwargs.pop(k) for k in _SAMPLING_KEYS if k in kwargs}
        if do_sample:
            options.update(sampling)
        if num_beams > 1:
            options["num_beams"] = num_beams
        for key in sorted(set(kwargs) - self._warned_keys):
            logger.warning(f"mashvlm: ignoring generation argument {key}={kwargs[key]!r}")
            self._warned_keys.add(key)
        if mvbench:  # the protocol decodes greedily, at most 100 tokens
            return MVBENCH_MAX_NEW_TOKENS, until, {"do_sample": False}
        return max_new_tokens, until, options

    @torch.inference_mode()
    def _generate(self, prompts: list[ChatTurns], frames: list[list | None], max_new_tokens: int, options: dict
                  ) -> list[str]:
        """Continuations of a batch of prompts (all with a video, or all without)."""
        with_video = frames[0] is not None
        texts = [prompt_text(self.processor, p, with_video=with_video) for p in prompts]
        inputs = self.processor(texts, videos=frames if with_video else None).to(self.device)
        if with_video:
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        tokenizer = self.processor.tokenizer
        output = self.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **options,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return list(self.processor.batch_decode(new_tokens, skip_special_tokens=True))

    def _turns_for(self, context: str, task: str, split: str, doc_id: int) -> tuple[ChatTurns, bool]:
        if self.mvbench_prompt == "videochat2" and is_mvbench_task(task):
            return videochat2_mvbench_prompt(self._doc(task, split, doc_id)), True
        return ChatTurns(context), False

    def generate_until(self, requests: list[Instance]) -> list[str]:
        results: list[str] = [""] * len(requests)
        jobs = []
        for index, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args
            turns, mvbench = self._turns_for(context, task, split, doc_id)
            max_new_tokens, until, options = self._generation_options(gen_kwargs, mvbench)
            has_video = bool(_flatten(doc_to_visual(self._doc(task, split, doc_id))))
            jobs.append(_Job(index, turns, (doc_to_visual, task, split, doc_id), has_video, max_new_tokens,
                             options, until, mvbench))
        progress = tqdm(total=len(requests), disable=self.rank != 0, desc="mashvlm")
        for batch in _batches(jobs, self.batch_size):
            frames = [self._frames(*job.visual) for job in batch]
            outputs = self._generate([job.turns for job in batch], frames, batch[0].max_new_tokens, batch[0].options)
            for job, output in zip(batch, outputs, strict=True):
                text = truncate_at_stop(output, job.until)
                results[job.index] = videochat2_mvbench_answer(text) if job.mvbench else text
            progress.update(len(batch))
        progress.close()
        return results

    # -- likelihood ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def _continuation_nll(self, turns: ChatTurns, frames: list | None, continuation: str) -> tuple[float, bool]:
        """``(-log p(continuation | prompt), whether greedy decoding would produce it)``."""
        tokenizer = self.processor.tokenizer
        with_video = frames is not None
        context = self.processor.expand_video_tokens(prompt_text(self.processor, turns, with_video=with_video))
        context_ids = tokenizer(context, add_special_tokens=True)["input_ids"]
        whole_ids = tokenizer(context + continuation, add_special_tokens=True)["input_ids"]
        cont_ids = continuation_token_ids(
            context_ids, whole_ids, tokenizer(continuation, add_special_tokens=False)["input_ids"]
        )
        if not cont_ids:
            return 0.0, True
        input_ids = torch.tensor([context_ids + cont_ids], device=self.device)
        pixels = None
        if with_video:
            pixels = self.processor.preprocess_video(frames)[None].to(self.device, self.model.dtype)
        logits = self.model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values_videos=pixels,
            logits_to_keep=len(cont_ids) + 1,
        ).logits[0, :-1].float()
        targets = input_ids[0, -len(cont_ids) :]
        log_probs = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None])[:, 0]
        greedy = bool((logits.argmax(dim=-1) == targets).all())
        return float(-log_probs.sum()), greedy

    def loglikelihood(self, requests: list[Instance]) -> list[GenerationResult]:
        """Per request ``(negative log-likelihood of the continuation, is_greedy)``.

        lmms-eval 0.7.3 picks a multiple-choice answer with ``argmin`` over this first element (its
        built-in models return a loss), so it is the summed negative log-probability of the
        continuation's tokens: the choice the model finds most likely has the smallest value.

        The pair travels inside a ``GenerationResult``: lmms-eval 0.7.3's ``unwrap_generation_output``
        turns a bare ``(float, bool)`` tuple into its ``str()``, which breaks its multiple-choice scoring,
        while it passes a ``GenerationResult``'s payload through unchanged.
        """
        results = []
        for request in tqdm(requests, disable=self.rank != 0, desc="mashvlm"):
            context, target, doc_to_visual, doc_id, task, split = request.args
            continuation = target if isinstance(target, str) else str(target(self._doc(task, split, doc_id)))
            frames = self._frames(doc_to_visual, task, split, doc_id)
            pair = self._continuation_nll(ChatTurns(context), frames, continuation)
            results.append(GenerationResult(text=pair))  # type: ignore[arg-type]
        return results

    # -- multi-round --------------------------------------------------------------------------------
    def generate_until_multi_round(self, requests: list[Instance]) -> list[list[str]]:
        """One conversation per request: the first round asks the context; each later round's question
        (and visuals, and the end signal) comes from the task's ``doc_to_text(doc, previous_output=...,
        round_idx=..., previous_round_info=...)``. Earlier rounds stay in the prompt as chat history."""
        results = []
        for request in tqdm(requests, disable=self.rank != 0, desc="mashvlm"):
            context, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split = request.args
            max_new_tokens, until, options = self._generation_options(gen_kwargs, False)
            frames = self._frames(doc_to_visual, task, split, doc_id)
            doc = self._doc(task, split, doc_id)
            history: list[tuple[str, str]] = []
            outputs: list[str] = []
            round_info = None
            round_idx = 0
            while True:
                if round_idx > 0:
                    visuals, context, done, outputs, round_info = doc_to_text(
                        doc, previous_output=list(outputs), round_idx=round_idx, previous_round_info=round_info
                    )
                    outputs = list(outputs)
                    if done:
                        break
                    if _flatten(visuals):
                        frames = self._frames_of(_flatten(visuals), (task, split, doc_id, round_idx))
                turns = ChatTurns(context, history=tuple(history))
                answer = truncate_at_stop(self._generate([turns], [frames], max_new_tokens, options)[0], until).strip()
                history.append((context, answer))
                outputs.append(answer)
                round_idx += 1
            results.append(outputs)
        return results


__all__ = ["MashVlmLmms"]
