"""The vectorised sequence layout, DST mask and generation state (issue 15) against the loop implementation they
replaced (``mash_core_loop_layout``): same position streams, block indices, masks and greedy outputs."""

import pytest
import torch
from mash_core_helpers import (
    PAD_ID,
    SPATIAL_ID,
    TEMPORAL_ID,
    build_model,
    pad_batch,
    random_pixels,
    random_text,
    video_placeholders,
)
from mash_core_loop_layout import loop_dst_attention_mask, loop_harmonic_position_ids, loop_layout

from mashvlm import TokenType, dst_attention_mask, harmonic_position_ids
from mashvlm.modeling.modeling_mash_vlm import SequenceLayout, sequence_layout, token_types_from_input_ids

SWITCHES = [
    {},
    {"temporal": "bidirectional", "spatial": "causal"},
    {"temporal": "causal", "spatial": "causal", "spatial_attends_temporal": True},
    {"temporal": "bidirectional", "spatial": "bidirectional", "spatial_attends_temporal": True,
     "temporal_attends_spatial": True},
    {"temporal_attends_spatial": True},
]


def random_layout(gen, batch, seq, padding):
    """Runs of random types (so temporal-only and spatial-only blocks, adjacent videos and M <> N all occur), with
    left, right or scattered padding whose token types are random too."""
    kinds = torch.randint(0, 3, (batch, seq), generator=gen)
    repeats = torch.randint(1, 5, (batch, seq), generator=gen)
    types = torch.stack([kinds[b].repeat_interleave(repeats[b])[:seq] for b in range(batch)])
    lengths = torch.randint(1, seq + 1, (batch,), generator=gen)
    position = torch.arange(seq)
    if padding == "left":
        mask = position[None] >= seq - lengths[:, None]
    elif padding == "right":
        mask = position[None] < lengths[:, None]
    else:
        mask = torch.rand(batch, seq, generator=gen) > 0.25
    return types, mask.long()


@pytest.mark.parametrize("padding", ["left", "right", "anywhere"])
def test_sequence_layout_equals_the_loop_implementation(padding):
    """Balanced and distinct streams and block indices equal the per-token loop on 300 random batches."""
    gen = torch.Generator().manual_seed({"left": 1, "right": 2, "anywhere": 3}[padding])
    for case in range(300):
        batch, seq = int(torch.randint(1, 5, (1,), generator=gen)), int(torch.randint(1, 40, (1,), generator=gen))
        types, mask = random_layout(gen, batch, seq, padding)
        layout = sequence_layout(types, mask)
        assert isinstance(layout, SequenceLayout)
        balanced, video = loop_layout(types, mask.bool())
        assert torch.equal(layout.video_block, video), f"case {case}: {types} {mask}"
        assert torch.equal(layout.position_ids, loop_harmonic_position_ids(types, mask)), f"case {case}"
        assert torch.equal(layout.balanced, balanced)
        assert torch.equal(layout.valid, mask.bool())


def test_sequence_layout_hand_worked():
    """Temporal-only, spatial-only and adjacent blocks, with padding inside a block (skipped, not a boundary)."""
    t, s, x = int(TokenType.TEMPORAL), int(TokenType.SPATIAL), int(TokenType.TEXT)
    types = torch.tensor([[x, t, t, x, s, s, s, t, s, x, t, t, s]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]])
    layout = sequence_layout(types, mask)
    # text 0 | T-only block at c=1 (L=2): 1, 2 | text 3 | S-only block at c=4: 4..6 | block T S at c=7 (L=1): 7, 7
    # | text 8 | block T (one valid) S at c=9: 9, pad 0, 9
    assert layout.balanced.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9, 0, 9]]
    assert layout.video_block.tolist() == [[-1, 0, 0, -1, 1, 1, 1, 2, 2, -1, 3, -1, 3]]
    assert layout.distinct.tolist() == [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 11]]


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "mash")
def test_dst_attention_mask_equals_the_loop_implementation(switches):
    """The vectorised mask equals the pre-issue-15 mask (loop layout, original rule) on random layouts."""
    gen = torch.Generator().manual_seed(11)
    for case in range(60):
        batch, seq = int(torch.randint(1, 4, (1,), generator=gen)), int(torch.randint(1, 30, (1,), generator=gen))
        types, mask = random_layout(gen, batch, seq, ["left", "right", "anywhere"][case % 3])
        got = dst_attention_mask(types, mask, **switches)
        assert torch.equal(got, loop_dst_attention_mask(types, mask, **switches)), f"case {case}"


def test_no_host_copy_of_the_layout():
    """The layout is computed on the inputs' device: on the meta device (no data at all) it still runs."""
    types = torch.zeros(2, 7, dtype=torch.long, device="meta")
    layout = sequence_layout(types, torch.ones(2, 7, dtype=torch.long, device="meta"))
    assert layout.balanced.device.type == "meta" and layout.balanced.shape == (2, 7)


# ---------------------------------------------------------------------------------------------
# Decoding steps
# ---------------------------------------------------------------------------------------------

VARIANTS = {
    "mash": {},
    "bi-bi-cross": dict(temporal_attention="bidirectional", spatial_attention="bidirectional",
                        spatial_attends_temporal=True, temporal_attends_spatial=True, rope_variant="balanced"),
    "baseline": dict(spatial_attention="causal", spatial_attends_temporal=True, rope_variant="distinct"),
}


def prompt_batch(config, side, seed=0):
    """Two prompts of different length (one with two videos), padded on ``side``."""
    gen = torch.Generator().manual_seed(seed)
    video = video_placeholders(config)
    rows = [random_text(2, gen) + video + random_text(3, gen),
            random_text(3, gen) + video + random_text(2, gen) + video + random_text(1, gen)]
    ids, mask = pad_batch(rows, side=side)
    return ids, mask, random_pixels(3, config, seed=seed + 1)


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decode_step_mask_equals_the_full_rule(variant, backend):
    """A one-token cached step (its mask is the padding mask, no layout) gives the logits of the full forward
    under every rule; with a text token and with a lone placeholder token (its own one-token block)."""
    model = build_model(**VARIANTS[variant])
    model.set_attn_implementation(backend)
    ids, mask, pixels = prompt_batch(model.config, "left")
    for new in (torch.tensor([[7], [8]]), torch.tensor([[TEMPORAL_ID], [9]])):
        full_ids, full_mask = torch.cat([ids, new], 1), torch.cat([mask, torch.ones_like(new)], 1)
        types = token_types_from_input_ids(full_ids, TEMPORAL_ID, SPATIAL_ID)
        with torch.no_grad():
            cache = model(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, use_cache=True).cache
            step = model.model.language_model(
                inputs_embeds=model.get_input_embeddings()(new),
                attention_mask=model.model._llm_attention_mask(types[:, -1:], full_mask, ids.shape[1], torch.float32),
                position_ids=harmonic_position_ids(types, full_mask)[..., -1:],
                cache=cache,
            ).last_hidden_state
            embeds = model.model._scatter_video_tokens(model.get_input_embeddings()(full_ids[:, :-1]), types[:, :-1],
                                                       pixels)
            embeds = torch.cat([embeds, model.get_input_embeddings()(new)], 1)
            rule_mask = dst_attention_mask(types, full_mask, **model.config.dst_attention_kwargs)
            if backend == "eager":  # an additive mask
                rule_mask = torch.zeros(rule_mask.shape).masked_fill(~rule_mask, torch.finfo(torch.float32).min)
            full = model.model.language_model(
                inputs_embeds=embeds,
                attention_mask=rule_mask,
                position_ids=harmonic_position_ids(types, full_mask),
            ).last_hidden_state
        torch.testing.assert_close(step[:, -1], full[:, -1], atol=1e-5, rtol=1e-4)


def full_recompute_prepare_inputs(model):
    """The pre-issue-15 generation: both streams recomputed from all ``input_ids`` at every step."""
    base = type(model)

    def prepare(input_ids, attention_mask=None, **kwargs):
        kwargs.pop("position_ids", None)
        inputs = super(base, model).prepare_inputs_for_generation(input_ids, attention_mask=attention_mask, **kwargs)
        types = token_types_from_input_ids(input_ids, TEMPORAL_ID, SPATIAL_ID)
        new_tokens = inputs["input_ids"].shape[1]
        inputs["position_ids"] = loop_harmonic_position_ids(types, attention_mask)[..., -new_tokens:]
        return inputs

    return prepare


def generate(model, ids, mask, pixels, **kwargs):
    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, max_new_tokens=6,
                              min_new_tokens=6, do_sample=False, pad_token_id=PAD_ID,
                              suppress_tokens=[TEMPORAL_ID, SPATIAL_ID], **kwargs)


@pytest.mark.parametrize(("variant", "side", "beams"), [("mash", "left", 1), ("bi-bi-cross", "left", 2),
                                                         ("mash", "right", 1), ("baseline", "left", 1)])
def test_generate_equals_full_recompute(variant, side, beams):
    """Greedy (and beam) generate with the streams kept between steps gives exactly the tokens of recomputing them
    from the whole sequence at every step; batch of 2, two videos in one sample, left or right padding."""
    model = build_model(**VARIANTS[variant])
    ids, mask, pixels = prompt_batch(model.config, side)
    fast = generate(model, ids, mask, pixels, num_beams=beams)
    model.prepare_inputs_for_generation = full_recompute_prepare_inputs(model)
    assert torch.equal(fast, generate(model, ids, mask, pixels, num_beams=beams))


def test_generation_positions_continue_from_each_samples_last_token():
    """The streams handed to generate: the prompt's own positions on real tokens; right padding takes the highest
    IDs so far, so the first generated token gets (counter, number of real tokens) in each sample."""
    model = build_model()
    ids, mask, _ = prompt_batch(model.config, "right")
    positions = model._prepare_position_ids_for_generation(ids, {"input_ids": ids, "attention_mask": mask})
    types = token_types_from_input_ids(ids, TEMPORAL_ID, SPATIAL_ID)
    expected = harmonic_position_ids(types, mask)
    assert torch.equal(positions[:, mask.bool()], expected[:, mask.bool()])
    # A text token appended after the padding, as generate appends it, laid out from scratch:
    appended = harmonic_position_ids(torch.cat([types, torch.zeros_like(types[:, :1])], 1),
                                     torch.cat([mask, torch.ones_like(mask[:, :1])], 1))
    assert torch.equal(positions[..., -1] + 1, appended[..., -1])
    assert (mask[:, -1] == 0).any()  # the case that needs it: a row that ends in padding
