"""General-benchmark model throughput (prompts per second) of ``MashVlmEvalModel.generate`` before and
after it became an adapter over ``VideoChat.answer_videos``, as ratios measured in the same process.

- ``old generate``: the previous ``MashVlmEvalModel.generate``: the frames decoded once, but preprocessed
  and sent through the vision tower once per prompt, the whole prompts in one left-padded batch
  (placeholders suppressed as now, so the answers can be compared);
- ``encode once``: the current one (the video's prefix, vision tower included, run once per video and its
  KV cache copied to each prompt).

The model is the study's tiny MASH-VLM (``StudyConfig().tiny``), randomly initialised: a random model
always generates ``--max-new-tokens`` tokens. The prompts are MVBench's (its system prompt, four options,
"Best option:(" prefilled), ``--prompts`` per video (VCG asks several questions about a video; most
MVBench videos have one).

    python benchmarks/eval_model.py [--videos 6 --prompts 1 5 --max-new-tokens 8]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch

from mashvlm.evaluation import mvbench
from mashvlm.evaluation.model import MashVlmEvalModel, mashvlm_prompt_text
from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config
from mashvlm.study.config import StudyConfig


class OldGenerate(MashVlmEvalModel):
    @torch.inference_mode()
    def generate(self, frames, prompts, *, max_new_tokens):
        texts = [mashvlm_prompt_text(self.processor, p) for p in prompts]
        inputs = self.processor(texts, videos=[frames] * len(texts)).to(self.model.device)
        inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.model.dtype)
        output = self.model.generate(**inputs, **self.chat.greedy_settings(max_new_tokens))
        new = output[:, inputs["input_ids"].shape[1]:]
        return [t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--prompts", type=int, nargs="+", default=[1, 5], help="prompts per video (one run each)")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the machine's speed drifts)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    options = ["a person running", "a person jumping", "a person on a beach", "a person standing still"]
    processor, config = tiny_processor_and_config(
        [mvbench.SYSTEM_PROMPT, "Question: What is the person doing? Options:", *options], **StudyConfig().tiny
    )
    model = tiny_model(config)
    settings = {"old generate": OldGenerate(model, processor), "encode once": MashVlmEvalModel(model, processor)}
    size = StudyConfig().tiny["image_size"]
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (processor.num_frames, size, size, 3), dtype=np.uint8) for _ in range(args.videos)]
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for per_video in args.prompts:
        prompts = [
            mvbench.qa_template(f"What is the person doing in part {i} of the video?", options, options[0])[0]
            for i in range(per_video)
        ]
        prompts = [mvbench.build_prompt(p) for p in prompts]
        rates: dict[str, list[float]] = {name: [] for name in settings}
        answers: dict[str, list[list[str]]] = {}
        for _ in range(args.rounds):
            for name, eval_model in settings.items():
                start = time.perf_counter()
                answers[name] = [eval_model.generate(v, prompts, max_new_tokens=args.max_new_tokens) for v in videos]
                rates[name].append(args.videos * per_video / (time.perf_counter() - start))
        print(f"{args.videos} videos x {per_video} MVBench prompts, max_new_tokens {args.max_new_tokens}, "
              f"{args.rounds} rounds (median)")
        for name, values in rates.items():
            same = "same answers" if answers[name] == answers["old generate"] else "ANSWERS DIFFER"
            ratio = statistics.median(v / r for v, r in zip(values, rates["old generate"], strict=True))
            print(f"  {name:14s} {statistics.median(values):7.2f} prompts/s  {ratio:5.2f}x vs old generate  ({same})")


if __name__ == "__main__":
    main()
