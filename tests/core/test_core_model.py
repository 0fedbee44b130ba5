"""Behaviour of the tiny MashVlmForConditionalGeneration (DESIGN §4-§6).

References are transformers' own Llama classes run on the same weights, so every comparison checks the
MASH-specific parts (placeholder scatter, DST mask, Harmonic-RoPE) against unmodified code.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from mash_core_helpers import (
    PAD_ID,
    SPATIAL_ID,
    TEMPORAL_ID,
    build_model,
    clone_with,
    pad_batch,
    random_pixels,
    random_text,
    standard_position_ids,
    video_placeholders,
)
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    LlamaForCausalLM,
    LlamaModel,
    LlavaConfig,
    LlavaForConditionalGeneration,
)

import mashvlm.modeling  # noqa: F401  (registers the Auto classes)
from mashvlm import MashVlmConfig, MashVlmForConditionalGeneration, harmonic_position_ids
from mashvlm.modeling.modeling_mash_vlm import token_types_from_input_ids

BASELINE = {"spatial_attention": "causal", "spatial_attends_temporal": True}  # plus the default causal temporal
ATOL = 1e-5


def llama_reference(model):
    """transformers' LlamaForCausalLM with the weights of ``model``'s LLM and LM head."""
    reference = LlamaForCausalLM(copy.deepcopy(model.config.text_config))
    reference.model.load_state_dict(model.model.language_model.state_dict())
    reference.lm_head.load_state_dict(model.lm_head.state_dict())
    return reference.eval()


def text_batch(padded, seed=3):
    """Two text-only prompts; with ``padded`` the first is shorter and left-padded."""
    gen = torch.Generator().manual_seed(seed)
    rows = [random_text(5 if padded else 9, gen), random_text(9, gen)]
    return pad_batch(rows, side="left")


def scatter_by_hand(model, input_ids, pixel_values_videos):
    """Input embeddings with the video tokens written into the placeholder slots in order of appearance
    (row-major over the batch), as the LLaVA-NeXT-Video scatter does."""
    embeds = model.get_input_embeddings()(input_ids)
    temporal, spatial = model.model.get_video_features(pixel_values_videos)
    embeds = embeds.clone()
    embeds[input_ids == TEMPORAL_ID] = temporal.reshape(-1, temporal.shape[-1])
    embeds[input_ids == SPATIAL_ID] = spatial.reshape(-1, spatial.shape[-1])
    return embeds


def logits_of(model, input_ids, attention_mask, pixel_values_videos=None, **kwargs):
    with torch.no_grad():
        return model(
            input_ids=input_ids, attention_mask=attention_mask, pixel_values_videos=pixel_values_videos, **kwargs
        ).logits


def assert_close_on(mask, got, expected, atol=ATOL):
    """Compare logits at non-padding positions only."""
    keep = mask.bool()
    torch.testing.assert_close(got[keep], expected[keep], atol=atol, rtol=1e-4)


def max_diff_on(mask, a, b):
    keep = mask.bool()
    return (a[keep] - b[keep]).abs().max().item()


# ---------------------------------------------------------------------------------------------
# Equivalence with transformers' Llama
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["harmonic", "balanced", "distinct"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "left-padded"])
def test_text_only_equals_llama(variant, padded):
    """DESIGN §5: with no video both position streams are equal, so a text prompt gives exactly the output of
    the unmodified Llama, for every rope_variant, with or without left padding."""
    model = build_model(rope_variant=variant)
    input_ids, mask = text_batch(padded)
    with torch.no_grad():
        expected = llama_reference(model)(
            input_ids=input_ids, attention_mask=mask, position_ids=standard_position_ids(mask)
        ).logits
    assert_close_on(mask, logits_of(model, input_ids, mask), expected)


def test_language_model_state_dict_loads_into_llama_model(tiny_model):
    """DESIGN §6: ``model.language_model`` has the state dict of transformers' own LlamaModel (strict)."""
    llama = LlamaModel(copy.deepcopy(tiny_model.config.text_config))
    result = llama.load_state_dict(tiny_model.model.language_model.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_llava_checkpoint_loads_by_key(tiny_model):
    """DESIGN §6: laid out like transformers' LlavaForConditionalGeneration, so a LLaVA state dict with the
    same sub-configs loads with strict=True (same keys, same shapes)."""
    llava_config = LlavaConfig(
        vision_config=tiny_model.config.vision_config.to_dict(),
        text_config=tiny_model.config.text_config.to_dict(),
        vision_feature_layer=-2,
    )
    llava_state = LlavaForConditionalGeneration(llava_config).state_dict()
    assert set(llava_state) == set(tiny_model.state_dict())
    clone = copy.deepcopy(tiny_model)
    clone.load_state_dict(llava_state, strict=True)


def test_distinct_rope_with_baseline_mask_equals_llava(video_batch):
    """Table 5/6/7 baseline (standard RoPE, plain causal mask) is a LLaVA-style model: Llama run on the
    scattered input embeddings with a 2D padding mask gives the same logits (two videos in sample 1,
    sample 0 left-padded)."""
    input_ids, mask, pixels = video_batch
    model = build_model(rope_variant="distinct", **BASELINE)
    with torch.no_grad():
        embeds = scatter_by_hand(model, input_ids, pixels)
        expected = llama_reference(model)(
            inputs_embeds=embeds, attention_mask=mask, position_ids=standard_position_ids(mask)
        ).logits
    assert_close_on(mask, logits_of(model, input_ids, mask, pixels), expected)


def test_mash_default_differs_from_baseline(tiny_model, video_batch):
    """Sanity: DST-attention changes the logits at and after a video, but not before the first video."""
    input_ids, mask, pixels = video_batch
    baseline = clone_with(tiny_model, **BASELINE)
    mash_logits = logits_of(tiny_model, input_ids, mask, pixels)
    base_logits = logits_of(baseline, input_ids, mask, pixels)
    assert max_diff_on(mask, mash_logits, base_logits) > 1e-2
    first_video = int((input_ids[1] == TEMPORAL_ID).nonzero()[0])
    torch.testing.assert_close(mash_logits[1, :first_video], base_logits[1, :first_video], atol=ATOL, rtol=0)


def test_rope_variant_matters_only_with_video(tiny_model, video_batch):
    """Table 7: harmonic, balanced and distinct RoPE give different logits with a video, identical logits for
    a text-only prompt (the two streams coincide there)."""
    input_ids, mask, pixels = video_batch
    text_ids, text_mask = text_batch(padded=True)
    variants = {v: clone_with(tiny_model, rope_variant=v) for v in ("harmonic", "balanced", "distinct")}
    with_video = {v: logits_of(m, input_ids, mask, pixels) for v, m in variants.items()}
    text_only = {v: logits_of(m, text_ids, text_mask) for v, m in variants.items()}
    for a, b in (("harmonic", "balanced"), ("harmonic", "distinct"), ("balanced", "distinct")):
        assert max_diff_on(mask, with_video[a], with_video[b]) > 1e-3, (a, b)
        assert_close_on(text_mask, text_only[a], text_only[b], atol=1e-6)


def test_padding_side_does_not_change_logits(tiny_model):
    """Position IDs and the mask count only non-padding tokens, so left and right padding give the same
    logits at the real tokens as the unpadded prompt."""
    gen = torch.Generator().manual_seed(4)
    row = random_text(2, gen) + video_placeholders(tiny_model.config) + random_text(3, gen)
    pixels = random_pixels(1, tiny_model.config)
    short = random_text(3, gen)
    alone = logits_of(tiny_model, torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long), pixels)[0]
    for side in ("left", "right"):
        ids, mask = pad_batch([short, row], side=side)
        ids, mask = ids.flip(0), mask.flip(0)  # the video prompt first, so its video is video 0
        got = logits_of(tiny_model, ids, mask, pixels)[0][mask[0].bool()]
        torch.testing.assert_close(got, alone, atol=ATOL, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------

NEW_TOKENS = 5


def greedy_by_full_forwards(model, input_ids, mask, pixels, steps=NEW_TOKENS):
    """Greedy decoding that recomputes the whole sequence each step (no cache); placeholder ids suppressed."""
    ids, mask = input_ids, mask
    for _ in range(steps):
        logits = logits_of(model, ids, mask, pixels)[:, -1]
        logits[:, [TEMPORAL_ID, SPATIAL_ID]] = float("-inf")
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    return ids


def cached_generate(model, input_ids, mask, pixels, steps=NEW_TOKENS):
    with torch.no_grad():
        return model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            pixel_values_videos=pixels,
            max_new_tokens=steps,
            min_new_tokens=steps,
            do_sample=False,
            pad_token_id=PAD_ID,
            suppress_tokens=[TEMPORAL_ID, SPATIAL_ID],
        )


def test_generate_equals_uncached_greedy_mash_default(tiny_model, video_batch):
    """Cached generate() continues both position streams by +1 and decodes plainly causal, so it matches
    recomputing the whole sequence each step (batch of 2, one left-padded, two videos in one sample)."""
    input_ids, mask, pixels = video_batch
    generated = cached_generate(tiny_model, input_ids, mask, pixels)
    assert generated.shape == (2, input_ids.shape[1] + NEW_TOKENS)
    assert torch.equal(generated, greedy_by_full_forwards(tiny_model, input_ids, mask, pixels))


def test_generate_equals_uncached_greedy_other_config():
    """Same with M > N (2x2 grid: N = 4 < M = 11), balanced RoPE and a bidirectional temporal block that
    also attends its spatial tokens."""
    model = build_model(
        seed=5, grid=2, rope_variant="balanced", temporal_attention="bidirectional", temporal_attends_spatial=True
    )
    gen = torch.Generator().manual_seed(6)
    video = video_placeholders(model.config)
    assert len(video) == 11 + 4
    rows = [random_text(1, gen) + video + random_text(2, gen), random_text(4, gen) + video + random_text(5, gen)]
    input_ids, mask = pad_batch(rows, side="left")
    pixels = random_pixels(2, model.config, seed=7)
    generated = cached_generate(model, input_ids, mask, pixels)
    assert torch.equal(generated, greedy_by_full_forwards(model, input_ids, mask, pixels))


def test_decode_step_with_position_ids_equals_full_forward(tiny_model, video_batch):
    """One cached decode step, given the last column of harmonic_position_ids of the whole sequence, gives the
    logits of the full forward at that position."""
    input_ids, mask, pixels = video_batch
    new = torch.tensor([[7], [8]])
    full_ids, full_mask = torch.cat([input_ids, new], 1), torch.cat([mask, torch.ones_like(new)], 1)
    types = token_types_from_input_ids(full_ids, TEMPORAL_ID, SPATIAL_ID)
    with torch.no_grad():
        prefill = tiny_model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels, use_cache=True)
        step = tiny_model(
            input_ids=new,
            attention_mask=full_mask,
            position_ids=harmonic_position_ids(types, full_mask)[..., -1:],
            cache=prefill.cache,
            use_cache=True,
        ).logits[:, -1]
    torch.testing.assert_close(step, logits_of(tiny_model, full_ids, full_mask, pixels)[:, -1], atol=ATOL, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def answer_labels(input_ids, mask, answer_tokens=3):
    """Loss on the last ``answer_tokens`` tokens of each sample only (-100 elsewhere)."""
    labels = torch.full_like(input_ids, -100)
    labels[:, -answer_tokens:] = input_ids[:, -answer_tokens:]
    labels[mask == 0] = -100
    return labels


def test_gradients_with_frozen_vision_tower(video_batch):
    """Paper §5.1: the vision tower is frozen; projector, LLM and LM head train. Every trainable parameter gets
    a nonzero gradient, every vision tower parameter none."""
    input_ids, mask, pixels = video_batch
    model = build_model().train()
    model.freeze_vision_tower()
    loss = model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels, labels=answer_labels(input_ids, mask)).loss
    loss.backward()
    trainable = {
        "multi_modal_projector": model.model.multi_modal_projector,
        "language_model": model.model.language_model,
        "lm_head": model.lm_head,
    }
    for part, module in trainable.items():
        for name, param in module.named_parameters():
            assert param.grad is not None, f"{part}.{name} has no grad"
            assert param.grad.abs().sum() > 0, f"{part}.{name} has a zero grad"
    for name, param in model.model.vision_tower.named_parameters():
        assert param.grad is None, f"vision_tower.{name} got a grad"
        assert not param.requires_grad


def test_loss_is_shifted_cross_entropy(tiny_model, video_batch):
    """The loss is the mean next-token cross-entropy over the labels that are not -100."""
    input_ids, mask, pixels = video_batch
    labels = answer_labels(input_ids, mask)
    with torch.no_grad():
        out = tiny_model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels, labels=labels)
    logits, targets = out.logits[:, :-1].float(), labels[:, 1:]
    keep = targets != -100
    expected = F.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(out.loss, expected)


def test_tower_features_computed_apart_stand_in_for_the_pixels(video_batch):
    """Training may run the frozen tower once per video (``get_tower_features``) and pass its output as
    ``video_tower_features``: the same loss and gradients as from the pixels. Both inputs at once, or
    features of the wrong rank, are errors."""
    input_ids, mask, pixels = video_batch
    model = build_model().train()
    model.freeze_vision_tower()
    labels = answer_labels(input_ids, mask)
    with torch.no_grad():
        features = model.model.get_tower_features(pixels)
    vision = model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    assert features.shape == (3, model.config.num_frames, 1 + patches, vision.hidden_size)

    def loss_and_grads(**video):
        model.zero_grad()
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels, **video).loss
        loss.backward()
        return [loss.detach()] + [p.grad.clone() for p in model.parameters() if p.requires_grad]

    torch.testing.assert_close(loss_and_grads(video_tower_features=features),
                               loss_and_grads(pixel_values_videos=pixels))
    with pytest.raises(ValueError, match="exactly one"):
        logits_of(model, input_ids, mask, pixels, video_tower_features=features)
    with pytest.raises(ValueError, match="video_tower_features must be"):
        logits_of(model, input_ids, mask, video_tower_features=features.flatten(0, 1))


# ---------------------------------------------------------------------------------------------
# Serialization and Auto classes
# ---------------------------------------------------------------------------------------------


def test_save_pretrained_round_trip(tmp_path, video_batch):
    """save_pretrained writes safetensors (no pickles); from_pretrained and the Auto classes give the same
    config switches and the same logits."""
    input_ids, mask, pixels = video_batch
    model = build_model(rope_variant="balanced", temporal_attention="bidirectional", spatial_attends_temporal=True)
    expected = logits_of(model, input_ids, mask, pixels)
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not any(name.endswith(".bin") for name in files)

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, MashVlmConfig)
    assert (config.rope_variant, config.temporal_attention, config.spatial_attention) == (
        "balanced",
        "bidirectional",
        "bidirectional",
    )
    assert (config.spatial_attends_temporal, config.temporal_attends_spatial) == (True, False)
    assert (config.video_temporal_token_id, config.video_spatial_token_id) == (TEMPORAL_ID, SPATIAL_ID)

    for loaded in (
        MashVlmForConditionalGeneration.from_pretrained(tmp_path),
        AutoModelForImageTextToText.from_pretrained(tmp_path),
    ):
        assert type(loaded) is MashVlmForConditionalGeneration
        assert loaded.model.language_model.rotary_emb.rope_variant == "balanced"
        torch.testing.assert_close(logits_of(loaded.eval(), input_ids, mask, pixels), expected)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def one_video_prompt(model):
    gen = torch.Generator().manual_seed(8)
    row = random_text(2, gen) + video_placeholders(model.config) + random_text(2, gen)
    return torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long)


def test_placeholder_count_must_match_videos(tiny_model):
    """One video's placeholders with two videos' frames, or M - 1 temporal placeholders, is an error."""
    input_ids, mask = one_video_prompt(tiny_model)
    with pytest.raises(ValueError, match="placeholder"):
        logits_of(tiny_model, input_ids, mask, random_pixels(2, tiny_model.config))
    short = input_ids[:, torch.arange(input_ids.shape[1]) != 2]  # drop one temporal placeholder
    with pytest.raises(ValueError, match="placeholder"):
        logits_of(tiny_model, short, mask[:, 1:], random_pixels(1, tiny_model.config))


def test_placeholders_without_pixels_raise(tiny_model):
    """Placeholder tokens with no pixel_values_videos would silently embed placeholder ids: an error."""
    input_ids, mask = one_video_prompt(tiny_model)
    with pytest.raises(ValueError, match="pixel_values_videos"):
        logits_of(tiny_model, input_ids, mask)


def test_cache_without_position_ids_raises(tiny_model):
    """Both streams depend on the whole sequence, so continuing from a cache needs explicit position_ids."""
    input_ids, mask = one_video_prompt(tiny_model)
    pixels = random_pixels(1, tiny_model.config)
    with torch.no_grad():
        prefill = tiny_model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels, use_cache=True)
        with pytest.raises(ValueError, match="position_ids"):
            tiny_model(
                input_ids=torch.tensor([[5]]),
                attention_mask=torch.ones(1, input_ids.shape[1] + 1, dtype=torch.long),
                cache=prefill.cache,
            )
