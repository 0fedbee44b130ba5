"""Small byte-level BPE tokenizers trained locally, for tests and the synthetic study (no hub access)."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from .processing_mash_vlm import VIDEO_SPATIAL_TOKEN, VIDEO_TEMPORAL_TOKEN

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def train_bpe_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A Llama-like tokenizer (``<s>``/``</s>``/``<unk>``/``<pad>``) with the two video placeholders.

    Byte-level, so any text round-trips; ``vocab_size`` bounds the learned merges.
    """
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos_token=True,
    )
    add_video_tokens(tokenizer)
    return tokenizer


def add_video_tokens(tokenizer) -> tuple[int, int]:
    """Add the temporal and spatial placeholder tokens (idempotent); returns their ids."""
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [VIDEO_TEMPORAL_TOKEN, VIDEO_SPATIAL_TOKEN]},
        replace_extra_special_tokens=False,
    )
    return (
        tokenizer.convert_tokens_to_ids(VIDEO_TEMPORAL_TOKEN),
        tokenizer.convert_tokens_to_ids(VIDEO_SPATIAL_TOKEN),
    )
