"""MASH-VLM processor: video frames + prompt -> model inputs.

A ``<video>`` marker in the prompt becomes M temporal placeholders followed by N spatial
placeholders (DESIGN §3); the model scatters the video tokens into those slots. Prompts follow the
LLaVA-1.5 Vicuna v1 conversation template.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin

from ..video import read_video_frames

VICUNA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
VIDEO_TOKEN = "<video>"
VIDEO_TEMPORAL_TOKEN = "<video_temporal>"
VIDEO_SPATIAL_TOKEN = "<video_spatial>"
IGNORE_INDEX = -100


def vicuna_v1_prompt(
    turns: Sequence[tuple[str, str | None]], system: str = VICUNA_V1_SYSTEM, eos_token: str = "</s>"
) -> str:
    """LLaVA-1.5's ``conv_vicuna_v1``: ``"{system} USER: {q} ASSISTANT: {a}</s>USER: ..."``.

    The last answer may be ``None``: the prompt then ends with ``"ASSISTANT:"`` for generation.
    """
    text = system + " "
    for question, answer in turns:
        text += f"USER: {question} ASSISTANT:"
        if answer is not None:
            text += f" {answer}{eos_token}"
    return text


class MashVlmProcessor(ProcessorMixin):
    """Tokenizer + CLIP image processor + frame sampling + ``<video>`` expansion.

    Args:
        image_processor: a CLIP image processor (resize, centre crop, normalise each frame).
        tokenizer: the LLM's tokenizer, holding the two placeholder tokens as special tokens.
        num_frames: frames T sampled per video.
        num_temporal_tokens / num_spatial_tokens: M and N placeholders per ``<video>``.
    """

    attributes = ["image_processor", "tokenizer"]

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        num_frames: int = 16,
        num_temporal_tokens: int | None = None,
        num_spatial_tokens: int = 576,
        video_token: str = VIDEO_TOKEN,
        video_temporal_token: str = VIDEO_TEMPORAL_TOKEN,
        video_spatial_token: str = VIDEO_SPATIAL_TOKEN,
        system_prompt: str = VICUNA_V1_SYSTEM,
        chat_template: str | None = None,
        **kwargs,
    ):
        self.num_frames = num_frames
        self.num_temporal_tokens = num_temporal_tokens if num_temporal_tokens is not None else 3 * num_frames - 1
        self.num_spatial_tokens = num_spatial_tokens
        self.video_token = video_token
        self.video_temporal_token = video_temporal_token
        self.video_spatial_token = video_spatial_token
        self.system_prompt = system_prompt
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        for token in (video_temporal_token, video_spatial_token):
            if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id):
                raise ValueError(
                    f"the tokenizer has no {token!r} token; add it with "
                    f"tokenizer.add_special_tokens({{'additional_special_tokens': [{token!r}]}}) "
                    "(mashvlm convert llava does this)"
                )

    @classmethod
    def from_config_and_parts(cls, config, image_processor, tokenizer, **kwargs) -> MashVlmProcessor:
        """A processor whose placeholder counts match a :class:`MashVlmConfig`."""
        return cls(
            image_processor,
            tokenizer,
            num_frames=config.num_frames,
            num_temporal_tokens=config.num_temporal_tokens,
            num_spatial_tokens=config.num_spatial_tokens,
            **kwargs,
        )

    @property
    def video_temporal_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.video_temporal_token)

    @property
    def video_spatial_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.video_spatial_token)

    # -- text ---------------------------------------------------------------------------------------
    def expand_video_tokens(self, text: str) -> str:
        """Replace each ``<video>`` with M temporal and N spatial placeholder tokens."""
        block = self.video_temporal_token * self.num_temporal_tokens + self.video_spatial_token * self.num_spatial_tokens
        return text.replace(self.video_token, block)

    def build_prompt(self, question: str, answer: str | None = None, *, with_video: bool = True) -> str:
        """One-turn Vicuna v1 prompt; the video comes first in the user turn, as in LLaVA."""
        user = f"{self.video_token}\n{question}" if with_video else question
        return vicuna_v1_prompt([(user, answer)], self.system_prompt, self.tokenizer.eos_token or "</s>")

    # -- video --------------------------------------------------------------------------------------
    def load_video(
        self, path: str | os.PathLike, start: float | None = None, end: float | None = None
    ) -> np.ndarray:
        """``uint8 [T, H, W, 3]`` frames at the middles of T equal segments (raises VideoDecodeError)."""
        return read_video_frames(path, self.num_frames, start=start, end=end)

    def preprocess_video(self, frames: np.ndarray | torch.Tensor | Sequence) -> torch.Tensor:
        """``[T, H, W, 3]`` uint8 frames -> ``[T, 3, h, w]`` CLIP-normalised pixels."""
        frames = list(frames)
        if len(frames) != self.num_frames:
            raise ValueError(f"expected {self.num_frames} frames per video, got {len(frames)}")
        return self.image_processor(images=[np.asarray(f) for f in frames], return_tensors="pt")["pixel_values"]

    # -- call ---------------------------------------------------------------------------------------
    def __call__(
        self,
        text: str | list[str] | None = None,
        videos=None,
        *,
        padding: bool | str = True,
        padding_side: str = "left",
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Tokenise prompts (expanding ``<video>``) and preprocess videos.

        ``videos``: one video or a list, each a path or ``[T, H, W, 3]`` frames, in order of
        appearance of ``<video>`` across the batch. Returns ``input_ids``, ``attention_mask`` and
        ``pixel_values_videos`` ``[num_videos, T, 3, H, W]``.
        """
        if text is None:
            raise ValueError("text is required")
        texts = [text] if isinstance(text, str) else list(text)
        num_markers = sum(t.count(self.video_token) for t in texts)
        video_list = self._as_video_list(videos)
        if num_markers != len(video_list):
            raise ValueError(
                f"the text holds {num_markers} {self.video_token} marker(s) but {len(video_list)} video(s) were given"
            )
        encoded = self.tokenizer(
            [self.expand_video_tokens(t) for t in texts],
            padding=padding,
            padding_side=padding_side,
            return_tensors=return_tensors,
            add_special_tokens=True,
            **kwargs,
        )
        data = dict(encoded)
        if video_list:
            pixels = [
                self.preprocess_video(self.load_video(v) if isinstance(v, (str, os.PathLike)) else v)
                for v in video_list
            ]
            data["pixel_values_videos"] = torch.stack(pixels)
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _as_video_list(videos) -> list:
        if videos is None:
            return []
        if isinstance(videos, (str, os.PathLike)):
            return [videos]
        if isinstance(videos, (np.ndarray, torch.Tensor)) and videos.ndim == 4:
            return [videos]
        return list(videos)

    def encode_conversation(self, turns: Sequence[tuple[str, str]], *, with_video: bool = True) -> dict:
        """Training example: ``input_ids`` and ``labels`` with loss on the answers (and their ``</s>``) only.

        The first question gets the ``<video>`` marker. Returns 1D tensors.
        """
        eos = self.tokenizer.eos_token or "</s>"
        turns = list(turns)
        if with_video and turns:
            turns[0] = (f"{self.video_token}\n{turns[0][0]}", turns[0][1])
        ids: list[int] = []
        labels: list[int] = []
        prefix = self.system_prompt + " "
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []

        def encode(piece: str) -> list[int]:
            return self.tokenizer(self.expand_video_tokens(piece), add_special_tokens=False)["input_ids"]

        ids += bos
        labels += [IGNORE_INDEX] * len(bos)
        for question, answer in turns:
            context = encode(prefix + f"USER: {question} ASSISTANT:")
            target = encode(f" {answer}{eos}")
            ids += context + target
            labels += [IGNORE_INDEX] * len(context) + target
            prefix = ""
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos"]


__all__ = ["MashVlmProcessor", "vicuna_v1_prompt", "VICUNA_V1_SYSTEM", "IGNORE_INDEX"]
