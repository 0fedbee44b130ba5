"""The LLM tuning schemes of the paper's Table 9: full fine-tuning, LoRA (through PEFT) and a frozen LLM.

In every scheme the projector is fully trained and the vision tower follows ``freeze_vision_tower``
(frozen in the paper). ``full`` trains the whole Llama and ``lm_head``; ``frozen_llm`` trains the projector
only; ``lora`` adds PEFT LoRA adapters to the Llama's linear layers (never to the CLIP tower, whose
attention layers share the names) and keeps the projector trained and saved with the adapter
(``modules_to_save``). A LoRA run saves its adapter in PEFT's format (``adapter_config.json`` +
``adapter_model.safetensors``); :func:`merge_lora` folds it into the base model and writes a plain
MASH-VLM checkpoint that ``from_pretrained`` loads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from torch import nn

from ..errors import UsageError

SCHEMES = ("full", "lora", "frozen_llm")
# LLaVA-1.5's LoRA recipe (scripts/v1_5/finetune_lora.sh); the paper does not give its LoRA settings.
LORA_DEFAULTS = {
    "r": 128,
    "alpha": 256,
    "dropout": 0.05,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
PROJECTOR = "multi_modal_projector"
LANGUAGE_MODEL = "language_model"


def check_tuning(scheme: str, lora: dict) -> None:
    """Refuse an unknown scheme, LoRA options outside ``lora`` scheme, or unknown LoRA keys."""
    if scheme not in SCHEMES:
        raise UsageError(f"tuning must be one of {list(SCHEMES)}, got {scheme!r}")
    if lora and scheme != "lora":
        raise UsageError(f"'lora' options are set but tuning is {scheme!r}; set tuning to 'lora' or remove them")
    unknown = sorted(set(lora) - set(LORA_DEFAULTS))
    if unknown:
        raise UsageError(f"unknown 'lora' option(s) {unknown}; choose from {sorted(LORA_DEFAULTS)}")


def lora_target_pattern(target_modules: list[str]) -> str:
    """A PEFT ``target_modules`` regex matching the named linear layers inside the language model only."""
    names = "|".join(re.escape(name) for name in target_modules)
    return rf".*\.{LANGUAGE_MODEL}\..*\.({names})"


def apply_tuning_scheme(model: nn.Module, scheme: str, lora: dict | None = None) -> nn.Module:
    """Set what trains under ``scheme``; returns the model to train (a ``PeftModel`` for ``lora``)."""
    lora = lora or {}
    check_tuning(scheme, lora)
    if scheme == "full":
        return model
    if scheme == "frozen_llm":
        for name, parameter in model.named_parameters():
            if not name.startswith(f"model.{PROJECTOR}."):
                parameter.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model

    settings = {**LORA_DEFAULTS, **lora}
    peft_config = LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=lora_target_pattern(list(settings["target_modules"])),
        modules_to_save=[PROJECTOR],  # fully trained, and saved with the adapter
        bias="none",
        task_type="CAUSAL_LM",
    )
    from peft.utils.error import NoMatchingPeftModuleError

    frozen_tower = {n for n, p in model.named_parameters() if not p.requires_grad}
    try:
        peft_model = get_peft_model(model, peft_config)
    except NoMatchingPeftModuleError as err:
        raise UsageError(
            f"lora target_modules {settings['target_modules']} match no layer of the language model"
        ) from err
    # get_peft_model freezes everything but adapters and modules_to_save; nothing else to undo, but a tower
    # the config leaves trainable must stay so.
    for name, parameter in peft_model.base_model.model.named_parameters():
        if "vision_tower" in name and name not in frozen_tower and "lora_" not in name:
            parameter.requires_grad_(True)
    return peft_model


def trainable_parameters(model: nn.Module) -> dict[str, int]:
    """Counts for the log: trainable and total parameters."""
    def count(p) -> int:
        return getattr(p, "ds_numel", p.numel())  # ZeRO-3 leaves each process an empty placeholder

    total = sum(count(p) for p in model.parameters())
    trainable = sum(count(p) for p in model.parameters() if p.requires_grad)
    return {"trainable_parameters": trainable, "total_parameters": total}


def merge_lora(base: nn.Module, adapter_dir: str | os.PathLike) -> nn.Module:
    """The plain model: ``base`` (as the run started) with the adapter and trained projector of
    ``adapter_dir`` folded in. ``base`` is changed in place and returned unwrapped."""
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UsageError(f"{adapter_dir}: no LoRA adapter here (adapter_config.json is missing)")
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    return peft_model.merge_and_unload()

