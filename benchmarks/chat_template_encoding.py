"""Cost of rendering prompts through the Jinja chat template, as a ratio to the former Python string rule.

``MashVlmProcessor.encode_conversation`` (a training example with answer-only labels) and ``build_prompt``
(an inference prompt) render the Vicuna v1 chat template; before, they built the same strings with
f-strings. The baseline below is that former rule, written out; both sides give the same token ids
(checked here too). Rendered conversations are cached (a training set renders the same ones every
epoch), so the template is timed both on a first render (cache cleared before each call) and cached.
Inputs are the synthetic study's: its tiny processor (8 frames), one video, a short question and a
one-word answer.

    python benchmarks/chat_template_encoding.py [--calls 300 --rounds 8]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from mashvlm.modeling import processing_mash_vlm
from mashvlm.modeling.processing_mash_vlm import IGNORE_INDEX, VICUNA_V1_SYSTEM
from mashvlm.modeling.tiny import tiny_processor_and_config
from mashvlm.study.config import StudyConfig

QUESTION, ANSWER = "Is the person skiing in this video?", "Yes."


def former_example(processor, turns) -> dict[str, torch.Tensor]:
    """The former ``encode_conversation``: context and answer pieces tokenised apart."""
    encode = lambda piece: processor.tokenizer(  # noqa: E731
        processor.expand_video_tokens(piece), add_special_tokens=False)["input_ids"]
    ids, labels, prefix = [processor.tokenizer.bos_token_id], [IGNORE_INDEX], VICUNA_V1_SYSTEM + " "
    for i, (question, answer) in enumerate(turns):
        question = f"<video>\n{question}" if i == 0 else question
        context, target = encode(f"{prefix}USER: {question} ASSISTANT:"), encode(f" {answer}</s>")
        ids += context + target
        labels += [IGNORE_INDEX] * len(context) + target
        prefix = ""
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)}


def former_prompt(question: str) -> str:
    return f"{VICUNA_V1_SYSTEM} USER: <video>\n{question} ASSISTANT:"


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    processor, _ = tiny_processor_and_config([QUESTION, ANSWER], **StudyConfig().tiny)
    turns = [(QUESTION, ANSWER)]
    example, former = processor.encode_conversation(turns), former_example(processor, turns)
    assert all(torch.equal(example[key], former[key]) for key in ("input_ids", "labels"))
    assert processor.build_prompt(QUESTION) == former_prompt(QUESTION)

    clear = processing_mash_vlm._render_turns.cache_clear

    def first(fn):
        return lambda: (clear(), fn())

    cases = {
        "training example, first render": (
            first(lambda: processor.encode_conversation(turns)), lambda: (clear(), former_example(processor, turns))),
        "training example, cached": (
            lambda: processor.encode_conversation(turns), lambda: former_example(processor, turns)),
        "inference prompt, first render": (
            first(lambda: processor.build_prompt(QUESTION)), lambda: (clear(), former_prompt(QUESTION))),
    }
    print(f"{platform.machine()} {platform.processor() or ''}; {args.rounds} interleaved rounds of {args.calls} calls")
    for name, (template, former) in cases.items():
        ratios, extra = [], []
        for i in range(args.rounds):  # alternate which side runs first
            if i % 2:
                old, new = per_call(former, args.calls), per_call(template, args.calls)
            else:
                new, old = per_call(template, args.calls), per_call(former, args.calls)
            ratios.append(new / old)
            extra.append(new - old)
        print(f"{name}: template / former = {statistics.median(ratios):.2f} "
              f"(median; +{statistics.median(extra) * 1e6:.0f} us a call)")


if __name__ == "__main__":
    main()
