"""Training-step speed with ``share_prompt_prefix`` (the system prompt run once per batch), as a ratio to
the ordinary full forward in the same process.

The model is the synthetic study's tiny MASH-VLM (``StudyConfig().tiny``: 8 frames, a 3-layer Llama of
width 128) and the batches are the study's shape: the Vicuna v1 template, one video (23 temporal and 16
spatial tokens), a short question and a one-word answer, batch 32. A step is forward, backward and
AdamW, with the vision tower frozen as in instruction tuning.

    python benchmarks/shared_prompt_prefix.py [--batch 32 --steps 10 --rounds 3 --variant mash]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config
from mashvlm.study.config import VARIANTS, StudyConfig
from mashvlm.training.data import VideoInstructionCollator

QUESTIONS = ["Is the person skiing in this video?", "What is the person doing?",
             "Does this video take place in a library?", "Where does this video take place?"]
ANSWERS = ["Yes.", "No.", "swimming", "a basketball court"]


def batches(processor, config, batch: int, count: int, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    collate = VideoInstructionCollator(pad_token_id=processor.tokenizer.pad_token_id)
    size = config.vision_config.image_size
    out = []
    for _ in range(count):
        examples = []
        for _ in range(batch):
            q, a = (int(torch.randint(len(QUESTIONS), (1,), generator=gen)) for _ in range(2))
            example = processor.encode_conversation([(QUESTIONS[q], ANSWERS[a])])
            example["pixel_values_videos"] = torch.randn(config.num_frames, 3, size, size, generator=gen)
            examples.append(example)
        out.append(collate(examples))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round and setting")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the machine's speed drifts)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="mash")
    args = parser.parse_args()

    processor, config = tiny_processor_and_config(QUESTIONS + ANSWERS, **StudyConfig().tiny,
                                                  **VARIANTS[args.variant][1])
    model = tiny_model(config).train()
    model.freeze_vision_tower()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = batches(processor, config, args.batch, args.steps)

    def seconds_per_step(share: bool) -> float:
        start = time.perf_counter()
        for batch in data:
            model(**batch, share_prompt_prefix=share).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return (time.perf_counter() - start) / len(data)

    seconds_per_step(False), seconds_per_step(True)  # warm-up
    full, shared = [], []
    for _ in range(args.rounds):
        full.append(seconds_per_step(False))
        shared.append(seconds_per_step(True))
    ids = data[0]["input_ids"]
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"variant {args.variant}, batch {args.batch} x {ids.shape[1]} tokens (shared prompt: "
          f"{processor.encode_conversation([(QUESTIONS[0], ANSWERS[0])])['input_ids'].tolist().index(config.video_temporal_token_id)} tokens)")
    print(f"full forward      {statistics.median(full) * 1000:7.1f} ms/step (median of {args.rounds} rounds)")
    print(f"shared prefix     {statistics.median(shared) * 1000:7.1f} ms/step")
    print(f"speed-up          {statistics.median(f / s for f, s in zip(full, shared, strict=True)):7.2f}x")


if __name__ == "__main__":
    main()
