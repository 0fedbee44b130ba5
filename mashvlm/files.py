"""Files: atomic writes and JSONL, the one implementation every component uses.

- :func:`atomic_path` / :func:`write_text_atomic` / :func:`write_json_atomic`: a crash or kill
  leaves either the old file or the new one under the real name, never half of one.
- :func:`read_jsonl`: JSON-lines reading that names the file, line and column of every error, and
  reports (instead of raising on) a cut-off last line, the signature of a writer killed mid-line,
  but only when that line provably is one: the start of a JSON object after whole lines.
- :func:`repair_truncated_tail`: cut such a line off, for resumable runs, touching nothing else.
- :func:`append_jsonl`: append one record and fsync it, for resumable runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .errors import FormatError

__all__ = [
    "JsonlLine",
    "JsonlReadResult",
    "append_jsonl",
    "atomic_path",
    "dumps_line",
    "is_json_object_prefix",
    "read_jsonl",
    "repair_truncated_tail",
    "save_figure_atomic",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_text_atomic",
]


# --------------------------------------------------------------------------------------------------
# Atomic writes


def _create_temp_sibling(path: Path, directory: bool) -> Path:
    """A new, unique, hidden path beside ``path``, created with the permissions a plain write gets.

    ``tempfile.mkstemp``/``mkdtemp`` would create it private (0600/0700) and the result would keep
    that mode; creating it with 0666/0777 lets the umask decide, as ``open(path, "w")`` does.
    """
    suffix = ".partial" if directory else ".partial" + path.suffix  # some writers pick the format by it
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            if directory:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path``.

    For writers that need a path of their own (PyAV, safetensors, PIL, ``save_pretrained``). The
    temporary name keeps the suffix, since some writers choose the format by it. An exception leaves
    ``path`` untouched and removes the temporary. A replaced file keeps its permissions, a new one
    gets those of a plain write; a symbolic link to a file is followed, as a plain write would. With
    ``directory=True`` the path is a folder (created empty for the writer to fill), and an existing
    folder of that name is replaced whole.
    """
    path = Path(path)
    if not directory and path.is_symlink():
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp_sibling(path, directory)
    try:
        yield tmp
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))  # replacing: keep the old file's mode
        if directory and path.is_dir() and not path.is_symlink():
            # A folder cannot replace a non-empty folder in one step: move the old one aside first, and
            # remove it last, so an interruption leaves the old content under a hidden name, not nothing.
            old = tmp.with_name(tmp.name + ".old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically and durably."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def save_figure_atomic(figure: Any, path: str | os.PathLike[str], *, dpi: int) -> None:
    """Save a matplotlib figure as a PNG atomically: an interrupted report leaves no truncated image."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (with a final newline) to ``path`` atomically.

    The data is serialised before the file is touched, so data JSON cannot hold leaves the old file.
    """
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def append_jsonl(fh: IO[str], record: Mapping[str, Any]) -> None:
    """Append one record to an open JSONL file and fsync it: a kill right after cannot lose it."""
    fh.write(dumps_line(record))
    fh.flush()
    os.fsync(fh.fileno())


def dumps_line(record: Mapping[str, Any]) -> str:
    """One JSONL line (with newline); key order is the record's, so output is byte-reproducible."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Write a JSONL file atomically: a crash leaves either the old file or the new one, never half."""
    write_text_atomic(path, "".join(dumps_line(r) for r in records))


# --------------------------------------------------------------------------------------------------
# JSONL reading


@dataclass
class JsonlLine:
    lineno: int
    record: dict[str, Any]


@dataclass
class JsonlReadResult:
    lines: list[JsonlLine]
    # A last line with no newline that is the start of a JSON object but not a whole one: what a
    # kill in the middle of a write leaves (see is_json_object_prefix).
    truncated_tail: bool = False
    # Byte offset where the whole lines end (the file can be truncated there to repair it).
    valid_bytes: int = 0
    # The last line was a whole JSON object but had no trailing newline.
    missing_final_newline: bool = False
    # Size of the file as read, so a repair can tell that the file changed since.
    size: int = 0


# One JSON token each; a string may hold any character but '"', '\' and controls, or an escape.
_CHAR = r'(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})'
_STRING = re.compile(rf'"{_CHAR}*"')
_STRING_START = re.compile(rf'"{_CHAR}*(?:\\(?:u[0-9a-fA-F]{{0,3}})?)?')  # cut inside, maybe in an escape
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_NUMBER_START = re.compile(r"-?(?:(?:0|[1-9]\d*)(?:\.\d*)?(?:(?<=\d)[eE][+-]?\d*)?)?")
_LITERALS = ("true", "false", "null")
_JSON_SPACE = " \t\r\n"


def is_json_object_prefix(text: str) -> bool:
    """Whether ``text`` is the start of some JSON object: what a writer killed mid-line leaves.

    A small JSON grammar check that stops, without error, where the text ends (inside a string, a
    number or a literal, or between tokens). Anything else (a line of other text, a JSON array,
    stray characters after a token) is not a cut-off record and must not be repaired away.
    """
    text = text.lstrip(_JSON_SPACE)
    if not text.startswith("{"):
        return False
    stack: list[str] = []  # open containers, '{' or '['
    # What may come next: "value", "key", "colon", "comma" (or a close), "key|close" (just after '{'),
    # "value|close" (just after '['), "end" (after the top-level object).
    expect = "value"
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _JSON_SPACE:
            i += 1
            continue
        if c in "{[":
            if expect not in ("value", "value|close"):
                return False
            stack.append(c)
            expect = "key|close" if c == "{" else "value|close"
            i += 1
            continue
        if c in "}]":
            opener, empty = ("{", "key|close") if c == "}" else ("[", "value|close")
            if not stack or stack[-1] != opener or expect not in ("comma", empty):
                return False
            stack.pop()
            expect = "comma" if stack else "end"
            i += 1
            continue
        if c == ",":
            if expect != "comma":
                return False
            expect = "key" if stack[-1] == "{" else "value"
            i += 1
            continue
        if c == ":":
            if expect != "colon":
                return False
            expect = "value"
            i += 1
            continue
        is_key = expect in ("key", "key|close")
        if not is_key and expect not in ("value", "value|close"):
            return False
        if c == '"':
            m = _STRING.match(text, i)
            if m is None:  # an unterminated string is fine only if it runs to the end of the text
                return _STRING_START.fullmatch(text, i) is not None
            i = m.end()
            expect = "colon" if is_key else ("comma" if stack else "end")
            continue
        if is_key:
            return False
        if _NUMBER_START.fullmatch(text, i) or any(lit.startswith(text[i:]) for lit in _LITERALS):
            return True  # a number or literal cut at the end of the text
        m = _NUMBER.match(text, i)
        end = m.end() if m else next((i + len(lit) for lit in _LITERALS if text.startswith(lit, i)), None)
        if end is None:
            return False
        i = end
        expect = "comma" if stack else "end"
    return True


def _decode_cut_utf8(raw: bytes) -> str | None:
    """Decode a cut-off last line: UTF-8, except possibly half a character at the very end."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.reason == "unexpected end of data" and err.end == len(raw):
            with contextlib.suppress(UnicodeDecodeError):
                return raw[: err.start].decode("utf-8")
        return None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    except IsADirectoryError:
        raise FormatError(path, None, None, "is a folder, not a JSONL file") from None
    except OSError as err:
        raise FormatError(path, None, None, f"cannot be read ({err.strerror or err})") from None


def read_jsonl(path: str | os.PathLike[str], *, allow_truncated_tail: bool = False) -> JsonlReadResult:
    """Read a JSONL file of objects; blank lines are skipped, a UTF-8 byte-order mark is allowed.

    A malformed line raises :class:`FormatError` naming the line (and column), with one exception
    under ``allow_truncated_tail``: a last line without a trailing newline that is the start of a
    JSON object (:func:`is_json_object_prefix`) is reported in the result instead, since that is
    what a process killed while writing leaves. Anything else in that place (random bytes, a line of
    text, a JSON array) is an error, so the caller never mistakes a foreign file for a damaged one.
    Whether the records are of the right kind is for the caller to check before any repair.
    """
    path = Path(path)
    data = _read_bytes(path)
    offset0 = 3 if data.startswith(b"\xef\xbb\xbf") else 0  # a byte-order mark written by some editors
    result = JsonlReadResult(lines=[], valid_bytes=offset0, size=len(data))
    pos = offset0
    lineno = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        complete = end != -1
        raw = data[pos:end] if complete else data[pos:]
        next_pos = end + 1 if complete else len(data)
        lineno += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if not complete and allow_truncated_tail:
                cut = _decode_cut_utf8(raw)
                if cut is not None and is_json_object_prefix(cut):
                    result.truncated_tail = True
                    break
            column = raw[: err.start].decode("utf-8", errors="replace")
            why = f"not valid UTF-8 ({err.reason} at column {len(column) + 1}); not a JSONL file?"
            raise FormatError(path, lineno, None, why) from None
        if not text.strip():
            pos = next_pos
            result.valid_bytes = pos
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            if not complete and allow_truncated_tail and is_json_object_prefix(text):
                result.truncated_tail = True
                break
            cut = ", and not the start of a JSON object cut off by a kill"
            why = cut if not complete and allow_truncated_tail else ""
            raise FormatError(
                path, lineno, None, f"not valid JSON ({err.msg} at column {err.colno}){why}"
            ) from None
        if not isinstance(record, dict):
            raise FormatError(path, lineno, None, f"expected a JSON object, got {_json_type(record)}")
        result.lines.append(JsonlLine(lineno, record))
        if not complete:
            result.missing_final_newline = True
        pos = next_pos
        result.valid_bytes = pos
    return result


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def repair_truncated_tail(path: str | os.PathLike[str], read: JsonlReadResult) -> None:
    """Cut a JSONL file back to its last whole record, as :func:`read_jsonl` found it (``read``):
    drop a cut-off last line, or add the newline a whole last record lost. Nothing else is touched.

    Call it only after every record in ``read`` was checked to be of the kind the file should hold:
    the tail check alone cannot tell a cut-off prediction from a cut-off line of some other file.
    A file that changed since it was read is refused, not cut.
    """
    if not (read.truncated_tail or read.missing_final_newline):
        return
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size != read.size:
            raise FormatError(
                path, None, None, f"changed while it was read ({read.size} then {size} bytes); not repaired"
            )
        fh.truncate(read.valid_bytes)
        if read.missing_final_newline:  # the last record is whole; only its newline was lost
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
