"""How the Llama's initialisation scale decides whether the study's text pre-training learns yes/no questions.

The study's Llama is 128 wide. Llama's default ``initializer_range`` (0.02) is sized for 4096-wide models;
at this width it leaves every attention score near zero, and the model takes a long time to learn to
compare the label in "Is someone skiing in the video?" with the sentence it was told. This script runs the
study's text pre-training (``mashvlm.study.language``, the study's tiny config, 300 steps of batch 64) from
each initialisation scale and prints the held-out exact-answer rate per kind of question. It measures
learning, not speed; docs/synth.md quotes its output.

    python benchmarks/text_init_scale.py [--stds 0.02 0.088 --steps 300 --seed 0]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config
from mashvlm.study.config import StudyConfig
from mashvlm.study.language import pretrain_language_model, text_conversations
from mashvlm.synth import WorldConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stds", type=float, nargs="+", default=[0.02, 0.088])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    world = WorldConfig()
    corpus = [f"{user}\n{answer}" for user, answer in text_conversations(world, 2000, seed=args.seed + 100)]
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.steps} steps of batch 64, seed {args.seed}")
    rows = {}
    for std in args.stds:
        tiny = {**StudyConfig().tiny, "text_initializer_range": std}
        processor, config = tiny_processor_and_config(corpus, **tiny)
        model = tiny_model(config, seed=args.seed)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            metrics = pretrain_language_model(model, processor, world, Path(tmp) / "lm.safetensors",
                                              steps=args.steps, seed=args.seed, progress=False)
        rows[std] = metrics
        print(f"init std {std}: all answers {metrics['answer_acc']:.3f}, final loss {metrics['final_loss']:.3f} "
              f"({time.perf_counter() - start:.0f} s)")
    kinds = sorted({k for m in rows.values() for k in m["answer_acc_by_question"]})
    print("\n" + f"{'held-out exact answers':<26}" + "".join(f"{f'std {s}':>12}" for s in rows))
    for kind in kinds:
        print(f"{kind:<26}" + "".join(f"{m['answer_acc_by_question'].get(kind, float('nan')):>12.2f}"
                                      for m in rows.values()))


if __name__ == "__main__":
    main()
