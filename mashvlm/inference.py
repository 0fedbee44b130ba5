"""Ask a MASH-VLM checkpoint about a video file: ``VideoChat.from_pretrained(dir).answer(path, question)``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import UsageError
from .modeling import MashVlmConfig, MashVlmForConditionalGeneration, MashVlmProcessor
from .modeling.conversion import (
    CheckpointError,
    check_safetensors,
    check_tokenizer_files,
    load_checkpoint_config,
    read_json_object,
)


def check_mashvlm_dir(path: str | os.PathLike) -> Path:
    """Validate a MASH-VLM checkpoint directory; raise :class:`CheckpointError` naming what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory (expected a MASH-VLM checkpoint saved with save_pretrained)")
    config_file = path / "config.json"
    model_type = read_json_object(config_file).get("model_type")
    if model_type != "mash_vlm":
        hint = " (convert it first: mashvlm convert llava SRC DST)" if model_type == "llava" else ""
        raise CheckpointError(f"{config_file}: model_type is {model_type!r}, expected 'mash_vlm'{hint}")
    if (path / "model.safetensors").is_file():
        check_safetensors(path / "model.safetensors")
    elif not (path / "model.safetensors.index.json").is_file():
        raise CheckpointError(f"{path}: no model.safetensors (pickled .bin weights are never loaded)")
    if not (path / "processor_config.json").is_file():
        raise CheckpointError(f"{path}: no processor_config.json (save the processor with the model)")
    read_json_object(path / "processor_config.json")
    check_tokenizer_files(path)
    return path


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device (default: cuda if available, else cpu); an unknown name or a GPU this
    machine lacks is a :class:`UsageError`, not an error deep inside torch."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"device {device!r} is not a torch device, e.g. cpu, cuda, cuda:1 ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r}: CUDA is not available on this machine; use cpu")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise UsageError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved


class VideoChat:
    """Greedy question answering about videos with a MASH-VLM model and its processor."""

    def __init__(self, model: MashVlmForConditionalGeneration, processor: MashVlmProcessor):
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_pretrained(
        cls, model_dir: str | os.PathLike, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> VideoChat:
        path = check_mashvlm_dir(model_dir)
        device = resolve_device(device)
        config = load_checkpoint_config(path, MashVlmConfig)
        model = MashVlmForConditionalGeneration.from_pretrained(
            path, config=config, dtype=dtype or "auto", use_safetensors=True
        )
        return cls(model.to(device), MashVlmProcessor.from_pretrained(path))

    @property
    def device(self) -> torch.device:
        return self.model.device

    @torch.inference_mode()
    def answer_batch(
        self,
        videos: Sequence,
        questions: Sequence[str],
        *,
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Answers for ``(video, question)`` pairs; a video is a path or ``[T, H, W, 3]`` frames."""
        if len(videos) != len(questions):
            raise ValueError(f"{len(videos)} videos but {len(questions)} questions")
        prompts = [self.processor.build_prompt(q) for q in questions]
        inputs = self.processor(prompts, videos=list(videos)).to(self.device)
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        tokenizer = self.processor.tokenizer
        output = self.model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [text.strip() for text in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def answer(
        self,
        video_path: str | os.PathLike,
        question: str,
        *,
        max_new_tokens: int = 64,
        start: float | None = None,
        end: float | None = None,
    ) -> str:
        """Greedy answer to ``question`` about the video at ``video_path`` (raises VideoDecodeError)."""
        frames = self.processor.load_video(video_path, start=start, end=end)
        return self.answer_batch([frames], [question], max_new_tokens=max_new_tokens)[0]
