"""MASH-VLM processor: video frames + conversation -> model inputs.

A ``<video>`` marker in the prompt becomes M temporal placeholders followed by N spatial
placeholders (DESIGN §3); the model scatters the video tokens into those slots. Prompts follow the
LLaVA-1.5 Vicuna v1 conversation template, shipped as a Jinja chat template
(:data:`VICUNA_V1_CHAT_TEMPLATE`): ``processor.apply_chat_template`` renders it as in any transformers
processor, and the training, inference and UNSCENE prompts are rendered through it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.utils.chat_template_utils import render_jinja_template

from ..errors import UsageError
from ..video import read_video_frames
from .configuration_mash_vlm import num_temporal_tokens as temporal_token_count
from .configuration_mash_vlm import select_video_token_counts

VICUNA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
VIDEO_TOKEN = "<video>"
VIDEO_TEMPORAL_TOKEN = "<video_temporal>"
VIDEO_SPATIAL_TOKEN = "<video_spatial>"
IGNORE_INDEX = -100

# LLaVA-1.5's ``conv_vicuna_v1`` (SeparatorStyle.TWO, seps " " and "</s>"):
#   "{system} USER: <video>\n{q1} ASSISTANT: {a1}</s>USER: {q2} ASSISTANT:"
# A video content item renders as "<video>\n" before the message's text, as LLaVA puts it. The answer and
# its "</s>" are a {% generation %} block: that is the supervised span of a training example.
_VICUNA_V1_TEMPLATE = r"""{%- macro render_content(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- else -%}
        {%- for item in content if item['type'] not in ('video', 'text') -%}
            {{- raise_exception("MASH-VLM messages hold 'video' and 'text' items, not '" ~ item['type'] ~ "'") -}}
        {%- endfor -%}
        {%- for item in content if item['type'] == 'video' -%}
            {{- '<video>\n' -}}
        {%- endfor -%}
        {%- for item in content if item['type'] == 'text' -%}
            {{- (' ' if not loop.first else '') + item['text'] -}}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- if messages and messages[0]['role'] == 'system' -%}
    {{- render_content(messages[0]['content']) + ' ' -}}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {{- @SYSTEM@ + ' ' -}}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if message['role'] == 'user' -%}
        {{- 'USER: ' + render_content(message['content']) + ' ' -}}
    {%- elif message['role'] == 'assistant' -%}
        {{- 'ASSISTANT:' -}}
        {%- generation -%}
            {{- ' ' + render_content(message['content']) + (eos_token or '</s>') -}}
        {%- endgeneration -%}
    {%- else -%}
        {{- raise_exception("MASH-VLM messages are 'user' or 'assistant' after an optional first 'system', not '" ~ message['role'] ~ "'") -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- 'ASSISTANT:' -}}
{%- endif -%}
"""


def vicuna_v1_chat_template(system: str = VICUNA_V1_SYSTEM) -> str:
    """The Vicuna v1 Jinja chat template; ``system`` is its system prompt when no system message is given."""
    # json.dumps gives a double-quoted, escaped literal that Jinja reads back as the same string
    return _VICUNA_V1_TEMPLATE.replace("@SYSTEM@", json.dumps(system))


VICUNA_V1_CHAT_TEMPLATE = vicuna_v1_chat_template()


def conversation_messages(
    turns: Sequence[tuple[str, str | None]], *, with_video: bool = True
) -> list[dict]:
    """Chat messages for ``(question, answer)`` turns; the first question gets the video, as in LLaVA.

    The last answer may be ``None`` (a question to answer: render with ``add_generation_prompt=True``).
    """
    messages: list[dict] = []
    for i, (question, answer) in enumerate(turns):
        content = [{"type": "text", "text": question}]
        if with_video and i == 0:
            content.insert(0, {"type": "video"})
        messages.append({"role": "user", "content": content})
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        elif i != len(turns) - 1:
            raise ValueError(f"only the last turn may have no answer; turn {i} of {len(turns)} has none")
    return messages


_GENERATION_BLOCK = re.compile(r"\{%-?\s*generation\s*-?%\}")


@functools.lru_cache(maxsize=16384)
def _render_turns(
    chat_template: str,
    turns: tuple[tuple[str, str | None], ...],
    with_video: bool,
    add_generation_prompt: bool,
    special_tokens: tuple[tuple[str, str], ...],
) -> tuple[str, tuple[tuple[int, int], ...] | None]:
    # Cached: a training set renders the same conversations every epoch, and a Jinja render costs about as
    # much as tokenising the example (benchmarks/chat_template_encoding.py).
    has_generation_blocks = _GENERATION_BLOCK.search(chat_template) is not None
    rendered, spans = render_jinja_template(
        conversations=[conversation_messages(turns, with_video=with_video)],
        chat_template=chat_template,
        return_assistant_tokens_mask=has_generation_blocks,
        add_generation_prompt=add_generation_prompt,
        **dict(special_tokens),
    )
    return rendered[0], tuple(spans[0]) if has_generation_blocks else None


class MashVlmProcessor(ProcessorMixin):
    """Tokenizer + CLIP image processor + frame sampling + ``<video>`` expansion + chat template.

    Args:
        image_processor: a CLIP image processor (resize, centre crop, normalise each frame).
        tokenizer: the LLM's tokenizer, holding the two placeholder tokens as special tokens.
        num_frames: frames T sampled per video.
        num_temporal_tokens / num_spatial_tokens: M and N placeholders per ``<video>`` (M defaults to 3T - 1).
        chat_template: Jinja chat template; defaults to :data:`VICUNA_V1_CHAT_TEMPLATE`, which writes a video
            content item as the default ``video_token`` ``<video>``. Training examples need its answers in
            ``{% generation %}`` blocks (the supervised spans).
        system_prompt: the default template's system prompt (used when no ``chat_template`` is given;
            processors saved before the template was shipped store it).
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
        chat_template: str | dict[str, str] | None = None,
        system_prompt: str | None = None,
        **kwargs,
    ):
        self.num_frames = num_frames
        self.num_temporal_tokens = (
            num_temporal_tokens if num_temporal_tokens is not None else temporal_token_count(num_frames)
        )
        self.num_spatial_tokens = num_spatial_tokens
        self.video_token = video_token
        self.video_temporal_token = video_temporal_token
        self.video_spatial_token = video_spatial_token
        if chat_template is None:
            chat_template = vicuna_v1_chat_template(system_prompt or VICUNA_V1_SYSTEM)
        elif system_prompt not in (None, VICUNA_V1_SYSTEM):
            raise UsageError(
                "system_prompt only sets the default chat template's system prompt; with a chat_template, "
                "put the system prompt in the template or in a {'role': 'system'} message"
            )
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

    def check_matches_config(self, config) -> None:
        """Raise :class:`CheckpointError` unless this processor writes the video blocks ``config``'s model
        fills: T frames, M temporal and N spatial placeholders per ``<video>``."""
        from .conversion import CheckpointError  # conversion imports this module

        mine = (self.num_frames, self.num_temporal_tokens, self.num_spatial_tokens)
        theirs = (config.num_frames, config.num_temporal_tokens, config.num_spatial_tokens)
        if mine != theirs:
            raise CheckpointError(
                f"the processor and the model disagree on the video block: the processor samples {mine[0]} "
                f"frames and writes {mine[1]} temporal + {mine[2]} spatial placeholders per <video>; the model "
                f"config (num_frames, temporal_tokens={config.temporal_tokens}, spatial_tokens="
                f"{config.spatial_tokens}) needs {theirs[0]} frames and {theirs[1]} + {theirs[2]}. Save the "
                "processor made by MashVlmProcessor.from_config_and_parts(config, ...) with the model"
            )

    @property
    def video_temporal_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.video_temporal_token)

    @property
    def video_spatial_token_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.video_spatial_token)

    # -- text ---------------------------------------------------------------------------------------
    def expand_video_tokens(self, text: str, video_token_types: str = "both") -> str:
        """Replace each ``<video>`` with M temporal and N spatial placeholder tokens.

        ``video_token_types="spatial"`` or ``"temporal"`` writes only that kind (Table 10: inference with one
        kind of video tokens; the model then needs the same option).
        """
        return self._expand_video_tokens(text, video_token_types)[0]

    def _expand_video_tokens(self, text: str, video_token_types: str = "both") -> tuple[str, list[dict]]:
        # Also returns where each marker was and is, in the form ProcessorMixin.apply_chat_template reads
        # (return_assistant_tokens_mask maps the template's character spans through these).
        num_temporal, num_spatial = select_video_token_counts(
            self.num_temporal_tokens, self.num_spatial_tokens, video_token_types
        )
        block = self.video_temporal_token * num_temporal + self.video_spatial_token * num_spatial
        offsets, shift, previous_end = [], 0, None
        for match in re.finditer(re.escape(self.video_token), text):
            start, end = match.span()
            if start == previous_end and not (num_temporal and num_spatial):
                # A block starts at a temporal run after text or after spatial tokens (DESIGN §3): two
                # one-kind blocks with nothing between would read as one video.
                raise UsageError(
                    f"two {self.video_token} markers with nothing between them: with one kind of video tokens "
                    f"({num_temporal} temporal, {num_spatial} spatial) the model could not tell the videos "
                    "apart; put text (e.g. a newline) between them"
                )
            previous_end = end
            new_span = (start + shift, start + shift + len(block))
            offsets.append(
                {"type": "video", "span": (start, end), "new_span": new_span, "text": self.video_token, "replacement": block}
            )
            shift += len(block) - (end - start)
        return text.replace(self.video_token, block), offsets

    def render_turns(
        self,
        turns: Sequence[tuple[str, str | None]],
        *,
        with_video: bool = True,
        add_generation_prompt: bool = False,
    ) -> tuple[str, tuple[tuple[int, int], ...] | None]:
        """The chat template's text for ``(question, answer)`` turns (:func:`conversation_messages`) and the
        character spans of its ``{% generation %}`` blocks (the answers; ``None`` if it has no such block)."""
        template = self._resolve_chat_template(None)
        special_tokens = tuple((k, v) for k, v in self.tokenizer.special_tokens_map.items() if isinstance(v, str))
        return _render_turns(template, tuple(map(tuple, turns)), with_video, add_generation_prompt, special_tokens)

    def build_prompt(self, question: str, answer: str | None = None, *, with_video: bool = True) -> str:
        """One-turn prompt from the chat template; without an answer it ends ready for generation."""
        turns = [(question, answer)]
        return self.render_turns(turns, with_video=with_video, add_generation_prompt=answer is None)[0]

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
        images=None,
        audio=None,
        padding: bool | str = True,
        padding_side: str = "left",
        return_tensors: str = "pt",
        add_special_tokens: bool = True,
        return_text_replacement_offsets: bool = False,
        video_token_types: str = "both",
        **kwargs,
    ) -> BatchFeature:
        """Tokenise prompts (expanding ``<video>``) and preprocess videos.

        ``videos``: one video or a list, each a path or ``[T, H, W, 3]`` frames, in order of
        appearance of ``<video>`` across the batch (lists may nest, one per prompt, as
        ``apply_chat_template`` passes them). Returns ``input_ids``, ``attention_mask`` and
        ``pixel_values_videos`` ``[num_videos, T, 3, H, W]``. ``video_token_types``: see
        :meth:`expand_video_tokens`.
        """
        if text is None:
            raise ValueError("text is required")
        if images is not None or audio is not None:
            raise ValueError("MASH-VLM takes videos and text; images and audio are not inputs of the model")
        texts = [text] if isinstance(text, str) else list(text)
        num_markers = sum(t.count(self.video_token) for t in texts)
        video_list = self._as_video_list(videos)
        if num_markers != len(video_list):
            raise ValueError(
                f"the text holds {num_markers} {self.video_token} marker(s) but {len(video_list)} video(s) were given"
            )
        expanded = [self._expand_video_tokens(t, video_token_types) for t in texts]
        encoded = self.tokenizer(
            [t for t, _ in expanded],
            padding=padding,
            padding_side=padding_side,
            return_tensors=return_tensors,
            add_special_tokens=add_special_tokens,
            **kwargs,
        )
        data = dict(encoded)
        if return_text_replacement_offsets:
            data["text_replacement_offsets"] = [offsets for _, offsets in expanded]
        if video_list:
            pixels = [
                self.preprocess_video(self.load_video(v) if isinstance(v, (str, os.PathLike)) else v)
                for v in video_list
            ]
            data["pixel_values_videos"] = torch.stack(pixels)
        return BatchFeature(
            data=data, tensor_type=return_tensors, skip_tensor_conversion=["text_replacement_offsets"]
        )

    @classmethod
    def _as_video_list(cls, videos) -> list:
        """Flat list of videos: a video is a path, a ``[T, H, W, 3]`` array or a list of frames."""
        if videos is None:
            return []
        if isinstance(videos, (str, os.PathLike)):
            return [videos]
        if isinstance(videos, (np.ndarray, torch.Tensor)):
            return [videos] if videos.ndim == 4 else list(videos)
        items = list(videos)
        if items and not all(
            isinstance(v, (str, os.PathLike, list, tuple)) or getattr(v, "ndim", None) == 4 for v in items
        ):
            return [items]  # the frames of one video
        return [video for item in items for video in cls._as_video_list(item)]

    def encode_conversation(self, turns: Sequence[tuple[str, str]], *, with_video: bool = True) -> dict:
        """Training example: ``input_ids`` and ``labels`` with loss on the answers (and their ``</s>``) only.

        The chat template renders the conversation; the text before, between and after its
        ``{% generation %}`` answer blocks is tokenised apart from each answer, so an answer's tokens are
        the same wherever it sits. The first question gets the ``<video>`` marker. Returns 1D tensors.
        """
        turns = list(turns)
        if not turns:
            raise ValueError("a training conversation needs at least one (question, answer) turn")
        if any(answer is None for _, answer in turns):
            raise ValueError("every turn of a training conversation needs an answer")
        text, spans = self.render_turns(turns, with_video=with_video)
        if spans is None:
            raise UsageError(
                "the chat template has no {% generation %} block; training needs each assistant answer in "
                "one (they are the supervised tokens), as in the default VICUNA_V1_CHAT_TEMPLATE"
            )
        if len(spans) != len(turns):
            raise UsageError(
                f"the chat template marks {len(spans)} answer(s) with {{% generation %}} blocks in a "
                f"conversation of {len(turns)} turn(s); training needs each assistant answer in one such block"
            )

        def encode(piece: str) -> list[int]:
            if not piece:
                return []
            return self.tokenizer(self.expand_video_tokens(piece), add_special_tokens=False)["input_ids"]

        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        ids, labels, last = list(bos), [IGNORE_INDEX] * len(bos), 0
        for start, end in spans:
            context, target = encode(text[last:start]), encode(text[start:end])
            ids += context + target
            labels += [IGNORE_INDEX] * len(context) + target
            last = end
        tail = encode(text[last:])
        ids += tail
        labels += [IGNORE_INDEX] * len(tail)
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos"]


__all__ = [
    "IGNORE_INDEX",
    "VICUNA_V1_CHAT_TEMPLATE",
    "VICUNA_V1_SYSTEM",
    "MashVlmProcessor",
    "conversation_messages",
    "vicuna_v1_chat_template",
]
