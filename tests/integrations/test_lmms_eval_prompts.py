"""The adapter's prompts, checked against hand-written strings (no lmms-eval needed)."""

from __future__ import annotations

import pytest

from mashvlm.integrations.lmms_eval.prompts import (
    ChatTurns,
    continuation_token_ids,
    is_mvbench_task,
    prompt_text,
    truncate_at_stop,
    videochat2_mvbench_answer,
    videochat2_mvbench_prompt,
)
from mashvlm.modeling.processing_mash_vlm import VICUNA_V1_SYSTEM

SYSTEM = (
    "Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
    "movement of objects, and the action and pose of persons. Based on your observations, select the "
    "best option that accurately addresses the question.\n"
)


def test_videochat2_mvbench_prompt_matches_the_protocol(tiny_parts):
    processor, _ = tiny_parts
    doc = {"video": "v.mp4", "question": "What is the person doing?", "candidates": ["jumping", "running"],
           "answer": "running"}
    text = prompt_text(processor, videochat2_mvbench_prompt(doc), with_video=True)
    expected = (
        SYSTEM + " USER: <video>\n" + SYSTEM
        + "Question: What is the person doing?\nOptions:\n(A) jumping\n(B) running\nOnly give the best option."
        + " ASSISTANT: Best option:("
    )
    assert text == expected


def test_videochat2_mvbench_prompt_names_missing_fields():
    with pytest.raises(ValueError, match="candidates"):
        videochat2_mvbench_prompt({"question": "q?"})


def test_plain_and_multi_turn_prompts(tiny_parts):
    processor, _ = tiny_parts
    sys = VICUNA_V1_SYSTEM
    assert prompt_text(processor, ChatTurns("Is it raining?"), with_video=True) == (
        f"{sys} USER: <video>\nIs it raining? ASSISTANT:"
    )
    assert prompt_text(processor, ChatTurns("Why?", history=(("Q1", "A1"),)), with_video=True) == (
        f"{sys} USER: <video>\nQ1 ASSISTANT: A1</s>USER: Why? ASSISTANT:"
    )
    assert prompt_text(processor, ChatTurns("Hi"), with_video=False) == f"{sys} USER: Hi ASSISTANT:"


def test_mvbench_answer_keeps_the_first_line():
    assert videochat2_mvbench_answer("B) running\nmore text") == "(B) running"
    assert videochat2_mvbench_answer("  \n") == "("


@pytest.mark.parametrize("task, expected", [("mvbench", True), ("mvbench_action_count", True),
                                            ("mvbenchx", False), ("videomme", False)])
def test_is_mvbench_task(task, expected):
    assert is_mvbench_task(task) is expected


def test_truncate_at_stop_uses_the_earliest_stop():
    assert truncate_at_stop("yes.\n\nUSER: no", ["USER:", "\n\n"]) == "yes."
    assert truncate_at_stop("yes", ["", "zz"]) == "yes"


def test_continuation_ids_fall_back_when_the_boundary_merges():
    assert continuation_token_ids([1, 2], [1, 2, 3, 4], [9]) == [3, 4]
    assert continuation_token_ids([1, 2], [1, 5, 4], [3, 4]) == [3, 4]
