"""Type checks of config dataclasses filled from JSON files and ``--set`` options (kept free of heavy imports).

A value of the wrong type (``learning_rate="fast"``, ``seeds=["a"]``) would otherwise fail far from its
source, deep in training or rendering; here it is a :class:`UsageError` that names the field.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from mashvlm.errors import UsageError

__all__ = ["check_field_types"]


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a plain annotation: str, int, float, bool, dict, list[X], tuple[X, ...],
    tuple[X, Y], X | None. A JSON list stands for a tuple. Other annotations are not checked."""
    args, origin = getattr(hint, "__args__", None), getattr(hint, "__origin__", None)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple) if origin is tuple else list):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return len(value) == len(args) and all(_type_ok(v, a) for v, a in zip(value, args, strict=True))
        return all(_type_ok(v, args[0]) for v in value)
    if args is not None and type(None) in args:  # X | None
        return value is None or any(_type_ok(value, a) for a in args if a is not type(None))
    hint = origin or hint
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def check_field_types(config: Any, what: str) -> None:
    """Raise :class:`UsageError` naming the first field of the dataclass ``config`` whose value has the
    wrong type for its annotation."""
    hints = get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        if not _type_ok(value, hint):
            expected = hint.__name__ if isinstance(hint, type) else str(hint)  # "int", "list[int]", "str | None"
            raise UsageError(f"{what}: {f.name} must be {expected}, got {value!r}")
