"""UNSCENE runner throughput (questions per second) before and after encoding each video once and
batching the questions, as ratios measured in the same process.

The questions are the study's UNSCENE test set (``mashvlm.study.run.prepare_questions``: unusual-context
and scene-only videos, yes/no pairs and open-ended questions) on a small synthetic world at the study's
video size; the model is the study's tiny MASH-VLM (``StudyConfig().tiny``), randomly initialised and
saved as a checkpoint: speed does not depend on training, but answer length does. A random model
always generates ``--max-new-tokens`` tokens, a trained one stops after "Yes."; run both
``--max-new-tokens 24`` (the study's limit) and ``--max-new-tokens 4``.

Every setting goes through ``run_model`` with a fresh predictions file:

- ``one at a time``: ``VideoChat.answer`` per question, decoding and encoding the video each time
  (the issue's "before");
- ``per-video batch (old)``: the previous ``answer_batch``: the video decoded once, but its frames
  preprocessed and sent through the vision tower once per question, its questions in one batch;
- ``encode once, batch B``: ``MashVlmVideoQA`` with ``run_model(batch_size=B)``.

    python benchmarks/unscene_runner.py [--unusual 16 --scene-only 8 --max-new-tokens 24 --batch-sizes 8 16 32]
    python benchmarks/unscene_runner.py --max-new-tokens 4
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mashvlm.inference import VideoChat
from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config
from mashvlm.study.config import VARIANTS, StudyConfig
from mashvlm.study.run import prepare_questions
from mashvlm.synth import WorldConfig, build_world
from mashvlm.unscene.formats import load_predictions, load_questions
from mashvlm.unscene.runner import MashVlmVideoQA, run_model


class OneAtATime:
    """The previous code's plain path: each question decodes, preprocesses and encodes its video."""

    def __init__(self, chat: VideoChat, max_new_tokens: int):
        self.chat, self.max_new_tokens = chat, max_new_tokens

    def answer(self, video_path: str, question: str) -> str:
        return self._old_batch(video_path, [question])[0]

    @torch.inference_mode()
    def _old_batch(self, video_path: str, questions: list[str]) -> list[str]:
        """The previous ``VideoChat.answer_batch`` (placeholders suppressed as now, to compare answers)."""
        processor = self.chat.processor
        frames = processor.load_video(video_path)
        inputs = processor([processor.build_prompt(q) for q in questions], videos=[frames] * len(questions))
        output = self.chat.model.generate(**inputs, **self.chat.greedy_settings(self.max_new_tokens))
        new = output[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]


class PerVideoBatchOld(OneAtATime):
    """The previous adapter's ``answer_batch``: one decode, but a copy of the frames per question through
    the processor and the vision tower, its questions in one left-padded batch."""

    def answer_batch(self, video_path: str, questions: list[str]) -> list[str]:
        return self._old_batch(video_path, list(questions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--unusual", type=int, default=16, help="unusual-context test videos (5 questions each)")
    parser.add_argument("--scene-only", type=int, default=8, help="scene-only test videos (3 questions each)")
    parser.add_argument("--max-new-tokens", type=int, default=StudyConfig().max_new_tokens)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (the machine's speed drifts)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="mash")
    parser.add_argument("--skip-one-at-a-time", action="store_true", help="slowest setting; ratios then vs old")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a loaded machine more threads make small ops far slower)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="unscene_bench_"))
    world = build_world(tmp / "world", WorldConfig(n_train=0, n_test_usual=2, n_test_unusual=args.unusual,
                                                   n_test_scene_only=args.scene_only, n_train_motion=0), 0, progress=False)
    questions_file, _ = prepare_questions(tmp, world)
    questions = load_questions(questions_file)
    processor, config = tiny_processor_and_config(
        [q.question for q in questions], **StudyConfig().tiny, **VARIANTS[args.variant][1]
    )
    checkpoint = tmp / "model"
    tiny_model(config).save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    chat = VideoChat.from_pretrained(checkpoint, device="cpu")

    settings: dict[str, tuple[object, int]] = {}
    if not args.skip_one_at_a_time:
        settings["one at a time"] = (OneAtATime(chat, args.max_new_tokens), 1)
    settings["per-video batch (old)"] = (PerVideoBatchOld(chat, args.max_new_tokens), 8)
    new = MashVlmVideoQA(checkpoint, device="cpu", max_new_tokens=args.max_new_tokens)
    for b in args.batch_sizes:
        settings[f"encode once, batch {b}"] = (new, b)

    runs = 0

    def questions_per_second(model, batch_size: int) -> tuple[float, dict[str, str]]:
        nonlocal runs
        runs += 1
        out = tmp / f"pred{runs}.jsonl"
        start = time.perf_counter()
        stats = run_model(model, questions, world.root, out, batch_size=batch_size, progress=False)
        seconds = time.perf_counter() - start
        assert stats.answered == len(questions), stats.summary()
        preds = load_predictions(out, known_question_ids=[q.question_id for q in questions]).predictions
        return len(questions) / seconds, {qid: p.prediction for qid, p in preds.items()}

    rates: dict[str, list[float]] = {name: [] for name in settings}
    answers: dict[str, dict[str, str]] = {}
    for _ in range(args.rounds):
        for name, (model, b) in settings.items():
            rate, answers[name] = questions_per_second(model, b)
            rates[name].append(rate)
    reference = next(iter(settings))
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{len(questions)} questions on {len({q.video_id for q in questions})} videos ({args.unusual} unusual-context, "
          f"{args.scene_only} scene-only), variant {args.variant}, max_new_tokens {args.max_new_tokens}, "
          f"{args.rounds} rounds (median)")
    for name, values in rates.items():
        same = "same answers" if answers[name] == answers[reference] else "ANSWERS DIFFER"
        ratio = statistics.median(v / r for v, r in zip(values, rates[reference], strict=True))
        print(f"{name:24s} {statistics.median(values):7.2f} questions/s  {ratio:6.2f}x vs {reference}  ({same})")


if __name__ == "__main__":
    main()
