"""Instruction tuning with transformers' Trainer: checkpoints, resume after a kill, progress bar with loss.

The same code runs on a laptop CPU (the synthetic study) and on GPUs (``accelerate launch``,
DeepSpeed through TrainingArguments) since the Trainer owns devices, precision and distribution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, TrainingArguments, set_seed

from ..errors import MashVlmError, UsageError
from ..files import atomic_path, save_figure_atomic, write_json_atomic
from ..modeling import MashVlmConfig, MashVlmForConditionalGeneration, MashVlmModel, MashVlmProcessor
from .config import TrainConfig
from .data import InstructionRecord, VideoInstructionCollator, VideoInstructionDataset, load_videochat2_json
from .distributed import (
    check_engine,
    die_with_launcher,
    engine_name,
    is_main_process,
    last_complete_checkpoint,
    plan_batch,
    save_final,
    world_size_from_env,
)
from .schemes import apply_tuning_scheme, merge_lora, trainable_parameters
from .skips import SkipCountingTrainer

FINAL_DIR = "final"
CONFIG_FILE = "train_config.json"  # the TrainConfig of the training in the folder (a valid config file)
INPUT_HASHES_FILE = "input_hashes.json"  # sha256 of the input files of CONTENT_FIELDS
# Config fields that leave the trained weights unchanged: where and how often files are written or logs
# printed, how many processes load the data, and whether the frozen tower's output is cached (the same
# arithmetic per frame). Every other field counts (share_prompt_prefix and attn_implementation too: they
# change float rounding, which can change a run; docs/decisions.md).
NOT_RESULT_FIELDS = ("output_dir", "logging_steps", "save_steps", "save_total_limit", "dataloader_num_workers",
                     "cache_tower_features")
# Input files compared by content: the same file moved compares equal, an edited one differs.
CONTENT_FIELDS = ("train_file", "mixture", "vision_tower_weights", "language_model_weights", "tokenizer_file")
ADAPTER_DIR = "adapter"  # a LoRA run's adapter (PEFT format) and processor, beside the merged ``final``
# What a training writes into output_dir, by name: all that --overwrite removes (nothing else is touched).
OUTPUTS = (FINAL_DIR, ADAPTER_DIR, "processor", CONFIG_FILE, INPUT_HASHES_FILE, "train_log.json", "loss.png")
# What a text-pre-trained language model (``language_model_weights``) holds: the Llama and its head.
LANGUAGE_MODEL_PREFIXES = ("model.language_model.", "lm_head.")


class TrainingFolderMismatch(MashVlmError, ValueError):
    """``output_dir`` holds a training (finished or not) of another configuration."""


class TrainingInputMissing(MashVlmError, FileNotFoundError):
    """An input file named in the training config does not exist."""


@dataclass
class TrainResult:
    final_dir: Path
    global_step: int
    log_history: list[dict]
    resumed_from: str | None
    reused: bool  # the finished model was already there; nothing was trained
    skipped: dict | None = None  # samples skipped per dataset (video failed to decode)


def build_model_and_processor(
    config: TrainConfig, records: list[InstructionRecord]
) -> tuple[MashVlmForConditionalGeneration, MashVlmProcessor]:
    """The model to tune, from ``config.init``, with the MASH options of ``config.mash`` applied."""
    saved_processor = Path(config.output_dir) / "processor"
    if config.init == "tiny":
        from ..modeling.tiny import tiny_model, tiny_processor_and_config

        if config.tokenizer_file:
            records = load_videochat2_json(config.tokenizer_file, config.video_root)
        corpus = [text for record in records for turn in record.turns for text in turn]
        processor, model_config = tiny_processor_and_config(corpus, **config.tiny, **config.mash)
        if (saved_processor / "processor_config.json").is_file():
            processor = MashVlmProcessor.from_pretrained(saved_processor)  # resume: the exact same tokenizer
        model = tiny_model(model_config, seed=config.seed)
    elif config.init.startswith("llava:"):
        from ..modeling.conversion import load_llava_as_mashvlm

        frames = {"num_frames": config.num_frames} if config.num_frames else {}
        model, processor = load_llava_as_mashvlm(config.init.removeprefix("llava:"), **frames, **config.mash)
    else:
        path = config.init.removeprefix("mashvlm:")
        model_config = MashVlmConfig.from_pretrained(path, **config.mash)
        model = MashVlmForConditionalGeneration.from_pretrained(path, config=model_config)
        processor = MashVlmProcessor.from_pretrained(path)
        # `mash` may change the video tokens (Table 8); the saved processor must expand <video> to match.
        processor.check_matches_config(model_config)
    if config.vision_tower_weights:
        from safetensors.torch import load_file

        model.model.vision_tower.load_state_dict(load_file(config.vision_tower_weights), strict=True)
    if config.language_model_weights:
        load_language_model(model, processor, config.language_model_weights)
    if config.freeze_vision_tower:
        model.freeze_vision_tower()
    model.set_attn_implementation(config.attn_implementation)
    return model, processor


def tokenizer_fingerprint(processor: MashVlmProcessor) -> str:
    """A hash of the vocabulary: saved embeddings are only valid with the tokenizer they were trained with."""
    vocab = sorted(processor.tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:16]


def language_model_state(model: MashVlmForConditionalGeneration) -> dict[str, torch.Tensor]:
    """The ``LANGUAGE_MODEL_PREFIXES`` part of the state dict (contiguous, detached)."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()
            if k.startswith(LANGUAGE_MODEL_PREFIXES)}


def load_language_model(model: MashVlmForConditionalGeneration, processor: MashVlmProcessor,
                        path: str | os.PathLike) -> None:
    """Load a text-pre-trained Llama and ``lm_head`` (``mashvlm.study.language``) into ``model``.

    The weights were trained with one tokenizer; loading them under another would silently scramble
    every embedding, so the saved tokenizer fingerprint must match.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise FileNotFoundError(f"language_model_weights: no such file {path}")
    with safe_open(str(path), framework="pt") as f:
        saved = (f.metadata() or {}).get("tokenizer")
    state = load_file(str(path))
    if saved != tokenizer_fingerprint(processor):
        raise ValueError(
            f"{path} was trained with another tokenizer (fingerprint {saved}, this model's "
            f"{tokenizer_fingerprint(processor)}); pre-train the language model on the same training data"
        )
    expected = {k for k in model.state_dict() if k.startswith(LANGUAGE_MODEL_PREFIXES)}
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"{path} does not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(state, strict=False)


def file_sha256(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def input_hashes(config: TrainConfig) -> dict[str, str]:
    """sha256 of each input file of ``CONTENT_FIELDS`` that the config sets."""
    hashes = {}
    for name in CONTENT_FIELDS:
        path = getattr(config, name)
        if path:
            if not Path(path).is_file():
                raise TrainingInputMissing(f"{name}: no such file {path}")
            if name == "mixture":
                from .mixture import mixture_sha256

                hashes[name] = mixture_sha256(path)  # the mixture file and every annotation file it names
            else:
                hashes[name] = file_sha256(path)
    return hashes


def config_differences(saved: dict, saved_hashes: dict[str, str] | None, config: TrainConfig,
                       hashes: dict[str, str]) -> list[str]:
    """``"max_steps: 1500 (saved) vs 300 (now)"`` for each field that decides the trained weights and differs.

    The input files of ``CONTENT_FIELDS`` compare by content (a moved file is the same input, an edited
    one is not); folders saved without hashes compare them by path.
    """
    now_fields = config.to_dict()
    # A field the saved config lacks was added to TrainConfig later: that training ran with its default.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    defaults |= {f.name: f.default_factory() for f in dataclasses.fields(TrainConfig)
                 if f.default_factory is not dataclasses.MISSING}
    saved = {**{k: v for k, v in defaults.items() if k in now_fields}, **saved}

    def key(fields: dict, file_hashes: dict[str, str] | None, name: str):
        if name in CONTENT_FIELDS and fields.get(name) and file_hashes is not None:
            return file_hashes.get(name)
        return fields.get(name, "(unset)")

    def show(fields: dict, file_hashes: dict[str, str] | None, name: str) -> str:
        value = fields.get(name, "(unset)")
        text = value if isinstance(value, str) else json.dumps(value)
        if name in CONTENT_FIELDS and value and file_hashes is not None:
            text += f" (sha256 {file_hashes.get(name, '?')[:12]})"
        return text

    names = sorted((set(saved) | set(now_fields)) - set(NOT_RESULT_FIELDS))
    now_hashes = hashes if saved_hashes is not None else None
    return [f"{name}: {show(saved, saved_hashes, name)} (saved) vs {show(now_fields, now_hashes, name)} (now)"
            for name in names if key(saved, saved_hashes, name) != key(now_fields, now_hashes, name)]


def check_training_folder(config: TrainConfig, hashes: dict[str, str]) -> None:
    """Refuse to reuse or resume a training in ``output_dir`` that was run with another configuration."""
    out = Path(config.output_dir)
    if not (out / CONFIG_FILE).is_file():
        return
    saved = json.loads((out / CONFIG_FILE).read_text())
    saved_hashes = json.loads((out / INPUT_HASHES_FILE).read_text()) if (out / INPUT_HASHES_FILE).is_file() else None
    differences = config_differences(saved, saved_hashes, config, hashes)
    if differences:
        raise TrainingFolderMismatch(
            f"{out} holds a training with another configuration ({out / CONFIG_FILE}): "
            + "; ".join(differences)
            + ". Use another --output-dir, or start over there with --overwrite (train(overwrite=True))"
        )


def clear_training_folder(out: Path) -> None:
    """Remove what a training wrote into ``out`` (``OUTPUTS`` and ``checkpoint-*``), nothing else."""
    if not out.is_dir():
        return
    for path in [out / name for name in OUTPUTS] + sorted(out.glob("checkpoint-*")):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def load_training_records(config: TrainConfig, *, progress: bool = False):
    """``(records, mixture)``: the records of ``train_file``, or of the ``mixture`` (then also returned,
    with what it took from each dataset; its table is printed with ``progress``)."""
    if not config.mixture:
        source = Path(config.train_file).stem
        return load_videochat2_json(config.train_file, config.video_root, source=source), None
    from .mixture import load_mixture

    mixture = load_mixture(config.mixture)
    if progress and is_main_process():
        print(f"training data ({config.mixture}, records):\n{mixture.table()}")
    return mixture.records, mixture


def frozen_tower_features(model: MashVlmModel, bf16: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """A video's pixels ``[T, 3, H, W]`` -> the frozen tower's output ``[T, 1+N, D]`` (on the CPU, for the
    dataset's cache), computed on the tower's device at call time (the Trainer moves the model before the
    first batch) and under the bf16 autocast that the Trainer's forward would run it in."""

    def features(pixels: torch.Tensor) -> torch.Tensor:
        device = next(model.vision_tower.parameters()).device
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model.get_tower_features(pixels[None].to(device))[0].cpu()

    return features


def train(config: TrainConfig, *, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Tune and save ``output_dir/final`` (model + processor).

    A folder that already holds a training of the same configuration (``NOT_RESULT_FIELDS`` aside; input
    files compared by content) is reused: a finished one is returned at once, an interrupted one resumes
    from its last checkpoint. One of another configuration is refused with a
    :class:`TrainingFolderMismatch` naming each difference, unless ``overwrite`` removes it (checkpoints
    included) and trains from scratch. ``progress=False`` shows no bar and prints no logs.
    """
    out = Path(config.output_dir)
    final = out / FINAL_DIR
    hashes = input_hashes(config)
    if overwrite:
        if is_main_process():  # one process removes; the others would race it
            clear_training_folder(out)
    else:
        check_training_folder(config, hashes)
    if (final / "model.safetensors").is_file() and (out / "train_log.json").is_file():
        log = json.loads((out / "train_log.json").read_text())
        return TrainResult(final, log["global_step"], log["log_history"], None, reused=True,
                           skipped=log.get("skipped"))

    die_with_launcher()
    set_seed(config.seed)
    records, mixture = load_training_records(config, progress=progress)
    plan = plan_batch(config.per_device_train_batch_size, world_size_from_env(), config.global_batch_size,
                      config.gradient_accumulation_steps)
    model, processor = build_model_and_processor(config, records)
    tower_features = None
    if config.cache_tower_features:
        if plan.world_size > 1:
            raise UsageError(f"cache_tower_features is for one process; this run has {plan.world_size}: "
                             "set cache_tower_features false")
        tower_features = frozen_tower_features(model.model, config.bf16)
    model = apply_tuning_scheme(model, config.tuning, config.lora)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():  # one writer among the processes
        with atomic_path(out / "processor", directory=True) as partial:
            processor.save_pretrained(partial)
        write_json_atomic(out / CONFIG_FILE, config.to_dict())
        write_json_atomic(out / INPUT_HASHES_FILE, hashes)

    # A broken video is skipped and counted, never fatal (mashvlm.training.skips); a mixture is too big to cache.
    dataset = VideoInstructionDataset(records, processor, turns=config.turns, cache_videos=not config.mixture,
                                      skip_undecodable=True, tower_features=tower_features)
    pad_id = processor.tokenizer.pad_token_id
    pad_id = pad_id if pad_id is not None else processor.tokenizer.eos_token_id
    args = TrainingArguments(
        output_dir=str(out),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        activation_checkpointing=config.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the total steps (v5)
        lr_scheduler_type=config.lr_scheduler_type,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps,
        bf16=config.bf16,
        dataloader_num_workers=config.dataloader_num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
    )
    trainer = SkipCountingTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=VideoInstructionCollator(pad_token_id=pad_id, share_prompt_prefix=config.share_prompt_prefix,
                                               dataset=dataset),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)  # what the Trainer prints in place of its bar
    check_engine(trainer, plan)
    if progress and is_main_process():
        print(f"mashvlm train: {plan.describe()}; tuning {config.tuning}", flush=True)
    last = last_complete_checkpoint(out) if out.is_dir() else None
    trainer.resume_skip_log(last)
    trainer.train(resume_from_checkpoint=last)
    skips = trainer.gathered_skip_log()

    # Write the final model under a temporary name first: an interrupted save never looks finished.
    # LoRA: the adapter (with the trained projector) first, then the plain merged model as ``final``.
    save_final(trainer, processor, out / ADAPTER_DIR if config.tuning == "lora" else final)
    history = trainer.state.log_history
    if not is_main_process():
        return TrainResult(final, trainer.state.global_step, history, last, reused=False,
                           skipped=dict(skips.counts))
    if config.tuning == "lora":
        merge_lora_run(out, out / ADAPTER_DIR, final)
    run = {"world_size": trainer.args.world_size, "engine": engine_name(trainer), **plan.to_dict(),
           **trainable_parameters(model), "resumed_from": last}
    log = {"global_step": trainer.state.global_step, "run": run, "log_history": history, **skips.report()}
    if mixture is not None:
        log["mixture"] = mixture.counts
    write_json_atomic(out / "train_log.json", log)
    plot_loss(history, out / "loss.png")
    if progress or skips.total:
        print(skips.summary())
    return TrainResult(final, trainer.state.global_step, history, last, reused=False, skipped=dict(skips.counts))


def merge_lora_run(run_dir: str | os.PathLike, adapter_dir: str | os.PathLike, output: str | os.PathLike) -> Path:
    """A plain MASH-VLM checkpoint in ``output``: the run's base model (rebuilt from its
    ``train_config.json``, as the run started) with the LoRA adapter of ``adapter_dir`` merged in."""
    run_dir, output = Path(run_dir), Path(output)
    if not (run_dir / "train_config.json").is_file():
        raise UsageError(f"{run_dir}: not a training run (train_config.json is missing)")
    config = TrainConfig(**{**json.loads((run_dir / "train_config.json").read_text()), "tuning": "full", "lora": {}})
    config.output_dir = str(run_dir)  # the run's saved tokenizer (tiny init)
    set_seed(config.seed)
    model, processor = build_model_and_processor(config, load_training_records(config, progress=False)[0])
    merged = merge_lora(model, adapter_dir)
    with atomic_path(output, directory=True) as partial:
        merged.save_pretrained(partial)
        processor.save_pretrained(partial)
    return output


def plot_loss(history: list[dict], path: Path) -> None:
    """Training loss against step, as a PNG."""
    points = [(h["step"], h["loss"]) for h in history if "loss" in h]
    if not points:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(*zip(*points, strict=True))
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)
