"""``mashvlm eval mvbench|vcg|qa|qa-convert|table4``: the paper's general benchmarks (docs/evaluation.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mashvlm.commands import positive_int

JUDGE_ENV = "MASHVLM_JUDGE"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="general video benchmarks: MVBench, VCG-Bench, zero-shot QA",
                                   description="Evaluate a checkpoint on the paper's general benchmarks.")
    sub = parser.add_subparsers(dest="eval_command", required=True, metavar="BENCHMARK")
    p = sub.add_parser("mvbench", help="MVBench, official VideoChat2 protocol (paper Table 1)")
    _model_flags(p)
    p.add_argument("--json-dir", type=Path, required=True, help="MVBench's json/ folder (the 20 task files)")
    p.add_argument("--video-root", type=Path, required=True,
                   help="MVBench's video/ folder (star/, ssv2_video/, clevrer/, tvqa/frames_fps3_hq/, ...)")
    p.add_argument("--tasks", default="all", help="all, or task abbreviations, e.g. AS,AP,ER (default all)")
    p.set_defaults(func=cmd_mvbench)

    p = sub.add_parser("vcg", help="Video-ChatGPT's VCG-Bench, GPT-judged (paper Table 3)")
    _model_flags(p)
    p.add_argument("--video-dir", type=Path, required=True, help="the benchmark's videos (ActivityNet)")
    p.add_argument("--generic", type=Path, help="generic_qa.json (CI, DO, CU)")
    p.add_argument("--temporal", type=Path, help="temporal_qa.json (TU)")
    p.add_argument("--consistency", type=Path, help="consistency_qa.json (CO)")
    p.add_argument("--max-new-tokens", type=positive_int, default=512)
    _judge_flags(p)
    p.set_defaults(func=cmd_vcg)

    p = sub.add_parser("qa", help="zero-shot open-ended video QA, GPT-judged (paper Table 4)")
    _model_flags(p)
    p.add_argument("--dataset", required=True, choices=("msrvtt", "msvd", "tgif", "activitynet"))
    p.add_argument("--questions", type=Path, required=True, help="test_q.json")
    p.add_argument("--answers", type=Path, required=True, help="test_a.json")
    p.add_argument("--video-dir", type=Path, required=True)
    p.add_argument("--video-prefix", help="prefix of the video file names (default: v_ for activitynet)")
    p.add_argument("--max-new-tokens", type=positive_int, default=256)
    _judge_flags(p)
    p.set_defaults(func=cmd_qa)

    p = sub.add_parser("qa-convert", help="original MSRVTT-QA / MSVD-QA / TGIF-QA FrameQA files -> test_q/test_a",
                       description="Convert an original zero-shot QA annotation file into the test_q.json / "
                                   "test_a.json layout that 'eval qa' reads.")
    p.add_argument("--format", required=True, choices=("msrvtt-qa", "msvd-qa", "tgif-frameqa"),
                   help="msrvtt-qa / msvd-qa: {train,val,test}_qa.json; tgif-frameqa: Test_frameqa_question.csv")
    p.add_argument("--input", type=Path, required=True, help="the original annotation file")
    p.add_argument("--mapping", type=Path,
                   help="msvd-qa only: youtube_mapping.txt, to name videos by YouTube clip (default: vidN)")
    p.add_argument("--out-dir", type=Path, required=True, help="where test_q.json and test_a.json go")
    p.set_defaults(func=cmd_qa_convert)

    p = sub.add_parser("table4", help="combine 'eval qa' results of the four datasets into Table 4",
                       description="Read the qa_<dataset>_results.json of 'eval qa' runs and write Table 4 "
                                   "(table4.json, table4.txt).")
    p.add_argument("--results", type=Path, nargs="+", required=True, metavar="PATH",
                   help="qa_<dataset>_results.json files or 'eval qa' output folders, one run per dataset")
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--method", help="the row's name (default: the model name)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="combine runs of different models or judges (recorded as warnings)")
    p.set_defaults(func=cmd_table4)


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, metavar="DIR", help="a MASH-VLM checkpoint directory")
    p.add_argument("--device", help="e.g. cuda:0 (default: cuda if available)")
    p.add_argument("--dtype", help="torch dtype name, e.g. bfloat16")
    p.add_argument("--output-dir", type=Path, required=True,
                   help="predictions (resumable), results JSON, text table and per-sample outputs")
    p.add_argument("--retry-errors", action="store_true", help="ask again the questions that failed before")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _judge_flags(p: argparse.ArgumentParser) -> None:
    from mashvlm.unscene.cli import add_chat_options

    add_chat_options(p, "judge", JUDGE_ENV, "judge (the paper's: gpt-3.5-turbo)")
    p.add_argument("--judge-workers", type=positive_int, default=8, help="judge requests in flight (default 8)")


def _judge(args: argparse.Namespace):
    from mashvlm.unscene.cli import chat_client_from_args

    from .judge import PAPER_JUDGE, EvalJudge

    client, cache = chat_client_from_args(args, "judge", JUDGE_ENV, default_model=PAPER_JUDGE, seed=None)
    return EvalJudge(client, cache)


def _load_model(args: argparse.Namespace):
    from .run import default_model_loader

    return default_model_loader(args.model, args.device, args.dtype)


def _print(results: dict, table_path: Path) -> None:
    print(table_path.read_text(encoding="utf-8"), end="")
    print(json.dumps(results.get("generation", {})))


def cmd_mvbench(args: argparse.Namespace) -> int:
    from .run import evaluate_mvbench

    results = evaluate_mvbench(_load_model(args), args.json_dir, args.video_root, args.output_dir, tasks=args.tasks,
                               retry_errors=args.retry_errors, progress=not args.no_progress)
    _print(results, args.output_dir / "mvbench_table.txt")
    return 0


def cmd_vcg(args: argparse.Namespace) -> int:
    from mashvlm.errors import UsageError

    from .run import evaluate_vcg

    if not (args.generic or args.temporal or args.consistency):
        raise UsageError("give at least one of --generic, --temporal, --consistency")
    judge = _judge(args)
    results = evaluate_vcg(_load_model(args), judge, args.video_dir, args.output_dir, generic=args.generic,
                           temporal=args.temporal, consistency=args.consistency, retry_errors=args.retry_errors,
                           progress=not args.no_progress, judge_workers=args.judge_workers,
                           max_new_tokens=args.max_new_tokens)
    _print(results, args.output_dir / "vcg_table.txt")
    return 0


def cmd_qa(args: argparse.Namespace) -> int:
    from .run import evaluate_qa

    judge = _judge(args)
    results = evaluate_qa(_load_model(args), judge, args.dataset, args.questions, args.answers, args.video_dir,
                          args.output_dir, video_prefix=args.video_prefix, retry_errors=args.retry_errors,
                          progress=not args.no_progress, judge_workers=args.judge_workers,
                          max_new_tokens=args.max_new_tokens)
    _print(results, args.output_dir / f"qa_{args.dataset}_table.txt")
    return 0


def cmd_qa_convert(args: argparse.Namespace) -> int:
    from .run import convert_qa

    summary = convert_qa(args.format, args.input, args.out_dir, mapping=args.mapping)
    print(f"{summary['questions']} questions on {summary['videos']} videos -> {summary['test_q']}, "
          f"{summary['test_a']} (eval qa --dataset {summary['dataset']})")
    return 0


def cmd_table4(args: argparse.Namespace) -> int:
    from .run import build_table4

    build_table4(args.results, args.output_dir, method=args.method, allow_mixed=args.allow_mixed)
    print((args.output_dir / "table4.txt").read_text(encoding="utf-8"), end="")
    return 0
