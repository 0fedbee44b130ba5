"""Training configuration: a JSON file, overridable from the command line."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

MASH_OPTIONS = (
    "rope_variant",
    "temporal_attention",
    "spatial_attention",
    "spatial_attends_temporal",
    "temporal_attends_spatial",
)


@dataclass
class TrainConfig:
    """Instruction tuning. Defaults follow the paper's supplementary §7 (lr 2e-5, 2 epochs, cosine,
    warm-up 0.03, AdamW without weight decay, frozen vision tower); the paper's total batch is 128
    (``per_device_train_batch_size x gradient_accumulation_steps x devices``)."""

    train_file: str
    video_root: str | None = None  # default: the train file's folder
    output_dir: str = "runs/train"
    # Model: "tiny" (random, tokenizer trained on the data), "llava:PATH" or "mashvlm:PATH".
    init: str = "tiny"
    tiny: dict = field(default_factory=dict)  # kwargs of mashvlm.modeling.tiny.tiny_processor_and_config
    mash: dict = field(default_factory=dict)  # rope_variant / attention switches (Tables 5-7)
    num_frames: int | None = None  # for llava init (tiny: tiny["num_frames"])
    vision_tower_weights: str | None = None  # safetensors of a pre-trained tower, loaded before training
    # safetensors of a text-pre-trained Llama + lm_head (mashvlm.study.language), loaded before training
    language_model_weights: str | None = None
    freeze_vision_tower: bool = True
    turns: str = "single"
    learning_rate: float = 2e-5
    num_train_epochs: float = 2.0
    max_steps: int = -1
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    # The total batch per optimiser step (the paper's 128). When set, the accumulation is derived from it:
    # global = per-device x accumulation x processes (mashvlm.training.distributed.plan_batch).
    global_batch_size: int | None = None
    # Table 9's LLM tuning schemes (mashvlm.training.schemes): "full", "lora" (PEFT; "lora" holds r, alpha,
    # dropout, target_modules) or "frozen_llm" (projector only). The vision tower follows freeze_vision_tower.
    tuning: str = "full"
    lora: dict = field(default_factory=dict)
    gradient_checkpointing: bool = False
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    save_steps: int = 500
    save_total_limit: int = 2
    logging_steps: int = 10
    bf16: bool = False
    attn_implementation: str = "sdpa"
    dataloader_num_workers: int = 0
    # Run the system prompt that every sequence starts with once per batch (same loss, less compute;
    # MashVlmForConditionalGeneration.forward(share_prompt_prefix=...)).
    share_prompt_prefix: bool = True

    def __post_init__(self):
        unknown = set(self.mash) - set(MASH_OPTIONS)
        if unknown:
            raise ValueError(f"unknown 'mash' option(s) {sorted(unknown)}; choose from {list(MASH_OPTIONS)}")
        if not (self.init == "tiny" or self.init.startswith(("llava:", "mashvlm:"))):
            raise ValueError(f"init must be 'tiny', 'llava:PATH' or 'mashvlm:PATH', got {self.init!r}")
        from .schemes import check_tuning

        check_tuning(self.tuning, self.lora)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides) -> TrainConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise ValueError(f"{path}: no such config file") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted((set(data) | set(overrides)) - names)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        for key in ("train_file", "video_root", "vision_tower_weights", "language_model_weights", "output_dir"):
            if data.get(key) and not os.path.isabs(data[key]):
                data[key] = str(path.parent / data[key])  # paths in the file are relative to it
        data.update(overrides)  # command-line values are relative to the working directory
        return cls(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
