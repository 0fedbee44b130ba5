"""MashVlmEvalModel: a thin adapter over VideoChat (one generation path), the video encoded once."""

from __future__ import annotations

import numpy as np
import pytest

from mashvlm.evaluation import mvbench
from mashvlm.evaluation.model import ChatPrompt, MashVlmEvalModel, mashvlm_prompt_text
from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

STEPS = 6


@pytest.fixture(scope="module")
def eval_model() -> MashVlmEvalModel:
    # A larger init than Llama's 0.02 makes the answers of the random model depend on the whole context: at
    # 0.02 they hardly change when the shared prefix is wrongly padded, so the comparisons could not fail.
    processor, config = tiny_processor_and_config(
        [mvbench.SYSTEM_PROMPT, "Question: What is the person doing? Options: (A) running (B) jumping (C) Best option:("],
        text_initializer_range=0.2,
    )
    return MashVlmEvalModel(tiny_model(config), processor, name="tiny")


def _generate_counting_tower(model: MashVlmEvalModel, frames, prompts) -> tuple[list[str], list[int]]:
    frames_per_pass: list[int] = []
    tower = model.model.model.vision_tower
    hook = tower.register_forward_hook(lambda m, args, out: frames_per_pass.append(len(args[0])))
    try:
        return model.generate(frames, prompts, max_new_tokens=STEPS), frames_per_pass
    finally:
        hook.remove()


def _frames(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)


def test_mvbench_prompts_equal_one_at_a_time_with_one_encoding(eval_model, greedy_reference):
    """MVBench's system prompt and "Best option:(" prefix, questions of different lengths (so different
    left padding): each answer is the greedy continuation of that full prompt alone, and the vision tower
    runs once, on the video's 4 frames."""
    questions = [
        "Question: What is the person doing?\nOptions:\n(A) running\n(B) jumping",
        "Question: What?\nOptions:\n(A) running\n(B) jumping\n(C) running on the beach",
        "Question: Is the person running or jumping on the beach in this video?\nOptions:\n(A) jumping",
    ]
    prompts = [mvbench.build_prompt(q) for q in questions]
    answers_by_video = {}
    for seed in (0, 1):
        frames = _frames(seed)
        answers, frames_per_pass = _generate_counting_tower(eval_model, frames, prompts)
        assert frames_per_pass == [4]
        expected = [greedy_reference(eval_model.model, eval_model.processor, frames, mashvlm_prompt_text(eval_model.processor, p), STEPS)
                    for p in prompts]
        assert answers == expected
        answers_by_video[seed] = answers
    # the answers depend on the question and on the video (so the comparison above can fail)
    assert len({a for answers in answers_by_video.values() for a in answers}) > 2


def test_prompts_with_different_system_prompts(eval_model, greedy_reference):
    """A VCG/QA prompt (the template's own system prompt, no prefix) and MVBench prompts about one video in
    one call: the system prompt precedes the video, so there is one encoding per distinct system prompt,
    in one pass; the shorter prefix is left-padded; answers in the prompts' order, as one at a time."""
    prompts = [
        mvbench.build_prompt("Question: What is the person doing?\nOptions:\n(A) running\n(B) jumping"),
        ChatPrompt("What is the person doing?"),
        ChatPrompt("Is the person jumping?", system="Answer briefly.", answer_prefix="The person"),
        mvbench.build_prompt("Question: What?\nOptions:\n(A) jumping"),
    ]
    frames = _frames(2)
    answers, frames_per_pass = _generate_counting_tower(eval_model, frames, prompts)
    assert frames_per_pass == [3 * 4]
    expected = [greedy_reference(eval_model.model, eval_model.processor, frames, mashvlm_prompt_text(eval_model.processor, p), STEPS)
                for p in prompts]
    assert answers == expected
    assert len(set(answers)) > 1


def test_prompt_text_comes_from_the_chat_template(eval_model):
    processor = eval_model.processor
    plain = ChatPrompt("What is the person doing?")
    assert mashvlm_prompt_text(processor, plain) == processor.build_prompt("What is the person doing?")
    text = mashvlm_prompt_text(processor, ChatPrompt("Why?", system="Be brief.", answer_prefix="Because"))
    assert text == "Be brief. USER: <video>\nWhy? ASSISTANT: Because"
