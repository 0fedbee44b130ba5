"""Run the action-scene study: world -> vision tower -> instruction tuning -> UNSCENE, per variant and seed.

Everything goes through the project's ordinary code paths (``mashvlm.synth``, ``mashvlm.training``,
``mashvlm.unscene``) and lands under one output folder; every stage skips what is already finished, so a
killed study is finished by running the same command again.

Layout of ``out_dir``::

    world/                       the synthetic world (mp4s, annotations, instruction data)
    vision_tower.safetensors     the frame-pre-trained tower, shared by every model
    language_model.safetensors   the text-pre-trained Llama, shared by every model (unless language_steps=0)
    unscene/questions.jsonl      UNSCENE questions (unusual context + scene only, with open-ended)
    unscene/usual_questions.jsonl  the same questions on usual-context videos (the learnability check)
    runs/<variant>/seed<k>/      training output, predictions*.jsonl, results.json, usual_results.json
    study_config.json, study_results.json, study_table.txt, study.png
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mashvlm.errors import UsageError
from mashvlm.files import write_json_atomic
from mashvlm.study.config import StudyConfig, variant_options

if TYPE_CHECKING:
    from mashvlm.synth import World

__all__ = ["PretrainedParts", "StudyContext", "prepare_world", "prepare_tower", "prepare_language_model",
           "prepare_questions", "run_one", "run_study", "summarise"]

Log = Callable[[str], None]

# Metrics reported per run (dotted paths into the run's record).
BINARY_KEYS = ("scene_only_action", "unusual_action", "unusual_scene", "average")


@dataclass(frozen=True)
class StudyContext:
    """What every stage of one study shares: where it writes, its settings, its world, how it reports."""

    out_dir: Path
    config: StudyConfig
    world: World
    progress: bool = True
    log: Log = print


@dataclass(frozen=True)
class PretrainedParts:
    """What every (variant, seed) run starts from and is asked: the shared stages' outputs."""

    tower: Path
    language_model: Path | None  # None when the study has no text pre-training (language_steps=0)
    questions: Path  # UNSCENE questions (unusual context + scene only)
    usual_questions: Path  # the same layout on usual-context videos


def prepare_world(out_dir: Path, config: StudyConfig, progress: bool) -> World:
    """Build (or reuse) the study's world: the one stage that runs before the context exists."""
    from mashvlm.synth import WorldConfig, build_world

    return build_world(out_dir / "world", WorldConfig(**config.world), config.world_seed, progress=progress)


def _tiny_parts(config: StudyConfig):
    from mashvlm.modeling.tiny import tiny_processor_and_config

    # The tokenizer does not matter for the tower; its image processor and vision config do.
    return tiny_processor_and_config(["a"], **config.tiny)


def prepare_tower(ctx: StudyContext) -> Path:
    from mashvlm.study.tower import pretrain_vision_tower

    path = ctx.out_dir / "vision_tower.safetensors"
    metrics_file = ctx.out_dir / "vision_tower.json"
    if path.is_file() and metrics_file.is_file():
        return path
    processor, model_config = _tiny_parts(ctx.config)
    start = time.monotonic()
    metrics = pretrain_vision_tower(ctx.world, processor, model_config, path, steps=ctx.config.tower_steps,
                                    seed=ctx.config.tower_seed, progress=ctx.progress)
    metrics["seconds"] = round(time.monotonic() - start, 1)
    write_json_atomic(metrics_file, metrics)
    ctx.log(
        f"vision tower: held-out frames scene acc {metrics['scene_acc']:.3f}, person acc "
        f"{metrics['present_acc']:.3f}, centre RMSE {metrics['center_rmse']:.3f} ({metrics['seconds']} s)"
    )
    return path


def _train_config(ctx: StudyContext, output_dir: Path, **fields: Any):
    from mashvlm.training.config import TrainConfig

    return TrainConfig(
        train_file=str(ctx.world.instruct_file("train")),
        video_root=str(ctx.world.root),
        output_dir=str(output_dir),
        init="tiny",
        tiny=dict(ctx.config.tiny),
        **fields,
    )


def prepare_language_model(ctx: StudyContext) -> Path | None:
    """The text-pre-trained Llama every variant starts from, or None when ``language_steps`` is 0."""
    config = ctx.config
    if config.language_steps <= 0:
        return None
    from mashvlm.study.language import pretrain_language_model
    from mashvlm.training.data import load_videochat2_json
    from mashvlm.training.trainer import build_model_and_processor

    path = ctx.out_dir / "language_model.safetensors"
    metrics_file = ctx.out_dir / "language_model.json"
    if path.is_file() and metrics_file.is_file():
        return path
    # Built exactly as instruction tuning builds it, so that the tokenizer (trained on the same data) matches.
    train_config = _train_config(ctx, ctx.out_dir / "language_model", seed=config.language_seed)
    model, processor = build_model_and_processor(train_config, load_videochat2_json(train_config.train_file,
                                                                                    ctx.world.root))
    start = time.monotonic()
    metrics = pretrain_language_model(model, processor, ctx.world.config, path, steps=config.language_steps,
                                      seed=config.language_seed, progress=ctx.progress)
    metrics["seconds"] = round(time.monotonic() - start, 1)
    write_json_atomic(metrics_file, metrics)
    by_question = metrics["answer_acc_by_question"]
    action_yn = ", ".join(f"{k.split(': ')[1]} {by_question[k]:.2f}" for k in by_question if k.startswith("action yes/no"))
    ctx.log(f"language model: held-out text answers exact {metrics['answer_acc']:.3f} (action yes/no: {action_yn}; "
            f"{metrics['seconds']} s)")
    return path


def prepare_questions(ctx: StudyContext) -> tuple[Path, Path]:
    """UNSCENE question files from the world's annotations (same builder and seed as ``unscene build``).

    The usual-context videos are asked the unusual-context layout (action and scene pairs); their
    candidates are all other labels, so they measure whether a model learned the task at all.
    """
    from mashvlm.files import read_jsonl, write_jsonl_atomic
    from mashvlm.unscene.builder import build_questions
    from mashvlm.unscene.formats import check_unique, load_annotations
    from mashvlm.unscene.records import UNUSUAL, parse_annotation
    from mashvlm.unscene.schema import Source

    world = ctx.world
    qdir = ctx.out_dir / "unscene"
    qdir.mkdir(parents=True, exist_ok=True)
    questions, usual_questions = qdir / "questions.jsonl", qdir / "usual_questions.jsonl"
    if not questions.is_file():
        anns = load_annotations(world.unscene_file("unusual_context")) + load_annotations(
            world.unscene_file("scene_only")
        )
        write_jsonl_atomic(questions, [q.to_record() for q in build_questions(anns, seed=0)])
    if not usual_questions.is_file():
        # Relabelled in memory: the usual-context records, asked as if they were unusual context.
        path = world.unscene_file("usual_context")
        usual = [parse_annotation({**line.record, "set": UNUSUAL}, Source(path, line.lineno))
                 for line in read_jsonl(path).lines]
        check_unique(path, usual, "video_id", "videos")
        qs = build_questions(usual, seed=0, open_ended=False)
        write_jsonl_atomic(usual_questions, [q.to_record() for q in qs])
    return questions, usual_questions


def _train(ctx: StudyContext, parts: PretrainedParts, run_dir: Path, variant: str, seed: int) -> Path:
    from mashvlm.training.trainer import train

    config = ctx.config
    train_config = _train_config(
        ctx,
        run_dir / "train",
        mash=variant_options(variant),
        vision_tower_weights=str(parts.tower),
        language_model_weights=str(parts.language_model) if parts.language_model else None,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        warmup_ratio=config.warmup_ratio,
        save_steps=max(config.max_steps // 4, 50),
        logging_steps=max(config.max_steps // 24, 5),
        seed=seed,
    )
    start = time.monotonic()
    result = train(train_config, progress=ctx.progress)
    if not result.reused:
        losses = [h["loss"] for h in result.log_history if "loss" in h]
        ctx.log(f"{variant} seed {seed}: trained {result.global_step} steps in {time.monotonic() - start:.0f} s, "
                f"final loss {losses[-1]:.3f}" if losses else f"{variant} seed {seed}: trained")
    return result.final_dir


def _evaluate(ctx: StudyContext, model_dir: Path, questions_file: Path, predictions: Path, name: str,
              judge: bool) -> dict[str, Any]:
    from mashvlm.unscene.formats import load_predictions, load_questions
    from mashvlm.unscene.judge import LexicalJudge
    from mashvlm.unscene.runner import MashVlmVideoQA, run_model
    from mashvlm.unscene.scoring import build_results, score_binary, score_open_ended

    questions = load_questions(questions_file)
    model = MashVlmVideoQA(model_dir, max_new_tokens=ctx.config.max_new_tokens)
    run_model(model, questions, ctx.world.root, predictions, progress=ctx.progress)
    preds = load_predictions(predictions, known_question_ids=[q.question_id for q in questions]).predictions
    binary = score_binary(questions, preds)
    lexical = LexicalJudge() if judge else None
    open_ended = score_open_ended(questions, preds, lexical) if lexical else None
    return build_results(questions, preds, binary, open_ended, judge=lexical, model_name=name)


def run_one(ctx: StudyContext, parts: PretrainedParts, variant: str, seed: int) -> dict[str, Any]:
    """Train one (variant, seed), run both question sets, and return its record (also saved as JSON)."""
    run_dir = ctx.out_dir / "runs" / variant / f"seed{seed}"
    record_file = run_dir / "record.json"
    if record_file.is_file():
        return json.loads(record_file.read_text())
    model_dir = _train(ctx, parts, run_dir, variant, seed)
    name = f"{variant}-seed{seed}"
    results = _evaluate(ctx, model_dir, parts.questions, run_dir / "predictions.jsonl", name, judge=True)
    usual = _evaluate(ctx, model_dir, parts.usual_questions, run_dir / "usual_predictions.jsonl", name, judge=False)
    write_json_atomic(run_dir / "results.json", results)
    write_json_atomic(run_dir / "usual_results.json", usual)
    usual_action, usual_scene = usual["binary"]["unusual_action"], usual["binary"]["unusual_scene"]
    record = {
        "variant": variant,
        "seed": seed,
        "options": variant_options(variant),
        "binary": {k: results["binary"][k] for k in BINARY_KEYS},
        "open_ended": {k: results["open_ended"][k] for k in BINARY_KEYS},
        "usual": {"action": usual_action, "scene": usual_scene, "average": (usual_action + usual_scene) / 2},
        "counts": {
            "pairs_scored": results["counts"]["pairs_scored"],
            "unparseable_answers": results["counts"]["unparseable_answers"] + usual["counts"]["unparseable_answers"],
            "failed_videos": results["counts"]["failed_videos"] + usual["counts"]["failed_videos"],
            "missing_predictions": results["counts"]["missing_predictions"] + usual["counts"]["missing_predictions"],
        },
        "judge": results["judge"]["model"],
    }
    write_json_atomic(record_file, record)  # written last: its presence marks the run as done
    ctx.log(f"{variant} seed {seed}: UNSCENE binary avg {record['binary']['average']:.1f}, "
            f"usual-context {record['usual']['average']:.1f}")
    return record


def _stats(values: list[float | None]) -> dict[str, Any]:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def summarise(records: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every metric, per variant."""
    out: dict[str, Any] = {}
    for variant in variants:
        mine = [r for r in records if r["variant"] == variant]
        out[variant] = {
            "seeds": [r["seed"] for r in mine],
            **{
                section: {k: _stats([r[section][k] for r in mine]) for k in keys}
                for section, keys in (("binary", BINARY_KEYS), ("open_ended", BINARY_KEYS),
                                      ("usual", ("action", "scene", "average")))
            },
        }
    return out


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """What every run of a study shares; runs live in per-variant, per-seed folders, so adding seeds or
    variants to a finished study reuses its runs."""
    d = json.loads(json.dumps(config))
    d.pop("seeds", None)
    d.pop("variants", None)
    return d


def run_study(out_dir: str | os.PathLike, config: StudyConfig, *, progress: bool = True,
              log: Log = print) -> dict[str, Any]:
    """The whole study; returns (and writes) ``study_results.json``."""
    from mashvlm.study.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_config = out / "study_config.json"
    if saved_config.is_file() and _identity(json.loads(saved_config.read_text())) != _identity(config.to_dict()):
        raise UsageError(
            f"{out} holds a study with another configuration ({saved_config}); use another --out "
            "or delete it (more seeds or variants may be added to a study, nothing else changed)"
        )
    write_json_atomic(saved_config, config.to_dict())
    start = time.monotonic()
    world = prepare_world(out, config, progress)
    log(f"world: {out / 'world'} ({len(world.videos)} videos)")
    ctx = StudyContext(out, config, world, progress, log)
    tower = prepare_tower(ctx)
    language_model = prepare_language_model(ctx)
    parts = PretrainedParts(tower, language_model, *prepare_questions(ctx))
    records = [run_one(ctx, parts, variant, seed) for seed in config.seeds for variant in config.variants]
    results = {
        "config": config.to_dict(),
        "world": {"root": str(world.root), "content_hash": world.content_hash,
                  "rho": world.config.rho, "videos": len(world.videos)},
        "vision_tower": json.loads((out / "vision_tower.json").read_text()),
        "language_model": json.loads((out / "language_model.json").read_text()) if language_model else None,
        "runs": records,
        "summary": summarise(records, config.variants),
        "seconds": round(time.monotonic() - start, 1),
    }
    write_report(out, results)
    return results
