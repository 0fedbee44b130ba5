"""Video paths in UNSCENE files: relative to a video root, and never outside it."""

from __future__ import annotations

import os
import re

__all__ = ["check_video_path", "resolve_video_path"]


def check_video_path(value: str) -> str | None:
    """Why ``value`` is not a safe path relative to the video root, or None when it is.

    Paths must stay inside the root: no absolute paths, no drive letters, no ``..`` components. Both
    ``/`` and ``\\`` count as separators so a Windows-style escape is caught on POSIX too.
    """
    if not value.strip():
        return "must be a non-empty path relative to the video root"
    if "\x00" in value:
        return "contains a NUL character"
    parts = re.split(r"[\\/]", value)
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or value.startswith("~"):
        return f"must be relative to the video root, got absolute path {value!r}"
    if ".." in parts:
        return f"must stay inside the video root, '..' is not allowed: {value!r}"
    return None


def resolve_video_path(video_root: str | os.PathLike[str], relative: str) -> str:
    """Join a validated relative path to the root, refusing anything that lands outside it."""
    problem = check_video_path(relative)
    if problem:
        raise ValueError(f"video path {problem}")
    root = os.path.abspath(os.fspath(video_root))
    joined = os.path.normpath(os.path.join(root, *re.split(r"[\\/]", relative)))
    if os.path.commonpath([root, joined]) != root:  # belt and braces after the lexical check
        raise ValueError(f"video path {relative!r} escapes the video root {root}")
    return joined
