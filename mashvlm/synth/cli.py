"""``mashvlm synth``: write the synthetic action-scene world (videos, UNSCENE annotations, instructions)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

from mashvlm.commands import check_output_dir, non_negative_int, positive_int

__all__ = ["register", "config_from_args", "run"]


def _size(text: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"96x64"`` -> width 96, height 64."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"bad size {text!r}: use N or WxH") from err
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"bad size {text!r}: use N or WxH")


def register(subparsers: Any) -> None:
    """Add the ``synth`` sub-command to the ``mashvlm`` command line."""
    p = subparsers.add_parser(
        "synth",
        help="generate the synthetic action-scene world",
        description="Generate the synthetic action-scene world: mp4 videos, UNSCENE annotation files and "
        "VideoChat2 instruction data. Skips the work if the world of the same config and seed is already "
        "complete in --out; finishes an interrupted build.",
    )
    p.add_argument("--out", default="runs/world", help="world directory (default: runs/world)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="world seed (default: 0)")
    p.add_argument("--quick", action="store_true", help="a tiny world (96 train videos, 40 test videos)")
    p.add_argument("--rho", type=float, default=None, help="train: P(action in its typical scene) (0.9)")
    p.add_argument("--empty-frac", type=float, default=None, help="train: share of empty scenes (0.1)")
    p.add_argument("--train", type=non_negative_int, default=None, help="train videos (1200)")
    p.add_argument("--test-usual", type=non_negative_int, default=None, help="usual-context test videos (160)")
    p.add_argument("--test-unusual", type=non_negative_int, default=None, help="unusual-context test videos (160)")
    p.add_argument("--test-scene-only", type=non_negative_int, default=None, help="scene-only test videos (80)")
    p.add_argument("--test-motion", type=non_negative_int, default=None,
                   help="motion-control test videos: actions in scenes never paired with them in train (160)")
    p.add_argument("--train-motion", type=non_negative_int, default=None,
                   help="motion warm-up videos (train_motion): actions in neutral scenes, asked what the person does (0)")
    p.add_argument("--size", type=_size, default=None, metavar="N|WxH", help="frame size, even (64)")
    p.add_argument("--frames", type=int, default=None, help="frames per video (16)")
    p.add_argument("--fps", type=float, default=None, help="frames per second (8)")
    p.add_argument("--pan", action=argparse.BooleanOptionalAction, default=None, help="slow camera pans (off)")
    p.add_argument("--pan-prob", type=float, default=None, help="share of videos with a pan (0.5)")
    p.add_argument(
        "--neutral-scenes", nargs="*", default=None, metavar="SCENE",
        help="scenes typical of no action, for the motion control and the neutral training share "
        "(default: library kitchen office garage; none given: no neutral scenes, no motion control)",
    )
    p.add_argument(
        "--control-scenes", nargs="*", default=None, metavar="SCENE",
        help="neutral scenes kept for the motion control, shown in train only empty or with a person standing "
        "still (default: office garage; none given: each action is held out in one neutral scene and shown in "
        "training in the others)",
    )
    p.add_argument("--still-frac", type=float, default=None,
                   help="train: share of videos of a person standing still in a control scene, asked only about "
                   "the scene (0.1)")
    p.add_argument("--neutral-frac", type=float, default=None,
                   help="train: share of videos showing an action in a neutral scene outside the control scenes (0.2)")
    p.add_argument("--qa-per-video", type=int, default=None, help="instruction QA entries per train video, 6-8 (6)")
    p.add_argument("--workers", type=positive_int, default=None, help="rendering processes (default: up to 2)")
    p.add_argument("--force", action="store_true", help="delete the world in --out and regenerate it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    """The ``WorldConfig`` the flags ask for (defaults, ``--quick`` sizes, then explicit flags)."""
    from mashvlm.synth.config import WorldConfig

    config = WorldConfig()
    if args.quick:
        config = config.quick()
    overrides = {
        "rho": args.rho,
        "empty_frac": args.empty_frac,
        "n_train": args.train,
        "n_test_usual": args.test_usual,
        "n_test_unusual": args.test_unusual,
        "n_test_scene_only": args.test_scene_only,
        "n_test_motion": args.test_motion,
        "n_train_motion": args.train_motion,
        "neutral_frac": args.neutral_frac,
        "still_frac": args.still_frac,
        "frames": args.frames,
        "fps": args.fps,
        "pan": args.pan,
        "pan_prob": args.pan_prob,
        "qa_per_video": args.qa_per_video,
    }
    if args.size is not None:
        overrides["width"], overrides["height"] = args.size
    if args.neutral_scenes is not None:
        overrides["neutral_scenes"] = tuple(args.neutral_scenes)
        if not args.neutral_scenes:  # no neutral scene: nothing to draw in one
            overrides["n_test_motion"], overrides["neutral_frac"], overrides["control_scenes"] = 0, 0.0, ()
            overrides["n_train_motion"] = 0
    if args.control_scenes is not None:
        overrides["control_scenes"] = tuple(args.control_scenes)
    if not overrides.get("control_scenes", True) and args.still_frac is None:
        overrides["still_frac"] = 0.0  # a person standing still is shown only in control scenes
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    from mashvlm.synth.config import SPLITS
    from mashvlm.synth.world import build_world

    config = config_from_args(args)
    check_output_dir(args.out, "--out")
    start = time.perf_counter()
    world = build_world(
        args.out, config, args.seed, force=args.force, workers=args.workers, progress=not args.no_progress
    )
    counts = ", ".join(f"{s} {len(world.split(s))}" for s in SPLITS)
    print(f"world in {world.root} ({counts}) {world.content_hash} [{time.perf_counter() - start:.1f}s]")
    return 0
