"""Which video tokens a model uses: Table 8's configs (temporal components, spatial tokens or not) and
Table 10's inference option (only the spatial or only the temporal tokens of a model trained with both)."""

import json

import numpy as np
import pytest
import torch
from mash_core_helpers import (
    SPATIAL_ID,
    TEMPORAL_ID,
    build_model,
    clone_with,
    pad_batch,
    random_pixels,
    random_text,
    tiny_config,
    video_placeholders,
)

from mashvlm import MashVlmConfig, MashVlmProcessor
from mashvlm.errors import UsageError
from mashvlm.inference import VideoChat
from mashvlm.modeling.configuration_mash_vlm import num_temporal_tokens, select_video_token_counts
from mashvlm.modeling.conversion import CheckpointError
from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

# Table 8's rows as config options (the tiny config: T = 4 frames, a 4x4 patch grid, N = 16).
TABLE8 = {
    "spatial only (TP)": {"temporal_tokens": [], "spatial_tokens": True},
    "SP": {"temporal_tokens": ["pooled"], "spatial_tokens": False},
    "SP + CLS": {"temporal_tokens": ["cls", "pooled"], "spatial_tokens": False},
    "SP + CLS + F-Diff": {"temporal_tokens": ["cls", "pooled", "frame_diff"], "spatial_tokens": False},
    "SP + CLS + F-Diff, TP (MASH-VLM)": {"temporal_tokens": ["cls", "pooled", "frame_diff"], "spatial_tokens": True},
}
TABLE8_COUNTS = {  # (M, N) per video with T = 4 and N = 4 segments * 2x2 cells
    "spatial only (TP)": (0, 16),
    "SP": (4, 0),
    "SP + CLS": (8, 0),
    "SP + CLS + F-Diff": (11, 0),
    "SP + CLS + F-Diff, TP (MASH-VLM)": (11, 16),
}
CORPUS = ["The person is jumping on a beach.", "Is someone running? Yes. No."]


# -- counts ------------------------------------------------------------------------------------------


def test_num_temporal_tokens_per_component():
    """T CLS + T pooled + (T - 1) frame-difference tokens, for the components present."""
    assert num_temporal_tokens(16) == 47
    assert [num_temporal_tokens(4, c) for c in ([], ["pooled"], ["cls", "pooled"], ["frame_diff"])] == [0, 4, 8, 3]
    assert num_temporal_tokens(4, ["frame_diff", "cls", "pooled"]) == 11


@pytest.mark.parametrize("row", list(TABLE8))
def test_config_counts_and_processor_expansion(row):
    """M and N follow from the config; the processor made from it expands <video> into exactly them."""
    processor, config = tiny_processor_and_config(CORPUS, **TABLE8[row])
    assert (config.num_temporal_tokens, config.num_spatial_tokens) == TABLE8_COUNTS[row]
    ids = processor("USER: <video>\nHi", videos=[np.zeros((4, 32, 32, 3), np.uint8)])["input_ids"][0]
    assert int((ids == processor.video_temporal_token_id).sum()) == TABLE8_COUNTS[row][0]
    assert int((ids == processor.video_spatial_token_id).sum()) == TABLE8_COUNTS[row][1]
    processor.check_matches_config(config)


def test_config_round_trip(tmp_path):
    """temporal_tokens is stored in concatenation order and survives save/load; a config.json written before
    these options existed loads as the paper's model (all three components, spatial tokens)."""
    config = tiny_config(temporal_tokens=["pooled", "cls"], spatial_tokens=False)
    assert config.temporal_tokens == ["cls", "pooled"]
    config.save_pretrained(tmp_path)
    loaded = MashVlmConfig.from_pretrained(tmp_path)
    assert (loaded.temporal_tokens, loaded.spatial_tokens, loaded.num_temporal_tokens) == (["cls", "pooled"], False, 8)
    assert loaded.num_spatial_tokens == 0
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["temporal_tokens"], saved["spatial_tokens"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    old = MashVlmConfig.from_pretrained(tmp_path)
    assert (old.temporal_tokens, old.spatial_tokens) == (["cls", "pooled", "frame_diff"], True)
    assert (old.num_temporal_tokens, old.num_spatial_tokens) == (11, 16)


@pytest.mark.parametrize(
    "options",
    [{"temporal_tokens": [], "spatial_tokens": False}, {"temporal_tokens": ["sp"]}, {"temporal_tokens": ["cls"] * 2}],
    ids=["no-tokens", "unknown", "repeated"],
)
def test_invalid_config_raises(options):
    with pytest.raises(ValueError):
        tiny_config(**options)


def test_select_video_token_counts():
    assert select_video_token_counts(11, 16, "both") == (11, 16)
    assert select_video_token_counts(11, 16, "spatial") == (0, 16)
    assert select_video_token_counts(11, 16, "temporal") == (11, 0)
    with pytest.raises(UsageError, match="no temporal tokens"):
        select_video_token_counts(0, 16, "temporal")
    with pytest.raises(UsageError, match="video_token_types"):
        select_video_token_counts(11, 16, "all")


# -- processor -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parts():
    return tiny_processor_and_config(CORPUS)


def test_processor_inference_option_writes_one_kind(parts):
    processor, _ = parts
    for types, counts in (("both", (11, 16)), ("spatial", (0, 16)), ("temporal", (11, 0))):
        text = processor.expand_video_tokens("a <video>\nb", types)
        got = (text.count(processor.video_temporal_token), text.count(processor.video_spatial_token))
        assert got == counts, types
        ids = processor("a <video>\nb", videos=[np.zeros((4, 32, 32, 3), np.uint8)], video_token_types=types)
        assert int((ids["input_ids"] == processor.video_spatial_token_id).sum()) == counts[1]


def test_adjacent_one_kind_blocks_raise(parts):
    """Two one-kind blocks with nothing between them would read as one video block; refuse them."""
    processor, _ = parts
    assert processor.expand_video_tokens("<video><video>").count(processor.video_spatial_token) == 32
    with pytest.raises(UsageError, match="nothing between"):
        processor.expand_video_tokens("<video><video>", "spatial")
    assert processor.expand_video_tokens("<video>\n<video>", "spatial").count(processor.video_spatial_token) == 32


def test_saved_processor_and_model_mismatch_is_a_clear_error(parts, tmp_path):
    """A processor saved for another config is refused when the two meet (VideoChat), naming both counts."""
    processor, _ = parts
    _, spatial_only = tiny_processor_and_config(CORPUS, temporal_tokens=[])
    processor.save_pretrained(tmp_path)
    loaded = MashVlmProcessor.from_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="11 temporal \\+ 16 spatial.*needs 4 frames and 0 \\+ 16"):
        loaded.check_matches_config(spatial_only)
    with pytest.raises(CheckpointError):
        VideoChat(tiny_model(spatial_only), loaded)


# -- model ---------------------------------------------------------------------------------------------


def greedy_both_ways(model, ids, mask, pixels, steps=3, **forward_kwargs):
    """``generate`` (cached) and greedy decoding by full forwards; both must agree."""
    with torch.no_grad():
        generated = model.generate(
            input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, max_new_tokens=steps,
            min_new_tokens=steps, do_sample=False, pad_token_id=0, suppress_tokens=[TEMPORAL_ID, SPATIAL_ID],
            **forward_kwargs,
        )
        full = ids
        for _ in range(steps):
            logits = model(
                input_ids=full, attention_mask=_mask(mask, full),
                pixel_values_videos=pixels, **forward_kwargs,
            ).logits[:, -1]
            logits[:, [TEMPORAL_ID, SPATIAL_ID]] = -torch.inf
            full = torch.cat([full, logits.argmax(-1, keepdim=True)], dim=1)
    return generated, full


def _mask(mask, full):
    return torch.cat([mask, mask.new_ones(mask.shape[0], full.shape[1] - mask.shape[1])], dim=1)


def one_video_batch(placeholders, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rows = [random_text(2, gen) + placeholders + random_text(3, gen), random_text(4, gen) + placeholders + [5]]
    return pad_batch(rows, side="left")


@pytest.mark.parametrize("row", list(TABLE8))
def test_table8_models_forward_and_generate(row):
    """Each Table 8 config: a prompt with its M + N slots runs forward and generate (which agree); the
    sequence holds no placeholder of a kind the config lacks."""
    model = build_model(**TABLE8[row])
    ids, mask = one_video_batch(video_placeholders(model.config))
    m, n = TABLE8_COUNTS[row]
    assert (int((ids == TEMPORAL_ID).sum()), int((ids == SPATIAL_ID).sum())) == (2 * m, 2 * n)
    pixels = random_pixels(2, model.config, seed=3)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels).logits
    assert logits.shape == (*ids.shape, model.config.text_config.vocab_size) and torch.isfinite(logits).all()
    generated, expected = greedy_both_ways(model, ids, mask, pixels)
    assert torch.equal(generated, expected)


@pytest.fixture(scope="module")
def full_model():
    return build_model()


@pytest.mark.parametrize(
    ("types", "same_as"),
    [("spatial", {"temporal_tokens": []}), ("temporal", {"spatial_tokens": False})],
)
def test_table10_option_keeps_one_kind(full_model, types, same_as):
    """Inference with one kind of tokens: the prompt holds only those slots, and the model gives exactly what
    the same weights configured with only that kind give (the dropped tokens are nowhere in the sequence)."""
    only = clone_with(full_model, **same_as)
    ids, mask = one_video_batch(video_placeholders(only.config))
    kinds = {int(t) for t in ids.unique()} & {TEMPORAL_ID, SPATIAL_ID}
    assert kinds == ({SPATIAL_ID} if types == "spatial" else {TEMPORAL_ID})
    pixels = random_pixels(2, full_model.config, seed=4)
    with torch.no_grad():
        got = full_model(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, video_token_types=types)
        want = only(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels)
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=0)
    generated, expected = greedy_both_ways(full_model, ids, mask, pixels, video_token_types=types)
    assert torch.equal(generated, expected)


def test_table10_option_must_match_the_prompt(full_model):
    """A prompt with both kinds under video_token_types='spatial' (or the reverse) is an error, not a guess."""
    ids, mask = one_video_batch(video_placeholders(full_model.config))
    pixels = random_pixels(2, full_model.config)
    with pytest.raises(ValueError, match="temporal placeholder"):
        full_model(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, video_token_types="spatial")
    spatial_only = build_model(temporal_tokens=[])
    ids, mask = one_video_batch(video_placeholders(spatial_only.config))
    with pytest.raises(UsageError, match="no temporal tokens"):
        spatial_only(input_ids=ids, attention_mask=mask, pixel_values_videos=pixels, video_token_types="temporal")


# -- VideoChat and the UNSCENE runner ----------------------------------------------------------------------


def test_video_chat_option_equals_one_kind_model(parts, tmp_path):
    """VideoChat(..., video_token_types='spatial') answers as the spatial-only model with the same weights,
    and the option passes from MashVlmVideoQA (unscene run --video-tokens) to VideoChat."""
    from mashvlm.unscene.runner import MashVlmVideoQA

    processor, config = parts
    model = tiny_model(config, seed=5)
    only_processor, only_config = tiny_processor_and_config(CORPUS, spatial_tokens=False)
    only = tiny_model(only_config, seed=5)
    only.load_state_dict(model.state_dict())
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    questions = ["Is someone running?", "The person is jumping?"]
    got = VideoChat(model, processor, video_token_types="temporal").answer_batch([frames] * 2, questions,
                                                                                  max_new_tokens=4)
    want = VideoChat(only, only_processor).answer_batch([frames] * 2, questions, max_new_tokens=4)
    assert got == want
    with pytest.raises(UsageError):
        VideoChat(only, only_processor, video_token_types="spatial")

    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    adapter = MashVlmVideoQA(tmp_path, device="cpu", max_new_tokens=4, video_tokens="temporal")
    assert adapter.chat.video_token_types == "temporal"
