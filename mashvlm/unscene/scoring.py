"""Scoring UNSCENE as the paper does (section 4.2, Table 2; DESIGN section 7).

Binary: a dual pair (ground-truth question, answer "yes"; hallucination question, answer "no")
scores 1 only if both answers are right. A category's score is the percentage of its pairs that
score; the three categories are scene-only/action, unusual/action and unusual/scene, and the
reported average is the mean of the three (so each category weighs the same, whatever its size).
Answers that cannot be parsed, failed questions and missing predictions all count as wrong.

Open-ended: each video's description is judged 0-5 for action (and for scene, unusual-context videos
only); category means and their mean, as for binary. A model failure (or a missing prediction)
scores 0: the model gave no description. A judge failure is left out of the mean and counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mashvlm.unscene.judge import NO_ACTION, Judge, Judgment
from mashvlm.unscene.parsing import parse_yes_no
from mashvlm.unscene.records import (
    ACTION,
    OPEN_ENDED,
    SCENE,
    SCENE_ONLY,
    UNUSUAL,
    Prediction,
    Question,
    iter_pairs,
)

# The three Table 2 columns, in order, and their labels.
CATEGORY_KEYS = ("scene_only_action", "unusual_action", "unusual_scene")
CATEGORY_OF = {
    (SCENE_ONLY, ACTION): "scene_only_action",
    (UNUSUAL, ACTION): "unusual_action",
    (UNUSUAL, SCENE): "unusual_scene",
}


def mean_of_categories(scores: Mapping[str, float | None]) -> float | None:
    """The reported average: the plain mean of the three category scores (None if one is missing)."""
    values = [scores.get(k) for k in CATEGORY_KEYS]
    if any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Binary


@dataclass
class AnswerCheck:
    question: Question
    prediction: Prediction | None
    parsed: str | None
    correct: bool

    @property
    def status(self) -> str:
        if self.prediction is None:
            return "missing"
        if self.prediction.failed:
            return "failed"
        if self.parsed is None:
            return "unparseable"
        return "ok"

    def to_record(self) -> dict[str, Any]:
        p = self.prediction
        return {
            "question_id": self.question.question_id,
            "question": self.question.question,
            "answer": self.question.answer,
            "prediction": p.prediction if p else None,
            "error": p.error if p else None,
            "parsed": self.parsed,
            "status": self.status,
            "correct": self.correct,
        }


@dataclass
class PairResult:
    pair_id: str
    category: str  # one of CATEGORY_KEYS
    ground_truth: AnswerCheck
    hallucination: AnswerCheck

    @property
    def correct(self) -> bool:
        return self.ground_truth.correct and self.hallucination.correct


@dataclass
class BinaryScore:
    pairs: list[PairResult]
    scores: dict[str, float | None]  # percent per category
    average: float | None
    pairs_per_category: dict[str, int]
    correct_per_category: dict[str, int]
    unparseable: int
    failed: int
    missing: int


def check_answer(question: Question, prediction: Prediction | None) -> AnswerCheck:
    parsed = None
    if prediction is not None and not prediction.failed:
        parsed = parse_yes_no(prediction.prediction)
    return AnswerCheck(question, prediction, parsed, parsed is not None and parsed == question.answer)


def score_binary(questions: Sequence[Question], predictions: Mapping[str, Prediction]) -> BinaryScore:
    """Dual-metric scores per category and their mean."""
    pairs: list[PairResult] = []
    for pair_id, gt, hal in iter_pairs(questions):
        category = CATEGORY_OF[(gt.set, gt.category)]
        pairs.append(
            PairResult(
                pair_id,
                category,
                check_answer(gt, predictions.get(gt.question_id)),
                check_answer(hal, predictions.get(hal.question_id)),
            )
        )
    n = {k: 0 for k in CATEGORY_KEYS}
    c = {k: 0 for k in CATEGORY_KEYS}
    for p in pairs:
        n[p.category] += 1
        c[p.category] += int(p.correct)
    scores = {k: (100.0 * c[k] / n[k] if n[k] else None) for k in CATEGORY_KEYS}
    checks = [a for p in pairs for a in (p.ground_truth, p.hallucination)]
    return BinaryScore(
        pairs=pairs,
        scores=scores,
        average=mean_of_categories(scores),
        pairs_per_category=n,
        correct_per_category=c,
        unparseable=sum(a.status == "unparseable" for a in checks),
        failed=sum(a.status == "failed" for a in checks),
        missing=sum(a.status == "missing" for a in checks),
    )


# --------------------------------------------------------------------------------------------------
# Open-ended


@dataclass
class OpenEndedResult:
    question: Question
    prediction: Prediction | None
    action: Judgment | None = None
    scene: Judgment | None = None  # unusual-context videos only

    @property
    def status(self) -> str:
        if self.prediction is None:
            return "missing"
        return "failed" if self.prediction.failed else "ok"

    def to_record(self) -> dict[str, Any]:
        p = self.prediction
        record: dict[str, Any] = {
            "question_id": self.question.question_id,
            "prediction": p.prediction if p else None,
            "error": p.error if p else None,
            "status": self.status,
        }
        for aspect in ("action", "scene"):
            j = getattr(self, aspect)
            if j is not None:
                record[f"{aspect}_score"] = j.score
                if j.error:
                    record[f"{aspect}_judge_error"] = j.error
        return record


@dataclass
class OpenEndedScore:
    results: list[OpenEndedResult]
    scores: dict[str, float | None]
    average: float | None
    judged_per_category: dict[str, int]
    judgments_requested: int = 0
    judgments_cached: int = 0
    judgments_missing: int = 0  # judge failed: left out of the mean, reported
    model_failures: int = 0  # failed or missing prediction: scored 0
    missing_predictions: int = 0
    judge_errors: list[str] = field(default_factory=list)


def score_open_ended(
    questions: Sequence[Question],
    predictions: Mapping[str, Prediction],
    judge: Judge,
    *,
    workers: int = 4,
    progress: bool = False,
) -> OpenEndedScore:
    """Judge every open-ended answer (concurrently, ``workers`` requests at a time)."""
    results: list[OpenEndedResult] = []
    tasks: list[tuple[OpenEndedResult, str, str, tuple[str, ...]]] = []
    for q in questions:
        if q.category != OPEN_ENDED:
            continue
        r = OpenEndedResult(q, predictions.get(q.question_id))
        results.append(r)
        aspects = [("action", q.action or NO_ACTION, q.hallucinated_actions or ())]
        if q.set == UNUSUAL:
            aspects.append(("scene", q.scene or "", q.hallucinated_scenes or ()))
        for aspect, gt, hallucinated in aspects:
            if r.status != "ok":
                setattr(r, aspect, Judgment(0.0))  # no description: counted against the model
            else:
                tasks.append((r, aspect, gt, tuple(hallucinated)))

    def run(task: tuple[OpenEndedResult, str, str, tuple[str, ...]]) -> Judgment:
        r, aspect, gt, hallucinated = task
        try:
            text = r.prediction.prediction if r.prediction is not None else None
            return judge.judge(aspect, gt, text or "", hallucinated)
        except Exception as err:  # noqa: BLE001 - a judge bug must not kill a scoring run
            return Judgment(None, error=f"{type(err).__name__}: {err}")

    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="judging", unit="judgment")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for task, judgment in zip(tasks, pool.map(run, tasks), strict=True):
            setattr(task[0], task[1], judgment)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()

    values: dict[str, list[float]] = {k: [] for k in CATEGORY_KEYS}
    for r in results:
        for aspect in ("action", "scene"):
            j = getattr(r, aspect)
            if j is not None and j.score is not None:
                values[CATEGORY_OF[(r.question.set, aspect)]].append(j.score)
    scores = {k: (statistics.fmean(v) if v else None) for k, v in values.items()}
    judgments = [j for _, j in ((t, getattr(t[0], t[1])) for t in tasks)]
    return OpenEndedScore(
        results=results,
        scores=scores,
        average=mean_of_categories(scores),
        judged_per_category={k: len(v) for k, v in values.items()},
        judgments_requested=len(tasks),
        judgments_cached=sum(j.cached for j in judgments),
        judgments_missing=sum(j.score is None for j in judgments),
        model_failures=sum(r.status != "ok" for r in results),
        missing_predictions=sum(r.status == "missing" for r in results),
        judge_errors=[j.error for j in judgments if j.error][:20],
    )


# --------------------------------------------------------------------------------------------------
# Results


def build_results(
    questions: Sequence[Question],
    predictions: Mapping[str, Prediction],
    binary: BinaryScore,
    open_ended: OpenEndedScore | None,
    *,
    judge: Judge | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """The results JSON (format documented in docs/unscene.md)."""
    considered = [q for q in questions if q.is_binary or open_ended is not None]
    failed_questions = [
        q for q in considered if (p := predictions.get(q.question_id)) is not None and p.failed
    ]
    failed_videos = sorted({q.video_id for q in failed_questions})
    binary_pairs = sum(binary.pairs_per_category.values())
    oe_questions = [q for q in questions if q.category == OPEN_ENDED]
    counts: dict[str, Any] = {
        "videos": len({q.video_id for q in questions}),
        "pairs_scored": binary_pairs,
        "pairs_per_category": dict(binary.pairs_per_category),
        "pairs_correct": dict(binary.correct_per_category),
        "binary_questions": 2 * binary_pairs,
        "unparseable_answers": binary.unparseable,
        "failed_questions": len(failed_questions),
        "failed_videos": len(failed_videos),
        "missing_predictions": binary.missing + (open_ended.missing_predictions if open_ended else 0),
        "open_ended_questions": len(oe_questions),
        "open_ended_judged": open_ended is not None,
        "judgments_requested": open_ended.judgments_requested if open_ended else 0,
        "judgments_cached": open_ended.judgments_cached if open_ended else 0,
        "failed_or_missing_judgments": open_ended.judgments_missing if open_ended else 0,
        "open_ended_model_failures": open_ended.model_failures if open_ended else 0,
    }
    oe_section: dict[str, Any] = {k: (open_ended.scores[k] if open_ended else None) for k in CATEGORY_KEYS}
    oe_section["average"] = open_ended.average if open_ended else None
    if open_ended:
        oe_section["judged_per_category"] = dict(open_ended.judged_per_category)
    return {
        "benchmark": "UNSCENE",
        "model": model_name,
        "binary": {**{k: binary.scores[k] for k in CATEGORY_KEYS}, "average": binary.average},
        "open_ended": oe_section,
        "counts": counts,
        "judge": {
            "model": judge.name if (judge and open_ended) else None,
            "comparable_to_paper": bool(judge.comparable) if (judge and open_ended) else None,
        },
        "failed_video_ids": failed_videos,
    }


def per_video_records(
    binary: BinaryScore, open_ended: OpenEndedScore | None, questions: Sequence[Question]
) -> list[dict[str, Any]]:
    """One record per video for error analysis (``--per-video``), in question-file order."""
    videos: dict[str, dict[str, Any]] = {}
    for q in questions:
        videos.setdefault(
            q.video_id,
            {
                "video_id": q.video_id,
                "video": q.video,
                "set": q.set,
                "pairs": [],
                "open_ended": None,
                "failed": False,
            },
        )
    for p in binary.pairs:
        v = videos[p.ground_truth.question.video_id]
        v["pairs"].append(
            {
                "pair_id": p.pair_id,
                "category": p.category,
                "correct": p.correct,
                "ground_truth": p.ground_truth.to_record(),
                "hallucination": p.hallucination.to_record(),
            }
        )
        v["failed"] |= "failed" in (p.ground_truth.status, p.hallucination.status)
    if open_ended is not None:
        for r in open_ended.results:
            v = videos[r.question.video_id]
            v["open_ended"] = r.to_record()
            v["failed"] |= r.status == "failed"
    return list(videos.values())


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(results: Mapping[str, Any]) -> str:
    """Table 2 of the paper, one row, followed by every count a reader needs to trust it."""
    b, o, c = results["binary"], results["open_ended"], results["counts"]
    name = results.get("model") or "model"
    width = max(16, len(name) + 2)
    cols = [b[k] for k in CATEGORY_KEYS] + [b["average"]]
    ocols = [o[k] for k in CATEGORY_KEYS] + [o["average"]]
    lines = [
        f"{'':{width}}| {'UNSCENE Binary (%)':^37} | {'UNSCENE Open-ended (0-5)':^37}",
        f"{'':{width}}| {'Scene-only':>10} {'Unusual context':>17} {'':>8} | {'Scene-only':>10} "
        f"{'Unusual context':>17} {'':>8}",
        f"{'Model':{width}}| {'Action':>10} {'Action':>8} {'Scene':>8} {'Avg.':>8} | {'Action':>10} "
        f"{'Action':>8} {'Scene':>8} {'Avg.':>8}",
        "-" * (width + 82),
        f"{name:{width}}| {_fmt(cols[0], 2):>10} {_fmt(cols[1], 2):>8} {_fmt(cols[2], 2):>8} "
        f"{_fmt(cols[3], 2):>8} | {_fmt(ocols[0], 2):>10} {_fmt(ocols[1], 2):>8} {_fmt(ocols[2], 2):>8} "
        f"{_fmt(ocols[3], 2):>8}",
        "",
        "Binary: a pair scores only if both its questions are answered right; "
        "Avg. = mean of the three columns.",
    ]
    n = c["pairs_per_category"]
    lines.append(
        f"pairs scored: {c['pairs_scored']} ({n['scene_only_action']} scene-only action, "
        f"{n['unusual_action']} unusual action, {n['unusual_scene']} unusual scene) "
        f"over {c['videos']} videos"
    )
    lines.append(f"unparseable answers: {c['unparseable_answers']} (counted as wrong)")
    lines.append(
        f"failed questions: {c['failed_questions']} on {c['failed_videos']} video(s) (counted as wrong)"
    )
    lines.append(f"missing predictions: {c['missing_predictions']} (counted as wrong)")
    judge = results.get("judge") or {}
    if c["open_ended_judged"]:
        note = (
            "" if judge.get("comparable_to_paper") else "  [NOT comparable to the paper's GPT-judge scores]"
        )
        lines.append(f"open-ended judge: {judge.get('model')}{note}")
        lines.append(
            f"judgments: {c['judgments_requested']} requested ({c['judgments_cached']} from cache), "
            f"{c['failed_or_missing_judgments']} failed or missing (left out of the means), "
            f"{c['open_ended_model_failures']} answers missing or failed (scored 0)"
        )
    elif c["open_ended_questions"]:
        lines.append("open-ended: not judged (pass --judge to score the open-ended answers)")
    return "\n".join(line.rstrip() for line in lines) + "\n"
