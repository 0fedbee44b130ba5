"""Command-line helpers shared by the ``mashvlm`` subcommands (kept free of heavy imports)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mashvlm.errors import UsageError

__all__ = [
    "check_input_files",
    "check_output_dir", "check_output_file", "non_negative_int", "parse_key_values", "positive_int"]


def parse_key_values(items: Sequence[str], option: str = "--set", *, identifiers: bool = False) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; a value is parsed as JSON when it can be (numbers, true, lists, objects),
    else kept as a bare string. ``identifiers`` requires each key to be a Python identifier."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or (identifiers and not key.isidentifier()):
            rule = " with KEY a Python identifier" if identifiers else ""
            raise UsageError(f"{option} expects KEY=VALUE{rule}, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse ``type`` for counts that must be >= 1 (argparse then names the option, exit 2)."""
    return _int_at_least(1, text)


def non_negative_int(text: str) -> int:
    """argparse ``type`` for seeds and sizes that must be >= 0."""
    return _int_at_least(0, text)


def _blocking_ancestor(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is not a directory (so nothing can be made there)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """An output folder must be a folder or creatable as one: a file in its place is a :class:`UsageError`
    naming ``option``, found before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file, not a folder; give a folder path")
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, so no folder can be made there")
    return path


def check_output_file(path: str | os.PathLike[str], option: str) -> Path:
    """An output file path must not be a folder, and its folder must be creatable (:class:`UsageError`)."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; give a file path")
    blocker = _blocking_ancestor(path)
    if blocker is not None:
        raise UsageError(f"{option} {path}: {blocker} is a file, so no folder can be made there")
    return path


def check_input_files(args: argparse.Namespace, *dests: str) -> None:
    """Each file option in ``dests`` (argparse destinations) that is given must not name a folder; a missing
    file is left to its reader, which names it and its line."""
    for dest in dests:
        value = getattr(args, dest)
        if value is not None and Path(value).is_dir():
            option = "--" + dest.replace("_", "-")
            raise UsageError(f"{option} {value} is a folder; give the file")
