"""Instruction-tuning data in the VideoChat2 JSON format.

A file is a JSON list of records ``{"video": "<path relative to the video root>", "QA": [{"i": ..., "q": ...,
"a": ...}, ...]}``. ``i`` is an optional instruction put before the question. Each record becomes one
example per QA pair (``turns="single"``, the default: later answers cannot leak into earlier
questions) or one multi-turn conversation (``turns="multi"``). Loss is on the answers only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..errors import MashVlmError
from ..modeling.processing_mash_vlm import IGNORE_INDEX, MashVlmProcessor


class DataFormatError(MashVlmError, ValueError):
    """A training file is malformed; the message names the file, record and field."""


@dataclass(frozen=True)
class InstructionRecord:
    video: str
    turns: tuple[tuple[str, str], ...]


def load_videochat2_json(path: str | os.PathLike, video_root: str | os.PathLike | None = None) -> list[InstructionRecord]:
    """Read and validate a VideoChat2-format file; video paths must stay inside ``video_root``."""
    path = Path(path)
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataFormatError(f"{path}: no such file") from err
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(records, list):
        raise DataFormatError(f"{path}: expected a JSON list of {{'video', 'QA'}} records")
    root = Path(video_root) if video_root is not None else path.parent
    out = []
    for index, record in enumerate(records):
        where = f"{path}: record {index}"
        if not isinstance(record, dict):
            raise DataFormatError(f"{where}: expected an object")
        video = record.get("video")
        if not isinstance(video, str) or not video:
            raise DataFormatError(f"{where}: field 'video' must be a non-empty string")
        if os.path.isabs(video) or ".." in Path(video).parts:
            raise DataFormatError(f"{where}: field 'video' ({video!r}) must be a path inside the video root")
        qa = record.get("QA")
        if not isinstance(qa, list) or not qa:
            raise DataFormatError(f"{where}: field 'QA' must be a non-empty list")
        turns = []
        for j, item in enumerate(qa):
            if not isinstance(item, dict):
                raise DataFormatError(f"{where}: QA[{j}] must be an object")
            for key in ("q", "a"):
                if not isinstance(item.get(key), str) or not item[key].strip():
                    raise DataFormatError(f"{where}: QA[{j}].{key} must be a non-empty string")
            instruction = item.get("i") or ""
            if not isinstance(instruction, str):
                raise DataFormatError(f"{where}: QA[{j}].i must be a string")
            question = f"{instruction.strip()} {item['q'].strip()}".strip()
            turns.append((question, item["a"].strip()))
        out.append(InstructionRecord(str(root / video), tuple(turns)))
    return out


class VideoInstructionDataset(Dataset):
    """Examples ``{input_ids, labels, pixel_values_videos}`` for :class:`MashVlmForConditionalGeneration`.

    Decoded and preprocessed videos are cached in memory when ``cache_videos`` (the synthetic world
    fits easily); a video that fails to decode raises its :class:`VideoDecodeError`, naming the file.
    """

    def __init__(
        self,
        records: list[InstructionRecord],
        processor: MashVlmProcessor,
        *,
        turns: str = "single",
        cache_videos: bool = True,
    ):
        if turns not in ("single", "multi"):
            raise ValueError(f"turns must be 'single' or 'multi', got {turns!r}")
        self.processor = processor
        self.records = records
        if turns == "single":
            self.items = [(r.video, (turn,)) for r in records for turn in r.turns]
        else:
            self.items = [(r.video, r.turns) for r in records]
        self.cache: dict[str, torch.Tensor] | None = {} if cache_videos else None

    def __len__(self) -> int:
        return len(self.items)

    def video_pixels(self, video: str) -> torch.Tensor:
        if self.cache is not None and video in self.cache:
            return self.cache[video]
        pixels = self.processor.preprocess_video(self.processor.load_video(video))  # VideoDecodeError names it
        if self.cache is not None:
            self.cache[video] = pixels
        return pixels

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        video, turns = self.items[index]
        example = self.processor.encode_conversation(turns)
        example["pixel_values_videos"] = self.video_pixels(video)
        return example


@dataclass
class VideoInstructionCollator:
    """Right-pads ``input_ids`` (pad id) and ``labels`` (-100); stacks videos ``[B, T, 3, H, W]`` (text-only
    examples, without ``pixel_values_videos``, give a batch without them). ``share_prompt_prefix`` asks the
    model to run the rows' common system prompt once (see ``MashVlmForConditionalGeneration.forward``)."""

    pad_token_id: int
    share_prompt_prefix: bool = False

    def __call__(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor | bool]:
        length = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = example["input_ids"]
            labels[row, :n] = example["labels"]
            attention_mask[row, :n] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        if "pixel_values_videos" in examples[0]:
            batch["pixel_values_videos"] = torch.stack([e["pixel_values_videos"] for e in examples])
        if self.share_prompt_prefix:
            batch["share_prompt_prefix"] = True
        return batch
