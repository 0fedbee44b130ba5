"""Training configuration: a JSON file, overridable from the command line."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mashvlm.errors import FormatError, UsageError
from mashvlm.validation import check_field_types

# The MashVlmConfig fields that choose a MASH-VLM variant (Tables 5-8): the one list of their names, which
# TrainConfig.mash and the study's variants are checked against (tests/training: each is a config field).
MASH_OPTIONS = (
    "rope_variant",
    "temporal_attention",
    "spatial_attention",
    "spatial_attends_temporal",
    "temporal_attends_spatial",
    "temporal_tokens",
    "spatial_tokens",
)


@dataclass
class TrainConfig:
    """Instruction tuning. Defaults follow the paper's supplementary §7 (lr 2e-5, 2 epochs, cosine,
    warm-up 0.03, AdamW without weight decay, frozen vision tower); the paper's total batch is 128
    (``per_device_train_batch_size x gradient_accumulation_steps x devices``)."""

    train_file: str | None = None  # one VideoChat2 JSON file, or:
    video_root: str | None = None  # default: the train file's folder
    output_dir: str = "runs/train"
    # Model: "tiny" (random, tokenizer trained on the data), "llava:PATH" or "mashvlm:PATH".
    init: str = "tiny"
    tiny: dict = field(default_factory=dict)  # kwargs of mashvlm.modeling.tiny.tiny_processor_and_config
    # init "tiny": a VideoChat2 JSON file whose texts train the tokenizer in place of the training data's, so
    # that a run on part of the data keeps the vocabulary that language_model_weights were trained with.
    tokenizer_file: str | None = None
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
    # A mixture file of datasets (mashvlm/training/mixture.py; docs/training_data.md), in place of train_file.
    mixture: str | None = None
    # Run the frozen vision tower once per video and keep its output in memory, not once per step: the same
    # training up to float rounding (the tower runs on one video at a time), for less compute. For data that
    # fits in memory (not a mixture), one process, no DataLoader workers (docs/decisions.md, "Training").
    cache_tower_features: bool = False

    def __post_init__(self):
        check_field_types(self, "training config")
        if (self.train_file is None) == (self.mixture is None):
            raise UsageError("set one of train_file (a VideoChat2 JSON file) and mixture (a mixture file)")
        unknown = set(self.mash) - set(MASH_OPTIONS)
        if unknown:
            raise UsageError(f"unknown 'mash' option(s) {sorted(unknown)}; choose from {list(MASH_OPTIONS)}")
        if not (self.init == "tiny" or self.init.startswith(("llava:", "mashvlm:"))):
            raise UsageError(f"init must be 'tiny', 'llava:PATH' or 'mashvlm:PATH', got {self.init!r}")
        if self.tokenizer_file and self.init != "tiny":
            raise UsageError(f"tokenizer_file trains the tokenizer of init 'tiny'; init {self.init!r} brings its own")
        from mashvlm.modeling.configuration_mash_vlm import (
            ATTENTION_TYPES,
            ROPE_VARIANTS,
            canonical_temporal_tokens,
        )

        allowed = {"rope_variant": ROPE_VARIANTS, "temporal_attention": ATTENTION_TYPES,
                   "spatial_attention": ATTENTION_TYPES}
        for key, value in self.mash.items():
            if key == "temporal_tokens":
                try:
                    canonical_temporal_tokens(value if isinstance(value, list) else [value])
                except ValueError as err:
                    raise UsageError(f"mash option {err}") from None
                continue
            choices = allowed.get(key, (True, False))
            if value not in choices or (key not in allowed and not isinstance(value, bool)):
                raise UsageError(f"mash option {key} must be one of {list(choices)}, got {value!r}")
        if self.cache_tower_features:
            problem = ("the tower must be frozen (freeze_vision_tower)" if not self.freeze_vision_tower else
                       "a mixture is too big to hold in memory" if self.mixture else
                       "the tower runs in the training process (dataloader_num_workers 0)"
                       if self.dataloader_num_workers else None)
            if problem:
                raise UsageError(f"cache_tower_features: {problem}; set cache_tower_features false")
        from .schemes import check_tuning

        check_tuning(self.tuning, self.lora)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides) -> TrainConfig:
        """The config in the JSON file ``path`` with ``overrides`` (command-line values) applied. A missing
        or malformed file is a :class:`FormatError`, an unknown key or a bad value a :class:`UsageError`."""
        path = Path(path)
        if path.is_dir():
            raise FormatError(path, None, None, "is a folder; give the JSON training config file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FormatError(path, None, None, "no such config file") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FormatError(path, getattr(err, "lineno", None), None, f"not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise FormatError(path, None, None, f"expected a JSON object of config keys, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FormatError(path, None, None, f"unknown key(s) {unknown}; valid keys: {sorted(names)}")
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise UsageError(f"--set: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        for key in ("train_file", "mixture", "video_root", "vision_tower_weights", "language_model_weights",
                    "tokenizer_file", "output_dir"):
            if isinstance(data.get(key), str) and data[key] and not os.path.isabs(data[key]):
                data[key] = str(path.parent / data[key])  # paths in the file are relative to it
        data.update(overrides)  # command-line values are relative to the working directory
        if "train_file" not in data and "mixture" not in data:
            raise FormatError(path, None, "train_file", "missing; set it (or 'mixture') in the file or with --train-file")
        try:
            return cls(**data)
        except UsageError as err:
            where = f"{path} with the command-line values" if overrides else str(path)
            raise UsageError(f"{where}: {err}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_config_inputs(config: TrainConfig) -> None:
    """Check the files and folders a config names before training starts, so a wrong path is one
    :class:`UsageError` naming the config key, not an error minutes into model building."""
    from mashvlm.inference import check_mashvlm_dir
    from mashvlm.modeling.conversion import check_llava_dir, check_safetensors

    if config.mixture is not None:
        from mashvlm.training.mixture import check_video_root, read_mixture

        mixture = read_mixture(config.mixture)  # a FormatError names the field
        for source in mixture.datasets:
            check_video_root(mixture, source)
    elif not Path(config.train_file).is_file():
        what = "is a folder" if Path(config.train_file).is_dir() else "does not exist"
        raise UsageError(f"train_file {config.train_file} {what}; give the VideoChat2-format JSON file")
    if config.video_root is not None and not Path(config.video_root).is_dir():
        raise UsageError(f"video_root {config.video_root} is not a folder")
    for key in ("vision_tower_weights", "language_model_weights"):
        value = getattr(config, key)
        if value is not None:
            if not Path(value).is_file():
                raise UsageError(f"{key} {value} is not a file; give a .safetensors file")
            check_safetensors(Path(value))
    if config.init.startswith("llava:"):
        check_llava_dir(config.init.removeprefix("llava:"))
    elif config.init.startswith("mashvlm:"):
        check_mashvlm_dir(config.init.removeprefix("mashvlm:"))
