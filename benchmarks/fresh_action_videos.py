"""Do a study's trained models recognise actions in fresh videos of chosen neutral scenes?

Builds a small world of the study's world config with another seed whose motion control shows every
action in ``--scenes`` (for example the library and the kitchen, which show every action in training,
unlike the control scenes), asks the motion-control layout (action and scene pairs, every other label
as the wrong one) and prints each model's dual accuracy. It separates "does not read motion" from "the
control's scenes vote against the action": docs/synth.md ("Making actions learnable") quotes it.

    python benchmarks/fresh_action_videos.py runs/demo --scenes library kitchen [--variants baseline mash]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from mashvlm.study.config import run_directory
from mashvlm.study.run import control_questions
from mashvlm.synth import WorldConfig, build_world
from mashvlm.training.trainer import FINAL_DIR
from mashvlm.unscene.formats import load_predictions, load_questions
from mashvlm.unscene.runner import MashVlmVideoQA, run_model
from mashvlm.unscene.scoring import score_binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", type=Path, help="a finished study folder (study_config.json, runs/)")
    parser.add_argument("--scenes", nargs="+", default=["library", "kitchen"], help="neutral scenes to show the actions in")
    parser.add_argument("--variants", nargs="+", default=["baseline", "mash"])
    parser.add_argument("--seed", type=int, default=0, help="the study's training seed of the models")
    parser.add_argument("--videos", type=int, default=80, help="test videos (actions balanced)")
    parser.add_argument("--world-seed", type=int, default=7, help="seed of the fresh world (not the study's)")
    args = parser.parse_args()

    study_config = json.loads((args.study / "study_config.json").read_text())
    config = dataclasses.replace(
        WorldConfig(**study_config["world"]), control_scenes=tuple(args.scenes), still_frac=0.0, n_train=0,
        n_test_usual=0, n_test_unusual=0, n_test_scene_only=0, n_test_motion=args.videos,
        n_train_motion=0)
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "world", config, seed=args.world_seed, progress=False)
        questions_file = Path(tmp) / "questions.jsonl"
        control_questions(world.unscene_file("motion_control"), questions_file)
        questions = load_questions(questions_file)
        print(f"{args.study}: {args.videos} fresh videos of every action in {', '.join(args.scenes)} "
              f"(world seed {args.world_seed}); dual accuracy %")
        for variant in args.variants:
            model_dir = run_directory(args.study, variant, args.seed) / "train" / FINAL_DIR
            if not model_dir.is_dir():
                print(f"  {variant:10} no trained model at {model_dir}")
                continue
            predictions = Path(tmp) / f"{variant}.jsonl"
            run_model(MashVlmVideoQA(model_dir, max_new_tokens=8), questions, world.root, predictions,
                      tasks="binary", progress=False)
            preds = load_predictions(predictions, known_question_ids=[q.question_id for q in questions]).predictions
            scores = score_binary(questions, preds).scores
            print(f"  {variant:10} action {scores['unusual_action']:.1f}  scene {scores['unusual_scene']:.1f}")


if __name__ == "__main__":
    main()
