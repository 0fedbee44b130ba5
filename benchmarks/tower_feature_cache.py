"""Training-step speed with the frozen tower's output cached per video (``cache_tower_features``), as a
ratio to the step that runs the tower on the pixels, in the same process.

The model and batches are the synthetic study's (``shared_prompt_prefix.py``: 8 frames, a 3-layer Llama
of width 128, batch 32, the shared prompt prefix on as in the study). A step is forward, backward and
AdamW with the tower frozen; the cached step takes the tower's output, computed before timing (a
training computes it once per video, in the first epoch). Time is CPU time on one thread
(``timing.interleaved``), so a busy machine hits both alike.

    python benchmarks/tower_feature_cache.py [--batch 32 --batches 4 --rounds 5 --variant mash]
"""

from __future__ import annotations

import argparse
import platform

import torch
from shared_prompt_prefix import ANSWERS, QUESTIONS, batches
from timing import interleaved

from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config
from mashvlm.study.config import VARIANTS, StudyConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (the machine's speed drifts)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="mash")
    args = parser.parse_args()
    torch.set_num_threads(1)

    processor, config = tiny_processor_and_config(QUESTIONS + ANSWERS, **StudyConfig().tiny,
                                                  **VARIANTS[args.variant][1])
    model = tiny_model(config).train()
    model.freeze_vision_tower()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    with_pixels = batches(processor, config, args.batch, args.batches)
    with_features = []
    for batch in with_pixels:
        cached = {k: v for k, v in batch.items() if k != "pixel_values_videos"}
        with torch.no_grad():
            cached["video_tower_features"] = model.model.get_tower_features(batch["pixel_values_videos"])
        with_features.append(cached)

    def stepper(data: list[dict]):
        position = iter(range(10**9))

        def step() -> None:
            batch = data[next(position) % len(data)]
            model(**batch, share_prompt_prefix=True).loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        return step

    times = interleaved({"pixels": stepper(with_pixels), "cached": stepper(with_features)}, rounds=args.rounds)
    print(f"{platform.processor() or platform.machine()}, 1 thread, torch {torch.__version__}")
    print(f"variant {args.variant}, batch {args.batch}, {config.num_frames} frames of "
          f"{config.vision_config.image_size} px, tower {config.vision_config.num_hidden_layers} layers")
    print(f"tower on the pixels   {times['pixels'] * 1000:7.1f} ms/step (best of {args.rounds} rounds)")
    print(f"cached tower output   {times['cached'] * 1000:7.1f} ms/step")
    print(f"speed-up              {times['pixels'] / times['cached']:7.2f}x")


if __name__ == "__main__":
    main()
