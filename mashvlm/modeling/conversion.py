"""Initialise MASH-VLM from a LLaVA-1.5 checkpoint (the paper starts from LLaVA-1.5-7B).

Reads a local directory in transformers' llava-hf layout: ``config.json`` (``model_type: llava``),
safetensors weights (single file or sharded with an index), the tokenizer and the CLIP image
processor config. Vision tower, projector and LLM weights are copied by key; the temporal and
spatial placeholder tokens are added to the tokenizer and the embeddings resized.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlavaConfig
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ..errors import MashVlmError
from .configuration_mash_vlm import MashVlmConfig
from .processing_mash_vlm import MashVlmProcessor
from .tokenization import add_video_tokens

# Both llava-hf layouts: the legacy one (``language_model.model.*``, still on the hub for
# llava-1.5-7b-hf) and transformers >= 4.52's (``model.language_model.*``), which already matches.
LEGACY_LLAVA_KEY_MAPPING = {
    r"^language_model\.model\.": "model.language_model.",
    r"^language_model\.lm_head\.": "lm_head.",
    r"^vision_tower\.": "model.vision_tower.",
    r"^multi_modal_projector\.": "model.multi_modal_projector.",
}


class CheckpointError(MashVlmError, ValueError):
    """A checkpoint directory is missing a file or holds something we refuse to load."""


def read_json_object(file: Path) -> dict:
    """A checkpoint's JSON file (config.json, tokenizer_config.json, ...) as a dict; a missing,
    unreadable or malformed file is a :class:`CheckpointError` naming it."""
    if not file.is_file():
        raise CheckpointError(f"{file.parent}: no {file.name}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{file}: not valid JSON ({err}); restore it from the original checkpoint") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(data).__name__}")
    return data


def check_safetensors(file: Path) -> None:
    """Read the header of a safetensors file (cheap) so a truncated or foreign file is named here,
    not deep inside ``from_pretrained``."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt"):
            pass
    except SafetensorError as err:
        raise CheckpointError(f"{file}: not a readable safetensors file ({err})") from None


def check_tokenizer_files(path: Path) -> None:
    """The tokenizer must be saved with the checkpoint as a fast tokenizer (tokenizer.json)."""
    for name in ("tokenizer_config.json", "tokenizer.json"):
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: no {name} (the tokenizer must be saved with the checkpoint)")
        read_json_object(path / name)


def load_checkpoint_config(path: Path, config_class):
    """``config_class.from_pretrained(path)``; values it rejects (an unknown rope_variant, a sub-config of
    an unknown model_type, a string where a number belongs) are a :class:`CheckpointError` naming the file.
    Only the parsing of config.json is guarded here: its checks raise ValueError/TypeError on bad values."""
    try:
        return config_class.from_pretrained(path)
    except (ValueError, TypeError) as err:
        reason = str(err) if len(str(err)) <= 300 else str(err)[:300] + "..."  # transformers lists every model type
        raise CheckpointError(f"{path / 'config.json'}: invalid configuration ({reason})") from None


def check_llava_dir(path: str | os.PathLike) -> Path:
    """Validate a llava-hf checkpoint directory; raise :class:`CheckpointError` naming what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory (expected a local llava-hf checkpoint)")
    config_file = path / "config.json"
    model_type = read_json_object(config_file).get("model_type")
    if model_type != "llava":
        raise CheckpointError(f"{config_file}: model_type is {model_type!r}, expected 'llava' (llava-hf layout)")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no 'weight_map' object")
        shards = set(weight_map.values())
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            raise CheckpointError(f"{index}: shard file(s) missing: {', '.join(missing)}")
        for shard in sorted(shards):
            check_safetensors(path / shard)
    elif not (path / "model.safetensors").is_file():
        pickles = sorted(p.name for p in path.glob("*.bin"))
        hint = (
            f" Found {', '.join(pickles)}: pickled weights are refused (they can run code); convert them "
            "to safetensors with a tool you trust first."
            if pickles
            else ""
        )
        raise CheckpointError(f"{path}: no model.safetensors or model.safetensors.index.json.{hint}")
    else:
        check_safetensors(path / "model.safetensors")
    check_tokenizer_files(path)
    if (path / "preprocessor_config.json").is_file():
        read_json_object(path / "preprocessor_config.json")
    return path


def mash_config_from_llava(llava_config: LlavaConfig, **overrides) -> MashVlmConfig:
    """A :class:`MashVlmConfig` with LLaVA's vision, projector and text settings."""
    if llava_config.vision_feature_select_strategy != "default" or not isinstance(
        llava_config.vision_feature_layer, int
    ):
        raise CheckpointError(
            "only LLaVA-1.5-style checkpoints are supported (one vision_feature_layer, 'default' strategy); got "
            f"layer={llava_config.vision_feature_layer!r}, strategy={llava_config.vision_feature_select_strategy!r}"
        )
    kwargs = {
        "vision_config": llava_config.vision_config.to_dict(),
        "text_config": llava_config.text_config.to_dict(),
        "vision_feature_layer": llava_config.vision_feature_layer,
        "projector_hidden_act": llava_config.projector_hidden_act,
        "multimodal_projector_bias": llava_config.multimodal_projector_bias,
    }
    kwargs.update(overrides)
    try:
        return MashVlmConfig(**kwargs)
    except (ValueError, TypeError) as err:  # MashVlmConfig's checks of the combined values
        raise CheckpointError(f"this LLaVA checkpoint with options {overrides} gives no valid MASH-VLM config: {err}") from None


def load_llava_as_mashvlm(path: str | os.PathLike, *, dtype="auto", **config_overrides):
    """``(model, processor)`` initialised from the LLaVA-1.5 checkpoint at ``path``.

    ``config_overrides`` set MASH-VLM options (``num_frames``, ``rope_variant``, ...).
    """
    from .modeling_mash_vlm import MashVlmForConditionalGeneration

    path = check_llava_dir(path)
    llava_config = load_checkpoint_config(path, LlavaConfig)
    tokenizer = AutoTokenizer.from_pretrained(path)
    temporal_id, spatial_id = add_video_tokens(tokenizer)
    config = mash_config_from_llava(
        llava_config, video_temporal_token_id=temporal_id, video_spatial_token_id=spatial_id, **config_overrides
    )
    model = MashVlmForConditionalGeneration.from_pretrained(
        path, config=config, dtype=dtype, key_mapping=LEGACY_LLAVA_KEY_MAPPING
    )
    # transformers remembers the load-time renaming and would save back in LLaVA's layout; a converted
    # model is a MASH-VLM checkpoint and must save (and reload) in its own.
    model._weight_conversions = None
    resize_embeddings_to_mean(model, len(tokenizer))
    image_processor = CLIPImageProcessorPil.from_pretrained(path)
    processor = MashVlmProcessor.from_config_and_parts(model.config, image_processor, tokenizer)
    return model, processor


@torch.no_grad()
def resize_embeddings_to_mean(model, vocab_size: int) -> None:
    """Grow input and output embeddings to ``vocab_size``; new rows are the mean of the old ones.

    Exactly the mean (transformers' ``mean_resizing`` samples around it), so conversion is deterministic.
    """
    old = model.get_input_embeddings().num_embeddings
    if vocab_size <= old:
        return
    model.resize_token_embeddings(vocab_size, mean_resizing=False)
    for embedding in (model.get_input_embeddings(), model.get_output_embeddings()):
        embedding.weight[old:] = embedding.weight[:old].mean(dim=0)


def convert_llava(src: str | os.PathLike, dst: str | os.PathLike, **config_overrides) -> Path:
    """Write a MASH-VLM checkpoint (safetensors + processor) at ``dst`` from LLaVA at ``src``."""
    model, processor = load_llava_as_mashvlm(src, **config_overrides)
    dst = Path(dst)
    model.save_pretrained(dst)
    processor.save_pretrained(dst)
    return dst
