"""Judging open-ended answers (paper section 4.2).

A description is scored 0-5 separately for its action and for its scene, against the ground-truth
labels (scene-only videos: ground-truth action "no action", action only).

* :class:`OpenAIJudge`: any OpenAI-compatible chat endpoint (the paper used GPT-3.5), temperature 0 and
  a fixed seed, every reply cached on disk by endpoint, judge model and prompt, retried by the
  ``openai`` client and bounded in time (:mod:`mashvlm.unscene.chat`). A judgment that still fails or
  never parses is *missing*: reported and left out of the mean, never scored 0. Its scores count as
  comparable with the paper's only for a ``gpt-`` judge model.
* :class:`LexicalJudge`: needs no server and no model. It checks whether the ground-truth label (or a
  synonym) and the hallucination candidates are mentioned. Its numbers are labelled
  ``"offline-lexical (not comparable to GPT-judge scores)"`` and must not be put beside the paper's.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mashvlm.unscene.chat import ChatClient, ChatError, Message, ResponseCache, cached_complete

NO_ACTION = "no action"
LEXICAL_JUDGE_NAME = "offline-lexical (not comparable to GPT-judge scores)"


@dataclass(frozen=True)
class Judgment:
    """One aspect score. ``score`` is None when the judgment failed (``error`` says why)."""

    score: float | None
    cached: bool = False
    error: str | None = None
    attempts: int = 0


class Judge(Protocol):
    """Scores one aspect ("action" or "scene") of a description against the ground-truth label."""

    name: str  # written into the results (the judge model name)
    comparable: bool  # whether numbers are comparable with the paper's GPT-judge numbers

    def judge(
        self, aspect: str, ground_truth: str, prediction: str, hallucinated: Sequence[str] = ()
    ) -> Judgment: ...


# --------------------------------------------------------------------------------------------------
# OpenAI-compatible judge

# Modelled on the Video-ChatGPT evaluation prompts the paper follows ([35]), split by aspect.
JUDGE_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating video descriptions for hallucination. "
    "You are given the correct {aspect} label of a video and a model's description of the video. "
    "Your task is to judge how well the description identifies the {aspect}.\n"
    "------\n"
    "##INSTRUCTIONS:\n"
    "- Focus only on the {aspect}; ignore every other part of the description.\n"
    "- Synonyms and paraphrases of the correct label count as correct.\n"
    "- A description that states a different {aspect} than the correct one is hallucinating and must "
    "get a low score, even if it is otherwise detailed.\n"
    "- If the correct action is 'no action', the video shows no people at all: a description that "
    "reports a person or an action is hallucinating.\n"
)
JUDGE_USER = (
    "Please evaluate the following video description:\n\n"
    "Correct {aspect}: {ground_truth}\n"
    "Description: {prediction}\n\n"
    "Provide your evaluation as an integer score between 0 and 5, where 5 means the description "
    "identifies the correct {aspect} exactly and mentions no wrong {aspect}, and 0 means it gets the "
    "{aspect} entirely wrong. Generate the response in the form of a JSON object with the key 'score', "
    'for example {{"score": 3}}. DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION.'
)


def judge_messages(aspect: str, ground_truth: str, prediction: str) -> list[Message]:
    if aspect not in ("action", "scene"):
        raise ValueError(f"aspect must be 'action' or 'scene', got {aspect!r}")
    return [
        {"role": "system", "content": JUDGE_SYSTEM.format(aspect=aspect)},
        {
            "role": "user",
            "content": JUDGE_USER.format(aspect=aspect, ground_truth=ground_truth, prediction=prediction),
        },
    ]


def parse_score(text: str) -> float:
    """The 0-5 score from a judge reply: ``{"score": 4}``, ``{'score': 4}`` or ``score: 4``.

    Raises ValueError (the client then asks again) when there is no score in range.
    """
    match = re.search(r"\{.*?\}", text, re.DOTALL)
    value: object = None
    if match:
        for loader in (json.loads, ast.literal_eval):
            try:
                obj = loader(match.group(0))
            except (ValueError, SyntaxError):
                continue
            if isinstance(obj, dict):
                value = obj.get("score")
                break
    if value is None:
        found = re.search(r"score['\"]?\s*[:=]\s*['\"]?(\d+(?:\.\d+)?)", text, re.IGNORECASE)
        if found:
            value = found.group(1)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"no score in judge reply {text[:200]!r}")
    if not 0 <= value <= 5:
        raise ValueError(f"judge score {value} is outside 0-5")
    return float(value)


def is_paper_judge_family(model: str) -> bool:
    """True for the paper's judge family, OpenAI GPT models (``gpt-...``), whatever endpoint serves them."""
    return model.strip().lower().startswith("gpt-")


class OpenAIJudge:
    """GPT-style judge through an OpenAI-compatible endpoint, with a disk cache.

    ``comparable`` (with the paper's GPT-judge numbers) is true only when the judge model is a GPT
    model (name starting with ``gpt-``); any other model behind the endpoint, e.g. a local model
    served by vLLM, gives numbers that are not comparable.
    """

    def __init__(self, client: ChatClient, cache: ResponseCache | None = None):
        self.client = client
        self.cache = cache
        self.name = client.settings.model
        self.comparable = is_paper_judge_family(self.name)

    def judge(
        self, aspect: str, ground_truth: str, prediction: str, hallucinated: Sequence[str] = ()
    ) -> Judgment:
        messages = judge_messages(aspect, ground_truth, prediction)
        try:
            score, cached = cached_complete(self.client, self.cache, messages, parse_score)
        except ChatError as err:
            return Judgment(None, error=str(err), attempts=err.attempts)
        return Judgment(float(score), cached=cached)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Offline lexical judge

_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "with",
        "and",
        "or",
        "for",
        "from",
        "by",
        "into",
        "onto",
        "some",
        "someone",
        "person",
        "people",
        "is",
        "are",
    ]
)
_ABSENCE = re.compile(
    r"\b(no (?:one|people|person|persons|humans?|individuals?|players?|action|activity|movement|"
    r"visible (?:people|person|humans?))|nobody|empty|unoccupied|deserted|devoid of|without (?:any )?"
    r"(?:people|persons?|humans?)|there (?:is|are) no (?:one|people|person|humans?))\b",
    re.IGNORECASE,
)
_PERSON = re.compile(
    r"\b(person|people|man|men|woman|women|boy|girl|child|children|kids?|player|players|someone|"
    r"somebody|individual|athlete|crowd|team|teams|human|humans|guy|lady)\b",
    re.IGNORECASE,
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    # "dunk(ing)", "danc(e|ing)": drop a final e and fold doubled consonants ("running" -> "run").
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]
    return word


def _tokens(text: str) -> list[str]:
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower().replace("_", " "))]


def _content(label: str) -> set[str]:
    return {t for t in _tokens(label) if t not in _STOPWORDS} or set(_tokens(label))


def _coverage(label: str, text_tokens: set[str]) -> float:
    words = _content(label)
    return len(words & text_tokens) / len(words) if words else 0.0


class LexicalJudge:
    """Server-free judge: label mentions mapped to 0-5. Not comparable with GPT-judge scores.

    For an action or scene label, with ``c`` the fraction of the label's content words found in the
    description (crudely stemmed) and ``h`` whether any hallucination candidate is fully mentioned
    (without also being covered by the ground truth):

    ====================  =========  =========
    ground truth          h = False  h = True
    ====================  =========  =========
    fully mentioned       5          3
    half or more          3          2
    less than half        1          0
    ====================  =========  =========

    For "no action" (scene-only videos): 5 if the description says the scene is empty / has no
    people and mentions neither a person nor a candidate action; 3 if it mentions none of those but
    does not say so either; 2 if it says empty but also mentions people or a candidate action; 1 if
    it mentions people; 0 if it mentions a candidate action without saying the scene is empty.
    """

    comparable = False
    name = LEXICAL_JUDGE_NAME

    def __init__(self, synonyms: Mapping[str, Sequence[str]] | None = None):
        self.synonyms = {k.strip().lower(): list(v) for k, v in (synonyms or {}).items()}

    def _variants(self, label: str) -> list[str]:
        return [label, *self.synonyms.get(label.strip().lower(), [])]

    def judge(
        self, aspect: str, ground_truth: str, prediction: str, hallucinated: Sequence[str] = ()
    ) -> Judgment:
        text_tokens = set(_tokens(prediction))
        gt_variants = self._variants(ground_truth)
        gt_words = set().union(*(_content(v) for v in gt_variants))
        # A candidate counts only if it says something the ground truth does not ("soccer field" vs
        # ground truth "soccer field at night" is not a hallucination).
        hallucinated_hit = any(
            _coverage(h, text_tokens) == 1.0 and not _content(h) <= gt_words
            for cand in hallucinated
            for h in self._variants(cand)
        )
        if aspect == "action" and ground_truth.strip().lower() == NO_ACTION:
            says_empty = bool(_ABSENCE.search(prediction))
            mentions_person = bool(_PERSON.search(_ABSENCE.sub(" ", prediction)))
            if hallucinated_hit and not says_empty:
                score = 0
            elif says_empty:
                score = 2 if (mentions_person or hallucinated_hit) else 5
            else:
                score = 1 if mentions_person else 3
            return Judgment(float(score))
        coverage = max(_coverage(v, text_tokens) for v in gt_variants)
        if coverage == 1.0:
            score = 3 if hallucinated_hit else 5
        elif coverage >= 0.5:
            score = 2 if hallucinated_hit else 3
        else:
            score = 0 if hallucinated_hit else 1
        return Judgment(float(score))


def load_synonyms(path: str) -> dict[str, list[str]]:
    """A JSON object mapping a label to a list of synonyms, for :class:`LexicalJudge`."""
    from mashvlm.errors import FormatError

    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    except json.JSONDecodeError as err:
        raise FormatError(path, err.lineno, None, f"not valid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise FormatError(path, None, None, "expected a JSON object {label: [synonym, ...]}")
    for key, value in data.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FormatError(path, None, key, "must be a list of strings")
    return data
