"""A small field-check library for JSON records: each check raises :class:`FormatError` naming the
record's source (file and line, when it came from a file) and the field."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, NoReturn

from mashvlm.errors import FormatError

__all__ = ["RecordChecker", "Source"]


class Source(NamedTuple):
    """Where a record came from, for error messages: a file (or any name) and its 1-based line."""

    path: str | os.PathLike[str]
    line: int | None = None


class RecordChecker:
    """Typed field accessors for one record, each failing with the source, the field and the fix.

    ``known_fields`` are the fields the format defines. Other fields are allowed (extra metadata),
    but one that is a near miss of a known field is refused as a typo: it would silently drop data.
    ``what`` names the record in messages when it has no ``source`` (an in-memory record).
    """

    def __init__(
        self,
        record: Mapping[str, Any],
        known_fields: tuple[str, ...],
        *,
        source: Source | None = None,
        what: str = "record",
    ):
        self.source = source if source is not None else Source(what)
        if not isinstance(record, Mapping):
            self.fail(None, f"expected a JSON object, got {type(record).__name__}")
        self.record = record
        for key in record:
            if key in known_fields:
                continue
            close = difflib.get_close_matches(key, known_fields, n=1, cutoff=0.85)
            if close:
                self.fail(key, f"unknown field; did you mean '{close[0]}'?")

    @property
    def lineno(self) -> int:
        return self.source.line or 0

    def fail(self, field: str | None, message: str) -> NoReturn:
        raise FormatError(self.source.path, self.source.line, field, message)

    def string(self, field: str, *, required: bool = True, nullable: bool = False) -> str | None:
        """A non-empty string; None when absent (``required=False``) or null (``nullable``)."""
        if field not in self.record:
            if required:
                self.fail(field, "missing (required)")
            return None
        value = self.record[field]
        if value is None:
            if nullable:
                return None
            self.fail(field, "must be a non-empty string, got null")
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {type(value).__name__} {value!r}")
        if not value.strip():
            self.fail(field, "must not be empty")
        return value

    def required_string(self, field: str) -> str:
        value = self.string(field)
        assert value is not None  # string() fails on a missing or null required field
        return value

    def choice(self, field: str, options: tuple[str, ...]) -> str:
        value = self.required_string(field)
        if value not in options:
            self.fail(field, f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}")
        return value

    def checked_string(self, field: str, problem: Callable[[str], str | None]) -> str:
        """A required string that ``problem`` (returning why it is bad, or None) accepts."""
        value = self.required_string(field)
        why = problem(value)
        if why:
            self.fail(field, why)
        return value

    def string_list(self, field: str, *, key: Callable[[str], str] = str) -> tuple[str, ...] | None:
        """A non-empty list of non-empty strings, none repeating another (compared by ``key``);
        None when absent or null."""
        value = self.record.get(field)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(field, f"must be a list of strings or null, got {type(value).__name__}")
        if not value:
            self.fail(field, "must not be an empty list (use null or leave it out)")
        seen: dict[str, int] = {}
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail(field, f"item {i} must be a non-empty string, got {item!r}")
            k = key(item)
            if k in seen:
                self.fail(field, f"item {i} {item!r} repeats item {seen[k]}")
            seen[k] = i
        return tuple(value)
