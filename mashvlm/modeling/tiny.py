"""Small randomly initialised MASH-VLM models, for the quick-start demo, tests and the synthetic study."""

from __future__ import annotations

from collections.abc import Iterable

from transformers import CLIPVisionConfig, LlamaConfig
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from .configuration_mash_vlm import MashVlmConfig
from .modeling_mash_vlm import MashVlmForConditionalGeneration
from .processing_mash_vlm import VICUNA_V1_SYSTEM, MashVlmProcessor
from .tokenization import train_bpe_tokenizer


def tiny_processor_and_config(
    corpus: Iterable[str],
    *,
    image_size: int = 32,
    patch_size: int = 8,
    num_frames: int = 4,
    vision_hidden: int = 32,
    vision_layers: int = 2,
    text_hidden: int = 64,
    text_layers: int = 2,
    heads: int = 4,
    vocab_size: int = 512,
    text_initializer_range: float = 0.02,
    **mash_options,
) -> tuple[MashVlmProcessor, MashVlmConfig]:
    """A tokenizer trained on ``corpus`` (plus the chat template's words) and a matching tiny config.

    ``text_initializer_range`` is the Llama's (and projector's) initialisation std. Llama's 0.02 suits
    wide models; a tiny one that must learn to compare tokens trains far faster near 1/sqrt(text_hidden)
    (docs/synth.md, "The initialisation scale").
    """
    tokenizer = train_bpe_tokenizer([VICUNA_V1_SYSTEM, "USER: ASSISTANT:", *corpus], vocab_size=vocab_size)
    vision_config = CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=vision_hidden,
        intermediate_size=4 * vision_hidden,
        num_hidden_layers=vision_layers,
        num_attention_heads=max(1, vision_hidden // 16),
    )
    text_config = LlamaConfig(
        hidden_size=text_hidden,
        intermediate_size=4 * text_hidden,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=text_initializer_range,
    )
    config = MashVlmConfig(
        vision_config,
        text_config,
        num_frames=num_frames,
        video_temporal_token_id=tokenizer.convert_tokens_to_ids("<video_temporal>"),
        video_spatial_token_id=tokenizer.convert_tokens_to_ids("<video_spatial>"),
        **mash_options,
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return MashVlmProcessor.from_config_and_parts(config, image_processor, tokenizer), config


def tiny_model(config: MashVlmConfig, seed: int = 0) -> MashVlmForConditionalGeneration:
    """A randomly initialised model (seeded)."""
    import torch

    torch.manual_seed(seed)
    return MashVlmForConditionalGeneration(config)
