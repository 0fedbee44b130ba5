"""VCG-Bench, Video-ChatGPT's video-based generative performance benchmark (paper Table 3).

Question sets in their released JSON format: ``generic_qa.json`` and ``temporal_qa.json`` are lists of
``{"video_name", "Q", "A"}``; ``consistency_qa.json`` a list of ``{"video_name", "Q1", "Q2", "A"}``.
Criteria: correctness (CI), detail orientation (DO) and context (CU) on the generic set, temporal (TU)
on the temporal set, consistency (CO) on the consistency set, each judged 0-5.

The judge prompts are quoted from ``quantitative_evaluation/evaluate_benchmark_{1..5}_*.py`` in
mbzuai-oryx/Video-ChatGPT (read at commit 69ea1db), typos included (they are the protocol).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mashvlm.errors import FormatError

from .common import EvalItem, VideoRef, format_table, read_json_list
from .judge import literal_dict, parse_score_value
from .model import ChatPrompt

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")  # run_inference_benchmark_*.py's video_formats
CRITERIA = ("CI", "DO", "CU", "TU", "CO")  # Table 3's columns

_USER_HEAD = "Please evaluate the following video-based question-answer pair:\n\n"
_TAIL = (
    "Please generate the response in the form of a Python dictionary string with keys 'score', where its "
    "value is {what} in INTEGER, not STRING."
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
    "For example, your response should look like this: {{''score': 4.8}}."
)

_SYSTEM = {
    "CI": (
        "You are an intelligent chatbot designed for evaluating the factual accuracy of generative outputs for "
        "video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if they are factually "
        "consistent. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the factual consistency between the predicted answer and the correct answer. The predicted "
        "answer should not contain any misinterpretations or misinformation.\n"
        "- The predicted answer must be factually accurate and align with the video content.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Evaluate the factual accuracy of the prediction compared to the answer."
    ),
    "DO": (
        "You are an intelligent chatbot designed for evaluating the detail orientation of generative outputs for "
        "video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine its level of detail, "
        "considering both completeness and specificity. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Check if the predicted answer covers all major points from the video. The response should not leave "
        "out any key aspects.\n"
        "- Evaluate whether the predicted answer includes specific details rather than just generic points. It "
        "should provide comprehensive information that is tied to specific elements of the video.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Provide a single evaluation score that reflects the level of detail orientation of the prediction, "
        "considering both completeness and specificity."
    ),
    "CU": (
        "You are an intelligent chatbot designed for evaluating the contextual understanding of generative "
        "outputs for video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if the generated "
        "response aligns with the overall context of the video content. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Evaluate whether the predicted answer aligns with the overall context of the video content. It should "
        "not provide information that is out of context or misaligned.\n"
        "- The predicted answer must capture the main themes and sentiments of the video.\n"
        "- Consider synonyms or paraphrases as valid matches.\n"
        "- Provide your evaluation of the contextual understanding of the prediction compared to the answer."
    ),
    "TU": (
        "You are an intelligent chatbot designed for evaluating the temporal understanding of generative outputs "
        "for video-based question-answer pairs. "
        "Your task is to compare the predicted answer with the correct answer and determine if they correctly "
        "reflect the temporal sequence of events in the video content. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the temporal consistency between the predicted answer and the correct answer. The predicted "
        "answer should correctly reflect the sequence of events or details as they are presented in the video "
        "content.\n"
        "- Consider synonyms or paraphrases as valid matches, but only if the temporal order is maintained.\n"
        "- Evaluate the temporal accuracy of the prediction compared to the answer."
    ),
    "CO": (
        "You are an intelligent chatbot designed for evaluating the consistency of generative outputs for similar "
        "video-based question-answer pairs. "
        "You will be given two very similar questions, a common answer common to both the questions and predicted "
        "answers for the two questions ."
        "Your task is to compare the predicted answers for two very similar question, with a common correct "
        "answer and determine if they are consistent. Here's how you can accomplish the task:"
        "------"
        "##INSTRUCTIONS: "
        "- Focus on the consistency between the two predicted answers and the correct answer. Both predicted "
        "answers should correspond to the correct answer and to each other, and should not contain any "
        "contradictions or significant differences in the conveyed information.\n"
        "- Both predicted answers must be consistent with each other and the correct answer, in terms of the "
        "information they provide about the video content.\n"
        "- Consider synonyms or paraphrases as valid matches, but only if they maintain the consistency in the "
        "conveyed information.\n"
        "- Evaluate the consistency of the two predicted answers compared to the correct answer."
    ),
}

_ASK = {
    "CI": ("Provide your evaluation only as a factual accuracy score where the factual accuracy score is an "
           "integer value between 0 and 5, with 5 indicating the highest level of factual consistency. ",
           "the factual accuracy score"),
    "DO": ("Provide your evaluation only as a detail orientation score where the detail orientation score is an "
           "integer value between 0 and 5, with 5 indicating the highest level of detail orientation. ",
           "the detail orientation score"),
    "CU": ("Provide your evaluation only as a contextual understanding score where the contextual understanding "
           "score is an integer value between 0 and 5, with 5 indicating the highest level of contextual "
           "understanding. ", "contextual understanding score"),
    "TU": ("Provide your evaluation only as a temporal accuracy score where the temporal accuracy score is an "
           "integer value between 0 and 5, with 5 indicating the highest level of temporal consistency. ",
           "the temporal accuracy score"),
    "CO": ("Provide your evaluation only as a consistency score where the consistency score is an integer value "
           "between 0 and 5, with 5 indicating the highest level of consistency. ", "the consistency score"),
}


def judge_messages(criterion: str, question: str, answer: str, pred: str) -> list[dict[str, str]]:
    """The messages of ``evaluate_benchmark_{1..4}`` for CI, DO, CU or TU."""
    ask, what = _ASK[criterion]
    user = (_USER_HEAD + f"Question: {question}\n" f"Correct Answer: {answer}\n" f"Predicted Answer: {pred}\n\n"
            + ask + _TAIL.format(what=what))
    return [{"role": "system", "content": _SYSTEM[criterion]}, {"role": "user", "content": user}]


def consistency_messages(question1: str, question2: str, answer: str, pred1: str, pred2: str) -> list[dict[str, str]]:
    """The messages of ``evaluate_benchmark_5_consistency.py``. Note: that script fills ``Question 2``
    with ``sample['Q1']`` (a bug of the reference); :func:`score_consistency` passes Q1 twice to match."""
    ask, what = _ASK["CO"]
    user = (_USER_HEAD + f"Question 1: {question1}\n" f"Question 2: {question2}\n" f"Correct Answer: {answer}\n"
            f"Predicted Answer to Question 1: {pred1}\n" f"Predicted Answer to Question 2: {pred2}\n\n"
            + ask + _TAIL.format(what=what))
    return [{"role": "system", "content": _SYSTEM["CO"]}, {"role": "user", "content": user}]


def parse_judgment(text: str) -> int:
    """``int(ast.literal_eval(reply)['score'])``, in 0-5; ValueError when unusable (recorded missing)."""
    reply = literal_dict(text)
    if "score" not in reply:
        raise ValueError(f"judge reply has no 'score': {text[:200]!r}")
    return parse_score_value(reply["score"])


# --- data ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VcgSample:
    item_id: str  # "generic/3", "consistency/5/q2"
    video_name: str
    question: str
    answer: str


def find_video(video_dir: str | os.PathLike[str], video_name: str,
               extensions: Sequence[str] = VIDEO_EXTENSIONS) -> str:
    """The first ``video_dir/video_name{ext}`` that exists (the reference's lookup); else the ``.mp4`` path
    (recorded as a missing video when answered)."""
    for ext in extensions:
        candidate = os.path.join(video_dir, f"{video_name}{ext}")
        if os.path.exists(candidate):
            return candidate
    return os.path.join(video_dir, f"{video_name}{extensions[0]}")


def _read_list(path: Path, keys: Sequence[str]) -> list[Mapping[str, Any]]:
    data = read_json_list(path, missing="no such question file")
    for i, entry in enumerate(data):
        if not isinstance(entry, Mapping):
            raise FormatError(path, None, f"[{i}]", "each entry must be an object")
        for key in keys:
            if not isinstance(entry.get(key), (str, int)):
                raise FormatError(path, None, f"[{i}].{key}", f"needs {key!r}")
    return data


def load_general(path: Path, kind: str) -> list[VcgSample]:
    """``generic_qa.json`` / ``temporal_qa.json``."""
    return [VcgSample(f"{kind}/{i}", str(e["video_name"]), str(e["Q"]), str(e["A"]))
            for i, e in enumerate(_read_list(path, ("video_name", "Q", "A")))]


def load_consistency(path: Path) -> list[tuple[VcgSample, VcgSample]]:
    """``consistency_qa.json``: a pair of samples (Q1, Q2) per entry."""
    pairs = []
    for i, e in enumerate(_read_list(path, ("video_name", "Q1", "Q2", "A"))):
        name, answer = str(e["video_name"]), str(e["A"])
        pairs.append((VcgSample(f"consistency/{i}/q1", name, str(e["Q1"]), answer),
                      VcgSample(f"consistency/{i}/q2", name, str(e["Q2"]), answer)))
    return pairs


def items_for(samples: Sequence[VcgSample], video_dir: str | os.PathLike[str]) -> list[EvalItem]:
    """One plain question per sample (the model's own system prompt, no prefix)."""
    return [EvalItem(s.item_id, VideoRef(find_video(video_dir, s.video_name)), ChatPrompt(s.question))
            for s in samples]


def aggregate(scores: Mapping[str, Sequence[int | None]]) -> dict[str, Any]:
    """Mean score per criterion over the judged samples (missing judgments excluded and counted) and the
    average of the five means (Table 3's ``Avg.``)."""
    out: dict[str, Any] = {"scores": {}, "judged": {}, "missing": {}}
    for c in CRITERIA:
        values = scores.get(c, [])
        judged = [v for v in values if v is not None]
        out["scores"][c] = sum(judged) / len(judged) if judged else None
        out["judged"][c] = len(judged)
        out["missing"][c] = len(values) - len(judged)
    present = [v for v in out["scores"].values() if v is not None]
    out["average"] = sum(present) / len(present) if len(present) == len(CRITERIA) else None
    return out


def table(model_name: str, result: Mapping[str, Any]) -> str:
    """Table 3's layout: ``Method  CI  DO  CU  TU  CO  Avg.`` (two decimals)."""
    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    row = [model_name, *(fmt(result["scores"][c]) for c in CRITERIA), fmt(result["average"])]
    return format_table(["Method", *CRITERIA, "Avg."], [row])
