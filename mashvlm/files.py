"""Files: atomic writes and JSONL, the one implementation every component uses.

- :func:`atomic_path` / :func:`write_text_atomic` / :func:`write_json_atomic`: a crash or kill
  leaves either the old file or the new one under the real name, never half of one.
- :func:`read_jsonl`: JSON-lines reading that names the file and line of every error, and reports
  (instead of raising on) a cut-off last line, the signature of a writer killed mid-line.
- :func:`append_jsonl`: append one record and fsync it, for resumable runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
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
    "read_jsonl",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_text_atomic",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it replaces ``path``.

    For writers that need a path of their own (PyAV, safetensors, PIL, ``save_pretrained``). The
    temporary name keeps the suffix, since some writers choose the format by it. An exception leaves
    ``path`` untouched and removes the temporary. With ``directory=True`` the path is a folder, and an
    existing folder of that name is replaced whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and path.is_dir():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)  # a folder cannot be replaced in one step; the old one goes last
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically and durably."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON (with a final newline) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def append_jsonl(fh: IO[str], record: Mapping[str, Any]) -> None:
    """Append one record to an open JSONL file and fsync it: a kill right after cannot lose it."""
    fh.write(dumps_line(record))
    fh.flush()
    os.fsync(fh.fileno())


# --------------------------------------------------------------------------------------------------
# JSONL reading and writing


@dataclass
class JsonlLine:
    lineno: int
    record: dict[str, Any]


@dataclass
class JsonlReadResult:
    lines: list[JsonlLine]
    # A last line with no newline that is not valid JSON: what a kill in the middle of a write leaves.
    truncated_tail: bool = False
    # Byte offset where the valid content ends (the file can be truncated there to repair it).
    valid_bytes: int = 0
    # The last line was complete JSON but had no trailing newline.
    missing_final_newline: bool = False


def read_jsonl(path: str | os.PathLike[str], *, allow_truncated_tail: bool = False) -> JsonlReadResult:
    """Read a JSONL file of objects; blank lines are skipped.

    A malformed line raises :class:`FormatError`, except (with ``allow_truncated_tail``) a malformed
    *last* line without a trailing newline, which is reported in the result instead: that is the
    signature of a process killed while writing, not of a bad file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(path, None, None, "file not found") from None
    if data.startswith(b"\xef\xbb\xbf"):  # tolerate a UTF-8 byte-order mark written by some editors
        data = data[3:]
        offset0 = 3
    else:
        offset0 = 0
    result = JsonlReadResult(lines=[], valid_bytes=offset0)
    pos = 0
    lineno = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        complete = end != -1
        raw = data[pos:end] if complete else data[pos:]
        next_pos = end + 1 if complete else len(data)
        lineno += 1
        text_ok = True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            text_ok = False
            decode_error = f"not valid UTF-8 ({err.reason} at byte {err.start})"
        if text_ok and not text.strip():
            pos = next_pos
            result.valid_bytes = offset0 + pos
            continue
        try:
            if not text_ok:
                raise ValueError(decode_error)
            record = json.loads(text)
        except ValueError as err:
            if not complete and allow_truncated_tail:
                result.truncated_tail = True
                break
            msg = err.msg if isinstance(err, json.JSONDecodeError) else str(err)
            raise FormatError(path, lineno, None, f"not valid JSON ({msg})") from None
        if not isinstance(record, dict):
            raise FormatError(path, lineno, None, f"expected a JSON object, got {type(record).__name__}")
        result.lines.append(JsonlLine(lineno, record))
        if not complete:
            result.missing_final_newline = True
        pos = next_pos
        result.valid_bytes = offset0 + pos
    return result


def dumps_line(record: Mapping[str, Any]) -> str:
    """One JSONL line (with newline); key order is the record's, so output is byte-reproducible."""
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Write a JSONL file atomically: a crash leaves either the old file or the new one, never half."""
    write_text_atomic(path, "".join(dumps_line(r) for r in records))


def repair_truncated_tail(path: str | os.PathLike[str], read: JsonlReadResult) -> None:
    """Cut a JSONL file back to its last whole record, as :func:`read_jsonl` found it (``read``):
    drop a cut-off last line, or add the newline a whole last record lost. Nothing else is touched."""
    if not (read.truncated_tail or read.missing_final_newline):
        return
    with open(path, "r+b") as fh:
        fh.truncate(read.valid_bytes)
        if read.missing_final_newline:  # the last record is whole; only its newline was lost
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())
