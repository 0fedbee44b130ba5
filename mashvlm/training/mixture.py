"""A mixture of instruction datasets: the paper's seven (about 430k VideoChat2-IT records) in one stream.

A mixture file is JSON (paths relative to it)::

    {"seed": 0,
     "datasets": [
        {"name": "webvid", "annotations": ["webvid/caption.json", "webvid/qa.json"], "video_root": "videos/webvid"},
        {"name": "clevrer", "annotations": "clevrer/mc.json", "video_root": "videos/clevrer", "samples": 20000},
        {"name": "ssv2", "annotations": "ssv2/train.json", "video_root": "frames/ssv2", "ratio": 0.5, "fps": 12}]}

A dataset takes all its records, ``samples`` of them or ``ratio`` x its size. A count below the size is a
random subset without replacement; above it, every record is repeated ``samples // size`` times and a
random subset makes up the rest (``ratio`` 2.0 shows each record twice). Samples are records (one video
with its QA list), as counted in the VideoChat2 release. ``fps`` is the frame rate of a dataset whose
videos are frame folders, needed only for records with ``start`` / ``end``. Each dataset draws from its
own seeded generator, so adding a dataset leaves the others' choices unchanged; the taken records of
all datasets are then shuffled together.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from ..errors import FormatError, UsageError
from .data import InstructionRecord, load_videochat2_json

__all__ = ["LoadedMixture", "Mixture", "MixtureSource", "load_mixture", "mixture_sha256", "planned_take",
           "read_mixture", "take_indices"]

_TOP_KEYS = ("datasets", "seed")
_SOURCE_KEYS = ("name", "annotations", "video_root", "samples", "ratio", "fps")


@dataclass(frozen=True)
class MixtureSource:
    name: str
    annotations: tuple[Path, ...]
    video_root: Path
    samples: int | None = None
    ratio: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class Mixture:
    path: Path
    datasets: tuple[MixtureSource, ...]
    seed: int = 0


def _positive(value: object, kind: type) -> bool:
    numeric = isinstance(value, int) if kind is int else isinstance(value, (int, float))
    return numeric and not isinstance(value, bool) and value > 0


def read_mixture(path: str | os.PathLike) -> Mixture:
    """Read and validate a mixture file; every error is a :class:`FormatError` naming the field
    (``datasets[2].samples``)."""
    path = Path(path)
    if path.is_dir():
        raise FormatError(path, None, None, "is a folder; give the JSON mixture file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(path, None, None, "no such mixture file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FormatError(path, getattr(err, "lineno", None), None, f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise FormatError(path, None, None, "expected a JSON object with 'datasets'")
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise FormatError(path, None, unknown[0], f"unknown key; valid keys: {list(_TOP_KEYS)}")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise FormatError(path, None, "seed", f"must be a whole number, got {seed!r}")
    entries = data.get("datasets")
    if not isinstance(entries, list) or not entries:
        raise FormatError(path, None, "datasets", "must be a non-empty list of datasets")
    base = path.parent
    sources, names = [], set()
    for i, entry in enumerate(entries):
        where = f"datasets[{i}]"
        if not isinstance(entry, dict):
            raise FormatError(path, None, where, "must be an object with 'name', 'annotations', 'video_root'")
        unknown = sorted(set(entry) - set(_SOURCE_KEYS))
        if unknown:
            raise FormatError(path, None, f"{where}.{unknown[0]}", f"unknown key; valid keys: {list(_SOURCE_KEYS)}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FormatError(path, None, f"{where}.name", "must be a non-empty string")
        if name in names:
            raise FormatError(path, None, f"{where}.name", f"{name!r} names two datasets")
        names.add(name)
        annotations = entry.get("annotations")
        if isinstance(annotations, str):
            annotations = [annotations]
        if not isinstance(annotations, list) or not annotations or not all(
                isinstance(a, str) and a for a in annotations):
            raise FormatError(path, None, f"{where}.annotations", "must be a file name or a non-empty list of them")
        root = entry.get("video_root")
        if not isinstance(root, str):
            raise FormatError(path, None, f"{where}.video_root", "must be the folder the records' 'video' paths "
                              "are relative to")
        samples, ratio, fps = entry.get("samples"), entry.get("ratio"), entry.get("fps")
        if samples is not None and ratio is not None:
            raise FormatError(path, None, f"{where}.ratio", "give 'samples' or 'ratio', not both")
        if samples is not None and not _positive(samples, int):
            raise FormatError(path, None, f"{where}.samples", f"must be a whole number > 0, got {samples!r}")
        for key, value in (("ratio", ratio), ("fps", fps)):
            if value is not None and not _positive(value, float):
                raise FormatError(path, None, f"{where}.{key}", f"must be a number > 0, got {value!r}")
        sources.append(MixtureSource(
            name, tuple(base / a for a in annotations), base / root, samples,
            None if ratio is None else float(ratio), None if fps is None else float(fps)))
    return Mixture(path, tuple(sources), seed)


def planned_take(available: int, samples: int | None, ratio: float | None) -> int:
    """How many records a dataset gives: ``samples``, ``round(ratio * available)``, else all."""
    if samples is not None:
        return samples
    if ratio is not None:
        return round(ratio * available)
    return available


def take_indices(available: int, take: int, rng: random.Random) -> list[int]:
    """``take`` indices into ``available`` records: each one ``take // available`` times, plus a random
    subset (without replacement) of ``take % available`` of them."""
    if take and not available:
        raise ValueError("cannot take records from an empty dataset")
    repeats, rest = divmod(take, available) if available else (0, 0)
    return list(range(available)) * repeats + sorted(rng.sample(range(available), rest))


@dataclass
class LoadedMixture:
    records: list[InstructionRecord]
    counts: dict[str, dict[str, int]]  # name -> {"available", "taken"} (records)

    def table(self) -> str:
        """``dataset: available, taken`` as aligned text lines."""
        width = max(len("dataset"), *(len(n) for n in self.counts))
        lines = [f"{'dataset':<{width}}  {'available':>9}  {'taken':>9}"]
        for name, c in self.counts.items():
            lines.append(f"{name:<{width}}  {c['available']:>9}  {c['taken']:>9}")
        total = [sum(c[k] for c in self.counts.values()) for k in ("available", "taken")]
        lines.append(f"{'total':<{width}}  {total[0]:>9}  {total[1]:>9}")
        return "\n".join(lines)


def check_video_root(mixture: Mixture, source: MixtureSource) -> None:
    if not source.video_root.is_dir():
        raise UsageError(f"{mixture.path}: dataset {source.name!r}: video_root {source.video_root} is not a folder")


def load_mixture(mixture: Mixture | str | os.PathLike) -> LoadedMixture:
    """Every dataset's records (the first malformed record raises its DataFormatError), sampled as the
    mixture says, shuffled into one list; each record carries its dataset's name in ``source``."""
    if not isinstance(mixture, Mixture):
        mixture = read_mixture(mixture)
    taken: list[InstructionRecord] = []
    counts = {}
    for source in mixture.datasets:
        check_video_root(mixture, source)
        records = [r for a in source.annotations
                   for r in load_videochat2_json(a, source.video_root, source=source.name, fps=source.fps)]
        take = planned_take(len(records), source.samples, source.ratio)
        if take and not records:
            raise UsageError(f"{mixture.path}: dataset {source.name!r} has no records in "
                             f"{', '.join(map(str, source.annotations))}")
        rng = random.Random(f"{mixture.seed}:{source.name}")
        taken += [records[i] for i in take_indices(len(records), take, rng)]
        counts[source.name] = {"available": len(records), "taken": take}
    random.Random(mixture.seed).shuffle(taken)
    return LoadedMixture(taken, counts)


def mixture_sha256(path: str | os.PathLike) -> str:
    """A hash of the mixture file and of every annotation file it names (what decides the training data)."""
    mixture = read_mixture(path)
    digest = hashlib.sha256(Path(path).read_bytes())
    for source in mixture.datasets:
        for annotation in source.annotations:
            if annotation.is_file():
                with open(annotation, "rb") as f:
                    digest.update(hashlib.file_digest(f, "sha256").digest())
            else:
                digest.update(b"missing")
    return digest.hexdigest()
