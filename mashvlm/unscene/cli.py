"""``mashvlm unscene``: build the questions, run a model, score the answers (docs/unscene.md)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mashvlm.commands import check_input_files, check_output_dir, check_output_file, positive_int
from mashvlm.errors import UsageError

EXIT_OK = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``unscene`` with its sub-commands to the ``mashvlm`` command line."""
    parser = subparsers.add_parser(
        "unscene",
        help="UNSCENE action-scene hallucination benchmark: build, run, score",
        description="UNSCENE benchmark toolkit. Typical use: build -> run -> score (see docs/unscene.md).",
    )
    sub = parser.add_subparsers(dest="unscene_command", required=True, metavar="SUBCOMMAND")
    _add_build(sub)
    _add_run(sub)
    _add_score(sub)
    _add_validate(sub)


def add_chat_options(p: argparse.ArgumentParser, prefix: str, env: str, what: str) -> None:
    """The ``--{prefix}-*`` options of an OpenAI-compatible chat endpoint (shared by every judge command)."""
    p.add_argument(f"--{prefix}-model", help=f"{what} model name (env {env}_MODEL)")
    p.add_argument(
        f"--{prefix}-base-url",
        help=f"OpenAI-compatible base URL, e.g. http://localhost:8000/v1 (env {env}_BASE_URL, "
        "then OPENAI_BASE_URL; default api.openai.com)",
    )
    p.add_argument(
        f"--{prefix}-api-key",
        help=f"API key (env {env}_API_KEY, then OPENAI_API_KEY; prefer the environment)",
    )
    p.add_argument(
        f"--{prefix}-timeout",
        type=float,
        default=60.0,
        help="seconds per HTTP attempt, all of it (default 60)",
    )
    p.add_argument(
        f"--{prefix}-deadline",
        type=float,
        default=300.0,
        help="seconds per request, retries and waits included (default 300)",
    )
    p.add_argument(
        f"--{prefix}-retries",
        type=int,
        default=5,
        help="retries on 408/409/429/5xx/timeouts, and re-asks of malformed replies (default 5)",
    )
    p.add_argument(
        f"--{prefix}-cache",
        type=Path,
        help=f"reply cache file (default: $MASHVLM_CACHE_DIR or ~/.cache/mashvlm, unscene/{prefix}.jsonl)",
    )
    p.add_argument(f"--no-{prefix}-cache", action="store_true", help="do not read or write the reply cache")


def chat_client_from_args(
    args: argparse.Namespace, prefix: str, env: str, *, default_model: str | None, seed: int | None
) -> tuple[Any, Any]:
    """``(ChatClient, ResponseCache | None)`` from the options :func:`add_chat_options` added."""
    from mashvlm.unscene.chat import ChatClient, ChatSettings, ResponseCache, default_cache_dir

    a = vars(args)
    settings = ChatSettings.from_env(
        env,
        model=a[f"{prefix}_model"],
        base_url=a[f"{prefix}_base_url"],
        api_key=a[f"{prefix}_api_key"],
        default_model=default_model,
        timeout=a[f"{prefix}_timeout"],
        max_retries=a[f"{prefix}_retries"],
        deadline=a[f"{prefix}_deadline"],
        seed=seed,
        temperature=0.0,
    )
    cache = None
    if not a[f"no_{prefix}_cache"]:
        cache = ResponseCache(a[f"{prefix}_cache"] or default_cache_dir() / f"{prefix}.jsonl")
    return ChatClient(settings), cache


# --------------------------------------------------------------------------------------------------
# build


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="build the UNSCENE questions from video annotations",
        description="Build UNSCENE questions (JSONL) from a video-annotation file. Hallucination "
        "candidates come from the annotations themselves, from a co-occurrence table "
        "(--cooccurrence) or from an OpenAI-compatible endpoint (--llm-model / --llm-base-url, or "
        "their environment variables UNSCENE_LLM_MODEL / UNSCENE_LLM_BASE_URL).",
    )
    p.add_argument("--annotations", type=Path, required=True, help="video annotations (JSONL)")
    p.add_argument("--output", "-o", type=Path, required=True, help="questions file to write (JSONL)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-pair candidate draw (default 0)")
    p.add_argument(
        "--cooccurrence",
        type=Path,
        help="offline candidate source: CSV/TSV/JSONL of action,scene[,count] or JSON ranked lists",
    )
    p.add_argument(
        "--num-candidates", type=positive_int, default=4, help="candidates per label (default 4, as the paper)"
    )
    p.add_argument(
        "--candidates-out",
        type=Path,
        help="where to write the annotations with the candidate lists used (default: "
        "<output>.candidates.jsonl when candidates came from a source)",
    )
    p.add_argument("--no-open-ended", action="store_true", help="binary questions only")
    p.add_argument("--video-root", type=Path, help="if given, check that every video file exists")
    add_chat_options(p, "llm", "UNSCENE_LLM", "candidate-generating")
    p.set_defaults(func=cmd_build)


def cmd_build(args: argparse.Namespace) -> int:
    """Build the questions file."""
    from mashvlm.files import write_jsonl_atomic
    from mashvlm.unscene.builder import build_questions, fill_candidates
    from mashvlm.unscene.candidates import CooccurrenceTable, LLMCandidates
    from mashvlm.unscene.formats import load_annotations
    from mashvlm.unscene.paths import resolve_video_path
    from mashvlm.unscene.records import SCENE_ONLY

    check_input_files(args, "annotations", "cooccurrence")
    check_output_file(args.output, "--output")
    if args.candidates_out is not None:
        check_output_file(args.candidates_out, "--candidates-out")
    annotations = load_annotations(args.annotations)
    if args.video_root is not None:
        _check_videos_exist(
            args.video_root,
            [(a.video, f"{args.annotations}:{a.lineno}") for a in annotations],
            resolve_video_path,
        )
    source = None
    llm_flags = [f for f, v in (("--llm-model", args.llm_model), ("--llm-base-url", args.llm_base_url)) if v]
    if args.cooccurrence is not None and llm_flags:
        raise UsageError(f"give either --cooccurrence or {' / '.join(llm_flags)}, not both")
    if args.cooccurrence is not None:
        source = CooccurrenceTable.load(args.cooccurrence, num_candidates=args.num_candidates)
    elif llm_flags or os.environ.get("UNSCENE_LLM_MODEL") or os.environ.get("UNSCENE_LLM_BASE_URL"):
        # The environment variables switch the LLM source on like their flags (an explicit
        # --cooccurrence on the command line wins over them).
        client, cache = chat_client_from_args(args, "llm", "UNSCENE_LLM", default_model=None, seed=args.seed)
        source = LLMCandidates(client, cache, num_candidates=args.num_candidates)
    filled = fill_candidates(annotations, source, progress=True)
    questions = build_questions(filled, seed=args.seed, open_ended=not args.no_open_ended)
    write_jsonl_atomic(args.output, (q.to_record() for q in questions))
    if source is not None:
        cand_path = args.candidates_out or args.output.with_name(args.output.stem + ".candidates.jsonl")
        write_jsonl_atomic(cand_path, (a.to_record() for a in filled))
        print(f"candidates ({source.name}) written to {cand_path}")
    n_scene_only = sum(a.set == SCENE_ONLY for a in filled)
    n_binary = sum(q.is_binary for q in questions)
    print(
        f"{len(filled)} videos ({len(filled) - n_scene_only} unusual context, {n_scene_only} scene-only): "
        f"{n_binary} binary questions in {n_binary // 2} dual pairs, "
        f"{len(questions) - n_binary} open-ended -> {args.output}"
    )
    return EXIT_OK


def _check_videos_exist(
    root: Path, items: list[tuple[str, str]], resolve: Callable[[Path, str], str]
) -> None:
    missing = []
    for video, where in items:
        if not Path(resolve(root, video)).is_file():
            missing.append(f"{where}: {video}")
    if missing:
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise UsageError(
            f"{len(missing)} video file(s) not found under {root}:\n  " + "\n  ".join(missing[:20]) + more
        )


# --------------------------------------------------------------------------------------------------
# run


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="ask a model the questions (resumable)",
        description="Ask a video model every question and append its answers to a predictions "
        "file. Re-running resumes: answered questions are never asked again.",
    )
    p.add_argument("--questions", type=Path, required=True, help="questions file from 'unscene build'")
    p.add_argument("--video-root", type=Path, required=True, help="folder the 'video' paths are relative to")
    p.add_argument("--output", "-o", type=Path, required=True, help="predictions file (JSONL), appended to")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", type=Path, metavar="DIR", help="a MASH-VLM checkpoint directory")
    model.add_argument(
        "--model-class",
        metavar="MODULE:CLASS",
        help="your own model: an importable class implementing answer(video_path, question)",
    )
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument for --model-class (repeatable; VALUE parsed as JSON if possible)",
    )
    p.add_argument("--device", help="MASH-VLM: device, e.g. cuda:0 (default: the inference API's choice)")
    p.add_argument("--dtype", help="MASH-VLM: torch dtype name, e.g. bfloat16")
    p.add_argument(
        "--max-new-tokens", type=positive_int, default=256, help="MASH-VLM: answer length limit (default 256)"
    )
    p.add_argument(
        "--video-tokens",
        choices=("both", "spatial", "temporal"),
        default="both",
        help="MASH-VLM: which video tokens each prompt holds (default both); spatial or temporal leaves the "
        "other kind out of the sequence (the paper's Table 10)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=16,
        help="questions per model call (default 16): MASH-VLM answers the questions of several videos in "
        "one left-padded batch, encoding each video once; an answer_batch model gets one video at a time",
    )
    p.add_argument(
        "--tasks",
        choices=("all", "binary", "open_ended"),
        default="all",
        help="which questions to ask (default all); the predictions file may hold answers to any",
    )
    p.add_argument("--retry-errors", action="store_true", help="ask again the questions recorded as failed")
    p.add_argument(
        "--max-consecutive-failures",
        type=int,
        default=10,
        help="stop after this many videos in a row fail with model (not video) errors; 0: never",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Run a model over the questions."""
    from mashvlm.unscene.formats import load_questions
    from mashvlm.unscene.runner import (
        MashVlmVideoQA,
        check_predictions_path,
        load_model_class,
        parse_model_args,
        run_model,
    )

    check_input_files(args, "questions")
    check_output_file(args.output, "--output")
    questions = load_questions(args.questions)  # all of them: --tasks only narrows what is asked
    if not args.video_root.is_dir():
        raise UsageError(f"--video-root {args.video_root} is not a directory")
    # before spending minutes loading a model
    check_predictions_path(args.output, [q.question_id for q in questions])
    if args.model is not None:
        model: Any = MashVlmVideoQA(
            args.model,
            device=args.device,
            dtype=args.dtype,
            max_new_tokens=args.max_new_tokens,
            video_tokens=args.video_tokens,
        )
    else:
        if args.video_tokens != "both":
            raise UsageError("--video-tokens applies to a MASH-VLM --model; a --model-class takes its own --model-arg")
        model = load_model_class(args.model_class, parse_model_args(args.model_arg))
    stats = run_model(  # RunAborted (the model kept failing) exits with its own status 1
        model,
        questions,
        args.video_root,
        args.output,
        tasks=args.tasks,
        retry_errors=args.retry_errors,
        max_consecutive_failures=args.max_consecutive_failures,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"{args.output}: {stats.summary()}")
    if stats.failed:
        print(
            f"note: {stats.failed} question(s) on {len(stats.failed_videos)} video(s) failed; they are "
            "recorded and will count as wrong. Use --retry-errors to ask them again.",
            file=sys.stderr,
        )
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# score


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score predictions: Table 2 layout + results JSON",
        description="Score predictions with the dual metric (binary) and, with --judge, the "
        "open-ended answers. Writes results.json and results.txt to --output-dir.",
    )
    p.add_argument("--questions", type=Path, required=True, help="questions file from 'unscene build'")
    p.add_argument("--predictions", type=Path, required=True, help="predictions file (JSONL)")
    p.add_argument(
        "--output-dir", type=Path, help="write results.json, results.txt (and per_video.jsonl) here"
    )
    p.add_argument("--model-name", help="row name in the table (default: the predictions file name)")
    p.add_argument("--per-video", action="store_true", help="also write per_video.jsonl for error analysis")
    p.add_argument(
        "--judge",
        choices=("none", "openai", "offline-lexical"),
        default="none",
        help="open-ended judge: an OpenAI-compatible endpoint, or the offline lexical judge "
        "(not comparable to GPT-judge scores); default none (binary only)",
    )
    p.add_argument("--judge-seed", type=int, default=0, help="seed sent to the judge (default 0)")
    p.add_argument("--judge-workers", type=positive_int, default=4, help="concurrent judge requests (default 4)")
    p.add_argument("--synonyms", type=Path, help="offline-lexical: JSON {label: [synonym, ...]}")
    add_chat_options(p, "judge", "UNSCENE_JUDGE", "judge")
    p.set_defaults(func=cmd_score)


def cmd_score(args: argparse.Namespace) -> int:
    """Score predictions and write the results."""
    from mashvlm.files import write_json_atomic, write_jsonl_atomic, write_text_atomic
    from mashvlm.unscene.formats import load_predictions, load_questions
    from mashvlm.unscene.judge import LexicalJudge, OpenAIJudge, load_synonyms
    from mashvlm.unscene.scoring import (
        build_results,
        format_table,
        per_video_records,
        score_binary,
        score_open_ended,
    )

    if args.per_video and args.output_dir is None:
        raise UsageError("--per-video needs --output-dir")
    check_input_files(args, "questions", "predictions", "synonyms")
    if args.output_dir is not None:
        check_output_dir(args.output_dir, "--output-dir")
    questions = load_questions(args.questions)
    pred_file = load_predictions(args.predictions, known_question_ids=[q.question_id for q in questions])
    predictions = pred_file.predictions
    if pred_file.truncated_tail:
        print(
            f"warning: {args.predictions} ends with a truncated line (an interrupted run?); that answer "
            "counts as missing. Re-run 'unscene run' to finish it.",
            file=sys.stderr,
        )
    judge: Any = None
    if args.judge == "openai":
        client, cache = chat_client_from_args(
            args, "judge", "UNSCENE_JUDGE", default_model="gpt-3.5-turbo", seed=args.judge_seed
        )
        judge = OpenAIJudge(client, cache)
    elif args.judge == "offline-lexical":
        judge = LexicalJudge(load_synonyms(str(args.synonyms)) if args.synonyms else None)
    binary = score_binary(questions, predictions)
    open_ended = None
    has_open_ended = any(q.category == "open_ended" for q in questions)
    if judge is not None:
        if not has_open_ended:
            print(
                "warning: the questions file has no open-ended questions; nothing to judge", file=sys.stderr
            )
        else:
            open_ended = score_open_ended(
                questions, predictions, judge, workers=args.judge_workers, progress=True
            )
    model_name = args.model_name or args.predictions.stem
    results = build_results(questions, predictions, binary, open_ended, judge=judge, model_name=model_name)
    table = format_table(results)
    print(table, end="")
    if results["counts"]["missing_predictions"]:
        print(
            f"warning: {results['counts']['missing_predictions']} question(s) have no prediction and "
            "count as wrong (an unfinished run?)",
            file=sys.stderr,
        )
    if open_ended is not None and open_ended.judge_errors:
        print(
            f"warning: {open_ended.judgments_missing} judgment(s) failed, e.g. {open_ended.judge_errors[0]}",
            file=sys.stderr,
        )
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.output_dir / "results.json", results)
        write_text_atomic(args.output_dir / "results.txt", table)
        if args.per_video:
            write_jsonl_atomic(
                args.output_dir / "per_video.jsonl", per_video_records(binary, open_ended, questions)
            )
        print(f"results written to {args.output_dir}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# validate


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check annotation, question or prediction files",
        description="Validate UNSCENE files; errors name the file, line and field.",
    )
    p.add_argument("--annotations", type=Path, help="video annotations (JSONL)")
    p.add_argument("--questions", type=Path, help="questions (JSONL)")
    p.add_argument(
        "--predictions", type=Path, help="predictions (JSONL); checked against --questions if given"
    )
    p.add_argument("--video-root", type=Path, help="also check that every video file exists")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate files."""
    from mashvlm.unscene.formats import load_annotations, load_predictions, load_questions
    from mashvlm.unscene.paths import resolve_video_path

    if not (args.annotations or args.questions or args.predictions):
        raise UsageError("give at least one of --annotations, --questions, --predictions")
    check_input_files(args, "annotations", "questions", "predictions")
    videos: list[tuple[str, str]] = []
    if args.annotations:
        anns = load_annotations(args.annotations)
        videos += [(a.video, f"{args.annotations}:{a.lineno}") for a in anns]
        print(f"{args.annotations}: {len(anns)} videos OK")
    qids = None
    if args.questions:
        qs = load_questions(args.questions)
        qids = [q.question_id for q in qs]
        seen: set[str] = set()
        for q in qs:
            if q.video not in seen:
                seen.add(q.video)
                videos.append((q.video, f"{args.questions}:{q.lineno}"))
        print(f"{args.questions}: {len(qs)} questions OK")
    if args.predictions:
        pf = load_predictions(args.predictions, known_question_ids=qids)
        failed = sum(p.failed for p in pf.predictions.values())
        tail = ", truncated last line" if pf.truncated_tail else ""
        print(f"{args.predictions}: {len(pf.predictions)} predictions OK ({failed} recorded failures{tail})")
        if qids is not None and len(pf.predictions) < len(qids):
            print(f"note: {len(qids) - len(pf.predictions)} question(s) have no prediction yet")
    if args.video_root is not None and videos:
        unique: dict[str, str] = {}
        for video, where in videos:  # each file once, reported where it first appears
            unique.setdefault(video, where)
        _check_videos_exist(args.video_root, list(unique.items()), resolve_video_path)
        print(f"all {len(unique)} video files found under {args.video_root}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m mashvlm.unscene.cli build|run|score|validate ...``: UNSCENE without the other commands
    (the same parser and the same error policy as ``mashvlm unscene``)."""
    from mashvlm.cli import main as mashvlm_main

    return mashvlm_main(["unscene", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
