"""``mashvlm train``: instruction tuning from a JSON config file."""

from __future__ import annotations

import argparse

from mashvlm.commands import check_output_dir, parse_key_values


def _train(args: argparse.Namespace) -> int:
    from .config import TrainConfig, check_config_inputs
    from .distributed import end_process_group
    from .trainer import train

    overrides = parse_key_values(args.set)
    for key in ("train_file", "output_dir", "max_steps", "seed"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = TrainConfig.from_file(args.config, **overrides)
    check_output_dir(config.output_dir, "output_dir")
    check_config_inputs(config)
    result = train(config, overwrite=args.overwrite or args.no_resume)
    end_process_group()
    state = "already trained, reused" if result.reused else f"trained to step {result.global_step}"
    print(f"{state}: {result.final_dir}")
    return 0


def _merge_lora(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .trainer import ADAPTER_DIR, merge_lora_run

    adapter = Path(args.adapter) if args.adapter else Path(args.run_dir) / ADAPTER_DIR
    print(f"merged: {merge_lora_run(args.run_dir, adapter, args.output)}")
    return 0


def register(subparsers) -> None:
    merge = subparsers.add_parser("merge-lora", help="fold a LoRA run's adapter into a plain MASH-VLM checkpoint")
    merge.add_argument("run_dir", help="the LoRA run's output_dir (its train_config.json names the base model)")
    merge.add_argument("--adapter", default=None, help="adapter folder (default RUN_DIR/adapter; or a checkpoint-N)")
    merge.add_argument("--output", required=True, help="folder for the merged checkpoint")
    merge.set_defaults(func=_merge_lora)
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
