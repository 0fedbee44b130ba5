"""The project's error base class.

Every error that a user can cause and fix (a bad file, a missing checkpoint, an invalid option, a
judge that keeps failing) derives from :class:`MashVlmError`. Its message names the input and says
what to do; the command line prints it as one line and exits with status 2 (``mashvlm.cli``). Any
other exception is a bug and keeps its traceback.

Subclasses keep the built-in base that callers may already catch (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so ``except ValueError`` code goes on working.
"""

from __future__ import annotations

import os

__all__ = ["FormatError", "MashVlmError", "UsageError"]


class MashVlmError(Exception):
    """An error in the user's input or environment, with a message that says how to fix it."""


class UsageError(MashVlmError, ValueError):
    """An invalid option or combination of options (the message names the option)."""


class FormatError(MashVlmError, ValueError):
    """An input file is malformed. The message names the file, the line and the field."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, field: str | None, message: str):
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = message
        where = self.path if line is None else f"{self.path}:{line}"
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")
