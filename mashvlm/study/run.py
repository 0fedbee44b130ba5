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
    unscene/motion_questions.jsonl the same on the motion control (actions in neutral scenes unseen in training)
    runs/<variant>/seed<k>/      training output, predictions*.jsonl, results.json, usual_results.json,
                                 motion_results.json, record.json
    study_config.json, study_results.json, study_table.txt, study.png (and study_ablations.png: --full)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mashvlm.errors import MashVlmError, UsageError
from mashvlm.files import write_json_atomic
from mashvlm.study.attention import attention_stage
from mashvlm.study.config import StudyConfig, run_directory, variant_options, variant_tuning
from mashvlm.study.stats import paired_difference, seed_stats

if TYPE_CHECKING:
    from mashvlm.synth import World
    from mashvlm.training.trainer import TrainResult

__all__ = ["PretrainedParts", "StudyContext", "StudyRunError", "prepare_world", "prepare_tower",
           "prepare_language_model", "prepare_questions", "control_questions", "run_one", "run_all", "run_study",
           "summarise", "paired_statistics", "motion_open_file", "one_question_of_each_kind",
           "training_with_motion_file"]

Log = Callable[[str], None]

# Metrics reported per run (dotted paths into the run's record).
BINARY_KEYS = ("scene_only_action", "unusual_action", "unusual_scene", "average")
CONTROL_KEYS = ("action", "scene", "average")
# (section, keys) of a run's record that the summary and the paired statistics cover.
SECTIONS = (("binary", BINARY_KEYS), ("open_ended", BINARY_KEYS), ("usual", CONTROL_KEYS), ("motion", CONTROL_KEYS))
# The variant every other one is paired against.
REFERENCE_VARIANT = "baseline"


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
    motion_questions: Path | None  # the same layout on the motion control; None if the world has none


# Table 10 is measured on MASH-VLM, on the UNSCENE binary categories the paper reports.
TOKEN_TYPES_VARIANT = "mash"
TOKEN_TYPES_KEYS = ("scene_only_action", "unusual_action", "unusual_scene")

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
                                    seed=ctx.config.tower_seed, clips_per_scene=ctx.config.tower_clips_per_scene,
                                    progress=ctx.progress)
    metrics["seconds"] = round(time.monotonic() - start, 1)
    write_json_atomic(metrics_file, metrics)
    ctx.log(
        f"vision tower: held-out frames scene acc {metrics['scene_acc']:.3f}, person acc "
        f"{metrics['present_acc']:.3f}, centre RMSE {metrics['center_rmse']:.3f}, in the motion control's frames "
        f"{metrics.get('motion_control_center_rmse', float('nan')):.3f} ({metrics['seconds']} s)"
    )
    return path


def _train_config(ctx: StudyContext, output_dir: Path, **fields: Any):
    """A training config on the world's training split from the study's tiny model, unless ``fields`` say
    otherwise (another ``train_file``, or an ``init`` to start from)."""
    from mashvlm.training.config import TrainConfig

    train_split = str(ctx.world.instruct_file("train"))
    fields.setdefault("train_file", train_split)
    if fields.setdefault("init", "tiny") == "tiny":
        fields.setdefault("tiny", dict(ctx.config.tiny))
        if fields["train_file"] != train_split:  # keep the vocabulary the language model was trained with
            fields.setdefault("tokenizer_file", train_split)
    return TrainConfig(video_root=str(ctx.world.root), output_dir=str(output_dir), **fields)


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


def control_questions(annotations: Path, out: Path) -> None:
    """A control set's videos asked the unusual-context layout (action and scene pairs, no open-ended).

    The records are relabelled in memory as unusual context (UNSCENE knows only its two sets); their
    candidates are every other label (``mashvlm.synth.world.hallucination_candidates``).
    """
    from mashvlm.files import read_jsonl, write_jsonl_atomic
    from mashvlm.unscene.builder import build_questions
    from mashvlm.unscene.formats import check_unique
    from mashvlm.unscene.records import UNUSUAL, parse_annotation
    from mashvlm.unscene.schema import Source

    records = [parse_annotation({**line.record, "set": UNUSUAL}, Source(annotations, line.lineno))
               for line in read_jsonl(annotations).lines]
    check_unique(annotations, records, "video_id", "videos")
    write_jsonl_atomic(out, [q.to_record() for q in build_questions(records, seed=0, open_ended=False)])


def prepare_questions(ctx: StudyContext) -> tuple[Path, Path, Path | None]:
    """UNSCENE question files from the world's annotations (same builder and seed as ``unscene build``).

    The two controls, usual-context videos and the motion control (actions in neutral scenes they never
    appear in during training), are asked the unusual-context layout (action and scene pairs) with every
    other label as the wrong one: the first measures whether a model learned the task at all, the second
    whether it recognises actions from motion when the scene cannot tell them. The motion file is None
    when the world has no motion-control videos.
    """
    from mashvlm.files import write_jsonl_atomic
    from mashvlm.unscene.builder import build_questions
    from mashvlm.unscene.formats import load_annotations

    world = ctx.world
    qdir = ctx.out_dir / "unscene"
    qdir.mkdir(parents=True, exist_ok=True)
    questions, usual_questions = qdir / "questions.jsonl", qdir / "usual_questions.jsonl"
    motion_questions = qdir / "motion_questions.jsonl" if world.split("test_motion") else None
    if not questions.is_file():
        anns = load_annotations(world.unscene_file("unusual_context")) + load_annotations(
            world.unscene_file("scene_only")
        )
        write_jsonl_atomic(questions, [q.to_record() for q in build_questions(anns, seed=0)])
    if not usual_questions.is_file():
        control_questions(world.unscene_file("usual_context"), usual_questions)
    if motion_questions is not None and not motion_questions.is_file():
        control_questions(world.unscene_file("motion_control"), motion_questions)
    return questions, usual_questions, motion_questions


def one_question_of_each_kind(qas: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first question of each kind in an entry's (drawn) order: each open question once, and one yes/no
    question per template and answer (for a ``train_motion`` video: the open action question and the action
    pair, a drawn wrong action for its "No."), as the training split asks them."""
    from mashvlm.synth import templates as T

    prefixes = [template.split("{")[0] for template in (T.Q_ACTION_YN, T.Q_SCENE_YN, T.Q_EMPTY_YN)]
    kept: dict[tuple[str, str], dict[str, str]] = {}
    for qa in qas:
        prefix = next((p for p in prefixes if qa["q"].startswith(p)), qa["q"])
        kept.setdefault((prefix, qa["a"] if prefix != qa["q"] else ""), qa)
    return list(kept.values())


def training_with_motion_file(ctx: StudyContext) -> Path:
    """The training split's instruction file followed by the ``train_motion`` videos (``motion_in_training``),
    each asked one question of each kind: with all of the warm-up's questions, three quarters of the samples,
    the training split's scene pairs were not learned in 1500 steps (docs/synth.md)."""
    return _derived_instruct_file(ctx, "train_with_motion.json", lambda train, motion: train + [
        {**r, "QA": one_question_of_each_kind(r["QA"])} for r in motion])


def motion_open_file(ctx: StudyContext) -> Path:
    """The ``train_motion`` videos asked only "What is the person doing in the video?" (``motion_open_steps``)."""
    from mashvlm.synth import templates as T

    return _derived_instruct_file(ctx, "train_motion_open.json", lambda train, motion: [
        {**r, "QA": [qa for qa in r["QA"] if qa["q"] == T.Q_ACTION][:1]} for r in motion])


def _derived_instruct_file(ctx: StudyContext, name: str, build: Callable[[list, list], list]) -> Path:
    """``name`` in the study folder: the records ``build`` makes of the world's train and train_motion instruction
    files, written once (the video paths stay relative to the world, as in the world's own files)."""
    path = ctx.out_dir / name
    if not path.is_file():
        train, motion = (json.loads(ctx.world.instruct_file(split).read_text()) for split in ("train", "train_motion"))
        write_json_atomic(path, build(train, motion))
    return path


def _train(ctx: StudyContext, parts: PretrainedParts, run_dir: Path, variant: str, seed: int) -> TrainResult:
    """Instruction-tune one (variant, seed) in stages, each from where the one before ended, each resumed or
    reused on its own: the open action question of the ``train_motion`` videos (``motion_open_steps``), all
    their questions (``motion_steps``), then the training split (with the ``train_motion`` videos if
    ``motion_in_training``)."""
    from mashvlm.training.trainer import train

    config = ctx.config
    common = dict(mash=variant_options(variant), **variant_tuning(variant), weight_decay=config.weight_decay,
                  per_device_train_batch_size=config.batch_size, warmup_ratio=config.warmup_ratio, seed=seed,
                  cache_tower_features=True)  # the tower is frozen and the world fits in memory
    start_from: dict[str, Any] = dict(
        vision_tower_weights=str(parts.tower),
        language_model_weights=str(parts.language_model) if parts.language_model else None)
    warm_ups = (("motion_open", config.motion_open_steps, motion_open_file,
                 config.motion_open_learning_rate or config.learning_rate),
                ("motion", config.motion_steps, lambda ctx: ctx.world.instruct_file("train_motion"),
                 config.learning_rate))
    for name, steps, data, learning_rate in warm_ups:  # StudyConfig checks that the world has train_motion videos
        if steps > 0:
            start = time.monotonic()
            warmed_up = train(_train_config(
                ctx, run_dir / name, **common, **start_from, learning_rate=learning_rate, max_steps=steps,
                train_file=str(data(ctx)), save_steps=max(steps // 2, 50), logging_steps=max(steps // 12, 5)),
                progress=ctx.progress)
            _log_trained(ctx, f"{variant} seed {seed}: warm-up {name}", warmed_up, time.monotonic() - start)
            start_from = dict(init=f"mashvlm:{warmed_up.final_dir}")
    if config.motion_in_training:
        start_from["train_file"] = str(training_with_motion_file(ctx))
    start = time.monotonic()
    result = train(_train_config(
        ctx, run_dir / "train", **common, **start_from, learning_rate=config.learning_rate,
        max_steps=config.max_steps, save_steps=max(config.max_steps // 4, 50),
        logging_steps=max(config.max_steps // 24, 5),
    ), progress=ctx.progress)
    _log_trained(ctx, f"{variant} seed {seed}", result, time.monotonic() - start)
    return result


def _log_trained(ctx: StudyContext, what: str, result: TrainResult, seconds: float) -> None:
    if result.reused:
        return
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    loss = f", final loss {losses[-1]:.3f}" if losses else ""
    ctx.log(f"{what}: trained {result.global_step} steps in {seconds:.0f} s{loss}")


def training_speed(result: TrainResult) -> dict[str, Any]:
    """Steps, seconds and steps per second of a training run, from the Trainer's closing log entry (which
    covers only the last session of a resumed run: ``resumed`` says so)."""
    final = next((h for h in reversed(result.log_history) if "train_runtime" in h), {})
    seconds = final.get("train_runtime")
    return {"steps": result.global_step, "seconds": seconds,
            "steps_per_second": final.get("train_steps_per_second"), "resumed": result.resumed_from is not None}


def _evaluate(ctx: StudyContext, model_dir: Path, questions_file: Path, predictions: Path, name: str,
              judge: bool, video_tokens: str = "both") -> dict[str, Any]:
    from mashvlm.unscene.formats import load_predictions, load_questions
    from mashvlm.unscene.judge import LexicalJudge
    from mashvlm.unscene.runner import MashVlmVideoQA, run_model
    from mashvlm.unscene.scoring import build_results, score_binary, score_open_ended

    questions = load_questions(questions_file)
    model = MashVlmVideoQA(model_dir, max_new_tokens=ctx.config.max_new_tokens, video_tokens=video_tokens)
    # Only the full model's run is judged; the others answer the binary questions alone.
    run_model(model, questions, ctx.world.root, predictions, tasks="all" if judge else "binary",
              progress=ctx.progress)
    preds = load_predictions(predictions, known_question_ids=[q.question_id for q in questions]).predictions
    binary = score_binary(questions, preds)
    lexical = LexicalJudge() if judge else None
    open_ended = score_open_ended(questions, preds, lexical) if lexical else None
    return build_results(questions, preds, binary, open_ended, judge=lexical, model_name=name)


def run_one(ctx: StudyContext, parts: PretrainedParts, variant: str, seed: int) -> dict[str, Any]:
    """Train one (variant, seed), run both question sets, and return its record (also saved as JSON)."""
    run_dir = run_directory(ctx.out_dir, variant, seed)
    record_file = run_dir / "record.json"
    if record_file.is_file():
        return json.loads(record_file.read_text())
    trained = _train(ctx, parts, run_dir, variant, seed)
    model_dir = trained.final_dir
    name = f"{variant}-seed{seed}"
    results = _evaluate(ctx, model_dir, parts.questions, run_dir / "predictions.jsonl", name, judge=True)
    usual = _evaluate(ctx, model_dir, parts.usual_questions, run_dir / "usual_predictions.jsonl", name, judge=False)
    write_json_atomic(run_dir / "results.json", results)
    write_json_atomic(run_dir / "usual_results.json", usual)
    controls = [usual]
    motion = None
    if parts.motion_questions is not None:
        motion = _evaluate(ctx, model_dir, parts.motion_questions, run_dir / "motion_predictions.jsonl", name,
                           judge=False)
        write_json_atomic(run_dir / "motion_results.json", motion)
        controls.append(motion)
    # Table 10: the model trained with both kinds of video token, answering with one kind only.
    token_types = None
    if variant == TOKEN_TYPES_VARIANT:
        token_types = {}
        for kind in ("spatial", "temporal"):
            only = _evaluate(ctx, model_dir, parts.questions, run_dir / f"predictions_{kind}_tokens.jsonl", name,
                             judge=False, video_tokens=kind)
            token_types[kind] = {k: only["binary"][k] for k in TOKEN_TYPES_KEYS}
    record = {
        "variant": variant,
        "seed": seed,
        "token_types": token_types,
        "options": variant_options(variant),
        "tuning": variant_tuning(variant)["tuning"],
        "binary": {k: results["binary"][k] for k in BINARY_KEYS},
        "open_ended": {k: results["open_ended"][k] for k in BINARY_KEYS},
        "usual": _control_record(usual),
        "motion": _control_record(motion),
        "counts": {
            "pairs_scored": results["counts"]["pairs_scored"],
            "control_pairs_scored": {"usual": usual["counts"]["pairs_scored"],
                                     "motion": motion["counts"]["pairs_scored"] if motion else 0},
            **{k: results["counts"][k] + sum(c["counts"][k] for c in controls)
               for k in ("unparseable_answers", "failed_videos", "missing_predictions")},
        },
        "judge": results["judge"]["model"],
        "training": training_speed(trained),
    }
    write_json_atomic(record_file, record)  # written last: its presence marks the run as done
    motion_text = f", motion control action {record['motion']['action']:.1f}" if motion else ""
    ctx.log(f"{variant} seed {seed}: UNSCENE binary avg {record['binary']['average']:.1f}, "
            f"usual-context {record['usual']['average']:.1f}{motion_text}")
    return record


class StudyRunError(MashVlmError, RuntimeError):
    """A run trained in a process of its own (``jobs > 1``) failed with a user error (bad input, a missing
    file), or its process died."""


def _run_one_apart(ctx: StudyContext, parts: PretrainedParts, variant: str, seed: int) -> dict[str, Any]:
    try:
        return run_one(ctx, parts, variant, seed)
    except MashVlmError as err:  # as one picklable error, whatever the arguments of its own class
        raise StudyRunError(f"{variant} seed {seed}: {err}") from None


def _log_flushed(message: str) -> None:
    print(message, flush=True)


def _start_job(threads: int, study_pid: int) -> None:
    """A job's process: its share of the threads, and an end when the study's process ends (killed, say),
    so that no orphan goes on training in a folder that the next run of the study will train in."""
    import threading

    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    hf_logging.disable_progress_bar()  # a job has no bars; transformers' own (loading, saving weights) too

    def exit_with_the_study() -> None:
        while os.getppid() == study_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=exit_with_the_study, daemon=True).start()


def run_all(ctx: StudyContext, parts: PretrainedParts, runs: list[tuple[str, int]], jobs: int = 1
            ) -> list[dict[str, Any]]:
    """The records of ``runs`` ((variant, seed) pairs), in that order; each run as :func:`run_one`.

    With ``jobs > 1`` that many runs train at once, each in its own process with an equal share of this
    process's torch threads and no progress bars (their stages log when they end). The study's models are
    too small for one process to keep every core busy on some machines, where this trains more steps per
    second in all; on others it gains nothing (docs/synth.md, "Time"; ``benchmarks/parallel_jobs.py``
    measures a machine). A thread count may change float rounding, so a run's figures can differ by its
    ``jobs`` as they can by machine.
    """
    pending = [run for run in runs if not (run_directory(ctx.out_dir, *run) / "record.json").is_file()]
    if jobs <= 1 or len(pending) <= 1:
        return [run_one(ctx, parts, variant, seed) for variant, seed in runs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    import torch

    threads = max(1, torch.get_num_threads() // jobs)
    ctx.log(f"training {len(pending)} run(s), {jobs} at once with {threads} thread(s) each")
    quiet = dataclasses.replace(ctx, progress=False, log=_log_flushed)  # picklable, and no bars to interleave
    with ProcessPoolExecutor(max_workers=min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_job, initargs=(threads, os.getpid())) as pool:
        futures = {run: pool.submit(_run_one_apart, quiet, parts, *run) for run in pending}
        try:
            done = {run: future.result() for run, future in futures.items()}
        except BrokenProcessPool as err:
            raise StudyRunError(
                "a study process died (out of memory?); run the same command again to resume from the last "
                "checkpoints, with fewer --jobs"
            ) from err
    return [done[run] if run in done else run_one(ctx, parts, *run) for run in runs]


def _control_record(results: dict[str, Any] | None) -> dict[str, float | None]:
    """Dual accuracy of a control set's action and scene pairs (asked in the unusual-context layout)."""
    if results is None:
        return dict.fromkeys(CONTROL_KEYS)
    action, scene = results["binary"]["unusual_action"], results["binary"]["unusual_scene"]
    return {"action": action, "scene": scene, "average": (action + scene) / 2}


def _metric(record: dict[str, Any], section: str, key: str) -> float | None:
    # .get: a record without a section (e.g. no motion control) counts as missing, not as an error
    return (record.get(section) or {}).get(key)


def token_types_table(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Table 10 over seeds: MASH-VLM answering with spatial tokens only, temporal tokens only, or both
    (mean and std of UNSCENE dual accuracy); None when no run has it."""
    runs = [r for r in records if r["variant"] == TOKEN_TYPES_VARIANT and r.get("token_types")]
    if not runs:
        return None
    rows = {kind: [r["token_types"][kind] for r in runs] for kind in ("spatial", "temporal")}
    rows["both"] = [r["binary"] for r in runs]
    return {"seeds": [r["seed"] for r in runs],
            **{kind: {k: seed_stats([row[k] for row in values]) for k in TOKEN_TYPES_KEYS}
               for kind, values in rows.items()}}


def summarise(records: list[dict[str, Any]], variants: list[str]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every metric, per variant."""
    out: dict[str, Any] = {}
    for variant in variants:
        mine = [r for r in records if r["variant"] == variant]
        out[variant] = {
            "seeds": [r["seed"] for r in mine],
            **{section: {k: seed_stats([_metric(r, section, k) for r in mine]) for k in keys}
               for section, keys in SECTIONS},
            "training": {"steps_per_second": seed_stats([_metric(r, "training", "steps_per_second") for r in mine])},
        }
    return out


def paired_statistics(records: list[dict[str, Any]], variants: list[str],
                      reference: str = REFERENCE_VARIANT) -> dict[str, Any]:
    """Per variant other than ``reference``: the paired t-test of (variant - reference) over shared seeds,
    for every metric of the summary. Empty when ``reference`` was not run."""
    by_seed = {v: {r["seed"]: r for r in records if r["variant"] == v} for v in variants}
    if reference not in by_seed:
        return {}
    ref = by_seed[reference]
    return {
        variant: {section: {k: paired_difference({s: _metric(r, section, k) for s, r in ref.items()},
                                                 {s: _metric(r, section, k) for s, r in mine.items()})
                            for k in keys}
                  for section, keys in SECTIONS}
        for variant, mine in by_seed.items() if variant != reference
    }


def _saved_config(config: StudyConfig) -> dict[str, Any]:
    """``study_config.json``: the settings and the world format they were run with."""
    from mashvlm.synth import FORMAT_VERSION

    return {**config.to_dict(), "world_format_version": FORMAT_VERSION}


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """What every run of a study shares; runs live in per-variant, per-seed folders, so adding seeds or
    variants to a finished study reuses its runs."""
    from mashvlm.synth.config import WorldConfig

    d = json.loads(json.dumps(config))
    d.pop("seeds", None)
    d.pop("variants", None)
    # The world as built, not as written: rho 0.9 given or left to its default is the same world.
    d["world"] = json.loads(json.dumps(WorldConfig.from_dict(d.get("world", {})).to_dict()))
    return d


def run_study(out_dir: str | os.PathLike, config: StudyConfig, *, progress: bool = True,
              log: Log = print, jobs: int = 1) -> dict[str, Any]:
    """The whole study; returns (and writes) ``study_results.json``. ``jobs``: (variant, seed) runs trained at
    once (:func:`run_all`)."""
    from mashvlm.study.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved_config = out / "study_config.json"
    wanted = _saved_config(config)
    if saved_config.is_file():
        stored = json.loads(saved_config.read_text())
        if stored.get("world_format_version") != wanted["world_format_version"]:
            raise UsageError(
                f"{out} holds a study with another configuration: world format "
                f"{stored.get('world_format_version', 2)} "
                f"({saved_config}); this version builds format {wanted['world_format_version']} (with the "
                "motion control): use another --out or delete the folder"
            )
        if _identity(stored) != _identity(wanted):
            raise UsageError(
                f"{out} holds a study with another configuration ({saved_config}); use another --out "
                "or delete it (more seeds or variants may be added to a study, nothing else changed)"
            )
    write_json_atomic(saved_config, wanted)
    start = time.monotonic()
    world = prepare_world(out, config, progress)
    log(f"world: {out / 'world'} ({len(world.videos)} videos)")
    ctx = StudyContext(out, config, world, progress, log)
    tower = prepare_tower(ctx)
    language_model = prepare_language_model(ctx)
    parts = PretrainedParts(tower, language_model, *prepare_questions(ctx))
    records = run_all(ctx, parts, [(variant, seed) for seed in config.seeds for variant in config.variants], jobs)
    attention = attention_stage(ctx, parts, config.seeds)
    results = {
        "config": config.to_dict(),
        "world": {"root": str(world.root), "content_hash": world.content_hash,
                  "rho": world.config.rho, "videos": len(world.videos),
                  "motion_control_videos": len(world.split("test_motion"))},
        "vision_tower": json.loads((out / "vision_tower.json").read_text()),
        "language_model": json.loads((out / "language_model.json").read_text()) if language_model else None,
        "runs": records,
        "summary": summarise(records, config.variants),
        "paired": paired_statistics(records, config.variants),
        "token_types": token_types_table(records),
        "attention": attention,
        "seconds": round(time.monotonic() - start, 1),
    }
    write_report(out, results)
    return results
