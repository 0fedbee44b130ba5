"""``mashvlm demo``: the synthetic action-scene study (the README's main job)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from mashvlm.commands import check_output_dir, non_negative_int, parse_key_values, positive_int
from mashvlm.errors import UsageError
from mashvlm.study.config import PRESETS, VARIANTS, StudyConfig

SWEEP_SEEDS = (0, 1, 2)


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="train baseline and MASH-VLM on a synthetic action-scene world and compare them on UNSCENE",
        description=(
            "Builds the synthetic world if missing, pre-trains the tiny vision tower on its frames, "
            "instruction-tunes the baseline (causal attention, RoPE) and MASH-VLM (DST-attention, "
            "Harmonic-RoPE) with the same data, seed and steps, runs both through the UNSCENE runner and "
            "scorer and prints the Table 2 layout side by side. Re-running resumes; finished stages are reused."
        ),
    )
    size = demo.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a small world and short training (~3 min)")
    size.add_argument("--long", action="store_true",
                      help="the default with a motion warm-up of 3800 steps per model before instruction tuning, "
                      "whose videos stay in its 3000 steps (about 55 min on 2 CPU cores)")
    size.add_argument("--full", action="store_true",
                      help="the ablation grid of Tables 5-9 over 3 seeds (hours on 2 CPU cores)")
    demo.add_argument("--out", default=None,
                      help="output folder (default: runs/demo[-quick|-long|-full]; with --sweep-rho runs/sweep-rho[-quick])")
    demo.add_argument("--sweep-rho", type=float, nargs="*", default=None, metavar="RHO",
                      help="the bias sweep: one study per training co-occurrence rho (default 0.5 0.7 0.9 0.97), "
                      "baseline and MASH-VLM over --seeds (default 0 1 2), one table and one chart")
    demo.add_argument("--seeds", type=non_negative_int, nargs="+", default=None, help="training seeds (default: preset)")
    demo.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=None,
                      help="variants to train (default: baseline mash; --full: the whole grid)")
    demo.add_argument("--steps", type=positive_int, default=None, help="training steps per model (default: preset)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                      help="override any StudyConfig field, e.g. --set learning_rate=1e-3 (repeatable)")
    demo.add_argument("--jobs", type=positive_int, default=1,
                      help="(variant, seed) runs to train at once, each in its own process with an equal share "
                      "of the CPU threads and no progress bars (default 1). Where one process leaves cores idle this "
                      "trains more steps per second in all (--jobs 2 on 2 cores: 1.2-1.4x on one machine, "
                      "nothing on another; benchmarks/parallel_jobs.py measures yours)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)


def _config(args: argparse.Namespace) -> tuple[str, StudyConfig]:
    preset = "quick" if args.quick else "full" if args.full else "long" if args.long else "default"
    settings = parse_key_values(args.set)
    names = {f.name for f in dataclasses.fields(StudyConfig)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise UsageError(f"--set: unknown study setting(s) {unknown}; valid: {sorted(names)}")
    fields = {**PRESETS[preset], **settings}
    if args.seeds is not None:
        fields["seeds"] = args.seeds
    elif args.sweep_rho is not None:
        fields["seeds"] = list(SWEEP_SEEDS)  # paired statistics per rho need several seeds
    if args.variants is not None:
        fields["variants"] = args.variants
    if args.steps is not None:
        fields["max_steps"] = args.steps
    return preset, StudyConfig(**fields)


def _steps(config: StudyConfig) -> str:
    steps = config.motion_open_steps + config.motion_steps
    warm_up = f"{steps} motion warm-up + " if steps else ""
    return f"{warm_up}{config.max_steps} steps"


def _quiet(args: argparse.Namespace) -> None:
    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # transformers' own bars (loading and saving weights)


def _demo(args: argparse.Namespace) -> int:
    from mashvlm.study.run import run_study

    preset, config = _config(args)
    if args.sweep_rho is not None:
        return _sweep(args, preset, config)
    out = args.out or ("runs/demo" if preset == "default" else f"runs/demo-{preset}")
    check_output_dir(out, "--out")
    _quiet(args)
    start = time.monotonic()
    print(f"MASH-VLM action-scene study ({preset}): {len(config.variants)} variant(s) x {len(config.seeds)} "
          f"seed(s), {_steps(config)} each -> {out}", flush=True)
    run_study(out, config, progress=not args.no_progress, log=lambda m: print(m, flush=True), jobs=args.jobs)
    print()
    print((Path(out) / "study_table.txt").read_text(), end="")
    chart = Path(out) / "study_ablations.png"
    print(f"\nresults: {out}/study_results.json, {out}/study_table.txt, {out}/study.png"
          + (f", {chart}" if chart.exists() else "") + f" ({time.monotonic() - start:.0f} s)")
    if preset == "quick":
        print("note: --quick trains too briefly to compare the models; run `mashvlm demo` for the study.")
    return 0


def _sweep(args: argparse.Namespace, preset: str, config: StudyConfig) -> int:
    from mashvlm.study.sweep import DEFAULT_RHOS, run_rho_sweep

    if preset == "full":
        raise UsageError("--sweep-rho compares baseline and MASH-VLM; it does not combine with --full")
    rhos = args.sweep_rho or list(DEFAULT_RHOS)
    out = args.out or ("runs/sweep-rho" if preset == "default" else f"runs/sweep-rho-{preset}")
    check_output_dir(out, "--out")
    _quiet(args)
    start = time.monotonic()
    print(f"MASH-VLM bias sweep ({preset}): rho {rhos} x {len(config.variants)} variant(s) x "
          f"{len(config.seeds)} seed(s), {_steps(config)} each -> {out}", flush=True)
    run_rho_sweep(out, config, rhos, progress=not args.no_progress, log=lambda m: print(m, flush=True),
                  jobs=args.jobs)
    print()
    print((Path(out) / "sweep_table.txt").read_text(), end="")
    print(f"\nresults: {out}/sweep_results.json, {out}/sweep_table.txt, {out}/sweep.png, one study per rho in "
          f"{out}/rho*/ ({time.monotonic() - start:.0f} s)")
    if preset == "quick":
        print("note: --quick trains too briefly to compare the models; run without --quick for the sweep.")
    return 0
