"""The study's text-only language-model pre-training and how instruction tuning loads its weights."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from mashvlm.study.language import pretrain_language_model, question_kind, text_conversations
from mashvlm.synth import WorldConfig
from mashvlm.synth import templates as T
from mashvlm.training.config import TrainConfig
from mashvlm.training.data import load_videochat2_json
from mashvlm.training.trainer import LANGUAGE_MODEL_PREFIXES, build_model_and_processor, load_language_model

CONTEXT = re.compile(r"A person is (\w+) (?:on|in) an? (.+)\.|An empty (.+) with no people\.")


def _parse(user: str) -> tuple[str | None, str, str]:
    context, question = user.split("\n")
    m = CONTEXT.fullmatch(context)
    assert m, context
    return m[1], m[2] or m[3], question


def test_text_answers_follow_the_sentence_and_carry_no_action_scene_bias():
    config = WorldConfig()
    conversations = text_conversations(config, 4000, seed=0)
    assert conversations == text_conversations(config, 4000, seed=0)
    assert conversations != text_conversations(config, 4000, seed=1)
    pairs = Counter()
    for user, answer in conversations:
        action, scene, question = _parse(user)
        pairs[(action, scene)] += 1
        if m := re.fullmatch(r"Is someone (\w+) in the video\?", question):
            assert answer == (T.YES if m[1] == action else T.NO), (user, answer)
        elif m := re.fullmatch(r"Does this video take place in an? (.+)\?", question):
            assert answer == (T.YES if m[1] == scene else T.NO), (user, answer)
        elif m := re.fullmatch(r"Is this an empty (.+) with no people\?", question):
            assert answer == (T.YES if action is None and m[1] == scene else T.NO), (user, answer)
        elif question == T.Q_ACTION:
            assert answer == (T.A_NO_PERSON if action is None else T.fill(T.A_ACTION, action=action))
        else:
            assert question == T.Q_SCENE and answer == T.fill(T.A_SCENE, scene=scene)
    answers = Counter(a for _, a in conversations)
    assert answers[T.YES] > 0.2 * len(conversations) and answers[T.NO] > 0.2 * len(conversations)
    # Every action appears in every scene, the typical scene no more often than the others.
    typical = [pairs[(a, config.typical_scene[a])] for a in config.actions]
    atypical = [pairs[(a, s)] for a in config.actions for s in config.scenes if s != config.typical_scene[a]]
    assert min(atypical) > 0
    assert sum(typical) / len(typical) < 1.5 * sum(atypical) / len(atypical)


def _model(world, tiny, out):
    config = TrainConfig(train_file=str(world.instruct_file("train")), video_root=str(world.root),
                         output_dir=str(out), tiny=tiny, seed=0)
    return build_model_and_processor(config, load_videochat2_json(config.train_file, world.root))


def test_pretrained_weights_load_into_the_instruction_tuned_model(small_world, tiny_model_kwargs, tmp_path):
    model, processor = _model(small_world, tiny_model_kwargs, tmp_path / "a")
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path / "lm.safetensors"
    metrics = pretrain_language_model(model, processor, small_world.config, path, steps=40, batch_size=16,
                                      progress=False)
    assert 0.0 <= metrics["answer_acc"] <= 1.0
    by_question = metrics["answer_acc_by_question"]
    assert {"action yes/no: yes", "action yes/no: no", "scene yes/no: no", "action"} <= set(by_question)
    assert all(0.0 <= v <= 1.0 for v in by_question.values())
    saved = load_file(str(path))
    assert saved and all(k.startswith(LANGUAGE_MODEL_PREFIXES) for k in saved)
    assert not torch.equal(saved["lm_head.weight"], initial["lm_head.weight"])
    # Only the language model trained: the tower and projector are untouched.
    for key, value in model.state_dict().items():
        if not key.startswith(LANGUAGE_MODEL_PREFIXES):
            assert torch.equal(value, initial[key]), key

    fresh, fresh_processor = _model(small_world, tiny_model_kwargs, tmp_path / "b")
    load_language_model(fresh, fresh_processor, path)
    for key, value in saved.items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_weights_of_another_tokenizer_or_size_are_refused(small_world, tiny_model_kwargs, tmp_path):
    model, processor = _model(small_world, tiny_model_kwargs, tmp_path / "a")
    path = tmp_path / "lm.safetensors"
    pretrain_language_model(model, processor, small_world.config, path, steps=1, batch_size=2, progress=False)
    processor.tokenizer.add_tokens(["<another-token>"])
    with pytest.raises(ValueError, match="another tokenizer"):
        load_language_model(model, processor, path)

    shallower, shallower_processor = _model(small_world, {**tiny_model_kwargs, "text_layers": 1}, tmp_path / "c")
    with pytest.raises(ValueError, match="does not fit this model"):
        load_language_model(shallower, shallower_processor, path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_language_model(shallower, shallower_processor, tmp_path / "missing.safetensors")


def test_question_kind_names_every_question_and_its_answer():
    kinds = Counter(question_kind(c) for c in text_conversations(WorldConfig(), 2000, seed=0))
    assert set(kinds) == {"action yes/no: yes", "action yes/no: no", "scene yes/no: yes", "scene yes/no: no",
                          "empty yes/no: yes", "empty yes/no: no", "action", "scene"}
    assert question_kind(("A person is running on a beach.\nIs someone boxing in the video?", T.NO)) == \
        "action yes/no: no"
    with pytest.raises(ValueError, match="not a question"):
        question_kind(("An empty beach with no people.\nHow many people are there?", "None."))
