"""Does a study's trained model know the action, and can it say so as a yes/no answer?

UNSCENE scores generated yes/no answers. This reads the trained model directly, by likelihood, on three
sets of videos: the study's motion control, its usual-context test videos, and fresh videos of every
action in the library and the kitchen (neutral scenes that show every action in training; world seed 7):

- ``open 8-way``: "What is the person doing in the video?" answered "The person is <action>." for each of
  the 8 actions; right when the true action is the most likely (chance 12.5 %);
- ``yes on true``: "Is someone <true action> in the video?" more likely answered "Yes." than "No.";
- ``yes/no pair``: that, and "No." more likely than "Yes." for a wrong action, averaged over the 7 wrong
  ones (UNSCENE's dual metric with every wrong label in turn, by likelihood instead of generation).

An open answer far above the pair says the model recognises the action but does not use it for yes/no
questions. docs/synth.md ("Making actions learnable") quotes it.

    python benchmarks/action_readout.py runs/demo [--variants baseline mash] [--stage train|motion|motion_open]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
from pathlib import Path

import torch

from mashvlm.modeling import MashVlmForConditionalGeneration, MashVlmProcessor
from mashvlm.study.config import run_directory
from mashvlm.synth import WorldConfig, build_world, load_world
from mashvlm.synth import templates as T
from mashvlm.training.data import VideoInstructionCollator
from mashvlm.training.trainer import FINAL_DIR
from mashvlm.video import read_video_frames


def answer_log_likelihoods(model, processor, collator, pixels: torch.Tensor,
                           turns: list[tuple[str, str]]) -> torch.Tensor:
    """Summed log-likelihood of each (question, answer) turn's answer tokens, for one video."""
    batch = collator([dict(processor.encode_conversation([turn]), pixel_values_videos=pixels) for turn in turns])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       pixel_values_videos=batch["pixel_values_videos"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    token_lp = torch.log_softmax(logits, -1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return (token_lp * (labels != -100)).sum(1)


def readout(model, processor, videos: list[tuple[Path, str]], actions: list[str]) -> dict[str, float]:
    pad = processor.tokenizer.pad_token_id
    collator = VideoInstructionCollator(pad_token_id=pad if pad is not None else processor.tokenizer.eos_token_id)
    open_right = yes_right = pairs = 0.0
    for path, action in videos:
        pixels = processor.preprocess_video(read_video_frames(path, processor.num_frames))
        score = answer_log_likelihoods(model, processor, collator, pixels,
                                       [(T.Q_ACTION, T.fill(T.A_ACTION, action=a)) for a in actions])
        open_right += actions[int(score.argmax())] == action
        questions = [T.fill(T.Q_ACTION_YN, action=a) for a in actions]
        says_yes = (answer_log_likelihoods(model, processor, collator, pixels, [(q, T.YES) for q in questions])
                    > answer_log_likelihoods(model, processor, collator, pixels, [(q, T.NO) for q in questions]))
        true = actions.index(action)
        yes_right += bool(says_yes[true])
        pairs += sum(bool(says_yes[true] and not says_yes[j]) for j in range(len(actions)) if j != true) / (
            len(actions) - 1)
    n = len(videos)
    return {"open_8way": open_right / n, "yes_on_true": yes_right / n, "yes_no_pair": pairs / n, "videos": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", type=Path, help="a finished study folder (study_config.json, world/, runs/)")
    parser.add_argument("--variants", nargs="+", default=["baseline", "mash"])
    parser.add_argument("--seed", type=int, default=0, help="the study's training seed of the models")
    parser.add_argument("--stage", choices=["train", "motion", "motion_open"], default="train",
                        help="the final model (train) or the model after a phase of the motion warm-up")
    parser.add_argument("--videos", type=int, default=80, help="fresh library and kitchen videos")
    args = parser.parse_args()
    torch.set_num_threads(2)

    world = load_world(args.study / "world")
    actions = list(world.config.actions)
    study_world = json.loads((args.study / "study_config.json").read_text())["world"]
    fresh_config = dataclasses.replace(
        WorldConfig(**study_world), control_scenes=("library", "kitchen"), still_frac=0.0, n_train=0,
        n_test_usual=0, n_test_unusual=0, n_test_scene_only=0, n_test_motion=args.videos, n_train_motion=0)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = build_world(Path(tmp) / "fresh", fresh_config, seed=7, progress=False)
        sets = {name: [(w.path(s), s.action) for s in w.split(split) if s.action]
                for name, w, split in (("motion control", world, "test_motion"),
                                       ("usual context", world, "test_usual"),
                                       ("fresh library/kitchen", fresh, "test_motion"))}
        print(f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {args.study}, "
              f"seed {args.seed}, {args.stage} stage; by likelihood (chance: open 0.125)")
        print(f"{'model':10} {'videos':24} {'open 8-way':>10} {'yes on true':>12} {'yes/no pair':>12}")
        for variant in args.variants:
            model_dir = run_directory(args.study, variant, args.seed) / args.stage / FINAL_DIR
            if not model_dir.is_dir():
                print(f"{variant:10} no trained model at {model_dir}")
                continue
            model = MashVlmForConditionalGeneration.from_pretrained(model_dir).eval()
            processor = MashVlmProcessor.from_pretrained(model_dir)
            for name, videos in sets.items():
                r = readout(model, processor, videos, actions)
                print(f"{variant:10} {name:24} {r['open_8way']:10.3f} {r['yes_on_true']:12.3f} "
                      f"{r['yes_no_pair']:12.3f}  (n={r['videos']})", flush=True)


if __name__ == "__main__":
    main()
