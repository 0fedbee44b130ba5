"""``mashvlm analyze attention``: the spatial-to-text / temporal-to-text attention scores (Fig. 6, 8)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..commands import check_input_files, check_output_dir, positive_int
from ..errors import UsageError


def _attention(args: argparse.Namespace) -> int:
    from ..files import write_json_atomic
    from .attention import AttentionSample, attention_report, plot_attention, report_header, score_models

    single = args.video is not None
    if single == (args.questions is not None):
        raise UsageError("give either --video with --question, or --questions with --video-root")
    if single and args.question is None:
        raise UsageError("--video needs --question (and optionally --answer)")
    if not single and args.video_root is None:
        raise UsageError("--questions needs --video-root (the folder the questions' video paths are relative to)")
    if not single and (args.question is not None or args.answer is not None):
        raise UsageError("--question/--answer go with --video; with --questions each question has its answer")
    if single and args.limit is not None:
        raise UsageError("--limit goes with --questions")
    check_input_files(args, "questions")
    out_dir = check_output_dir(args.output, "-o/--output")

    common = {"baseline_dir": args.baseline, "device": args.device, "dtype": args.dtype, "progress": True}
    if single:
        sample = AttentionSample("question", args.category, args.video, args.question, args.answer)
        report = report_header([sample])
        report.update(video=str(args.video))
        # One question: any failure (an unreadable video, an empty generated answer) is the command's error.
        report["models"] = score_models(args.model, [sample], record_failures=False,
                                        max_new_tokens=args.max_new_tokens, **common)
    else:
        report = attention_report(args.model, args.questions, args.video_root, limit=args.limit, **common)
    report["figure_metric"] = args.metric
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "attention.json", report)
    plot_attention(report, out_dir / "attention.png", metric=args.metric)
    for role, result in report["models"].items():
        for category, group in result["groups"].items():
            mean = group["layer_mean"]
            print(f"{role} {category} (n={group['n']}): spatial-to-text {mean['spatial_to_text']:.4f}, "
                  f"temporal-to-text {mean['temporal_to_text']:.4f} (mean over layers)")
        if result["failures"]:
            print(f"{role}: {len(result['failures'])} question(s) failed (listed in attention.json)")
    print(f"wrote {out_dir / 'attention.json'} and {out_dir / 'attention.png'}")
    return 0


def register(subparsers) -> None:
    analyze = subparsers.add_parser("analyze", help="analyses of trained models (attention scores)")
    analyze_sub = analyze.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    p = analyze_sub.add_parser(
        "attention",
        help="spatial-to-text and temporal-to-text attention per layer (paper Fig. 6 and 8)",
        description="Attention that the answer's text tokens pay to spatial and to temporal tokens, per layer, "
        "for action and scene questions; writes attention.json and attention.png (docs/analysis.md).",
    )
    p.add_argument("--model", required=True, help="MASH-VLM checkpoint directory")
    p.add_argument("--baseline", default=None, help="a second checkpoint (e.g. the causal baseline) to compare")
    p.add_argument("--video", type=Path, default=None, help="one video file (with --question)")
    p.add_argument("--question", default=None, help="the question about --video")
    p.add_argument("--answer", default=None,
                   help="the answer to teacher-force (default: each model's own greedy answer)")
    p.add_argument("--category", default="question", help="label of the single question's group, e.g. action")
    p.add_argument("--questions", default=None, help="UNSCENE questions file (action and scene questions are used)")
    p.add_argument("--video-root", default=None, help="folder the questions' video paths are relative to")
    p.add_argument("--limit", type=positive_int, default=None, help="at most N questions per category, in file order")
    p.add_argument("--metric", choices=["mass", "per_token"], default="mass", help="what the figure plots")
    p.add_argument("--max-new-tokens", type=positive_int, default=32, help="for a generated answer")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="torch dtype name, e.g. bfloat16 (default: the checkpoint's)")
    p.add_argument("--output", "-o", required=True, help="output folder for attention.json and attention.png")
    p.set_defaults(func=_attention)
