"""The one GPT judge of the evaluations (and UNSCENE's client): OpenAI-compatible, temperature 0,
cached, retried (:mod:`mashvlm.unscene.chat`). A failed or unparseable judgment is returned as missing
(``value=None`` with its error) and counted by the caller, never scored 0."""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mashvlm.unscene.chat import ChatClient, ChatError, Message, ResponseCache, cached_complete

PAPER_JUDGE = "gpt-3.5-turbo"  # the paper's judge for MVBench-free GPT scoring (Tables 3 and 4)


def judge_warning(model: str) -> str | None:
    """A warning when ``model`` is not the paper's judge: scores of different judges are not comparable."""
    if model.strip().lower().startswith(PAPER_JUDGE):
        return None
    return (f"the judge model is {model!r}, not the paper's {PAPER_JUDGE!r}: these scores are not comparable "
            "with the paper's tables")


def literal_dict(text: str) -> dict[str, Any]:
    """The judge reply as Video-ChatGPT reads it: ``ast.literal_eval`` of a Python dict string (literals
    only, nothing is executed). Raises ValueError for anything else."""
    try:
        value = ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as err:
        raise ValueError(f"judge reply is not a Python dict literal: {text[:200]!r}") from err
    if not isinstance(value, dict):
        raise ValueError(f"judge reply is not a dict: {text[:200]!r}")
    return value


def parse_score_value(value: object) -> int:
    """Video-ChatGPT's ``int(score)`` (4.8 -> 4), checked to lie in 0-5."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"score {value!r} is not a number")
    try:
        score = int(float(value)) if isinstance(value, str) else int(value)
    except (ValueError, OverflowError) as err:
        raise ValueError(f"score {value!r} is not a number") from err
    if not 0 <= score <= 5:
        raise ValueError(f"score {score} is outside 0-5")
    return score


@dataclass
class Judgment:
    value: Any | None  # the parsed judgment; None when missing
    error: str | None = None
    cached: bool = False


class EvalJudge:
    """``judge(messages, parse)``: the parsed reply, from the cache or the endpoint; missing on failure."""

    def __init__(self, client: ChatClient, cache: ResponseCache | None = None):
        self.client = client
        self.cache = cache
        self.model = client.settings.model
        self.warning = judge_warning(self.model)

    def judge(self, messages: Sequence[Message], parse: Callable[[str], object]) -> Judgment:
        try:
            value, cached = cached_complete(self.client, self.cache, messages, parse)
        except ChatError as err:
            return Judgment(None, error=str(err))
        return Judgment(value, cached=cached)

    def describe(self) -> dict[str, Any]:
        """What goes into every results file."""
        s = self.client.settings
        return {"model": self.model, "base_url": s.base_url, "temperature": s.temperature,
                "comparable_with_paper": self.warning is None, "warning": self.warning}
