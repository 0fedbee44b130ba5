"""The three evaluations end to end: answer (resumable), judge (cached), aggregate, write the results."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import mvbench, vcg, videoqa
from .common import GenerationStats, run_generation, write_results
from .judge import EvalJudge, Judgment
from .model import EvalModel


def _judge_all(judge: EvalJudge, jobs: Sequence[tuple[list[dict[str, str]], Callable[[str], object]] | None],
               workers: int, progress: bool, desc: str) -> list[Judgment | None]:
    """Judge every job (None: no prediction to judge) with ``workers`` threads, order kept."""
    bar = None
    todo = sum(j is not None for j in jobs)
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=todo, desc=desc, unit="j")

    def one(job):
        if job is None:
            return None
        result = judge.judge(*job)
        if bar is not None:
            bar.update(1)
        return result

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, jobs))
    finally:
        if bar is not None:
            bar.close()


def _warn(judge: EvalJudge | None) -> None:
    if judge is not None and judge.warning:
        print(f"warning: {judge.warning}", file=sys.stderr)


def _gen_summary(stats: GenerationStats) -> dict[str, Any]:
    return {"total": stats.total, "answered_now": stats.answered, "failed_now": stats.failed,
            "already_answered": stats.already_answered, "repaired_truncated_lines": stats.repaired_truncated_lines}


def evaluate_mvbench(model: EvalModel, json_dir: Path, video_root: Path, output_dir: Path, *, tasks: str = "all",
                     retry_errors: bool = False, progress: bool = True) -> dict[str, Any]:
    output_dir.mkdir(parents=True, exist_ok=True)
    samples = [s for t in mvbench.select_tasks(tasks) for s in mvbench.load_task(json_dir, video_root, t)]
    if model.num_frames != mvbench.NUM_FRAMES:
        print(f"warning: the model samples {model.num_frames} frames; the MVBench protocol uses "
              f"{mvbench.NUM_FRAMES}", file=sys.stderr)
    records, stats = run_generation(
        model, mvbench.items_for(samples), output_dir / "mvbench_predictions.jsonl",
        max_new_tokens=mvbench.MAX_NEW_TOKENS, retry_errors=retry_errors, progress=progress, desc="mvbench",
        postprocess=lambda item, raw: mvbench.postprocess(raw))
    result = mvbench.score(samples, records)
    results = {"benchmark": "mvbench", "model": model.name, "num_frames": model.num_frames, **result,
               "generation": _gen_summary(stats)}
    per_sample = [{"id": s.item_id, "task": s.task, "video": s.video.path, "question": s.question,
                   "answer": s.answer, "prediction": records[s.item_id]["prediction"],
                   "correct": records[s.item_id]["prediction"] is not None
                   and mvbench.check_answer(records[s.item_id]["prediction"], s.answer),
                   "error": records[s.item_id]["error"]} for s in samples]
    write_results(output_dir, "mvbench", results, mvbench.table(model.name, result), per_sample)
    return results


def evaluate_vcg(model: EvalModel, judge: EvalJudge, video_dir: Path, output_dir: Path, *,
                 generic: Path | None, temporal: Path | None, consistency: Path | None,
                 retry_errors: bool = False, progress: bool = True, judge_workers: int = 8,
                 max_new_tokens: int = 512) -> dict[str, Any]:
    _warn(judge)
    output_dir.mkdir(parents=True, exist_ok=True)
    gen = vcg.load_general(generic, "generic") if generic else []
    tem = vcg.load_general(temporal, "temporal") if temporal else []
    pairs = vcg.load_consistency(consistency) if consistency else []
    samples = gen + tem + [s for pair in pairs for s in pair]
    records, stats = run_generation(
        model, vcg.items_for(samples, video_dir), output_dir / "vcg_predictions.jsonl",
        max_new_tokens=max_new_tokens, retry_errors=retry_errors, progress=progress, desc="vcg")

    def pred(s: vcg.VcgSample) -> str | None:
        return records[s.item_id]["prediction"]

    jobs: list[tuple[str, str, Any]] = []  # (criterion, sample id, job or None)
    for c in ("CI", "DO", "CU"):
        jobs += [(c, s.item_id, None if pred(s) is None else
                  (vcg.judge_messages(c, s.question, s.answer, pred(s)), vcg.parse_judgment)) for s in gen]
    jobs += [("TU", s.item_id, None if pred(s) is None else
              (vcg.judge_messages("TU", s.question, s.answer, pred(s)), vcg.parse_judgment)) for s in tem]
    for q1, q2 in pairs:
        missing = pred(q1) is None or pred(q2) is None
        # evaluate_benchmark_5_consistency.py sends Q1 as both questions; kept for comparability.
        jobs.append(("CO", q1.item_id.rsplit("/", 1)[0], None if missing else
                     (vcg.consistency_messages(q1.question, q1.question, q1.answer, pred(q1), pred(q2)),
                      vcg.parse_judgment)))
    judgments = _judge_all(judge, [j for _, _, j in jobs], judge_workers, progress, "vcg judge")
    scores: dict[str, list[int | None]] = {}
    per_sample = []
    for (c, sid, _), j in zip(jobs, judgments, strict=True):
        # No prediction (decode or model failure): counted as wrong, score 0. A failed judgment: missing.
        value = 0 if j is None else j.value
        scores.setdefault(c, []).append(value)
        per_sample.append({"criterion": c, "id": sid, "score": value,
                           "judge_error": None if j is None else j.error,
                           "generation_failed": j is None})
    result = vcg.aggregate(scores)
    results = {"benchmark": "vcg", "model": model.name, "judge": judge.describe(), **result,
               "generation": _gen_summary(stats)}
    by_id = {s.item_id: s for s in samples}
    for row in per_sample:
        ids = [row["id"]] if row["id"] in by_id else [f"{row['id']}/q1", f"{row['id']}/q2"]
        row["question"] = [by_id[i].question for i in ids]
        row["answer"] = by_id[ids[0]].answer
        row["prediction"] = [records[i]["prediction"] for i in ids]
    write_results(output_dir, "vcg", results, vcg.table(model.name, result), per_sample)
    return results


def evaluate_qa(model: EvalModel, judge: EvalJudge, dataset: str, questions: Path, answers: Path,
                video_dir: Path, output_dir: Path, *, video_prefix: str | None = None, retry_errors: bool = False,
                progress: bool = True, judge_workers: int = 8, max_new_tokens: int = 256) -> dict[str, Any]:
    _warn(judge)
    output_dir.mkdir(parents=True, exist_ok=True)
    samples = videoqa.load_qa(questions, answers)
    prefix = videoqa.DEFAULT_PREFIX.get(dataset, "") if video_prefix is None else video_prefix
    records, stats = run_generation(
        model, videoqa.items_for(samples, video_dir, prefix), output_dir / f"qa_{dataset}_predictions.jsonl",
        max_new_tokens=max_new_tokens, retry_errors=retry_errors, progress=progress, desc=f"qa {dataset}")
    jobs = [None if records[s.item_id]["prediction"] is None else
            (videoqa.judge_messages(s.question, s.answer, records[s.item_id]["prediction"]), videoqa.parse_judgment)
            for s in samples]
    judgments = _judge_all(judge, jobs, judge_workers, progress, f"qa {dataset} judge")
    values = [(False, 0) if j is None else j.value for j in judgments]
    result = videoqa.aggregate(values)
    results = {"benchmark": "qa", "dataset": dataset, "model": model.name, "judge": judge.describe(), **result,
               "generation_failed": sum(j is None for j in judgments), "generation": _gen_summary(stats)}
    per_sample = [{"id": s.item_id, "video": s.video_name, "question": s.question, "answer": s.answer,
                   "prediction": records[s.item_id]["prediction"], "error": records[s.item_id]["error"],
                   "correct": None if v is None else v[0], "score": None if v is None else v[1],
                   "judge_error": None if j is None else j.error}
                  for s, v, j in zip(samples, values, judgments, strict=True)]
    write_results(output_dir, f"qa_{dataset}", results, videoqa.table(model.name, {dataset: result}), per_sample)
    return results


def convert_qa(fmt: str, input_path: Path, out_dir: Path, *, mapping: Path | None = None) -> dict[str, Any]:
    """An original QA annotation file (``qa_formats.FORMATS``) -> ``out_dir/test_q.json`` + ``test_a.json``,
    each written atomically. Returns counts for the report."""
    from mashvlm.errors import UsageError
    from mashvlm.files import write_json_atomic

    from . import qa_formats

    if mapping is not None and fmt != "msvd-qa":
        raise UsageError(f"--mapping is for msvd-qa (youtube_mapping.txt), not {fmt}")
    text = qa_formats.read_text(input_path, "annotation")
    mapping_text = None if mapping is None else qa_formats.read_text(mapping, "mapping")
    pairs = qa_formats.convert(fmt, text, str(input_path), mapping_text, None if mapping is None else str(mapping))
    questions, answers = qa_formats.split_records(pairs)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "test_a.json", answers)
    write_json_atomic(out_dir / "test_q.json", questions)
    return {"format": fmt, "dataset": qa_formats.DATASET_OF[fmt], "input": str(input_path),
            "questions": len(pairs), "videos": len({p.video_name for p in pairs}),
            "test_q": str(out_dir / "test_q.json"), "test_a": str(out_dir / "test_a.json")}


def _results_files(path: Path) -> list[Path]:
    """A ``qa_*_results.json`` file, or those in a folder (an ``eval qa`` output directory)."""
    from mashvlm.errors import UsageError

    if path.is_dir():
        found = sorted(path.glob("qa_*_results.json"))
        if not found:
            raise UsageError(f"{path}: no qa_<dataset>_results.json in this folder (an 'eval qa' --output-dir?)")
        return found
    if not path.exists():
        raise UsageError(f"{path}: no such results file or folder")
    return [path]


def build_table4(results: Sequence[Path], output_dir: Path, *, method: str | None = None,
                 allow_mixed: bool = False) -> dict[str, Any]:
    """Read the ``eval qa`` results of up to four datasets and write ``table4.json`` and ``table4.txt``."""
    import json

    from mashvlm.errors import FormatError
    from mashvlm.files import write_json_atomic, write_text_atomic

    runs = []
    for path in [f for p in results for f in _results_files(Path(p))]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise FormatError(path, err.lineno, None, f"not JSON ({err.msg})") from None
        runs.append(videoqa.parse_qa_results(data, str(path)))
    combined = videoqa.combine_table4(runs, method=method, allow_mixed=allow_mixed)
    for warning in combined["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "table4.json", combined)
    write_text_atomic(output_dir / "table4.txt", videoqa.table4_text(combined))
    return combined


def default_model_loader(model_dir: str | os.PathLike[str], device: str | None, dtype: str | None) -> EvalModel:
    from .model import MashVlmEvalModel

    return MashVlmEvalModel.from_pretrained(model_dir, device=device, dtype=dtype)
