"""MashVlmProcessor: <video> expansion, Vicuna v1 template, answer-only labels, save/load."""

import numpy as np
import pytest
import torch

from mashvlm import MashVlmProcessor, TokenType
from mashvlm.modeling.modeling_mash_vlm import token_types_from_input_ids
from mashvlm.modeling.processing_mash_vlm import IGNORE_INDEX, VICUNA_V1_SYSTEM, vicuna_v1_prompt


def random_video(frames=4, h=40, w=56, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (frames, h, w, 3), dtype=np.uint8)


def test_vicuna_v1_template_matches_llava():
    # LLaVA-1.5 conv_vicuna_v1 (SeparatorStyle.TWO, seps " " and "</s>")
    prompt = vicuna_v1_prompt([("<video>\nWhat?", "A dog.</s>".removesuffix("</s>")), ("Where?", None)])
    assert prompt == f"{VICUNA_V1_SYSTEM} USER: <video>\nWhat? ASSISTANT: A dog.</s>USER: Where? ASSISTANT:"


def test_video_marker_expands_to_m_temporal_then_n_spatial(tiny_parts):
    processor, config = tiny_parts
    batch = processor(processor.build_prompt("What is the person doing?"), videos=random_video())
    types = token_types_from_input_ids(
        batch["input_ids"], config.video_temporal_token_id, config.video_spatial_token_id
    )[0]
    visual = (types != TokenType.TEXT).nonzero().squeeze(1)
    block = types[visual[0] : visual[-1] + 1].tolist()
    assert block == [TokenType.TEMPORAL] * config.num_temporal_tokens + [TokenType.SPATIAL] * config.num_spatial_tokens
    assert batch["pixel_values_videos"].shape == (1, config.num_frames, 3, 32, 32)


def test_batch_is_left_padded_and_videos_keep_order(tiny_parts):
    processor, _ = tiny_parts
    videos = [random_video(seed=1), random_video(seed=2)]
    batch = processor(
        [processor.build_prompt("Hi?"), processor.build_prompt("What is the person doing in this video?")],
        videos=videos,
    )
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and mask[1].all()
    single = processor(processor.build_prompt("Hi?"), videos=videos[1])
    assert torch.allclose(batch["pixel_values_videos"][1], single["pixel_values_videos"][0])


def test_marker_and_video_counts_must_match(tiny_parts):
    processor, _ = tiny_parts
    with pytest.raises(ValueError, match="1 <video> marker.*2 video"):
        processor(processor.build_prompt("Hi?"), videos=[random_video(), random_video()])
    with pytest.raises(ValueError, match="expected 4 frames"):
        processor(processor.build_prompt("Hi?"), videos=random_video(frames=3))


def test_labels_cover_answers_only(tiny_parts):
    processor, config = tiny_parts
    example = processor.encode_conversation([("What is the person doing?", "Jumping."), ("Where?", "A beach.")])
    ids, labels = example["input_ids"], example["labels"]
    tokenizer = processor.tokenizer
    assert ids[0] == tokenizer.bos_token_id
    supervised = tokenizer.decode(ids[labels != IGNORE_INDEX])
    assert supervised == " Jumping.</s> A beach.</s>"
    # The labelled text is exactly the prompt template's answers.
    full = tokenizer.decode(ids[1:])
    expected = vicuna_v1_prompt([("What is the person doing?", "Jumping."), ("Where?", "A beach.")])
    block = "<video_temporal>" * config.num_temporal_tokens + "<video_spatial>" * config.num_spatial_tokens
    assert full == expected.replace("USER: What", f"USER: {block}\nWhat", 1)


def test_save_and_load_round_trip(tiny_parts, tmp_path):
    processor, _ = tiny_parts
    processor.save_pretrained(tmp_path)
    loaded = MashVlmProcessor.from_pretrained(tmp_path)
    assert (loaded.num_frames, loaded.num_temporal_tokens, loaded.num_spatial_tokens) == (
        processor.num_frames,
        processor.num_temporal_tokens,
        processor.num_spatial_tokens,
    )
    prompt, video = processor.build_prompt("What?"), random_video()
    a, b = processor(prompt, videos=video), loaded(prompt, videos=video)
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert torch.allclose(a["pixel_values_videos"], b["pixel_values_videos"])


def test_tokenizer_without_placeholders_is_refused(tiny_parts):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    processor, _ = tiny_parts
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1}, unk_token="<unk>"))
    bare = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    with pytest.raises(ValueError, match="no '<video_temporal>' token"):
        MashVlmProcessor(processor.image_processor, bare)


@pytest.mark.parametrize("std", [0.02, 0.088])
def test_tiny_text_initializer_range_sets_the_llm_and_projector_init(std):
    from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

    _, config = tiny_processor_and_config(["a person is running"], text_hidden=128, text_layers=2, vision_hidden=64,
                                          vision_layers=3, text_initializer_range=std)
    assert config.text_config.initializer_range == std
    model = tiny_model(config, seed=0)
    for name in ("model.language_model.layers.0.self_attn.q_proj.weight", "model.language_model.embed_tokens.weight",
                 "model.multi_modal_projector.linear_2.weight", "lm_head.weight"):
        assert model.get_parameter(name).std().item() == pytest.approx(std, rel=0.1), name
    # The vision tower keeps CLIP's own initialisation, whatever the Llama's.
    q = model.get_parameter("model.vision_tower.encoder.layers.0.self_attn.q_proj.weight")
    assert q.std().item() != pytest.approx(std, rel=0.1)
