"""mashvlm.files: atomic writes leave the old content or the new, JSONL errors name line and column,
and only a provably cut-off last record is ever repaired away."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from mashvlm.errors import FormatError
from mashvlm.files import (
    atomic_path,
    dumps_line,
    is_json_object_prefix,
    read_jsonl,
    repair_truncated_tail,
    save_figure_atomic,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class Boom(Exception):
    pass


# --------------------------------------------------------------------------------------------------
# atomic writes


def test_atomic_path_replaces_a_file_and_keeps_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "clip.mp4"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".mp4") and tmp != target
        assert tmp.exists()  # created for the writer, which may also recreate it
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip.mp4"]


def test_atomic_path_exception_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(Boom), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise Boom
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_path_permissions_are_those_of_a_plain_write(tmp_path: Path) -> None:
    new = tmp_path / "new.txt"
    write_text_atomic(new, "x")
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's private 0600
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    write_text_atomic(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"


def test_atomic_path_follows_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_atomic_path_directory_replaces_the_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "stale.bin").write_text("from the old checkpoint")
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir())
        (tmp / "model.safetensors").write_text("weights")
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]  # no temporary or old folder left
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~_umask()  # not mkdtemp's private 0700


def test_atomic_path_directory_exception_leaves_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint"
    target.mkdir()
    (target / "model.safetensors").write_text("old weights")
    with pytest.raises(Boom), atomic_path(target, directory=True) as tmp:
        (tmp / "model.safetensors").write_text("half")
        (tmp / "nested").mkdir()
        raise Boom
    assert (target / "model.safetensors").read_text() == "old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


def test_write_json_atomic(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json_atomic(path, {"b": 1, "a": "é"})
    assert path.read_text(encoding="utf-8") == '{\n  "b": 1,\n  "a": "é"\n}\n'
    # data JSON cannot hold fails before the file is touched
    with pytest.raises(TypeError):
        write_json_atomic(path, {"x": object()})
    assert json.loads(path.read_text(encoding="utf-8")) == {"b": 1, "a": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_save_figure_atomic_writes_a_png_and_a_failed_save_keeps_the_old_one(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "chart.png"
    save_figure_atomic(fig, path, dpi=50)
    plt.close(fig)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = _digest(path)

    class HalfWritten:  # a savefig that dies part-way (an interrupted report)
        def savefig(self, target: Path, **kwargs: object) -> None:
            Path(target).write_bytes(b"\x89PNG")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_figure_atomic(HalfWritten(), path, dpi=50)
    assert _digest(path) == before and [p.name for p in tmp_path.iterdir()] == ["chart.png"]


def test_write_jsonl_atomic_roundtrip(tmp_path: Path) -> None:
    records = [{"question_id": "a", "prediction": "oui, c'est ça"}, {"question_id": "b", "n": [1, None]}]
    path = tmp_path / "p.jsonl"
    write_jsonl_atomic(path, records)
    assert path.read_text(encoding="utf-8") == "".join(dumps_line(r) for r in records)
    assert [line.record for line in read_jsonl(path).lines] == records


# --------------------------------------------------------------------------------------------------
# reading: every error names the line (and column)


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (
            b'{"a": 1}\n\n{"a": 2,}\n',
            3,
            "not valid JSON (Expecting property name enclosed in double quotes at column 9)",
        ),
        (b'\xef\xbb\xbf{"a": 1}\n[1]\n', 2, "expected a JSON object, got an array"),
        (b'{"a": 1}\n"text"\n', 2, "expected a JSON object, got a string"),
        (b'{"a": 1}\n{"a": "\xff"}\n', 2, "not valid UTF-8 (invalid start byte at column 8)"),
        (b"  \n\t\n{oops}\n", 3, "not valid JSON"),
    ],
)
def test_read_jsonl_error_positions(tmp_path: Path, content: bytes, line: int, fragment: str) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        read_jsonl(path, allow_truncated_tail=True)
    assert (info.value.path, info.value.line) == (str(path), line)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_read_jsonl_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"nope.jsonl: file not found$"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(FormatError, match=r": is a folder, not a JSONL file$"):
        read_jsonl(tmp_path)


def test_read_jsonl_blank_lines_bom_and_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n   \n{"a": 2}')
    read = read_jsonl(path)
    assert [(x.lineno, x.record) for x in read.lines] == [(1, {"a": 1}), (4, {"a": 2})]
    assert read.missing_final_newline and not read.truncated_tail and read.valid_bytes == read.size


@pytest.mark.parametrize(
    "text",
    [
        "{",
        '  {"a',
        '{"a"',
        '{"a": ',
        '{"a": "x\\',
        '{"a": "x\\u12',
        '{"a": 1',
        '{"a": 1.',
        '{"a": -',
        '{"a": 1.5e',
        '{"a": tr',
        '{"a": [1, {"b": nul',
        '{"a": 1, ',
        '{"a": "café',
    ],
)
def test_json_object_prefixes(text: str) -> None:
    assert is_json_object_prefix(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "[1, 2",
        '"a string',
        "{a",
        '{"a" 1',
        '{"a": 1.e',
        '{"a": 01',
        '{"a": trux',
        '{"a": 1]',
        '{"a": 1}}',
        '{"a": 1} x',
        "{,",
        '{"a": "\x01',
        "\x00\x00",
        '{"a": 1 2',
        '{"a": [1,]',
    ],
)
def test_not_json_object_prefixes(text: str) -> None:
    assert not is_json_object_prefix(text)


# --------------------------------------------------------------------------------------------------
# repair: only a provably cut-off record, nothing else


def test_repair_drops_only_the_cut_off_record(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    whole = dumps_line({"question_id": "a", "prediction": "yes"})
    path.write_text(whole + '{"question_id": "b", "pred', encoding="utf-8")
    read = read_jsonl(path, allow_truncated_tail=True)
    assert read.truncated_tail and [x.record["question_id"] for x in read.lines] == ["a"]
    repair_truncated_tail(path, read)
    assert path.read_text(encoding="utf-8") == whole


def test_repair_cut_inside_a_multibyte_character(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    whole = dumps_line({"question_id": "a", "prediction": "yes"}).encode()
    path.write_bytes(whole + '{"question_id": "b", "prediction": "ça'.encode()[:-2])  # half of 'ç'
    read = read_jsonl(path, allow_truncated_tail=True)
    repair_truncated_tail(path, read)
    assert path.read_bytes() == whole


def test_repair_adds_a_lost_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}', encoding="utf-8")
    read = read_jsonl(path, allow_truncated_tail=True)
    repair_truncated_tail(path, read)
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"a": 2}\n'


def test_repair_of_a_whole_file_does_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n', encoding="utf-8")
    before = path.stat().st_mtime_ns
    repair_truncated_tail(path, read_jsonl(path, allow_truncated_tail=True))
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n' and path.stat().st_mtime_ns == before


def test_repair_refuses_a_file_that_changed_since_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"a": 1}\n{"a": ', encoding="utf-8")
    read = read_jsonl(path, allow_truncated_tail=True)
    with path.open("a", encoding="utf-8") as fh:  # another writer finished the line meanwhile
        fh.write("2}\n")
    digest = _digest(path)
    with pytest.raises(FormatError, match="changed while it was read"):
        repair_truncated_tail(path, read)
    assert _digest(path) == digest


@pytest.mark.parametrize(
    "content",
    [
        bytes([0x8F, 0x00, 0xFF, 0x13, 0x37, 0xC3]) * 50,  # binary without a newline
        b"\x00" * 10,
        b'[{"a": 1}, {"a": 2}]',  # a JSON array on one line
        b'[\n  {"a": 1}\n]\n',  # a pretty-printed JSON file
        b'{"a": 1}\nnot json at all',  # text after records
        b'{"a": 1}\n{bad}\n{"a": 2}\n{"a": ',  # a bad line in the middle, cut tail at the end
        b"# Notes\n\nSome prose.",
    ],
)
def test_anything_but_a_cut_off_record_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    digest = _digest(path)
    with pytest.raises(FormatError) as info:
        read_jsonl(path, allow_truncated_tail=True)
    assert str(info.value).startswith(f"{path}:") and "\n" not in str(info.value)
    assert _digest(path) == digest
