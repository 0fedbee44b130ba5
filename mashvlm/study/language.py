"""A short text-only pre-training of the study's tiny Llama, in place of Vicuna's language pre-training.

The paper starts instruction tuning from Vicuna, a language model that already reads a question and
answers "Yes." or "No." by comparing it with what it was told. The study's Llama starts from random
weights, and learning that comparison during instruction tuning took a seed-dependent number of steps
(see docs/synth.md). So, before any video is seen, the Llama reads short texts in the chat template
where the video would be a sentence saying what happens ("A person is skiing on a beach.") and is
trained to answer the world's questions about it (how far it gets: docs/synth.md). Actions and scenes are paired uniformly at random: the text
carries none of the world's action-scene bias, and it never shows a frame, so what each label looks or
moves like is still learned from video alone. Text-only sequences have no video tokens, so DST-attention
and Harmonic-RoPE change nothing here: every variant starts from the same language model, as every
model in the paper starts from the same Vicuna.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mashvlm.files import atomic_path
from mashvlm.modeling import MashVlmForConditionalGeneration, MashVlmProcessor
from mashvlm.study.optimise import fit
from mashvlm.synth import WorldConfig
from mashvlm.synth import templates as T
from mashvlm.training.data import VideoInstructionCollator
from mashvlm.training.trainer import LANGUAGE_MODEL_PREFIXES, language_model_state, tokenizer_fingerprint

__all__ = ["pretrain_language_model", "question_kind", "text_conversations"]


def _yes_no(template: str, answer: bool, **labels: str) -> tuple[str, str]:
    return T.fill(template, **labels), T.YES if answer else T.NO


def text_conversations(config: WorldConfig, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` one-turn (user text, answer) pairs: a sentence in place of the video, then one question.

    The questions and answers are the world's training questions (``mashvlm.synth.world``), worded by
    the same templates; which one is asked is drawn uniformly.
    """
    rng = np.random.default_rng(seed)
    actions, scenes = list(config.actions), list(config.all_scenes)
    out = []
    for _ in range(n):
        scene = str(rng.choice(scenes))
        action = None if rng.random() < config.empty_frac else str(rng.choice(actions))
        other_action = str(rng.choice([a for a in actions if a != action]))
        other_scene = str(rng.choice([s for s in scenes if s != scene]))
        if action is None:
            context = T.fill(T.A_DESCRIBE_EMPTY, scene=scene)
            questions = [
                _yes_no(T.Q_EMPTY_YN, True, scene=scene),
                _yes_no(T.Q_ACTION_YN, False, action=other_action),
                _yes_no(T.Q_EMPTY_YN, False, scene=other_scene),
                (T.Q_ACTION, T.A_NO_PERSON),
            ]
        else:
            context = T.fill(T.A_DESCRIBE_ACTION, action=action, scene=scene)
            questions = [
                _yes_no(T.Q_ACTION_YN, True, action=action),
                _yes_no(T.Q_ACTION_YN, False, action=other_action),
                _yes_no(T.Q_EMPTY_YN, False, scene=scene),
                (T.Q_ACTION, T.fill(T.A_ACTION, action=action)),
            ]
        questions += [
            _yes_no(T.Q_SCENE_YN, True, scene=scene),
            _yes_no(T.Q_SCENE_YN, False, scene=other_scene),
            (T.Q_SCENE, T.fill(T.A_SCENE, scene=scene)),
        ]
        question, answer = questions[int(rng.integers(len(questions)))]
        out.append((f"{context}\n{question}", answer))
    return out


def question_kind(conversation: tuple[str, str]) -> str:
    """What a text conversation asks, with the expected answer for yes/no questions: ``"action yes/no: no"``."""
    question, answer = conversation[0].split("\n", 1)[1], conversation[1]
    kinds = [(T.Q_ACTION_YN, "action yes/no"), (T.Q_SCENE_YN, "scene yes/no"), (T.Q_EMPTY_YN, "empty yes/no"),
             (T.Q_ACTION, "action"), (T.Q_SCENE, "scene")]
    for template, kind in kinds:
        if question.startswith(template.split("{")[0]):  # the template up to its label, or whole
            return f"{kind}: {answer[:-1].lower()}" if answer in (T.YES, T.NO) else kind
    raise ValueError(f"not a question of text_conversations: {question!r}")


@torch.no_grad()
def _answers_correct(model, processor, conversations: list[tuple[str, str]],
                     collate: VideoInstructionCollator) -> list[bool]:
    """Whether the model predicts each conversation's whole answer token for token (teacher forcing)."""
    correct = []
    for start in range(0, len(conversations), 128):
        chunk = [processor.encode_conversation([c], with_video=False) for c in conversations[start:start + 128]]
        batch = collate(chunk)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        predicted = logits[:, :-1].argmax(-1)
        target = batch["labels"][:, 1:]
        scored = target != -100
        correct += ((predicted == target) | ~scored).all(-1).tolist()
    return correct


def _accuracy_by_kind(conversations: list[tuple[str, str]], correct: list[bool]) -> dict[str, float]:
    by_kind: dict[str, list[bool]] = {}
    for conversation, ok in zip(conversations, correct, strict=True):
        by_kind.setdefault(question_kind(conversation), []).append(ok)
    return {kind: round(sum(v) / len(v), 4) for kind, v in sorted(by_kind.items())}


def pretrain_language_model(
    model: MashVlmForConditionalGeneration,
    processor: MashVlmProcessor,
    world_config: WorldConfig,
    out_file: str | os.PathLike,
    *,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model``'s Llama and head on :func:`text_conversations` (loss on answers only) and save them
    (safetensors, ``LANGUAGE_MODEL_PREFIXES`` keys, the tokenizer's fingerprint in the metadata).

    Returns the held-out share of answers predicted exactly (``answer_acc``, and per :func:`question_kind`
    in ``answer_acc_by_question``). Written atomically.
    """
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    pad_id = processor.tokenizer.pad_token_id
    collate = VideoInstructionCollator(pad_token_id=pad_id if pad_id is not None else processor.tokenizer.eos_token_id)
    # Each text is seen about four times; the world's label space is small, so that is plenty of variety.
    train = [processor.encode_conversation([c], with_video=False)
             for c in text_conversations(world_config, max(batch_size, steps * batch_size // 4), seed)]
    held_out = text_conversations(world_config, 512, seed + 1)

    def batch_loss(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        batch = collate([train[i] for i in idx.tolist()])
        return model(**batch, share_prompt_prefix=True).loss, {}  # the system prompt once per batch

    model.train()
    final_loss = fit([p for k, p in model.named_parameters() if k.startswith(LANGUAGE_MODEL_PREFIXES)], batch_loss,
                     num_examples=len(train), steps=steps, batch_size=batch_size, lr=lr, weight_decay=0.1,
                     max_grad_norm=1.0, seed=seed, desc="language model", progress=progress)
    model.eval()
    correct = _answers_correct(model, processor, held_out, collate)
    metrics = {"answer_acc": sum(correct) / len(correct), "final_loss": final_loss,
               "answer_acc_by_question": _accuracy_by_kind(held_out, correct)}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_file) as tmp:
        save_file(language_model_state(model), str(tmp), metadata={"tokenizer": tokenizer_fingerprint(processor)})
    return metrics
