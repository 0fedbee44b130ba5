"""Instruction tuning with transformers' Trainer: checkpoints, resume after a kill, progress bar with loss.

The same code runs on a laptop CPU (the synthetic study) and on GPUs (``accelerate launch``,
DeepSpeed through TrainingArguments) since the Trainer owns devices, precision and distribution.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

from ..errors import UsageError
from ..files import atomic_path, write_json_atomic
from ..modeling import MashVlmConfig, MashVlmForConditionalGeneration, MashVlmProcessor
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

FINAL_DIR = "final"
ADAPTER_DIR = "adapter"  # a LoRA run's adapter (PEFT format) and processor, beside the merged ``final``
# What a text-pre-trained language model (``language_model_weights``) holds: the Llama and its head.
LANGUAGE_MODEL_PREFIXES = ("model.language_model.", "lm_head.")


@dataclass
class TrainResult:
    final_dir: Path
    global_step: int
    log_history: list[dict]
    resumed_from: str | None
    reused: bool  # the finished model was already there; nothing was trained


def build_model_and_processor(
    config: TrainConfig, records: list[InstructionRecord]
) -> tuple[MashVlmForConditionalGeneration, MashVlmProcessor]:
    """The model to tune, from ``config.init``, with the MASH options of ``config.mash`` applied."""
    saved_processor = Path(config.output_dir) / "processor"
    if config.init == "tiny":
        from ..modeling.tiny import tiny_model, tiny_processor_and_config

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


def train(config: TrainConfig, *, resume: bool = True, progress: bool = True) -> TrainResult:
    """Tune and save ``output_dir/final`` (model + processor). Resumes from the last checkpoint, and
    returns at once if ``final`` already exists (``resume=False`` starts over). ``progress=False`` shows
    no bar and prints no logs."""
    out = Path(config.output_dir)
    final = out / FINAL_DIR
    if resume and (final / "model.safetensors").is_file() and (out / "train_log.json").is_file():
        log = json.loads((out / "train_log.json").read_text())
        return TrainResult(final, log["global_step"], log["log_history"], None, reused=True)

    die_with_launcher()
    set_seed(config.seed)
    records = load_videochat2_json(config.train_file, config.video_root)
    plan = plan_batch(config.per_device_train_batch_size, world_size_from_env(), config.global_batch_size,
                      config.gradient_accumulation_steps)
    model, processor = build_model_and_processor(config, records)
    model = apply_tuning_scheme(model, config.tuning, config.lora)
    out.mkdir(parents=True, exist_ok=True)
    if is_main_process():  # one writer among the processes
        with atomic_path(out / "processor", directory=True) as partial:
            processor.save_pretrained(partial)
        write_json_atomic(out / "train_config.json", config.to_dict())

    dataset = VideoInstructionDataset(records, processor, turns=config.turns)
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
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=VideoInstructionCollator(pad_token_id=pad_id, share_prompt_prefix=config.share_prompt_prefix),
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)  # what the Trainer prints in place of its bar
    check_engine(trainer, plan)
    if progress and is_main_process():
        print(f"mashvlm train: {plan.describe()}; tuning {config.tuning}", flush=True)
    last = last_complete_checkpoint(out) if resume and out.is_dir() else None
    trainer.train(resume_from_checkpoint=last)

    # Write the final model under a temporary name first: an interrupted save never looks finished.
    # LoRA: the adapter (with the trained projector) first, then the plain merged model as ``final``.
    save_final(trainer, processor, out / ADAPTER_DIR if config.tuning == "lora" else final)
    history = trainer.state.log_history
    if not is_main_process():
        return TrainResult(final, trainer.state.global_step, history, last, reused=False)
    if config.tuning == "lora":
        merge_lora_run(out, out / ADAPTER_DIR, final)
    run = {"world_size": trainer.args.world_size, "engine": engine_name(trainer), **plan.to_dict(),
           **trainable_parameters(model), "resumed_from": last}
    write_json_atomic(out / "train_log.json",
                      {"global_step": trainer.state.global_step, "run": run, "log_history": history})
    plot_loss(history, out / "loss.png")
    return TrainResult(final, trainer.state.global_step, history, last, reused=False)


def merge_lora_run(run_dir: str | os.PathLike, adapter_dir: str | os.PathLike, output: str | os.PathLike) -> Path:
    """A plain MASH-VLM checkpoint in ``output``: the run's base model (rebuilt from its
    ``train_config.json``, as the run started) with the LoRA adapter of ``adapter_dir`` merged in."""
    run_dir, output = Path(run_dir), Path(output)
    if not (run_dir / "train_config.json").is_file():
        raise UsageError(f"{run_dir}: not a training run (train_config.json is missing)")
    config = TrainConfig(**{**json.loads((run_dir / "train_config.json").read_text()), "tuning": "full", "lora": {}})
    config.output_dir = str(run_dir)  # the run's saved tokenizer (tiny init)
    set_seed(config.seed)
    model, processor = build_model_and_processor(config, load_videochat2_json(config.train_file, config.video_root))
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
