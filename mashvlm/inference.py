"""Ask a MASH-VLM checkpoint about a video file: ``VideoChat.from_pretrained(dir).answer(path, question)``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import UsageError
from .modeling import MashVlmConfig, MashVlmForConditionalGeneration, MashVlmProcessor
from .modeling.configuration_mash_vlm import select_video_token_counts
from .modeling.conversion import (
    CheckpointError,
    check_safetensors,
    check_tokenizer_files,
    load_checkpoint_config,
    read_json_object,
)
from .modeling.processing_mash_vlm import conversation_messages


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
    """Greedy question answering about videos with a MASH-VLM model and its processor.

    ``video_token_types``: ``"both"`` (default), or only the ``"spatial"`` or only the ``"temporal"`` tokens of
    each video in the prompt (paper Table 10); the other kind is left out of the sequence, not masked.
    A processor that does not write the video blocks the model fills is a :class:`CheckpointError`.
    """

    def __init__(
        self, model: MashVlmForConditionalGeneration, processor: MashVlmProcessor, video_token_types: str = "both"
    ):
        processor.check_matches_config(model.config)
        select_video_token_counts(processor.num_temporal_tokens, processor.num_spatial_tokens, video_token_types)
        self.model = model.eval()
        self.processor = processor
        self.video_token_types = video_token_types

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | os.PathLike,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        video_token_types: str = "both",
    ) -> VideoChat:
        path = check_mashvlm_dir(model_dir)
        device = resolve_device(device)
        config = load_checkpoint_config(path, MashVlmConfig)
        model = MashVlmForConditionalGeneration.from_pretrained(
            path, config=config, dtype=dtype or "auto", use_safetensors=True
        )
        return cls(model.to(device), MashVlmProcessor.from_pretrained(path), video_token_types)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def greedy_settings(self, max_new_tokens: int) -> dict:
        """``generate`` keyword arguments of greedy answering.

        The video placeholder tokens are never generated: the model could not continue after one (a
        placeholder is a slot for video features, and a generated one has none), and an untrained
        model does pick them.
        """
        tokenizer = self.processor.tokenizer
        return dict(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            suppress_tokens=[self.processor.video_temporal_token_id, self.processor.video_spatial_token_id],
        )

    @torch.inference_mode()
    def answer_videos(
        self,
        videos: Sequence,
        questions: Sequence[Sequence[str]],
        *,
        max_new_tokens: int = 64,
        system: str | None | Sequence[str | None] = None,
        answer_prefixes: Sequence[Sequence[str]] | None = None,
    ) -> list[list[str]]:
        """Greedy answers to ``questions[i]`` (several questions) about ``videos[i]``, all in one batch.

        A video is a path or ``[T, H, W, 3]`` frames. ``system``: the system prompt of every video (None: the
        chat template's own), or one per video. ``answer_prefixes`` (shaped as ``questions``): text the
        answer starts with, rendered after ``ASSISTANT:``; the answer returned is its continuation.

        Every prompt is ``[system text, video block, question, answer prefix]``, and its tokens up to the end
        of the video block attend only to each other, so their KV cache is the same for every question about
        the video: it is computed once per video (the vision tower included) and copied to each question.
        The questions are left-padded against it (the padding sits between the prefix and the question, and
        before the prefixes of videos whose system prompt is shorter; both Harmonic-RoPE streams and the
        attention mask skip padding wherever it is), so the answers are those of asking one question at a time.
        """
        if len(videos) != len(questions):
            raise ValueError(f"{len(videos)} videos but {len(questions)} lists of questions")
        systems = [system] * len(videos) if system is None or isinstance(system, str) else list(system)
        if len(systems) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(systems)} system prompts")
        if answer_prefixes is None:
            answer_prefixes = [[""] * len(qs) for qs in questions]
        if [len(a) for a in answer_prefixes] != [len(qs) for qs in questions]:
            raise ValueError("answer_prefixes must hold one prefix per question, shaped as questions")
        owner = [v for v, qs in enumerate(questions) for _ in qs]
        prompts = [
            render_question(self.processor, q, system=systems[v], answer_prefix=a)
            for v, (qs, prefixes) in enumerate(zip(questions, answer_prefixes, strict=True))
            for q, a in zip(qs, prefixes, strict=True)
        ]
        if not prompts:
            return [[] for _ in videos]
        processor, tokenizer = self.processor, self.processor.tokenizer
        prefixes, suffixes = split_video_prefixes(
            [processor.expand_video_tokens(p, self.video_token_types) for p in prompts],
            owner,
            tokenizer,
            (processor.video_temporal_token_id, processor.video_spatial_token_id),
        )
        # A video without questions is not encoded.
        asked = sorted(set(owner))
        pixels = torch.stack(
            [
                processor.preprocess_video(processor.load_video(v) if isinstance(v, (str, os.PathLike)) else v)
                for v in (videos[i] for i in asked)
            ]
        ).to(self.device, self.model.dtype)
        prefix = tokenizer.pad(
            {"input_ids": [prefixes[i] for i in asked]}, padding_side="left", return_tensors="pt"
        ).to(self.device)
        # Prefixes of one length (one system prompt) need no mask: the prefill is exactly a lone prompt's.
        prefix_mask = None if bool(prefix["attention_mask"].all()) else prefix["attention_mask"]
        # One prefill per video (vision tower included), then a copy of its cache for each question.
        cache = self.model(
            input_ids=prefix["input_ids"],
            attention_mask=prefix_mask,
            pixel_values_videos=pixels,
            use_cache=True,
            logits_to_keep=1,
            video_token_types=self.video_token_types,
        ).cache
        row = torch.tensor([asked.index(v) for v in owner], device=self.device)
        cache.batch_select_indices(row)
        padded = tokenizer.pad({"input_ids": suffixes}, padding_side="left", return_tensors="pt").to(self.device)
        input_ids = torch.cat([prefix["input_ids"][row], padded["input_ids"]], dim=1)
        attention_mask = torch.cat([prefix["attention_mask"][row], padded["attention_mask"]], dim=1)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            cache=cache,
            **self.greedy_settings(max_new_tokens),
        )
        texts = [t.strip() for t in processor.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)]
        answers: list[list[str]] = [[] for _ in videos]
        for v, text in zip(owner, texts, strict=True):
            answers[v].append(text)
        return answers

    def answer_batch(
        self,
        videos: Sequence,
        questions: Sequence[str],
        *,
        max_new_tokens: int = 64,
    ) -> list[str]:
        """Answers for ``(video, question)`` pairs; a video is a path or ``[T, H, W, 3]`` frames.

        Pairs that share a video (the same path, or the same frames object) share its encoding
        (:meth:`answer_videos`).
        """
        if len(videos) != len(questions):
            raise ValueError(f"{len(videos)} videos but {len(questions)} questions")
        distinct: dict[object, int] = {}
        for v in videos:
            distinct.setdefault(_video_key(v), len(distinct))
        unique = list({_video_key(v): v for v in videos}.values())
        grouped: list[list[str]] = [[] for _ in unique]
        for v, q in zip(videos, questions, strict=True):
            grouped[distinct[_video_key(v)]].append(q)
        answers = [iter(a) for a in self.answer_videos(unique, grouped, max_new_tokens=max_new_tokens)]
        return [next(answers[distinct[_video_key(v)]]) for v in videos]

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


def _video_key(video: object) -> object:
    return os.fspath(video) if isinstance(video, (str, os.PathLike)) else id(video)


def render_question(
    processor: MashVlmProcessor, question: str, *, system: str | None = None, answer_prefix: str = ""
) -> str:
    """The chat template's one-turn prompt about a video, ready for the answer: ``system`` is its system
    message (None: the template's own) and ``answer_prefix`` the start of the answer (rendered with
    ``continue_final_message``, so the prompt ends inside the assistant's message)."""
    if system is None and not answer_prefix:
        return processor.build_prompt(question)  # the same template; its renders are cached
    messages = conversation_messages([(question, answer_prefix or None)])
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    return processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=not answer_prefix, continue_final_message=bool(answer_prefix)
    )


def split_video_prefix(
    prompts: Sequence[str], tokenizer, video_token_ids: tuple[int, int]
) -> tuple[list[int], list[list[int]]]:
    """Token ids of ``prompts`` (video placeholders expanded) as one shared prefix up to and including
    the last video placeholder, and each prompt's own rest.

    Raises ``ValueError`` if the prompts do not share that prefix (one video block each, the same
    template), since only then is the prefix's KV cache the same for all of them.
    """
    (prefix,), suffixes = split_video_prefixes(prompts, [0] * len(prompts), tokenizer, video_token_ids)
    return prefix, suffixes


def split_video_prefixes(
    prompts: Sequence[str], owner: Sequence[int], tokenizer, video_token_ids: tuple[int, int]
) -> tuple[dict[int, list[int]], list[list[int]]]:
    """Token ids of ``prompts`` (video placeholders expanded) as the prefix of each video ``owner[i]`` up to
    and including the last video placeholder, and each prompt's own rest.

    Raises ``ValueError`` if the prompts about one video do not share that prefix (one video block each,
    the same template and system prompt), since only then is the prefix's KV cache the same for all of them.
    """
    rows = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    video = set(video_token_ids)
    splits = [max((i + 1 for i, t in enumerate(row) if t in video), default=0) for row in rows]
    prefixes: dict[int, list[int]] = {}
    for v, row, cut in zip(owner, rows, splits, strict=True):
        prefix = prefixes.setdefault(v, row[:cut])
        if not cut or row[:cut] != prefix:
            raise ValueError(
                "the prompts about one video do not share one prefix ending with the video block "
                "(one <video> each, one system prompt)"
            )
    return prefixes, [row[cut:] for row, cut in zip(rows, splits, strict=True)]
