"""The attention backends all apply the same DST mask (DESIGN §4: sdpa boolean 4D mask, eager additive
float mask, flex attention BlockMask; flash_attention_2 refused)."""

import pytest
import torch
from mash_core_helpers import SPATIAL_ID, TEMPORAL_ID, build_model

BACKENDS = ("eager", "sdpa", "flex_attention")
DECODE_STEPS = 2


def run_backend(backend, input_ids, mask, pixels):
    """``(prompt logits, greedy continuation)`` of a fresh MASH-default model on ``backend``."""
    model = build_model(seed=0)
    model.set_attn_implementation(backend)
    assert model.config.text_config._attn_implementation == backend
    with torch.no_grad():  # flex attention on CPU runs only without autograd
        logits = model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pixels).logits
        generated = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            pixel_values_videos=pixels,
            max_new_tokens=DECODE_STEPS,
            min_new_tokens=DECODE_STEPS,
            do_sample=False,
            suppress_tokens=[TEMPORAL_ID, SPATIAL_ID],
        )
    return logits, generated


@pytest.fixture(scope="module")
def backend_outputs(video_batch):
    """Logits and a short cached generation per backend; flex compiles once here (slow on CPU)."""
    input_ids, mask, pixels = video_batch
    return {backend: run_backend(backend, input_ids, mask, pixels) for backend in BACKENDS}


@pytest.mark.parametrize("backend", ["eager", "flex_attention"])
def test_backend_logits_match_sdpa(backend, backend_outputs, video_batch):
    """eager and flex_attention give the sdpa logits at every non-padding position (left padding, two videos)."""
    _, mask, _ = video_batch
    keep = mask.bool()
    got, expected = backend_outputs[backend][0], backend_outputs["sdpa"][0]
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["eager", "flex_attention"])
def test_backend_generation_matches_sdpa(backend, backend_outputs):
    """Cached decoding (a decode-time mask with cached keys; a BlockMask with q_offset > 0 for flex) agrees too."""
    assert torch.equal(backend_outputs[backend][1], backend_outputs["sdpa"][1])


def test_flash_attention_is_refused_naming_dst_attention():
    """flash_attention_2 cannot take the DST mask: a ValueError that says so, not a silently causal model."""
    model = build_model(seed=0)
    with pytest.raises(ValueError, match="DST-attention"):
        model.set_attn_implementation("flash_attention_2")


def test_from_pretrained_refuses_flash_attention(tmp_path):
    """The same refusal when loading with ``attn_implementation="flash_attention_2"``."""
    from mashvlm import MashVlmForConditionalGeneration

    build_model(seed=0).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="DST-attention"):
        MashVlmForConditionalGeneration.from_pretrained(tmp_path, attn_implementation="flash_attention_2")
