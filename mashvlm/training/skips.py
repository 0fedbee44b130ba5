"""Samples skipped during training because their video failed to decode: counted, logged, reported.

A broken video in a two-day run costs its sample and a log line, never the run, and never vanishes:
:class:`SkipCountingTrainer` takes the descriptions that :class:`~mashvlm.training.data.VideoInstructionCollator`
puts in each batch (from the DataLoader workers), logs each skip, counts it per dataset in a
:class:`SkipLog`, and saves the log with every checkpoint so that a resumed run keeps its counts.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from transformers import Trainer, TrainerCallback

from ..files import write_json_atomic
from .data import SKIPPED

logger = logging.getLogger("mashvlm.training")

# Written into each checkpoint folder (one file per process of a distributed run).
SKIP_FILE = "skipped_samples-{rank}.json"
MAX_LISTED = 1000  # distinct videos listed in train_log.json (all are counted)


class SkipLog:
    """Per-dataset counts of skipped samples, and each distinct failing video with its first error."""

    def __init__(self, counts: dict[str, int] | None = None, videos: dict[str, dict] | None = None):
        self.counts: Counter[str] = Counter(counts or {})
        self.videos: dict[str, dict] = dict(videos or {})

    def add(self, skip: dict) -> None:
        self.counts[skip["dataset"]] += 1
        seen = self.videos.setdefault(skip["video"], {"dataset": skip["dataset"], "error": skip["error"], "skips": 0})
        seen["skips"] += 1

    def merge(self, other: SkipLog) -> None:
        self.counts.update(other.counts)
        for video, seen in other.videos.items():
            mine = self.videos.setdefault(video, {**seen, "skips": 0})
            mine["skips"] += seen["skips"]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict:
        return {"counts": dict(self.counts), "videos": self.videos}

    @classmethod
    def from_json(cls, data: dict) -> SkipLog:
        return cls(data.get("counts"), data.get("videos"))

    def report(self) -> dict:
        """What ``train_log.json`` records: ``skipped`` per dataset and the failing videos."""
        videos = [{"video": v, **seen} for v, seen in sorted(self.videos.items())]
        return {"skipped": dict(sorted(self.counts.items())), "skipped_videos": videos[:MAX_LISTED],
                "skipped_videos_total": len(videos)}

    def summary(self) -> str:
        if not self.total:
            return "no sample was skipped"
        per = ", ".join(f"{name}: {n}" for name, n in sorted(self.counts.items()))
        return (f"skipped {self.total} samples whose video failed to decode ({per}; {len(self.videos)} distinct "
                "videos, listed in train_log.json)")


class _SaveSkipLog(TrainerCallback):
    def __init__(self, trainer: SkipCountingTrainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            rank = self.trainer.args.process_index
            write_json_atomic(folder / SKIP_FILE.format(rank=rank), self.trainer.skip_log.to_json())


class SkipCountingTrainer(Trainer):
    """A :class:`Trainer` that takes the ``"skipped"`` entry out of each batch before the forward, logs
    every skip (dataset, video, error) and counts it in ``skip_log``; saved with each checkpoint."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip_log = SkipLog()
        self.add_callback(_SaveSkipLog(self))

    def resume_skip_log(self, checkpoint: str | None) -> None:
        """Start from the counts saved in ``checkpoint`` (the run being resumed)."""
        if checkpoint:
            path = Path(checkpoint) / SKIP_FILE.format(rank=self.args.process_index)
            if path.is_file():
                self.skip_log = SkipLog.from_json(json.loads(path.read_text()))

    def training_step(self, model, inputs, num_items_in_batch=None):
        for skip in inputs.pop(SKIPPED, ()):
            self.skip_log.add(skip)
            logger.warning("skipped a sample of %s (step %d): %s", skip["dataset"] or "the training data",
                           self.state.global_step + 1, skip["error"])
        return super().training_step(model, inputs, num_items_in_batch)

    def gathered_skip_log(self) -> SkipLog:
        """The skip log of every process of a distributed run, merged (this process's alone otherwise)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.skip_log
        parts: list = [None] * dist.get_world_size()
        dist.all_gather_object(parts, self.skip_log.to_json())
        merged = SkipLog()
        for part in parts:
            merged.merge(SkipLog.from_json(part))
        return merged
