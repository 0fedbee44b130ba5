"""Table 9's tuning schemes in one process: what trains, what is saved, and the LoRA merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mashvlm.cli import main
from mashvlm.errors import UsageError
from mashvlm.modeling import MashVlmForConditionalGeneration, MashVlmProcessor
from mashvlm.modeling.tiny import tiny_model
from mashvlm.training.config import TrainConfig
from mashvlm.training.data import VideoInstructionCollator, VideoInstructionDataset, load_videochat2_json
from mashvlm.training.distributed import plan_batch
from mashvlm.training.schemes import lora_target_pattern
from mashvlm.training.trainer import train

REPO = Path(__file__).resolve().parents[2]


def _config(world, out, tiny, **overrides):
    base = dict(train_file=str(world.instruct_file("train")), video_root=str(world.root), output_dir=str(out),
                tiny=tiny, learning_rate=3e-3, per_device_train_batch_size=4, warmup_ratio=0.0,
                lr_scheduler_type="constant", logging_steps=1, save_steps=1000, seed=0, max_steps=3)
    base.update(overrides)
    return TrainConfig(**base)


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert set(before) == set(after)
    return {k for k in before if not torch.equal(before[k], after[k])}


def _batch(world, processor, n=4):
    dataset = VideoInstructionDataset(load_videochat2_json(world.instruct_file("train"), world.root), processor)
    collate = VideoInstructionCollator(pad_token_id=processor.tokenizer.pad_token_id)
    batch = collate([dataset[i] for i in range(n)])
    batch.pop("labels")
    return batch


def test_frozen_llm_trains_the_projector_only(small_world, tiny_model_kwargs, tmp_path):
    result = train(_config(small_world, tmp_path, tiny_model_kwargs, tuning="frozen_llm"), progress=False)
    tuned = MashVlmForConditionalGeneration.from_pretrained(result.final_dir)
    initial = tiny_model(tuned.config, seed=0)
    changed = _changed(initial.state_dict(), tuned.state_dict())
    assert changed and all(k.startswith("model.multi_modal_projector.") for k in changed), sorted(changed)
    run = json.loads((tmp_path / "train_log.json").read_text())["run"]
    projector = sum(p.numel() for p in initial.model.multi_modal_projector.parameters())
    assert run["trainable_parameters"] == projector < run["total_parameters"]


def test_lora_trains_adapters_and_projector_and_merges_to_the_same_logits(small_world, tiny_model_kwargs, tmp_path):
    from peft import PeftModel

    config = _config(small_world, tmp_path / "run", tiny_model_kwargs, tuning="lora", max_steps=4,
                     gradient_checkpointing=True, lora={"r": 4, "alpha": 8, "dropout": 0.0})
    result = train(config, progress=False)
    adapter = tmp_path / "run" / "adapter"
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    # The adapter file holds the LoRA matrices of the language model and the (fully trained) projector.
    assert all(("lora_A" in k or "lora_B" in k) and ".language_model." in k or "multi_modal_projector" in k
               for k in saved), sorted(saved)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in saved.items())  # B starts at zero: it trained
    assert not any("vision_tower" in k for k in saved)

    merged = MashVlmForConditionalGeneration.from_pretrained(result.final_dir)  # a plain checkpoint
    initial = tiny_model(merged.config, seed=0)
    changed = _changed(initial.state_dict(), merged.state_dict())
    targets = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert {k for k in changed if k.startswith("model.multi_modal_projector.")}
    for key in changed:  # only what LoRA merged into and the projector moved
        assert key.startswith("model.multi_modal_projector.") or (
            key.startswith("model.language_model.") and key.split(".")[-2] in targets), key
    assert not any("vision_tower" in k or "embed_tokens" in k or k.startswith("lm_head") for k in changed)

    # The adapter applied to the untouched base gives the merged model's logits.
    processor = MashVlmProcessor.from_pretrained(result.final_dir)
    batch = _batch(small_world, processor)
    with_adapter = PeftModel.from_pretrained(tiny_model(merged.config, seed=0), str(adapter)).eval()
    with torch.no_grad():
        expected = with_adapter(**batch).logits
        got = merged.eval()(**batch).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)

    # mashvlm merge-lora writes the same plain checkpoint.
    assert main(["merge-lora", str(tmp_path / "run"), "--output", str(tmp_path / "merged")]) == 0
    again = load_file(str(tmp_path / "merged" / "model.safetensors"))
    final = load_file(str(result.final_dir / "model.safetensors"))
    assert set(again) == set(final) and all(torch.equal(again[k], final[k]) for k in final)


def test_schemes_and_lora_options_are_checked(small_world, tiny_model_kwargs, tmp_path):
    with pytest.raises(UsageError, match="tuning must be one of"):
        _config(small_world, tmp_path, tiny_model_kwargs, tuning="qlora")
    with pytest.raises(UsageError, match="unknown 'lora' option"):
        _config(small_world, tmp_path, tiny_model_kwargs, tuning="lora", lora={"rank": 8})
    with pytest.raises(UsageError, match="tuning is 'full'"):
        _config(small_world, tmp_path, tiny_model_kwargs, lora={"r": 8})
    with pytest.raises(UsageError, match="match no layer"):
        train(_config(small_world, tmp_path, tiny_model_kwargs, tuning="lora", lora={"target_modules": ["nope"]}),
              progress=False)
    # The LoRA pattern reaches the language model's layers, never the CLIP tower's q/k/v projections.
    import re

    pattern = lora_target_pattern(["q_proj"])
    assert re.fullmatch(pattern, "base_model.model.model.language_model.layers.0.self_attn.q_proj")
    assert not re.fullmatch(pattern, "base_model.model.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj")


def test_the_shipped_7b_recipe_is_the_papers():
    config = TrainConfig.from_file(REPO / "configs" / "train" / "mashvlm-7b.json")
    assert config.init.startswith("llava:") and config.freeze_vision_tower and config.tuning == "full"
    assert (config.learning_rate, config.global_batch_size, config.num_train_epochs) == (2e-5, 128, 2)
    assert (config.lr_scheduler_type, config.warmup_ratio, config.weight_decay) == ("cosine", 0.03, 0.0)
    assert config.bf16 and config.gradient_checkpointing
    assert plan_batch(config.per_device_train_batch_size, 8, config.global_batch_size).gradient_accumulation_steps == 4
