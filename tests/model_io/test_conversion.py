"""LLaVA-1.5 initialisation: weights copied by key, placeholders added, logits preserved; save/load."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mashvlm import MashVlmForConditionalGeneration, MashVlmProcessor
from mashvlm.cli import main as cli_main
from mashvlm.modeling.conversion import CheckpointError, check_llava_dir


@pytest.fixture(scope="module")
def tiny_llava_dir(tmp_path_factory):
    """A tiny LLaVA-1.5 checkpoint written by transformers itself (llava-hf layout) with a tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        PreTrainedTokenizerFast,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    path = tmp_path_factory.mktemp("llava")
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<image>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(["A chat between a curious human and an assistant. USER: ASSISTANT:"], trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    torch.manual_seed(0)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
            num_attention_heads=2,
        ),
        text_config=LlamaConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            vocab_size=len(tokenizer), pad_token_id=0,
        ),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    llava = LlavaForConditionalGeneration(config).eval()
    llava.save_pretrained(path)
    tokenizer.save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path, llava


def test_weights_are_copied_and_vocab_grows_by_the_placeholders(tiny_llava_dir):
    path, llava = tiny_llava_dir
    model, processor = MashVlmForConditionalGeneration.from_llava(path, return_processor=True, num_frames=4)
    old_vocab = llava.config.text_config.vocab_size
    assert model.config.text_config.vocab_size == old_vocab + 2 == len(processor.tokenizer)
    assert {model.config.video_temporal_token_id, model.config.video_spatial_token_id} == {old_vocab, old_vocab + 1}
    theirs, ours = llava.state_dict(), model.state_dict()
    assert set(theirs) == set(ours)
    for key, value in theirs.items():
        mine = ours[key][: value.shape[0]] if key.endswith("embed_tokens.weight") or key == "lm_head.weight" else ours[key]
        assert torch.equal(mine, value), key
    # New embedding rows start at the mean of the old ones (not at random).
    new_rows = model.get_input_embeddings().weight[old_vocab:]
    assert torch.allclose(new_rows, theirs["model.language_model.embed_tokens.weight"].mean(0).expand_as(new_rows), atol=1e-2)


def test_text_logits_match_llava(tiny_llava_dir):
    path, llava = tiny_llava_dir
    model = MashVlmForConditionalGeneration.from_llava(path, num_frames=4).eval()
    ids = torch.randint(4, llava.config.text_config.vocab_size, (2, 9))
    with torch.no_grad():
        expected = llava(input_ids=ids).logits
        got = model(input_ids=ids).logits[..., : expected.shape[-1]]
    assert torch.allclose(got, expected, atol=1e-5)


def test_video_features_use_llava_tower_and_projector(tiny_llava_dir):
    """CLS and patch features come from vision_feature_layer and LLaVA's own projector."""
    path, llava = tiny_llava_dir
    model = MashVlmForConditionalGeneration.from_llava(path, num_frames=4).eval()
    pixels = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        hidden = llava.model.vision_tower(pixels[0], output_hidden_states=True).hidden_states[-2]
        projected = llava.model.multi_modal_projector(hidden)
        temporal, spatial = model.model.get_video_features(pixels)
    assert torch.allclose(temporal[0, :4], projected[:, 0], atol=1e-5)  # the T CLS tokens
    assert torch.allclose(temporal[0, 4:8], projected[:, 1:].mean(1), atol=1e-5)  # spatially pooled
    assert spatial.shape == (1, 16, 64)


def test_modern_key_layout_loads_the_same(tiny_llava_dir, tmp_path):
    """Checkpoints saved as model.language_model.* (transformers >= 4.52 in memory) load too."""
    path, _ = tiny_llava_dir
    for item in path.iterdir():
        if item.name != "model.safetensors":
            (tmp_path / item.name).write_bytes(item.read_bytes())
    renamed = {}
    for key, value in load_file(path / "model.safetensors").items():
        if key.startswith("language_model.model."):
            key = "model.language_model." + key.removeprefix("language_model.model.")
        elif key == "language_model.lm_head.weight":
            key = "lm_head.weight"
        else:
            key = "model." + key
        renamed[key] = value
    assert any(k.startswith("model.language_model.") for k in renamed)
    save_file(renamed, tmp_path / "model.safetensors", metadata={"format": "pt"})
    a = MashVlmForConditionalGeneration.from_llava(path, num_frames=4).state_dict()
    b = MashVlmForConditionalGeneration.from_llava(tmp_path, num_frames=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_convert_command_then_save_load_round_trip(tiny_llava_dir, tmp_path):
    path, _ = tiny_llava_dir
    dst = tmp_path / "mash"
    assert cli_main(["convert", "llava", str(path), str(dst), "--num-frames", "4"]) == 0
    assert (dst / "model.safetensors").is_file() and not list(dst.glob("*.bin"))
    assert json.loads((dst / "config.json").read_text())["model_type"] == "mash_vlm"
    model = MashVlmForConditionalGeneration.from_pretrained(dst).eval()
    processor = MashVlmProcessor.from_pretrained(dst)
    video = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    inputs = processor(processor.build_prompt("What is happening?"), videos=video)
    reference = MashVlmForConditionalGeneration.from_llava(path, num_frames=4).eval()
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, reference(**inputs).logits, atol=1e-5)
    # Round trip again through save_pretrained.
    model.save_pretrained(tmp_path / "again")
    again = MashVlmForConditionalGeneration.from_pretrained(tmp_path / "again").eval()
    with torch.no_grad():
        assert torch.equal(again(**inputs).logits, model(**inputs).logits)


def test_bad_checkpoint_directories(tiny_llava_dir, tmp_path):
    path, _ = tiny_llava_dir
    with pytest.raises(CheckpointError, match="not a directory"):
        check_llava_dir(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no config.json"):
        check_llava_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="expected 'llava'"):
        check_llava_dir(tmp_path)
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="pickled weights are refused"):
        check_llava_dir(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "shard-1.safetensors"}}))
    with pytest.raises(CheckpointError, match="shard-1.safetensors"):
        check_llava_dir(tmp_path)
    assert cli_main(["convert", "llava", str(tmp_path), str(tmp_path / "out")]) == 2
