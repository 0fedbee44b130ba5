"""Command-line helpers shared by the ``mashvlm`` subcommands (kept free of heavy imports)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["parse_key_values"]


def parse_key_values(items: Sequence[str], option: str = "--set", *, identifiers: bool = False) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; a value is parsed as JSON when it can be (numbers, true, lists, objects),
    else kept as a bare string. ``identifiers`` requires each key to be a Python identifier."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or (identifiers and not key.isidentifier()):
            rule = " with KEY a Python identifier" if identifiers else ""
            raise ValueError(f"{option} expects KEY=VALUE{rule}, got {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
