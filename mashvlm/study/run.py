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
from pathlib import Path
from typing import Any

from mashvlm.files import write_json_atomic
from mashvlm.study.config import StudyConfig, variant_options

__all__ = ["prepare_world", "prepare_tower", "prepare_language_model", "prepare_questions", "run_one", "run_study",
           "summarise"]

Log = Callable[[str], None]

# Metrics reported per run (dotted paths into the run's record).
BINARY_KEYS = ("scene_only_action", "unusual_action", "unusual_scene", "average")


def prepare_world(out_dir: Path, config: StudyConfig, progress: bool):
    from mashvlm.synth import WorldConfig, build_world

    return build_world(out_dir / "world", WorldConfig(**config.world), config.world_seed, progress=progress)


def _tiny_parts(config: StudyConfig):
    from mashvlm.modeling.tiny import tiny_processor_and_config

    # The tokenizer does not matter for the tower; its image processor and vision config do.
    return tiny_processor_and_config(["a"], **config.tiny)


def prepare_tower(out_dir: Path, world, config: StudyConfig, progress: bool, log: Log) -> Path:
    from mashvlm.study.tower import pretrain_vision_tower

    path = out_dir / "vision_tower.safetensors"
    metrics_file = out_dir / "vision_tower.json"
    if path.is_file() and metrics_file.is_file():
        return path
    processor, model_config = _tiny_parts(config)
    start = time.monotonic()
    metrics = pretrain_vision_tower(
        world, processor, model_config, path, steps=config.tower_steps, seed=config.tower_seed, progress=progress
    )
    metrics["seconds"] = round(time.monotonic() - start, 1)
    write_json_atomic(metrics_file, metrics)
    log(
        f"vision tower: held-out frames scene acc {metrics['scene_acc']:.3f}, person acc "
        f"{metrics['present_acc']:.3f}, centre RMSE {metrics['center_rmse']:.3f} ({metrics['seconds']} s)"
    )
    return path


def _train_config(out_dir: Path, world, config: StudyConfig, **fields: Any):
    from mashvlm.training.config import TrainConfig

    return TrainConfig(
        train_file=str(world.instruct_file("train")),
        video_root=str(world.root),
        output_dir=str(out_dir),
        init="tiny",
        tiny=dict(config.tiny),
        **fields,
    )


def prepare_language_model(out_dir: Path, world, config: StudyConfig, progress: bool, log: Log) -> Path | None:
    """The text-pre-trained Llama every variant starts from, or None when ``language_steps`` is 0."""
    if config.language_steps <= 0:
        return None
    from mashvlm.study.language import pretrain_language_model
    from mashvlm.training.data import load_videochat2_json
    from mashvlm.training.trainer import build_model_and_processor

    path = out_dir / "language_model.safetensors"
    metrics_file = out_dir / "language_model.json"
    if path.is_file() and metrics_file.is_file():
        return path
    # Built exactly as instruction tuning builds it, so that the tokenizer (trained on the same data) matches.
    train_config = _train_config(out_dir / "language_model", world, config, seed=config.language_seed)
    model, processor = build_model_and_processor(train_config, load_videochat2_json(train_config.train_file,
                                                                                    world.root))
    start = time.monotonic()
    metrics = pretrain_language_model(model, processor, world.config, path, steps=config.language_steps,
                                      seed=config.language_seed, progress=progress)
    metrics["seconds"] = round(time.monotonic() - start, 1)
    write_json_atomic(metrics_file, metrics)
    by_question = metrics["answer_acc_by_question"]
    action_yn = ", ".join(f"{k.split(': ')[1]} {by_question[k]:.2f}" for k in by_question if k.startswith("action yes/no"))
    log(f"language model: held-out text answers exact {metrics['answer_acc']:.3f} (action yes/no: {action_yn}; "
        f"{metrics['seconds']} s)")
    return path


def prepare_questions(out_dir: Path, world) -> tuple[Path, Path]:
    """UNSCENE question files from the world's annotations (same builder and seed as ``unscene build``).

    The usual-context videos are asked the unusual-context layout (action and scene pairs); their
    candidates are all other labels, so they measure whether a model learned the task at all.
    """
    from mashvlm.files import write_jsonl_atomic
    from mashvlm.unscene.builder import build_questions
    from mashvlm.unscene.formats import load_annotations

    qdir = out_dir / "unscene"
    qdir.mkdir(parents=True, exist_ok=True)
    questions, usual_questions = qdir / "questions.jsonl", qdir / "usual_questions.jsonl"
    if not questions.is_file():
        anns = load_annotations(world.unscene_file("unusual_context")) + load_annotations(
            world.unscene_file("scene_only")
        )
        write_jsonl_atomic(questions, [q.to_record() for q in build_questions(anns, seed=0)])
    if not usual_questions.is_file():
        usual = [json.loads(line) for line in world.unscene_file("usual_context").read_text().splitlines()]
        as_unusual = qdir / "usual_annotations.jsonl"
        write_jsonl_atomic(as_unusual, [{**r, "set": "unusual_context"} for r in usual])
        qs = build_questions(load_annotations(as_unusual), seed=0, open_ended=False)
        write_jsonl_atomic(usual_questions, [q.to_record() for q in qs])
    return questions, usual_questions


def _train(run_dir: Path, world, tower: Path, language_model: Path | None, variant: str, seed: int,
           config: StudyConfig, progress: bool, log: Log) -> Path:
    from mashvlm.training.trainer import train

    train_config = _train_config(
        run_dir / "train",
        world,
        config,
        mash=variant_options(variant),
        vision_tower_weights=str(tower),
        language_model_weights=str(language_model) if language_model else None,
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
    result = train(train_config, progress=progress)
    if not result.reused:
        losses = [h["loss"] for h in result.log_history if "loss" in h]
        log(f"{variant} seed {seed}: trained {result.global_step} steps in {time.monotonic() - start:.0f} s, "
            f"final loss {losses[-1]:.3f}" if losses else f"{variant} seed {seed}: trained")
    return result.final_dir


def _evaluate(model_dir: Path, questions_file: Path, predictions: Path, world, config: StudyConfig,
              name: str, judge: bool, progress: bool) -> dict[str, Any]:
    from mashvlm.unscene.formats import load_predictions, load_questions
    from mashvlm.unscene.judge import LexicalJudge
    from mashvlm.unscene.runner import MashVlmVideoQA, run_model
    from mashvlm.unscene.scoring import build_results, score_binary, score_open_ended

    questions = load_questions(questions_file)
    model = MashVlmVideoQA(model_dir, max_new_tokens=config.max_new_tokens)
    run_model(model, questions, world.root, predictions, progress=progress)
    preds = load_predictions(predictions, known_question_ids=[q.question_id for q in questions]).predictions
    binary = score_binary(questions, preds)
    lexical = LexicalJudge() if judge else None
    open_ended = score_open_ended(questions, preds, lexical) if lexical else None
    return build_results(questions, preds, binary, open_ended, judge=lexical, model_name=name)


def run_one(out_dir: Path, world, tower: Path, questions: tuple[Path, Path], variant: str, seed: int,
            config: StudyConfig, progress: bool, log: Log, language_model: Path | None = None) -> dict[str, Any]:
    """Train one (variant, seed), run both question sets, and return its record (also saved as JSON)."""
    run_dir = out_dir / "runs" / variant / f"seed{seed}"
    record_file = run_dir / "record.json"
    if record_file.is_file():
        return json.loads(record_file.read_text())
    model_dir = _train(run_dir, world, tower, language_model, variant, seed, config, progress, log)
    name = f"{variant}-seed{seed}"
    results = _evaluate(model_dir, questions[0], run_dir / "predictions.jsonl", world, config, name, True,
                        progress)
    usual = _evaluate(model_dir, questions[1], run_dir / "usual_predictions.jsonl", world, config, name, False,
                      progress)
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
    log(f"{variant} seed {seed}: UNSCENE binary avg {record['binary']['average']:.1f}, "
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
        raise ValueError(
            f"{out} holds a study with another configuration ({saved_config}); use another --out "
            "or delete it (more seeds or variants may be added to a study, nothing else changed)"
        )
    write_json_atomic(saved_config, config.to_dict())
    start = time.monotonic()
    world = prepare_world(out, config, progress)
    log(f"world: {out / 'world'} ({len(world.videos)} videos)")
    tower = prepare_tower(out, world, config, progress, log)
    language_model = prepare_language_model(out, world, config, progress, log)
    questions = prepare_questions(out, world)
    records = [
        run_one(out, world, tower, questions, variant, seed, config, progress, log, language_model)
        for seed in config.seeds
        for variant in config.variants
    ]
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
