"""``mashvlm train``: instruction tuning from a JSON config file."""

from __future__ import annotations

import argparse
import sys

from mashvlm.commands import parse_key_values


def _train(args: argparse.Namespace) -> int:
    from .config import TrainConfig
    from .data import DataFormatError
    from .trainer import train

    try:
        overrides = parse_key_values(args.set)
    except ValueError as err:
        raise SystemExit(str(err)) from err
    for key in ("train_file", "output_dir", "max_steps", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    try:
        config = TrainConfig.from_file(args.config, **overrides)
        result = train(config, overwrite=args.overwrite or args.no_resume)
    except DataFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    state = "already trained, reused" if result.reused else f"trained to step {result.global_step}"
    print(f"{state}: {result.final_dir}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="instruction-tune MASH-VLM (VideoChat2-format data)")
    parser.add_argument("--config", required=True, help="JSON training config (see TrainConfig)")
    parser.add_argument("--train-file", default=None, help="VideoChat2 JSON (overrides the config)")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--overwrite", action="store_true",
                        help="remove the training in --output-dir (checkpoints included) and start over")
    parser.add_argument("--no-resume", action="store_true", help="the same as --overwrite")
    parser.set_defaults(func=_train)
