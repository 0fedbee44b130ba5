"""Instruction tuning on a few steps: the loss falls, a killed run resumes from its checkpoint step."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from mashvlm.training.config import TrainConfig
from mashvlm.training.data import DataFormatError, load_videochat2_json
from mashvlm.training.trainer import TrainingFolderMismatch, train


def _config(world, out, tiny, **overrides):
    base = dict(
        train_file=str(world.instruct_file("train")),
        video_root=str(world.root),
        output_dir=str(out),
        tiny=tiny,
        learning_rate=3e-3,
        per_device_train_batch_size=8,
        warmup_ratio=0.0,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_steps=1000,
        seed=0,
    )
    base.update(overrides)
    return TrainConfig(**base)


def _losses(history):
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def test_loss_falls_and_the_model_is_saved(small_world, tiny_model_kwargs, tmp_path):
    result = train(_config(small_world, tmp_path, tiny_model_kwargs, max_steps=30))
    losses = list(_losses(result.log_history).values())
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert (result.final_dir / "model.safetensors").is_file()
    assert (result.final_dir / "processor_config.json").is_file() or (result.final_dir / "tokenizer.json").is_file()
    assert (tmp_path / "loss.png").is_file() and json.loads((tmp_path / "train_log.json").read_text())["global_step"] == 30
    # The vision tower stays frozen as in the paper (its weights are the seeded initial ones); the LLM moved.
    from mashvlm.modeling import MashVlmForConditionalGeneration
    from mashvlm.modeling.tiny import tiny_model

    tuned = MashVlmForConditionalGeneration.from_pretrained(result.final_dir)
    initial = tiny_model(tuned.config, seed=0)
    for (name, p), q in zip(tuned.model.vision_tower.named_parameters(), initial.model.vision_tower.parameters(),
                            strict=True):
        assert torch.equal(p, q), name
    assert not torch.equal(tuned.lm_head.weight, initial.lm_head.weight)
    again = train(_config(small_world, tmp_path, tiny_model_kwargs, max_steps=30))
    assert again.reused and again.global_step == 30


def test_a_killed_run_resumes_from_its_checkpoint_step(small_world, tiny_model_kwargs, tmp_path, monkeypatch):
    whole = train(_config(small_world, tmp_path / "whole", tiny_model_kwargs, max_steps=8))

    real_step = transformers.Trainer.training_step

    def killed_at_step_6(self, *args, **kwargs):
        if self.state.global_step == 6:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    out = tmp_path / "killed"
    monkeypatch.setattr(transformers.Trainer, "training_step", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(_config(small_world, out, tiny_model_kwargs, max_steps=8, save_steps=4))
    assert (out / "checkpoint-4").is_dir() and not (out / "final").exists()
    steps_run = []

    def counted(self, *args, **kwargs):
        steps_run.append(self.state.global_step + 1)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", counted)
    resumed = train(_config(small_world, out, tiny_model_kwargs, max_steps=8, save_steps=4))
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-4")
    assert resumed.global_step == 8
    assert steps_run == [5, 6, 7, 8]  # steps 1-4 are not trained again
    after = _losses(resumed.log_history)
    # Same data order, same RNG state: the resumed steps match the uninterrupted run's.
    reference = _losses(whole.log_history)
    for step in range(5, 9):
        assert after[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-5)


def test_bad_training_file_names_the_record_and_field(tmp_path):
    bad = tmp_path / "train.json"
    bad.write_text(json.dumps([{"video": "a.mp4", "QA": [{"q": "Where?", "a": "Here."}]}, {"video": "../x.mp4", "QA": []}]))
    with pytest.raises(DataFormatError, match=r"record 1: field 'video'"):
        load_videochat2_json(bad)
    bad.write_text(json.dumps([{"video": "a.mp4", "QA": [{"q": "Where?"}]}]))
    with pytest.raises(DataFormatError, match=r"record 0: QA\[0\]\.a"):
        load_videochat2_json(bad)


def test_sharing_the_prompt_prefix_trains_the_same_model(small_world, tiny_model_kwargs, tmp_path, monkeypatch):
    """The Trainer hands ``share_prompt_prefix`` to the model; the losses match the full forward's."""
    from mashvlm.modeling import MashVlmForConditionalGeneration

    shared_lengths = []
    original = MashVlmForConditionalGeneration._loss_with_shared_prefix

    def spy(self, *args, **kwargs):
        shared_lengths.append(args[5])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MashVlmForConditionalGeneration, "_loss_with_shared_prefix", spy)
    runs = {}
    for share in (False, True):
        result = train(_config(small_world, tmp_path / str(share), tiny_model_kwargs, max_steps=4,
                               share_prompt_prefix=share), progress=False)
        runs[share] = list(_losses(result.log_history).values())
    # Every batch shares the Vicuna system prompt and "USER: " (the tokenizer splits it into several tokens).
    assert len(shared_lengths) == 4 and min(shared_lengths) > 10
    assert runs[True] == pytest.approx(runs[False], rel=1e-4)


def test_caching_the_frozen_towers_output_trains_the_same_model(small_world, tiny_model_kwargs, tmp_path,
                                                                 monkeypatch):
    """``cache_tower_features`` runs the tower once per video, not once per step, and trains the same
    weights (up to float rounding); a folder trained either way is reused by the other."""
    from mashvlm.modeling import MashVlmForConditionalGeneration, MashVlmModel

    calls = []
    original = MashVlmModel.get_tower_features

    def spy(self, pixel_values_videos):
        calls.append(pixel_values_videos.shape[0])
        return original(self, pixel_values_videos)

    monkeypatch.setattr(MashVlmModel, "get_tower_features", spy)
    videos = len(load_videochat2_json(small_world.instruct_file("train"), small_world.root))
    steps, batch = 12, 8
    weights = {}
    for cache in (False, True):
        calls.clear()
        out = tmp_path / str(cache)
        result = train(_config(small_world, out, tiny_model_kwargs, max_steps=steps, cache_tower_features=cache),
                       progress=False)
        weights[cache] = MashVlmForConditionalGeneration.from_pretrained(result.final_dir).state_dict()
        if cache:  # one video per call, each at most once: fewer videos than the steps read
            assert calls == [1] * len(calls) and len(calls) <= videos < steps * batch
        else:
            assert calls == [batch] * steps
    assert weights[True].keys() == weights[False].keys()
    for name in weights[True]:
        torch.testing.assert_close(weights[True][name], weights[False][name], msg=name)
    again = train(_config(small_world, tmp_path / "False", tiny_model_kwargs, max_steps=steps,
                          cache_tower_features=True), progress=False)
    assert again.reused


@pytest.mark.parametrize("fields, problem", [
    (dict(freeze_vision_tower=False), "frozen"),
    (dict(dataloader_num_workers=2), "dataloader_num_workers"),
    (dict(train_file=None, mixture="mixture.yaml"), "mixture"),
])
def test_caching_the_tower_output_needs_a_frozen_tower_in_the_training_process(fields, problem, tmp_path):
    from mashvlm.errors import UsageError

    with pytest.raises(UsageError, match=f"cache_tower_features: .*{problem}"):
        TrainConfig(**{"train_file": str(tmp_path / "t.json"), "cache_tower_features": True, **fields})


def _data_copy(world, path):
    path.write_bytes(world.instruct_file("train").read_bytes())
    return path


def test_a_finished_folder_is_reused_only_for_the_same_training(small_world, tiny_model_kwargs, tmp_path):
    out = tmp_path / "run"
    data = _data_copy(small_world, tmp_path / "train.json")

    def config(**overrides):
        return _config(small_world, out, tiny_model_kwargs, **{"train_file": str(data), "max_steps": 2,
                                                               "save_steps": 1, **overrides})

    first = train(config(), progress=False)
    assert not first.reused and (out / "checkpoint-2").is_dir()
    # Logging and saving settings do not change the weights; a moved data file with the same content is
    # the same data.
    moved = _data_copy(small_world, tmp_path / "moved.json")
    assert train(config(logging_steps=7, save_steps=50, train_file=str(moved)), progress=False).reused
    with pytest.raises(TrainingFolderMismatch, match=r"max_steps: 2 \(saved\) vs 3 \(now\).*--overwrite"):
        train(config(max_steps=3), progress=False)
    with pytest.raises(TrainingFolderMismatch, match=r"learning_rate: 0\.003 \(saved\) vs 0\.001 \(now\)") as err:
        train(config(learning_rate=1e-3, seed=1), progress=False)
    assert "seed: 0 (saved) vs 1 (now)" in str(err.value) and "max_steps" not in str(err.value)
    # The same path with other content is other data.
    records = json.loads(data.read_text())
    data.write_text(json.dumps(records[:-1]))
    with pytest.raises(TrainingFolderMismatch, match=r"train_file: \S+train\.json \(sha256 \w+\) \(saved\) vs"):
        train(config(), progress=False)

    again = train(config(max_steps=3, save_steps=1000), overwrite=True, progress=False)
    assert not again.reused and again.resumed_from is None and again.global_step == 3
    assert not (out / "checkpoint-2").exists()  # the old training's checkpoints are gone
    assert json.loads((out / "train_config.json").read_text())["max_steps"] == 3
    assert train(config(max_steps=3, save_steps=1000), progress=False).reused


def test_a_killed_run_resumes_only_with_its_own_config(small_world, tiny_model_kwargs, tmp_path, monkeypatch,
                                                        capsys):
    from mashvlm.cli import main

    real_step = transformers.Trainer.training_step

    def killed_at_step_2(self, *args, **kwargs):
        if self.state.global_step == 2:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    out = tmp_path / "killed"
    settings = dict(train_file=str(small_world.instruct_file("train")), video_root=str(small_world.root),
                    tiny=tiny_model_kwargs, learning_rate=3e-3, per_device_train_batch_size=8, max_steps=3,
                    save_steps=2, logging_steps=1, seed=0)
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(settings))
    monkeypatch.setattr(transformers.Trainer, "training_step", killed_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**settings, output_dir=str(out)), progress=False)
    monkeypatch.setattr(transformers.Trainer, "training_step", real_step)
    assert (out / "checkpoint-2").is_dir() and not (out / "final").exists()

    base = ["train", "--config", str(config_file), "--output-dir", str(out)]
    capsys.readouterr()
    assert main([*base, "--set", "learning_rate=0.001"]) == 2
    message = capsys.readouterr().err
    assert message.startswith("error: ") and "learning_rate: 0.003 (saved) vs 0.001 (now)" in message
    assert (out / "checkpoint-2").is_dir()  # refused before anything was touched
    assert main([*base, "--set", "learning_rate=0.001", "--overwrite"]) == 0
    assert "trained to step 3" in capsys.readouterr().out
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["learning_rate"] == 0.001
    log = json.loads((out / "train_log.json").read_text())["log_history"]
    assert min(h["step"] for h in log if "loss" in h) == 1  # trained from step 1, not resumed at 2


def test_a_field_missing_from_an_older_saved_config_counts_as_its_default(tmp_path):
    from mashvlm.training.trainer import config_differences

    data = tmp_path / "train.json"
    data.write_text("[]")
    config = TrainConfig(train_file=str(data), output_dir=str(tmp_path / "out"))
    saved = config.to_dict()
    for newer in ("mixture", "tuning", "lora"):  # fields added to TrainConfig after that folder was trained
        saved.pop(newer)
    assert config_differences(saved, None, config, {}) == []
    changed = TrainConfig(train_file=str(data), output_dir=str(tmp_path / "out"), tuning="frozen_llm")
    assert config_differences(saved, None, changed, {}) == ["tuning: full (saved) vs frozen_llm (now)"]


def test_a_run_on_part_of_the_data_can_keep_the_vocabulary_of_all_of_it(small_world, tiny_model_kwargs, tmp_path):
    """The study's motion warm-up trains on one question of the training split's words: its tokenizer, and so
    the language model it loads, must be the training split's."""
    from mashvlm.training.trainer import build_model_and_processor, tokenizer_fingerprint

    motion_file = str(small_world.instruct_file("train_motion"))
    records = load_videochat2_json(motion_file, small_world.root)

    def fingerprint(**fields):
        config = _config(small_world, tmp_path, tiny_model_kwargs, train_file=motion_file, **fields)
        return tokenizer_fingerprint(build_model_and_processor(config, records)[1])

    full = _config(small_world, tmp_path, tiny_model_kwargs)
    full_vocabulary = tokenizer_fingerprint(build_model_and_processor(
        full, load_videochat2_json(full.train_file, small_world.root))[1])
    assert fingerprint() != full_vocabulary
    assert fingerprint(tokenizer_file=str(small_world.instruct_file("train"))) == full_vocabulary
    with pytest.raises(ValueError, match="tokenizer_file trains the tokenizer of init 'tiny'"):
        _config(small_world, tmp_path, tiny_model_kwargs, init="mashvlm:somewhere", tokenizer_file=motion_file)
