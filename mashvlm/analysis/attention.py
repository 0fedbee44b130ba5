"""Attention scores of spatial-to-text and temporal-to-text attention (paper §5.3 Fig. 6, supp. Fig. 8).

The paper writes attention as key -> query ("Spatial -> Temporal" in Table 6 is spatial keys attended by
temporal queries), so "spatial-to-text" is the attention that text queries pay to spatial keys. Here
(docs/analysis.md):

- the text queries are the positions that predict the answer's tokens when the answer is
  teacher-forced after the prompt (the ``ASSISTANT:`` token and every answer token but the last, i.e.
  exactly the query rows greedy generation of that answer computes; the closing ``</s>`` is not an
  answer token);
- per layer, each query's attention row is summed over the keys of each type (text, temporal,
  spatial), then averaged over heads and over the answer queries: three masses that add up to 1;
- ``*_per_token`` divides a mass by the number of tokens of that type (M = 3T - 1 temporal vs
  4 (g/2)^2 spatial tokens, so equal per-token attention gives unequal masses);
- ``temporal_to_spatial`` / ``spatial_to_temporal`` are the video-internal masses (spatial queries on
  temporal keys, temporal queries on spatial keys), averaged over those queries: DST-attention forbids
  both, a causal baseline allows the first (Fig. 8 (c, d), disentanglement).

The math is :func:`attention_by_key_type` / :func:`attention_scores` over an attention tensor and token
types; :class:`AttentionProbe` runs a model; :func:`attention_report` aggregates over UNSCENE questions;
:func:`plot_attention` draws the figure.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MashVlmError
from ..modeling.modeling_mash_vlm import TokenType, token_types_from_input_ids
from ..modeling.processing_mash_vlm import IGNORE_INDEX

__all__ = [
    "AnalysisError",
    "AttentionProbe",
    "AttentionSample",
    "DEFINITIONS",
    "METRICS",
    "aggregate_scores",
    "answer_query_mask",
    "attention_by_key_type",
    "attention_report",
    "attention_scores",
    "plot_attention",
    "report_header",
    "run_attention",
    "score_models",
    "samples_from_questions",
]

# Per-layer metrics of one question (paper notation: key type _to_ query type).
METRICS = (
    "spatial_to_text",
    "temporal_to_text",
    "text_to_text",
    "spatial_to_text_per_token",
    "temporal_to_text_per_token",
    "temporal_to_spatial",
    "spatial_to_temporal",
)
DEFINITIONS = {
    "notation": "key_to_query, as the paper's Table 6 (K -> Q): spatial_to_text = attention that text "
    "(answer) queries pay to spatial keys",
    "answer_queries": "positions predicting the teacher-forced answer's tokens: the prompt's last token and "
    "every answer token but the last (the rows greedy generation of that answer computes); </s> excluded",
    "spatial_to_text": "per layer: attention probability from answer queries summed over all spatial keys, "
    "mean over heads and answer queries",
    "temporal_to_text": "the same over all temporal keys",
    "text_to_text": "the same over all text keys (the three masses add up to 1)",
    "spatial_to_text_per_token": "spatial_to_text / number of spatial tokens",
    "temporal_to_text_per_token": "temporal_to_text / number of temporal tokens",
    "temporal_to_spatial": "attention from spatial queries summed over temporal keys, mean over heads and "
    "spatial queries (0 under DST-attention)",
    "spatial_to_temporal": "attention from temporal queries summed over spatial keys, mean over heads and "
    "temporal queries (0 under DST-attention and under a causal baseline, where spatial tokens come later)",
    "groups": "per question category: per_layer = mean over questions of each per-layer value; "
    "layer_mean = mean of per_layer over layers",
}
CATEGORY_ORDER = ("action", "scene")


class AnalysisError(MashVlmError, ValueError):
    """The attention analysis cannot run on this input (the message names it and the fix)."""


# --------------------------------------------------------------------------------------------------
# The math


def attention_by_key_type(
    attentions: Sequence[torch.Tensor], token_types: torch.Tensor, query_mask: torch.Tensor
) -> torch.Tensor:
    """``[L, B, 3]``: per layer and sample, the attention mass the selected queries put on the keys of
    each :class:`TokenType` (columns TEXT, TEMPORAL, SPATIAL), averaged over heads and selected queries.

    Args:
        attentions: per layer ``[B, H, Q, K]`` attention probabilities (rows sum to 1); the queries are
            the last Q of the K positions (Q = K without a cache).
        token_types: ``[B, K]`` :class:`TokenType` of each key position.
        query_mask: ``[B, Q]`` bool, the queries to average over. A sample with none gives NaN.
    """
    if not len(attentions):
        raise ValueError("no attention layers given")
    batch, keys = token_types.shape
    if query_mask.dim() != 2 or query_mask.shape[0] != batch:
        raise ValueError(f"query_mask must be [B={batch}, Q], got {tuple(query_mask.shape)}")
    key_onehot = torch.nn.functional.one_hot(token_types.long(), num_classes=len(TokenType)).float()  # [B, K, 3]
    weights = query_mask.float()
    per_layer = []
    for layer, probs in enumerate(attentions):
        if probs.dim() != 4 or probs.shape[0] != batch or probs.shape[-1] != keys:
            raise ValueError(f"layer {layer}: attention {tuple(probs.shape)} is not [B={batch}, H, Q, K={keys}]")
        if probs.shape[2] != query_mask.shape[1]:
            raise ValueError(f"layer {layer}: {probs.shape[2]} queries but query_mask has {query_mask.shape[1]}")
        by_type = probs.float().mean(dim=1) @ key_onehot.to(probs.device)  # [B, Q, 3]
        w = weights.to(probs.device)
        per_layer.append((by_type * w[..., None]).sum(dim=1) / w.sum(dim=1, keepdim=True))
    return torch.stack(per_layer).cpu()


def answer_query_mask(labels: torch.Tensor, eos_token_id: int | None = None) -> torch.Tensor:
    """``[B, S]`` bool: the positions whose next-token prediction is an answer token.

    ``labels`` marks the answer tokens (others are ``IGNORE_INDEX``, as from
    ``MashVlmProcessor.encode_conversation``); a target equal to ``eos_token_id`` is not an answer token.
    """
    targets = labels != IGNORE_INDEX
    if eos_token_id is not None:
        targets &= labels != eos_token_id
    mask = torch.zeros_like(targets)
    mask[:, :-1] = targets[:, 1:]
    return mask


def attention_scores(
    attentions: Sequence[torch.Tensor], token_types: torch.Tensor, answer_mask: torch.Tensor
) -> dict[str, list[float]]:
    """The per-layer :data:`METRICS` of one sample (``B = 1``), as lists of floats (see :data:`DEFINITIONS`)."""
    if token_types.shape[0] != 1:
        raise ValueError(f"attention_scores takes one sample, got a batch of {token_types.shape[0]}")
    text, temporal, spatial = (int(t) for t in (TokenType.TEXT, TokenType.TEMPORAL, TokenType.SPATIAL))
    queries = token_types[:, -answer_mask.shape[1]:]
    answer = attention_by_key_type(attentions, token_types, answer_mask)[:, 0]
    from_spatial = attention_by_key_type(attentions, token_types, queries == spatial)[:, 0]
    from_temporal = attention_by_key_type(attentions, token_types, queries == temporal)[:, 0]
    num_temporal = int((token_types == temporal).sum())
    num_spatial = int((token_types == spatial).sum())
    scores = {
        "spatial_to_text": answer[:, spatial],
        "temporal_to_text": answer[:, temporal],
        "text_to_text": answer[:, text],
        "spatial_to_text_per_token": answer[:, spatial] / max(num_spatial, 1),
        "temporal_to_text_per_token": answer[:, temporal] / max(num_temporal, 1),
        "temporal_to_spatial": from_spatial[:, temporal],
        "spatial_to_temporal": from_temporal[:, spatial],
    }
    return {name: [float(v) for v in values] for name, values in scores.items()}


def aggregate_scores(records: Iterable[tuple[str, dict[str, list[float]]]]) -> dict[str, dict[str, Any]]:
    """``{category: {"n", "per_layer": {metric: [L]}, "layer_mean": {metric: float}}}`` from
    ``(category, attention_scores(...))`` pairs: each question weighs the same. Categories in the order
    action, scene, then the others sorted."""
    by_category: dict[str, list[dict[str, list[float]]]] = {}
    for category, scores in records:
        by_category.setdefault(category, []).append(scores)
    order = [c for c in CATEGORY_ORDER if c in by_category] + sorted(set(by_category) - set(CATEGORY_ORDER))
    groups: dict[str, dict[str, Any]] = {}
    for category in order:
        members = by_category[category]
        per_layer = {}
        for metric in METRICS:
            values = np.array([m[metric] for m in members], dtype=np.float64)  # [n, L]
            per_layer[metric] = [float(v) for v in np.nanmean(values, axis=0)] if values.size else []
        groups[category] = {
            "n": len(members),
            "per_layer": per_layer,
            "layer_mean": {m: float(np.mean(v)) if v else math.nan for m, v in per_layer.items()},
        }
    return groups


# --------------------------------------------------------------------------------------------------
# Running a model


@dataclass(frozen=True)
class AttentionSample:
    """One (video, question[, answer]) to analyse. ``video`` is a path or ``uint8 [T, H, W, 3]`` frames;
    with ``answer=None`` the model's own greedy answer is teacher-forced."""

    sample_id: str
    category: str
    video: Any
    question: str
    answer: str | None = None


class AttentionProbe:
    """A MASH-VLM model loaded with eager attention (the only backend that returns attention
    probabilities; the model refuses flash), scoring one sample at a time."""

    def __init__(self, model, processor):
        if model.config.text_config._attn_implementation != "eager":
            raise AnalysisError(
                f"attention scores need attn_implementation='eager' in the language model, got "
                f"{model.config.text_config._attn_implementation!r}; load with AttentionProbe.from_pretrained"
            )
        self.model = model.eval()
        self.processor = processor

    @classmethod
    def from_pretrained(
        cls, model_dir: str | os.PathLike, device: str | torch.device | None = None, dtype: str | None = None
    ) -> AttentionProbe:
        from ..inference import check_mashvlm_dir, resolve_device
        from ..modeling import MashVlmConfig, MashVlmForConditionalGeneration, MashVlmProcessor
        from ..modeling.conversion import load_checkpoint_config

        path = check_mashvlm_dir(model_dir)
        torch_dtype = _torch_dtype(dtype)
        device = resolve_device(device)
        config = load_checkpoint_config(path, MashVlmConfig)
        model = MashVlmForConditionalGeneration.from_pretrained(
            path, config=config, dtype=torch_dtype or "auto", use_safetensors=True, attn_implementation="eager"
        )
        return cls(model.to(device), MashVlmProcessor.from_pretrained(path))

    def describe(self) -> dict[str, Any]:
        """The model settings the scores depend on (written beside them)."""
        config = self.model.config
        return {
            "attention_rule": dict(config.dst_attention_kwargs),
            "rope_variant": config.rope_variant,
            "num_layers": config.text_config.num_hidden_layers,
            "num_temporal_tokens": config.num_temporal_tokens,
            "num_spatial_tokens": config.num_spatial_tokens,
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }

    def frames(self, video) -> np.ndarray:
        return self.processor.load_video(video) if isinstance(video, (str, os.PathLike)) else np.asarray(video)

    @torch.inference_mode()
    def generate_answer(self, frames: np.ndarray, question: str, max_new_tokens: int = 32) -> str:
        from ..inference import VideoChat

        return VideoChat(self.model, self.processor).answer_batch([frames], [question], max_new_tokens=max_new_tokens)[0]

    @torch.inference_mode()
    def scores(self, frames: np.ndarray, question: str, answer: str) -> dict[str, list[float]]:
        """:func:`attention_scores` of ``answer`` teacher-forced after ``question`` about ``frames``."""
        tokenizer = self.processor.tokenizer
        encoded = self.processor.encode_conversation([(question, answer)])
        input_ids, labels = encoded["input_ids"][None], encoded["labels"][None]
        answer_mask = answer_query_mask(labels, tokenizer.eos_token_id)
        if not bool(answer_mask.any()):
            raise AnalysisError(f"the answer {answer!r} has no tokens to score; give a non-empty answer")
        device = self.model.device
        pixels = self.processor.preprocess_video(frames)[None].to(device=device, dtype=self.model.dtype)
        config = self.model.config
        token_types = token_types_from_input_ids(
            input_ids, config.video_temporal_token_id, config.video_spatial_token_id
        )
        output = self.model(
            input_ids=input_ids.to(device),
            pixel_values_videos=pixels,
            output_attentions=True,
            logits_to_keep=1,
        )
        if not output.attentions or output.attentions[0] is None:
            raise AnalysisError("the model returned no attention probabilities (is it running eager attention?)")
        return attention_scores(output.attentions, token_types.to(device), answer_mask.to(device))


def _torch_dtype(dtype: str | None) -> torch.dtype | None:
    if dtype is None:
        return None
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        from ..errors import UsageError

        raise UsageError(f"unknown torch dtype {dtype!r} (use e.g. bfloat16, float16, float32)")
    return value


def run_attention(
    probe: AttentionProbe,
    samples: Sequence[AttentionSample],
    *,
    max_new_tokens: int = 32,
    progress: bool = False,
    description: str = "attention",
    record_failures: bool = True,
) -> dict[str, Any]:
    """Score every sample with ``probe``: ``{"records", "failures", "groups"}``.

    A sample whose video cannot be decoded (or whose generated answer is empty) is recorded in
    ``failures`` with its error when ``record_failures``, and raises otherwise. Each video is decoded
    once for the consecutive samples that share it.
    """
    from tqdm.auto import tqdm

    records: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    cached: tuple[Any, np.ndarray] | None = None
    for sample in tqdm(samples, desc=description, unit="question", disable=not progress):
        try:
            key = os.fspath(sample.video) if isinstance(sample.video, (str, os.PathLike)) else id(sample.video)
            if cached is None or cached[0] != key:
                cached = (key, probe.frames(sample.video))
            frames = cached[1]
            answer, source = sample.answer, "given"
            if answer is None:
                answer, source = probe.generate_answer(frames, sample.question, max_new_tokens), "generated"
                if not answer:
                    raise AnalysisError(f"{sample.sample_id}: the model generated an empty answer; give one")
            scores = probe.scores(frames, sample.question, answer)
        except MashVlmError as err:
            if not record_failures:
                raise
            failures.append({"id": sample.sample_id, "category": sample.category, "error": f"{type(err).__name__}: {err}"})
            continue
        records.append(
            {"id": sample.sample_id, "category": sample.category, "question": sample.question,
             "answer": answer, "answer_source": source, **scores}
        )
    return {
        "groups": aggregate_scores((r["category"], r) for r in records),
        "records": records,
        "failures": failures,
    }


def samples_from_questions(
    questions, video_root: str | os.PathLike, limit: int | None = None
) -> tuple[list[AttentionSample], dict[str, int]]:
    """Samples from UNSCENE questions (a file path or :class:`~mashvlm.unscene.Question` list): the
    binary action and scene questions, each with its expected answer (yes/no) teacher-forced; at most
    ``limit`` per category, in file order. Returns the samples and the counts of questions left out."""
    from ..unscene.formats import load_questions
    from ..unscene.paths import resolve_video_path
    from ..unscene.records import ACTION, SCENE

    if isinstance(questions, (str, os.PathLike)):
        questions = load_questions(questions)
    samples: list[AttentionSample] = []
    taken: dict[str, int] = {ACTION: 0, SCENE: 0}
    left_out = {"open_ended": 0, "over_limit": 0}
    for q in questions:
        if q.category not in taken:
            left_out["open_ended"] += 1
            continue
        if limit is not None and taken[q.category] >= limit:
            left_out["over_limit"] += 1
            continue
        try:
            video = resolve_video_path(video_root, q.video)
        except ValueError as err:
            raise AnalysisError(f"question {q.question_id}: {err}") from None
        taken[q.category] += 1
        samples.append(AttentionSample(q.question_id, q.category, video, q.question, q.answer))
    if not samples:
        raise AnalysisError("no action or scene question to analyse (open-ended questions are not scored)")
    return samples, left_out


def attention_report(
    model_dir: str | os.PathLike,
    questions,
    video_root: str | os.PathLike,
    *,
    baseline_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Attention scores of a model (and optionally a baseline) over UNSCENE questions, as written to
    ``attention.json``: ``{"definitions", "questions", "video_root", "left_out", "models": {"baseline"?,
    "model": {"path", settings..., "groups", "records", "failures"}}}``. Failed questions are recorded
    per model; if none succeeds for a model, :class:`AnalysisError`."""
    samples, left_out = samples_from_questions(questions, video_root, limit)
    report = report_header(samples)
    report.update(
        questions=os.fspath(questions) if isinstance(questions, (str, os.PathLike)) else None,
        video_root=os.fspath(video_root),
        left_out=left_out,
    )
    report["models"] = score_models(model_dir, samples, baseline_dir=baseline_dir, device=device, dtype=dtype,
                                    progress=progress)
    return report


def report_header(samples: Sequence[AttentionSample]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for s in samples:
        counts[s.category] = counts.get(s.category, 0) + 1
    return {"definitions": DEFINITIONS, "samples": counts}


def score_models(
    model_dir: str | os.PathLike,
    samples: Sequence[AttentionSample],
    *,
    baseline_dir: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: str | None = None,
    progress: bool = False,
    record_failures: bool = True,
    max_new_tokens: int = 32,
) -> dict[str, dict[str, Any]]:
    """``{"baseline"?, "model"}`` -> each model's settings and :func:`run_attention` result; one model is
    loaded at a time."""
    roles = ([("baseline", baseline_dir)] if baseline_dir is not None else []) + [("model", model_dir)]
    out: dict[str, dict[str, Any]] = {}
    for role, path in roles:
        probe = AttentionProbe.from_pretrained(path, device=device, dtype=dtype)
        result = run_attention(probe, samples, progress=progress, description=role,
                               record_failures=record_failures, max_new_tokens=max_new_tokens)
        if not result["records"]:
            first = result["failures"][0]["error"] if result["failures"] else "no samples"
            raise AnalysisError(f"{path}: no question could be scored ({len(result['failures'])} failed; first: {first})")
        out[role] = {"path": os.fspath(path), **probe.describe(), **result}
        del probe
    return out


# --------------------------------------------------------------------------------------------------
# The figure

_FIGURE_METRICS = {
    "mass": ("spatial_to_text", "temporal_to_text", "attention mass"),
    "per_token": ("spatial_to_text_per_token", "temporal_to_text_per_token", "attention per token"),
}


def plot_attention(report: dict[str, Any], path: str | os.PathLike, metric: str = "mass") -> Path:
    """A PNG like the paper's Fig. 6/8: one row per model (baseline first), one column per question
    category; in each panel the spatial-to-text and temporal-to-text attention per layer, with the
    layer means in the legend."""
    if metric not in _FIGURE_METRICS:
        raise ValueError(f"metric must be one of {sorted(_FIGURE_METRICS)}, got {metric!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    spatial_key, temporal_key, ylabel = _FIGURE_METRICS[metric]
    models = report["models"]
    categories = list(dict.fromkeys(c for m in models.values() for c in m["groups"]))
    fig, axes = plt.subplots(
        len(models), len(categories), figsize=(4.2 * len(categories), 3.0 * len(models)), squeeze=False,
        sharey=True,
    )
    for row, (role, result) in enumerate(models.items()):
        name = Path(result["path"]).name or result["path"]
        for col, category in enumerate(categories):
            ax = axes[row][col]
            group = result["groups"].get(category)
            if group is None:
                ax.set_axis_off()
                continue
            layers = np.arange(1, len(group["per_layer"][spatial_key]) + 1)
            for key, label, color in ((spatial_key, "spatial", "tab:orange"), (temporal_key, "temporal", "tab:blue")):
                mean = group["layer_mean"][key]
                ax.plot(layers, group["per_layer"][key], marker="o", ms=3, color=color,
                        label=f"{label}-to-text (mean {mean:.3g})")
            ax.set_title(f"{role} ({name}): {category}, n={group['n']}", fontsize=9)
            ax.set_xlabel("layer")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if col == 0:
                ax.set_ylabel(ylabel)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    from ..files import save_figure_atomic

    path = Path(path)
    save_figure_atomic(fig, path, dpi=120)
    plt.close(fig)
    return path
