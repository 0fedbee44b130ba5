"""Prompts of the lmms-eval adapter: the task's text in MASH-VLM's Vicuna v1 template, and MVBench's
VideoChat2 protocol.

lmms-eval's ``mvbench`` task asks ``"Question:{q}\\nOption:\\n(A) ...\\nOnly give the best option.\\n"`` with
no system prompt and no prefilled answer, and generates 16 tokens. The MASH-VLM paper reports MVBench
under VideoChat2's protocol (``video_chat2/mvbench.ipynb`` in OpenGVLab/Ask-Anything): a system prompt
that is also prefixed to the question, ``"Question: {q}\\nOptions:\\n(A) ..."`` + ``"\\nOnly give the best
option."``, the answer prefilled with ``"Best option:("``, greedy decoding of at most 100 tokens, and the
prediction ``"(" + first line``. :func:`videochat2_mvbench_prompt` rebuilds that prompt from the task's
document; the prediction keeps the ``"(X) text"`` form, which lmms-eval's own MVBench scorer reads.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Quoted from mvbench.ipynb (the same strings as mashvlm.evaluation.mvbench).
MVBENCH_SYSTEM_PROMPT = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the "
    "best option that accurately addresses the question.\n"
)
MVBENCH_QUESTION_PROMPT = "\nOnly give the best option."
MVBENCH_ANSWER_PROMPT = "Best option:("
MVBENCH_RETURN_PROMPT = "("
MVBENCH_MAX_NEW_TOKENS = 100

# Values of the ``mvbench_prompt`` model argument.
MVBENCH_PROMPTS = ("videochat2", "lmms_eval")


@dataclass(frozen=True)
class ChatTurns:
    """A conversation to continue: earlier ``(question, answer)`` turns, the current question, the system
    prompt (None: the checkpoint's own) and the start of the answer the model continues from."""

    question: str
    history: tuple[tuple[str, str], ...] = ()
    system: str | None = None
    answer_prefix: str = ""


def prompt_text(processor: Any, turns: ChatTurns, *, with_video: bool) -> str:
    """The Vicuna v1 prompt of a MASH-VLM processor; the ``<video>`` marker opens the first user turn."""
    from mashvlm.modeling.processing_mash_vlm import vicuna_v1_prompt

    questions = [q for q, _ in turns.history] + [turns.question]
    answers: list[str | None] = [a for _, a in turns.history] + [None]
    if with_video:
        questions[0] = f"{processor.video_token}\n{questions[0]}"
    system = processor.system_prompt if turns.system is None else turns.system
    text = vicuna_v1_prompt(list(zip(questions, answers, strict=True)), system, processor.tokenizer.eos_token or "</s>")
    return text + (f" {turns.answer_prefix}" if turns.answer_prefix else "")


def is_mvbench_task(task: str) -> bool:
    """lmms-eval's MVBench subtasks are named ``mvbench_<subtask>`` (group ``mvbench``)."""
    return task == "mvbench" or task.startswith("mvbench_")


def mvbench_options_text(question: str, candidates: Sequence[str]) -> str:
    """VideoChat2's ``qa_template`` layout: ``"Question: q\\nOptions:\\n(A) c1\\n(B) c2"``."""
    lines = [f"Question: {question}", "Options:"]
    lines += [f"({string.ascii_uppercase[i]}) {c}" for i, c in enumerate(candidates)]
    return "\n".join(lines)


def videochat2_mvbench_prompt(doc: Mapping[str, Any]) -> ChatTurns:
    """The VideoChat2 MVBench prompt (``system_llm=True``) for an MVBench document (``question``,
    ``candidates``); a document without them is a :class:`ValueError` naming the missing field."""
    missing = [k for k in ("question", "candidates") if k not in doc]
    if missing:
        raise ValueError(f"MVBench document lacks {missing} (fields: {sorted(doc)}); "
                         "use mvbench_prompt=lmms_eval for a task of another layout")
    candidates = list(doc["candidates"])
    if not 1 <= len(candidates) <= len(string.ascii_uppercase):
        raise ValueError(f"MVBench document has {len(candidates)} candidates")
    question = MVBENCH_SYSTEM_PROMPT + mvbench_options_text(str(doc["question"]), candidates)
    return ChatTurns(question + MVBENCH_QUESTION_PROMPT, system=MVBENCH_SYSTEM_PROMPT,
                     answer_prefix=MVBENCH_ANSWER_PROMPT)


def videochat2_mvbench_answer(output: str) -> str:
    """``"(" + first line``: the continuation after ``"Best option:("`` made a full ``"(X) text"`` answer."""
    return MVBENCH_RETURN_PROMPT + output.strip().split("\n")[0]


def truncate_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string (lmms-eval's ``until``)."""
    cut = len(text)
    for stop in until:
        if stop:
            at = text.find(stop)
            if at != -1:
                cut = min(cut, at)
    return text[:cut]


def continuation_token_ids(context_ids: list[int], whole_ids: list[int], continuation_ids: list[int]) -> list[int]:
    """Token ids of the continuation, as tokenised after its context.

    ``whole_ids`` tokenises context + continuation together; when it starts with ``context_ids`` the
    rest is the continuation as the model reads it in place. If the tokeniser merged across the
    boundary, the separately tokenised ``continuation_ids`` are used instead (as lm-eval does), so the
    context the model conditions on is always exactly ``context_ids``.
    """
    if whole_ids[: len(context_ids)] == context_ids:
        return whole_ids[len(context_ids) :]
    return continuation_ids


__all__ = [
    "ChatTurns",
    "MVBENCH_ANSWER_PROMPT",
    "MVBENCH_MAX_NEW_TOKENS",
    "MVBENCH_PROMPTS",
    "MVBENCH_QUESTION_PROMPT",
    "MVBENCH_SYSTEM_PROMPT",
    "continuation_token_ids",
    "is_mvbench_task",
    "mvbench_options_text",
    "prompt_text",
    "truncate_at_stop",
    "videochat2_mvbench_answer",
    "videochat2_mvbench_prompt",
]
