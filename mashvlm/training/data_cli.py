"""``mashvlm data check MIXTURE``: will this mixture train? Every annotation error, every missing or
undecodable video (or a random sample of them), the records per dataset; exit 2 where training would fail.

Videos are decoded the way training decodes them (:func:`mashvlm.video.read_video_frames`, the same
``num_frames`` and clip), so a video that passes here loads in training.
"""

from __future__ import annotations

import argparse
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mashvlm.commands import check_output_file, non_negative_int, positive_int
from mashvlm.errors import MashVlmError

__all__ = ["DataCheckFailed", "check_mixture", "register"]


class DataCheckFailed(MashVlmError, ValueError):
    """The mixture would not train (malformed annotations, missing files or folders, a dataset without
    one loadable video); the report above the message lists every problem."""


def _check_video(clip: tuple[str, float | None, float | None, float | None], num_frames: int) -> tuple[str, str] | None:
    """``("missing" | "undecodable", message)`` for a video that training could not load, else None."""
    from mashvlm.video import VideoDecodeError, VideoNotFoundError, read_video_frames

    video, start, end, fps = clip
    try:
        read_video_frames(video, num_frames, start=start, end=end, fps=fps)
    except VideoNotFoundError as err:
        return "missing", str(err)
    except VideoDecodeError as err:
        return "undecodable", str(err)
    return None


def check_mixture(path: str | Path, *, num_frames: int = 16, sample: int | None = None, seed: int = 0,
                  workers: int = 1, strict: bool = False) -> dict:
    """The check's report: per dataset its counts, annotation errors, missing and undecodable videos, and
    ``fatal``, the reasons training would fail (empty when it would run). ``sample`` checks a random
    ``sample`` of each dataset's distinct clips; ``strict`` makes any missing or undecodable video fatal."""
    from mashvlm.training.data import DataFormatError, parse_videochat2
    from mashvlm.training.mixture import planned_take, read_mixture

    mixture = read_mixture(path)  # a malformed mixture file is its own FormatError
    report: dict = {"mixture": str(mixture.path), "num_frames": num_frames, "sample": sample, "seed": seed,
                    "datasets": {}, "fatal": []}
    for source in mixture.datasets:
        entry: dict = {"annotations": [str(a) for a in source.annotations], "video_root": str(source.video_root),
                       "records": 0, "qa_pairs": 0, "taken": 0, "format_errors": [], "videos": 0,
                       "videos_checked": 0, "missing": [], "undecodable": []}
        report["datasets"][source.name] = entry
        records = []
        for annotation in source.annotations:
            try:
                found, errors = parse_videochat2(annotation, source.video_root, source=source.name, fps=source.fps)
            except DataFormatError as err:
                found, errors = [], [err]
            records += found
            entry["format_errors"] += [str(e) for e in errors]
        entry["records"] = len(records)
        entry["qa_pairs"] = sum(len(r.turns) for r in records)
        entry["taken"] = planned_take(len(records), source.samples, source.ratio)
        fatal = report["fatal"]
        if entry["format_errors"]:
            fatal.append(f"{source.name}: {len(entry['format_errors'])} annotation errors")
        if not records:
            fatal.append(f"{source.name}: no valid records")
        if not source.video_root.is_dir():
            fatal.append(f"{source.name}: video_root {source.video_root} is not a folder")
            continue
        clips = sorted({(r.video, r.start, r.end, r.fps) for r in records}, key=str)
        entry["videos"] = len(clips)
        if sample is not None and len(clips) > sample:
            clips = random.Random(f"{seed}:{source.name}").sample(clips, sample)
        entry["videos_checked"] = len(clips)
        with ThreadPoolExecutor(max_workers=workers) as pool:  # PyAV decodes without the GIL
            problems = list(pool.map(lambda c: _check_video(c, num_frames), clips))
        for problem in problems:
            if problem is not None:
                entry[problem[0]].append(problem[1])
        broken = len(entry["missing"]) + len(entry["undecodable"])
        if clips and broken == len(clips):
            fatal.append(f"{source.name}: none of the {len(clips)} checked videos loads (wrong video_root?)")
        elif strict and broken:
            fatal.append(f"{source.name}: {broken} videos missing or undecodable (--strict)")
    return report


def format_report(report: dict) -> str:
    """The report as text: a table of counts, then every problem."""
    names = list(report["datasets"])
    width = max(len("dataset"), *(len(n) for n in names))
    columns = ("records", "qa_pairs", "taken", "videos", "videos_checked", "missing", "undecodable", "format_errors")
    heads = ("records", "QA", "taken", "videos", "checked", "missing", "broken", "errors")
    lines = [f"{'dataset':<{width}}" + "".join(f"  {h:>8}" for h in heads)]
    for name in names:
        entry = report["datasets"][name]
        values = [len(entry[c]) if isinstance(entry[c], list) else entry[c] for c in columns]
        lines.append(f"{name:<{width}}" + "".join(f"  {v:>8}" for v in values))
    for name in names:
        entry = report["datasets"][name]
        for kind, label in (("format_errors", "annotation error"), ("missing", "missing video"),
                            ("undecodable", "undecodable video")):
            lines += [f"{name}: {label}: {message}" for message in entry[kind]]
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> int:
    from mashvlm.files import write_json_atomic

    if args.report:
        check_output_file(args.report, "--report")
    report = check_mixture(args.mixture, num_frames=args.num_frames, sample=args.sample, seed=args.seed,
                           workers=args.workers, strict=args.strict)
    print(format_report(report))
    if args.report:
        write_json_atomic(args.report, report)
    if report["fatal"]:
        raise DataCheckFailed(f"{args.mixture} would not train: " + "; ".join(report["fatal"]))
    print(f"{args.mixture}: ok")
    return 0


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="training data tools")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    parser = commands.add_parser("check", help="validate a training mixture: annotations and videos")
    parser.add_argument("mixture", help="mixture JSON file (docs/training_data.md)")
    parser.add_argument("--sample", type=positive_int, default=None, metavar="N",
                        help="decode a random N of each dataset's videos (default: all)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of --sample")
    parser.add_argument("--num-frames", type=positive_int, default=16,
                        help="frames sampled per video, as in training (the model's num_frames; default 16)")
    parser.add_argument("--workers", type=positive_int, default=1, help="videos decoded in parallel")
    parser.add_argument("--strict", action="store_true", help="fail on any missing or undecodable video too")
    parser.add_argument("--report", default=None, metavar="FILE", help="write the full report as JSON")
    parser.set_defaults(func=_check)
