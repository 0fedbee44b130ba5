"""Zero-shot open-ended video QA (paper Table 4): MSRVTT-QA, MSVD-QA, TGIF-QA, ActivityNet-QA.

Input format: the zero-shot QA release used by Video-ChatGPT's ``run_inference_activitynet_qa.py`` (and
Video-LLaVA's copies for the other sets): ``test_q.json``, a list of ``{"video_name", "question",
"question_id"}``, and ``test_a.json``, a list of ``{"answer", "type", "question_id"}``. Answers are paired
with questions by ``question_id`` (the reference pairs them by an index it never advances). Videos are
``video_dir/{prefix}{video_name}{ext}``; ActivityNet's files carry a ``v_`` prefix, TGIF's are gifs.

Judge: the prompt of ``quantitative_evaluation/evaluate_activitynet_qa.py`` (mbzuai-oryx/Video-ChatGPT,
commit 69ea1db), quoted exactly; accuracy = yes / (yes + no), score = mean of ``int(score)``.
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
from .vcg import find_video

DATASETS = ("msrvtt", "msvd", "tgif", "activitynet")  # Table 4's column order
TABLE_NAMES = {"msrvtt": "MSRVTT-QA", "msvd": "MSVD-QA", "tgif": "TGIF-QA", "activitynet": "ActivityNet-QA"}
DEFAULT_PREFIX = {"activitynet": "v_"}
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")

QA_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative outputs for "
    "question-answer pairs. "
    "Your task is to compare the predicted answer with the correct answer and determine if they match "
    "meaningfully. Here's how you can accomplish the task:"
    "------"
    "##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)


def judge_messages(question: str, answer: str, pred: str) -> list[dict[str, str]]:
    user = (
        "Please evaluate the following video-based question-answer pair:\n\n"
        f"Question: {question}\n"
        f"Correct Answer: {answer}\n"
        f"Predicted Answer: {pred}\n\n"
        "Provide your evaluation only as a yes/no and score where the score is an integer value between 0 and 5, "
        "with 5 indicating the highest meaningful match. "
        "Please generate the response in the form of a Python dictionary string with keys 'pred' and 'score', "
        "where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is in INTEGER, not STRING."
        "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary string. "
        "For example, your response should look like this: {'pred': 'yes', 'score': 4.8}."
    )
    return [{"role": "system", "content": QA_SYSTEM}, {"role": "user", "content": user}]


def parse_judgment(text: str) -> tuple[bool, int]:
    """``(correct, score)``. As the reference: ``"yes" in pred.lower()`` first, then ``"no"``; a reply
    with neither (the reference leaves it out of the accuracy) is unusable here: recorded missing."""
    reply = literal_dict(text)
    pred, score = reply.get("pred"), reply.get("score")
    if not isinstance(pred, str):
        raise ValueError(f"judge reply has no string 'pred': {text[:200]!r}")
    if "yes" in pred.lower():
        correct = True
    elif "no" in pred.lower():
        correct = False
    else:
        raise ValueError(f"judge 'pred' is neither yes nor no: {pred!r}")
    if score is None:
        raise ValueError(f"judge reply has no 'score': {text[:200]!r}")
    return correct, parse_score_value(score)


@dataclass(frozen=True)
class QaSample:
    item_id: str
    video_name: str
    question: str
    answer: str


def load_qa(questions_path: Path, answers_path: Path) -> list[QaSample]:
    questions, answers = read_json_list(questions_path), read_json_list(answers_path)
    by_id: dict[str, str] = {}
    for i, a in enumerate(answers):
        if not isinstance(a, Mapping) or "question_id" not in a or not isinstance(a.get("answer"), (str, int)):
            raise FormatError(answers_path, None, f"[{i}]", "needs 'question_id' and 'answer'")
        by_id[str(a["question_id"])] = str(a["answer"])
    samples = []
    for i, q in enumerate(questions):
        if not isinstance(q, Mapping) or not all(k in q for k in ("video_name", "question", "question_id")):
            raise FormatError(questions_path, None, f"[{i}]", "needs 'video_name', 'question' and 'question_id'")
        qid = str(q["question_id"])
        if qid not in by_id:
            raise FormatError(answers_path, None, None, f"no answer for question_id {qid!r}")
        samples.append(QaSample(qid, str(q["video_name"]), str(q["question"]), by_id[qid]))
    return samples


def items_for(samples: Sequence[QaSample], video_dir: str | os.PathLike[str], prefix: str = "") -> list[EvalItem]:
    return [EvalItem(s.item_id, VideoRef(find_video(video_dir, prefix + s.video_name, VIDEO_EXTENSIONS)),
                     ChatPrompt(s.question)) for s in samples]


def aggregate(judgments: Sequence[tuple[bool, int] | None]) -> dict[str, Any]:
    """Accuracy (%) = yes / (yes + no) and mean score over the judged samples; missing ones counted."""
    judged = [j for j in judgments if j is not None]
    yes = sum(1 for c, _ in judged if c)
    return {
        "accuracy": 100.0 * yes / len(judged) if judged else None,
        "score": sum(s for _, s in judged) / len(judged) if judged else None,
        "yes": yes,
        "no": len(judged) - yes,
        "judged": len(judged),
        "missing": len(judgments) - len(judged),
    }


def table(model_name: str, results: Mapping[str, Mapping[str, Any]]) -> str:
    """Table 4's layout: per dataset ``Acc`` (one decimal) and ``Score`` (one decimal)."""
    header = ["Method"]
    row = [model_name]
    for name in DATASETS:
        if name not in results:
            continue
        r = results[name]
        header += [f"{TABLE_NAMES[name]} Acc", f"{TABLE_NAMES[name]} Score"]
        row += ["-" if r["accuracy"] is None else f"{r['accuracy']:.1f}",
                "-" if r["score"] is None else f"{r['score']:.1f}"]
    return format_table(header, [row])
