"""``share_prompt_prefix``: the rows' common system prompt run once per training batch (same loss, same
gradients as the full forward) and :func:`shared_prefix_length`, which decides how much is shared."""

import pytest
import torch
from mash_core_helpers import PAD_ID, build_model, pad_batch, random_pixels, random_text, video_placeholders

from mashvlm.modeling.modeling_mash_vlm import TokenType, shared_prefix_length, token_types_from_input_ids

# Attention and position variants of the study (Tables 5-7): the prefix must be shareable under all.
VARIANTS = {
    "baseline": dict(temporal_attention="causal", spatial_attention="causal", spatial_attends_temporal=True,
                     temporal_attends_spatial=False, rope_variant="distinct"),
    "mash": dict(temporal_attention="causal", spatial_attention="bidirectional",
                 spatial_attends_temporal=False, temporal_attends_spatial=False, rope_variant="harmonic"),
    "bidirectional-balanced": dict(temporal_attention="bidirectional", spatial_attention="bidirectional",
                                   spatial_attends_temporal=True, temporal_attends_spatial=True,
                                   rope_variant="balanced"),
}


def chat_batch(config, prompt_length=6, seed=0):
    """Three right-padded rows that start with the same ``prompt_length`` tokens, then a video, a question
    of varying length and a 2-token answer (the only labels)."""
    gen = torch.Generator().manual_seed(seed)
    prompt = random_text(prompt_length, gen)
    rows, answers = [], []
    for question_length in (3, 5, 4):
        answer = random_text(2, gen)
        rows.append(prompt + video_placeholders(config) + random_text(question_length, gen) + answer)
        answers.append(len(answer))
    ids, mask = pad_batch(rows, side="right")
    labels = torch.full_like(ids, -100)
    for row, (length, n) in enumerate(zip(mask.sum(1).tolist(), answers, strict=True)):
        labels[row, length - n:length] = ids[row, length - n:length]
    return ids, mask, labels, random_pixels(3, config, seed=seed + 1)


def types_of(ids, config):
    return token_types_from_input_ids(ids, config.video_temporal_token_id, config.video_spatial_token_id)


def grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_shared_prefix_gives_the_full_forwards_loss_and_gradients(variant):
    model = build_model(**VARIANTS[variant]).train()
    model.freeze_vision_tower()
    ids, mask, labels, pixels = chat_batch(model.config)
    assert shared_prefix_length(ids, types_of(ids, model.config), mask, labels) == 6
    inputs = dict(input_ids=ids, attention_mask=mask, labels=labels, pixel_values_videos=pixels)

    full = model(**inputs).loss
    full.backward()
    expected = grads(model)
    model.zero_grad()
    shared = model(**inputs, share_prompt_prefix=True)
    shared.loss.backward()
    got = grads(model)

    torch.testing.assert_close(shared.loss, full, rtol=1e-5, atol=1e-6)
    assert set(got) == set(expected) and any(name.startswith("model.multi_modal_projector") for name in got)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    assert shared.logits is None  # only the loss: logits are computed where there are labels


def test_what_is_shared_stops_at_the_first_difference_video_label_or_padding():
    model = build_model()
    ids, mask, labels, _ = chat_batch(model.config, prompt_length=6)
    types = types_of(ids, model.config)

    other = ids.clone()
    other[2, 4] = (other[2, 4] % 90) + 1  # rows differ from position 4 on
    assert shared_prefix_length(other, types, mask, labels) == 4

    no_prompt = ids[:, 6:]  # the rows start with the (identical) video: text only is shared
    assert shared_prefix_length(no_prompt, types[:, 6:], mask[:, 6:], labels[:, 6:]) == 0

    supervised = labels.clone()
    supervised[:, 3] = ids[:, 3]  # a loss on token 3, predicted at position 2: only positions 0 and 1 are shared
    assert shared_prefix_length(ids, types, mask, supervised) == 2

    left_padded = torch.cat([torch.full((3, 1), PAD_ID), ids], dim=1)
    left_mask = torch.cat([torch.tensor([[0], [1], [1]]), mask], dim=1)
    left_labels = torch.cat([torch.full((3, 1), -100), labels], dim=1)
    assert shared_prefix_length(left_padded, types_of(left_padded, model.config), left_mask, left_labels) == 0

    assert shared_prefix_length(ids[:1], types[:1], mask[:1], labels[:1]) == 0  # one row: nothing to share
    assert (types[:, :6] == TokenType.TEXT).all()


def test_without_a_shared_prefix_the_ordinary_forward_runs():
    model = build_model().train()
    ids, mask, labels, pixels = chat_batch(model.config)
    ids, mask, labels = ids[:, 6:], mask[:, 6:], labels[:, 6:]  # rows start with the video
    out = model(input_ids=ids, attention_mask=mask, labels=labels, pixel_values_videos=pixels,
                share_prompt_prefix=True)
    assert out.logits is not None and out.logits.shape[:2] == ids.shape
    with pytest.raises(ValueError, match="share_prompt_prefix"):
        model(input_ids=ids, attention_mask=mask, labels=labels, pixel_values_videos=pixels,
              position_ids=torch.zeros(2, *ids.shape, dtype=torch.long), share_prompt_prefix=True)


def test_with_gradient_checkpointing_the_whole_sequence_runs():
    """Checkpointed layers keep no cache, so the shared prompt could not be handed on: the ordinary forward runs."""
    model = build_model().train()
    model.gradient_checkpointing_enable()
    ids, mask, labels, pixels = chat_batch(model.config)
    out = model(input_ids=ids, attention_mask=mask, labels=labels, pixel_values_videos=pixels,
                share_prompt_prefix=True)
    assert out.logits is not None
    out.loss.backward()
