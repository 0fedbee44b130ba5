"""Zero-shot open-ended video QA (paper Table 4): MSRVTT-QA, MSVD-QA, TGIF-QA, ActivityNet-QA.

Input format: the zero-shot QA release used by Video-ChatGPT's ``run_inference_activitynet_qa.py`` (and
Video-LLaVA's copies for the other sets): ``test_q.json``, a list of ``{"video_name", "question",
"question_id"}``, and ``test_a.json``, a list of ``{"answer", "type", "question_id"}``. Answers are paired
with questions by ``question_id`` (the reference pairs them by an index it never advances). Videos are
``video_dir/{prefix}{video_name}{ext}``; ActivityNet's files carry a ``v_`` prefix, TGIF's are gifs.
The original MSRVTT-QA / MSVD-QA / TGIF-QA FrameQA files are converted to this layout by :mod:`.qa_formats`;
:func:`combine_table4` puts the four datasets' results into Table 4.

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
from .judge import PAPER_JUDGE, literal_dict, parse_score_value
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


# --- Table 4: the four datasets' results in one table ---------------------------------------------------
@dataclass(frozen=True)
class QaRunResult:
    """One dataset's numbers, read from the ``qa_{dataset}_results.json`` of an ``eval qa`` run."""

    source: str
    dataset: str
    model: str
    judge_model: str
    comparable_with_paper: bool
    accuracy: float | None
    score: float | None
    judged: int
    missing: int
    generation_failed: int
    total: int | None


def _count(data: Mapping[str, Any], key: str, path: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise FormatError(path, None, key, f"needs a count >= 0, got {value!r} (not an 'eval qa' results file?)")
    return value


def _mean(data: Mapping[str, Any], key: str, path: str, upper: float) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= upper:
        raise FormatError(path, None, key, f"needs a number in 0-{upper:g} or null, got {value!r}")
    return float(value)


def parse_qa_results(data: object, path: str) -> QaRunResult:
    """Validate one ``qa_{dataset}_results.json`` (as :func:`mashvlm.evaluation.run.evaluate_qa` writes it)."""
    if not isinstance(data, Mapping) or data.get("benchmark") != "qa":
        raise FormatError(path, None, "benchmark", "not a results file of 'mashvlm eval qa'")
    dataset = data.get("dataset")
    if dataset not in DATASETS:
        raise FormatError(path, None, "dataset", f"{dataset!r} is not one of {', '.join(DATASETS)}")
    model, judge = data.get("model"), data.get("judge")
    if not isinstance(model, str):
        raise FormatError(path, None, "model", "needs the model's name")
    if not isinstance(judge, Mapping) or not isinstance(judge.get("model"), str):
        raise FormatError(path, None, "judge.model", "needs the judge model's name")
    generation = data.get("generation")
    total = generation.get("total") if isinstance(generation, Mapping) else None
    return QaRunResult(
        source=path, dataset=dataset, model=model, judge_model=judge["model"],
        comparable_with_paper=judge.get("comparable_with_paper") is True,
        accuracy=_mean(data, "accuracy", path, 100.0), score=_mean(data, "score", path, 5.0),
        judged=_count(data, "judged", path), missing=_count(data, "missing", path),
        generation_failed=_count(data, "generation_failed", path),
        total=total if isinstance(total, int) and not isinstance(total, bool) else None)


def combine_table4(runs: Sequence[QaRunResult], *, method: str | None = None,
                   allow_mixed: bool = False) -> dict[str, Any]:
    """The numbers of Table 4 from one run per dataset (any subset of the four).

    Runs of different models or judges are not one row of the paper's table: refused (``UsageError``
    naming the files) unless ``allow_mixed``, when each difference is recorded in ``warnings``.
    """
    from mashvlm.errors import UsageError

    if not runs:
        raise UsageError("no results to combine")
    by_dataset: dict[str, QaRunResult] = {}
    for run in runs:
        if run.dataset in by_dataset:
            raise UsageError(f"two results for {TABLE_NAMES[run.dataset]}: {by_dataset[run.dataset].source} and "
                             f"{run.source}; give one per dataset")
        by_dataset[run.dataset] = run
    warnings = []
    for what, attr in (("models", "model"), ("judges", "judge_model")):
        values = {getattr(r, attr) for r in runs}
        if len(values) > 1:
            which = "; ".join(f"{r.source}: {getattr(r, attr)}" for r in runs)
            message = f"the results come from different {what} ({which})"
            if not allow_mixed:
                raise UsageError(f"{message}: they are not one row of Table 4 (--allow-mixed to combine anyway)")
            warnings.append(message)
    not_paper = [r.source for r in runs if not r.comparable_with_paper]
    if not_paper:
        judges = ", ".join(sorted({r.judge_model for r in runs if not r.comparable_with_paper}))
        warnings.append(f"the judge {judges} is not the paper's {PAPER_JUDGE}: not comparable with the paper's "
                        f"numbers ({', '.join(not_paper)})")
    datasets: dict[str, dict[str, Any] | None] = {}
    for name in DATASETS:
        r = by_dataset.get(name)
        datasets[name] = None if r is None else {
            "accuracy": r.accuracy, "score": r.score, "judged": r.judged, "missing": r.missing,
            "generation_failed": r.generation_failed, "questions": r.total, "model": r.model,
            "judge": r.judge_model, "source": r.source}
    models = sorted({r.model for r in runs})
    return {"table": "4", "method": method or " + ".join(models), "models": models,
            "judges": sorted({r.judge_model for r in runs}), "datasets": datasets,
            "missing_datasets": [TABLE_NAMES[n] for n in DATASETS if datasets[n] is None], "warnings": warnings}


def _one_decimal(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table4_text(combined: Mapping[str, Any]) -> str:
    """Table 4's layout (``Method`` then Acc and Score per dataset, '-' where there is no run), then the
    counts behind each column (questions, judged, missing judgments, failed generations) and warnings."""
    datasets = combined["datasets"]
    header, row = ["Method"], [combined["method"]]
    for name in DATASETS:
        d = datasets[name]
        header += [f"{TABLE_NAMES[name]} Acc", f"{TABLE_NAMES[name]} Score"]
        row += ["-", "-"] if d is None else [_one_decimal(d["accuracy"]), _one_decimal(d["score"])]
    counts_rows = []
    for label, key in (("questions", "questions"), ("judged", "judged"), ("missing judgments", "missing"),
                       ("generation failed", "generation_failed")):
        counts_rows.append([label] + ["-" if datasets[n] is None or datasets[n][key] is None else str(datasets[n][key])
                                      for n in DATASETS])
    text = format_table(header, [row]) + "\n" + format_table(["Counts"] + [TABLE_NAMES[n] for n in DATASETS],
                                                             counts_rows)
    return text + "".join(f"warning: {w}\n" for w in combined["warnings"])
