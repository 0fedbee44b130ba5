"""Model commands: ``describe`` (ask about a video), ``convert llava`` (initialise from LLaVA-1.5)."""

from __future__ import annotations

import argparse

from . import check_output_dir, positive_int


def _describe(args: argparse.Namespace) -> int:
    from ..inference import VideoChat

    chat = VideoChat.from_pretrained(args.model, device=args.device)
    answer = chat.answer(args.video, args.question, max_new_tokens=args.max_new_tokens, start=args.start, end=args.end)
    print(answer)
    return 0


def _convert_llava(args: argparse.Namespace) -> int:
    from ..modeling.conversion import convert_llava

    check_output_dir(args.dst, "DST")
    dst = convert_llava(args.src, args.dst, num_frames=args.num_frames, rope_variant=args.rope_variant)
    print(f"wrote MASH-VLM checkpoint to {dst}")
    return 0


def register(subparsers) -> None:
    describe = subparsers.add_parser("describe", help="answer a question about a video with a MASH-VLM checkpoint")
    describe.add_argument("video", help="video file (anything PyAV/FFmpeg decodes)")
    describe.add_argument("--model", required=True, help="MASH-VLM checkpoint directory")
    describe.add_argument("--question", default="Describe the video in detail.")
    describe.add_argument("--max-new-tokens", type=positive_int, default=128)
    describe.add_argument("--start", type=float, default=None, help="clip start (seconds)")
    describe.add_argument("--end", type=float, default=None, help="clip end (seconds)")
    describe.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    describe.set_defaults(func=_describe)

    convert = subparsers.add_parser("convert", help="create a MASH-VLM checkpoint from another model")
    convert_sub = convert.add_subparsers(dest="source", required=True, metavar="SOURCE")
    llava = convert_sub.add_parser("llava", help="from a local LLaVA-1.5 checkpoint (llava-hf layout, safetensors)")
    llava.add_argument("src", help="LLaVA checkpoint directory (config.json, model.safetensors, tokenizer)")
    llava.add_argument("dst", help="output directory")
    llava.add_argument("--num-frames", type=positive_int, default=16)
    llava.add_argument("--rope-variant", choices=["harmonic", "balanced", "distinct"], default="harmonic")
    llava.set_defaults(func=_convert_llava)
