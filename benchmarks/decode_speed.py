"""Decoding speed: ms per generated token of MASH-VLM against the same-size plain Llama, same prompt length, as
ratios in one process (issue 15).

Both models share one LlamaConfig (hidden 512, 4 layers, 8 heads, vocab 4096: small enough for a 2-core
machine, large enough that a decoding step is real work). The prompt has the paper's layout for MASH-VLM (35
text tokens, one 16-frame video of 47 temporal and 576 spatial tokens, 65 text tokens: 723) and 723 text tokens
for Llama; batch 8 is left-padded (row b shorter by 4 b tokens). A logits processor stamps the process's CPU
time at every step of greedy generate(), so a token's cost is the median interval between two steps: one
decoding forward with everything generate does around it, and no prefill (the video tower, the prompt's
layout). The models alternate for a few rounds; each keeps its lowest median. (Differences of whole generate()
calls were tried first: the prefill's variance on a shared machine swamps a few decoding steps.)

    python benchmarks/decode_speed.py [--new-tokens 16 --rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LogitsProcessor, LogitsProcessorList

from mashvlm import MashVlmConfig, MashVlmForConditionalGeneration

VOCAB, TEMPORAL_ID, SPATIAL_ID, PAD_ID = 4096, 4094, 4095, 0


def configs() -> tuple[LlamaConfig, MashVlmConfig]:
    text = LlamaConfig(
        hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=8,
        vocab_size=VOCAB, max_position_embeddings=2048, pad_token_id=PAD_ID, bos_token_id=None, eos_token_id=None,
    )
    # A 24 x 24 patch grid gives N = 4 segments x (24/2)^2 = 576 spatial tokens; T = 16 gives M = 47.
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=1,
                              image_size=48, patch_size=2)
    mash = MashVlmConfig(vision, text.to_dict(), num_frames=16, video_temporal_token_id=TEMPORAL_ID,
                         video_spatial_token_id=SPATIAL_ID)
    return text, mash


def prompts(batch: int, with_video: bool, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    def text(n):
        return torch.randint(1, TEMPORAL_ID, (n,), generator=gen).tolist()

    video = [TEMPORAL_ID] * 47 + [SPATIAL_ID] * 576 if with_video else text(47 + 576)
    row = text(35) + video + text(65)
    ids = torch.tensor([row] * batch)
    mask = torch.ones_like(ids)
    for b in range(batch):
        ids[b, : 4 * b], mask[b, : 4 * b] = PAD_ID, 0
    return ids, mask


class StepClock(LogitsProcessor):
    """Records the process CPU time at each decoding step (generate calls it once per new token)."""

    def __init__(self):
        self.stamps: list[float] = []

    def __call__(self, input_ids, scores):
        self.stamps.append(time.process_time())
        return scores

    def median_step(self) -> float:
        return statistics.median(b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=16, help="decoding steps timed per generate()")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (lowest median taken)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    text_config, mash_config = configs()
    mash = MashVlmForConditionalGeneration(mash_config).eval()
    llama = LlamaForCausalLM(text_config).eval()
    for model in (mash, llama):
        model.set_attn_implementation("sdpa")
    gen = torch.Generator().manual_seed(0)

    print(f"Decoding, prompt S=723, hidden 512, 4 layers, sdpa, float32; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread, {platform.processor() or platform.machine()}")
    print()
    print(f"| {'batch':>5} | {'Llama ms/token':>14} | {'MASH-VLM ms/token':>17} | {'MASH / Llama':>12} |")
    print(f"|{'-' * 7}|{'-' * 16}|{'-' * 19}|{'-' * 14}|")
    for batch in (1, 8):
        mash_ids, mash_mask = prompts(batch, True, gen)
        llama_ids, llama_mask = prompts(batch, False, gen)
        pixels = torch.randn(batch, 16, 3, 48, 48, generator=gen)

        per_token = {"llama": float("inf"), "mash": float("inf")}
        for _ in range(args.rounds):
            for name, model, ids, mask, extra in (
                ("llama", llama, llama_ids, llama_mask, {}),
                ("mash", mash, mash_ids, mash_mask, {"pixel_values_videos": pixels}),
            ):
                clock = StepClock()
                with torch.no_grad():
                    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1 + args.new_tokens,
                                   min_new_tokens=1 + args.new_tokens, do_sample=False, pad_token_id=PAD_ID,
                                   suppress_tokens=[TEMPORAL_ID, SPATIAL_ID],
                                   logits_processor=LogitsProcessorList([clock]), **extra)
                per_token[name] = min(per_token[name], clock.median_step())
        print(f"| {batch:>5} | {per_token['llama'] * 1e3:14.2f} | {per_token['mash'] * 1e3:17.2f} | "
              f"{per_token['mash'] / per_token['llama']:12.3f} |")


if __name__ == "__main__":
    main()
