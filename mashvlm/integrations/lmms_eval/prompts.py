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

from mashvlm.evaluation import mvbench

# The protocol's strings live once, in mashvlm.evaluation.mvbench (quoted from mvbench.ipynb).
MVBENCH_SYSTEM_PROMPT = mvbench.SYSTEM_PROMPT
MVBENCH_QUESTION_PROMPT = mvbench.QUESTION_PROMPT
MVBENCH_ANSWER_PROMPT = mvbench.ANSWER_PROMPT
MVBENCH_MAX_NEW_TOKENS = mvbench.MAX_NEW_TOKENS

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
    """The checkpoint's chat-template prompt; the video opens the first user turn."""
    messages: list[dict] = []
    if turns.system is not None:
        messages.append({"role": "system", "content": turns.system})
    questions = [q for q, _ in turns.history] + [turns.question]
    answers = [a for _, a in turns.history]
    for i, question in enumerate(questions):
        content: list[dict] = [{"type": "text", "text": question}]
        if with_video and i == 0:
            content.insert(0, {"type": "video"})
        messages.append({"role": "user", "content": content})
        if i < len(answers):
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answers[i]}]})
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + (f" {turns.answer_prefix}" if turns.answer_prefix else "")


def is_mvbench_task(task: str) -> bool:
    """lmms-eval's MVBench subtasks are named ``mvbench_<subtask>`` (group ``mvbench``)."""
    return task == "mvbench" or task.startswith("mvbench_")


def mvbench_options_text(question: str, candidates: Sequence[str]) -> str:
    """VideoChat2's ``qa_template`` layout: ``"Question: q\\nOptions:\\n(A) c1\\n(B) c2"``."""
    return mvbench.qa_template(question, candidates, answer="")[0]


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
    prompt = mvbench.build_prompt(mvbench_options_text(str(doc["question"]), candidates))
    return ChatTurns(prompt.user, system=prompt.system, answer_prefix=prompt.answer_prefix)


def videochat2_mvbench_answer(output: str) -> str:
    """``"(" + first line``: the continuation after ``"Best option:("`` made a full ``"(X) text"`` answer."""
    return mvbench.postprocess(output)


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
