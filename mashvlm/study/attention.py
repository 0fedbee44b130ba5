"""The study's attention-score stage (paper Fig. 6/8): where the answer's text tokens look, baseline vs MASH-VLM.

For every seed that trained both the baseline and MASH-VLM, ``mashvlm.analysis.attention_report`` scores
both models on the study's UNSCENE questions and on the motion control (teacher-forced expected answers,
at most ``StudyConfig.attention_questions`` per question category), writing ``attention.json`` and
``attention.png`` per seed and question set; the summary is the layer-averaged spatial-to-text and
temporal-to-text mass, mean over seeds.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mashvlm.files import write_json_atomic
from mashvlm.study.config import run_directory
from mashvlm.study.stats import seed_stats

if TYPE_CHECKING:
    from mashvlm.study.run import PretrainedParts, StudyContext

__all__ = ["ATTENTION_SETS", "attention_stage", "summarise_attention"]

# Question set name -> PretrainedParts field holding its questions file.
ATTENTION_SETS = {"unscene": "questions", "motion_control": "motion_questions"}
_MODELS = {"baseline": "baseline", "model": "mash"}  # attention_report's roles -> study variants
_SCORES = ("spatial_to_text", "temporal_to_text")


def attention_stage(ctx: StudyContext, parts: PretrainedParts, seeds: list[int]) -> dict[str, Any] | None:
    """Score every seed that has both trained models (each seed and set once; reused when present).
    Returns the summary (None when no seed has both models or the stage is off)."""
    from mashvlm.analysis.attention import attention_report, plot_attention
    from mashvlm.training.trainer import FINAL_DIR

    limit = ctx.config.attention_questions
    if not limit or not {"baseline", "mash"} <= set(ctx.config.variants):
        return None
    reports: dict[str, list[dict[str, Any]]] = {name: [] for name in ATTENTION_SETS}
    for seed in seeds:
        model_dirs = {variant: run_directory(ctx.out_dir, variant, seed) / "train" / FINAL_DIR
                      for variant in ("baseline", "mash")}
        if not all(d.is_dir() for d in model_dirs.values()):
            continue
        for name, field in ATTENTION_SETS.items():
            questions = getattr(parts, field)
            if questions is None:
                continue
            out = ctx.out_dir / "attention" / f"seed{seed}" / name
            if not (out / "attention.json").is_file():
                report = attention_report(model_dirs["mash"], questions, ctx.world.root,
                                          baseline_dir=model_dirs["baseline"], limit=limit, progress=ctx.progress)
                out.mkdir(parents=True, exist_ok=True)
                plot_attention(report, out / "attention.png")
                write_json_atomic(out / "attention.json", report)  # written last: marks the stage as done
            reports[name].append(json.loads((out / "attention.json").read_text()))
    summary = summarise_attention(reports)
    if summary is not None:
        ctx.log("attention scores: " + ", ".join(str(ctx.out_dir / "attention" / f"seed{s}") for s in seeds))
    return summary


def summarise_attention(reports: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """``{set: {variant: {category: {score: seed stats}}}}`` of the layer-averaged attention mass."""
    summary: dict[str, Any] = {}
    for name, runs in reports.items():
        if not runs:
            continue
        per_variant: dict[str, Any] = {}
        for role, variant in _MODELS.items():
            categories = sorted({c for r in runs for c in r["models"][role]["groups"]})
            per_variant[variant] = {
                category: {score: seed_stats([r["models"][role]["groups"][category]["layer_mean"][score]
                                              for r in runs if category in r["models"][role]["groups"]])
                           for score in _SCORES}
                for category in categories
            }
        summary[name] = per_variant
    return summary or None

