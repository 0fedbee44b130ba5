"""MashVlmProcessor: <video> expansion, Vicuna v1 chat template, answer-only labels, save/load."""

import json

import numpy as np
import pytest
import torch

from mashvlm import MashVlmProcessor, TokenType
from mashvlm.errors import UsageError
from mashvlm.modeling.configuration_mash_vlm import num_temporal_tokens
from mashvlm.modeling.modeling_mash_vlm import token_types_from_input_ids
from mashvlm.modeling.processing_mash_vlm import IGNORE_INDEX, VICUNA_V1_SYSTEM

SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)


def random_video(frames=4, h=40, w=56, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (frames, h, w, 3), dtype=np.uint8)


def old_vicuna_v1_prompt(turns, system=SYSTEM, eos="</s>"):
    """The string-building rule the processor used before the chat template (LLaVA-1.5 conv_vicuna_v1)."""
    text = system + " "
    for question, answer in turns:
        text += f"USER: {question} ASSISTANT:"
        if answer is not None:
            text += f" {answer}{eos}"
    return text


def old_training_example(processor, turns):
    """The former encode_conversation: BOS, then each "[system ]USER: q ASSISTANT:" context and " a</s>"
    answer tokenised apart; loss on the answers only."""
    block = processor.video_temporal_token * processor.num_temporal_tokens
    block += processor.video_spatial_token * processor.num_spatial_tokens
    tokenizer = processor.tokenizer

    def encode(piece):
        return tokenizer(piece.replace("<video>", block), add_special_tokens=False)["input_ids"]

    ids, labels, prefix = [tokenizer.bos_token_id], [IGNORE_INDEX], SYSTEM + " "
    for i, (question, answer) in enumerate(turns):
        question = f"<video>\n{question}" if i == 0 else question
        context, target = encode(f"{prefix}USER: {question} ASSISTANT:"), encode(f" {answer}</s>")
        ids += context + target
        labels += [IGNORE_INDEX] * len(context) + target
        prefix = ""
    return ids, labels


def video_turn(question, video=None):
    item = {"type": "video"} if video is None else {"type": "video", "video": video}
    return {"role": "user", "content": [item, {"type": "text", "text": question}]}


def answer_turn(answer):
    return {"role": "assistant", "content": [{"type": "text", "text": answer}]}


def test_chat_template_is_llava_vicuna_v1(tiny_parts):
    # LLaVA-1.5 conv_vicuna_v1 (SeparatorStyle.TWO, seps " " and "</s>"), written out by hand
    processor, _ = tiny_parts
    assert VICUNA_V1_SYSTEM == SYSTEM
    single = processor.apply_chat_template([video_turn("What?")], add_generation_prompt=True)
    assert single == f"{SYSTEM} USER: <video>\nWhat? ASSISTANT:"
    multi = [video_turn("What?"), answer_turn("A dog."), {"role": "user", "content": "Where?"}]
    assert processor.apply_chat_template(multi, add_generation_prompt=True) == (
        f"{SYSTEM} USER: <video>\nWhat? ASSISTANT: A dog.</s>USER: Where? ASSISTANT:"
    )
    assert processor.apply_chat_template(multi[:2]) == f"{SYSTEM} USER: <video>\nWhat? ASSISTANT: A dog.</s>"
    # The video goes first, as in LLaVA; several text items are joined by spaces.
    parts = [{"type": "text", "text": "What"}, {"type": "video"}, {"type": "text", "text": "now?"}]
    assert processor.apply_chat_template([{"role": "user", "content": parts}]) == f"{SYSTEM} USER: <video>\nWhat now? "
    # A system message replaces the default system prompt; the prompt helpers render the same template.
    custom = [{"role": "system", "content": "Be brief."}, video_turn("What?")]
    assert processor.apply_chat_template(custom, add_generation_prompt=True) == "Be brief. USER: <video>\nWhat? ASSISTANT:"
    assert processor.build_prompt("What?") == single
    assert processor.build_prompt("What?", "A dog.") == processor.apply_chat_template(multi[:2])
    assert processor.build_prompt("What?", with_video=False) == f"{SYSTEM} USER: What? ASSISTANT:"


def test_chat_template_token_ids_match_the_former_prompt_rule(tiny_parts):
    processor, _ = tiny_parts
    video = random_video()
    cases = [
        ([video_turn("What is the person doing?", video)], True, [("<video>\nWhat is the person doing?", None)]),
        ([video_turn("What?", video), answer_turn("Jumping."), {"role": "user", "content": "Where?"}], True,
         [("<video>\nWhat?", "Jumping."), ("Where?", None)]),
        ([video_turn("What?", video), answer_turn("Jumping."), {"role": "user", "content": "Where?"},
          answer_turn("A beach.")], False, [("<video>\nWhat?", "Jumping."), ("Where?", "A beach.")]),
    ]
    for messages, generation, turns in cases:
        ids = processor.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True)
        expected = processor(old_vicuna_v1_prompt(turns), videos=video)["input_ids"]
        assert ids.tolist() == expected.tolist()
        assert ids[0, 0] == processor.tokenizer.bos_token_id
    batch = processor.apply_chat_template(
        [cases[0][0]], add_generation_prompt=True, tokenize=True, return_dict=True
    )
    assert torch.allclose(batch["pixel_values_videos"], processor(
        old_vicuna_v1_prompt(cases[0][2]), videos=video)["pixel_values_videos"])


@pytest.mark.parametrize("turns", [
    [("What is the person doing?", "Jumping.")],
    [("What is the person doing?", "Jumping."), ("Where?", "A beach."), ("Is someone running?", "No.")],
])
def test_training_examples_keep_the_former_ids_and_labels(tiny_parts, turns):
    processor, _ = tiny_parts
    example = processor.encode_conversation(turns)
    ids, labels = old_training_example(processor, turns)
    assert example["input_ids"].tolist() == ids
    assert example["labels"].tolist() == labels


def test_assistant_mask_of_the_template_is_the_training_labels(tiny_parts):
    processor, _ = tiny_parts
    messages = [video_turn("What?", random_video()), answer_turn("Jumping."), {"role": "user", "content": "Where?"},
                answer_turn("A beach.")]
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    example = processor.encode_conversation([("What?", "Jumping."), ("Where?", "A beach.")])
    assert out["input_ids"][0].tolist() == example["input_ids"].tolist()
    assert out["assistant_masks"][0] == (example["labels"] != IGNORE_INDEX).long().tolist()


def test_unsupported_content_is_refused(tiny_parts):
    from jinja2.exceptions import TemplateError

    processor, _ = tiny_parts
    with pytest.raises(TemplateError, match="not 'image'"):
        processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])
    with pytest.raises(TemplateError, match="not 'tool'"):
        processor.apply_chat_template([{"role": "tool", "content": "x"}])


def test_default_temporal_token_count_is_3t_minus_1(tiny_parts):
    processor, config = tiny_parts
    assert [num_temporal_tokens(t) for t in (4, 8, 16)] == [11, 23, 47]
    assert config.num_temporal_tokens == processor.num_temporal_tokens == 11
    built = MashVlmProcessor(processor.image_processor, processor.tokenizer, num_frames=16)
    assert built.num_temporal_tokens == 47


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
    block = "<video_temporal>" * config.num_temporal_tokens + "<video_spatial>" * config.num_spatial_tokens
    assert tokenizer.decode(ids[1:]) == (
        f"{SYSTEM} USER: {block}\nWhat is the person doing? ASSISTANT: Jumping.</s>USER: Where? ASSISTANT: A beach.</s>"
    )
    text_only = processor.encode_conversation([("Where?", "A beach.")], with_video=False)
    assert tokenizer.decode(text_only["input_ids"][1:]) == f"{SYSTEM} USER: Where? ASSISTANT: A beach.</s>"


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


def test_chat_template_is_saved_loaded_and_overridable(tiny_parts, tmp_path):
    processor, _ = tiny_parts
    processor.save_pretrained(tmp_path / "default")
    saved = (tmp_path / "default" / "chat_template.jinja").read_text()
    assert saved == processor.chat_template
    assert MashVlmProcessor.from_pretrained(tmp_path / "default").chat_template == saved
    # A user's template is honoured by the prompt helpers, saved and loaded; one given to from_pretrained wins.
    brief = "{% for m in messages %}{{ m['role'] }}: {{ m['content'][-1]['text'] }}\n{% endfor %}"
    custom = MashVlmProcessor(processor.image_processor, processor.tokenizer, num_frames=4, chat_template=brief)
    assert custom.build_prompt("Hi?", with_video=False) == "user: Hi?\n"
    custom.save_pretrained(tmp_path / "custom")
    assert MashVlmProcessor.from_pretrained(tmp_path / "custom").build_prompt("Hi?", with_video=False) == "user: Hi?\n"
    override = MashVlmProcessor.from_pretrained(tmp_path / "default", chat_template=brief)
    assert override.chat_template == brief
    # Training needs the answers in {% generation %} blocks.
    with pytest.raises(UsageError, match="generation"):
        custom.encode_conversation([("Hi?", "Yes.")], with_video=False)


def test_processor_saved_before_the_template_keeps_its_system_prompt(tiny_parts, tmp_path):
    processor, _ = tiny_parts
    processor.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink()
    config_path = tmp_path / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["system_prompt"] = "An older system prompt."
    config_path.write_text(json.dumps(config))
    loaded = MashVlmProcessor.from_pretrained(tmp_path)
    assert loaded.build_prompt("What?") == "An older system prompt. USER: <video>\nWhat? ASSISTANT:"
    with pytest.raises(UsageError, match="system_prompt"):
        MashVlmProcessor(processor.image_processor, processor.tokenizer, system_prompt="x", chat_template="{{ 1 }}")


def test_videos_nested_per_prompt_are_flattened_in_order(tiny_parts):
    processor, _ = tiny_parts
    a, b = random_video(seed=1), random_video(seed=2)
    prompts = [processor.build_prompt("Hi?"), processor.build_prompt("What?")]
    flat = processor(prompts, videos=[a, b])
    nested = processor(prompts, videos=[[a], [list(b)]])  # the second video as a list of frames
    assert torch.equal(flat["input_ids"], nested["input_ids"])
    assert torch.allclose(flat["pixel_values_videos"], nested["pixel_values_videos"])


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
