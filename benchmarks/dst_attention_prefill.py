"""DST-attention prefill speed at the paper's shape, as ratios to plain causal SDPA in the same process.

Sequence: 35 text tokens (system prompt), one video with T = 16 frames -> M = 47 temporal and N = 576
spatial tokens, then 65 text tokens: S = 723, as for LLaVA-1.5 / CLIP ViT-L/14-336. Heads and head
size are scaled down to fit a small CPU machine (override with flags).

    python benchmarks/dst_attention_prefill.py [--heads 8 --head-dim 64 --batch 1]

Each backend computes one attention call over the whole prefill with the DST mask (MASH default):
eager (matmul + additive mask + softmax), sdpa with the dense boolean mask, and flex_attention with a
BlockMask (compiled). The mask construction is timed on its own line.
"""

from __future__ import annotations

import argparse
import platform

import torch
import torch.nn.functional as F
from torch.utils import benchmark

from mashvlm import TokenType, dst_attention_mask, dst_block_mask


def paper_layout(batch: int, text_before: int = 35, text_after: int = 65, frames: int = 16, spatial: int = 576):
    temporal = 3 * frames - 1
    row = (
        [TokenType.TEXT] * text_before
        + [TokenType.TEMPORAL] * temporal
        + [TokenType.SPATIAL] * spatial
        + [TokenType.TEXT] * text_after
    )
    return torch.tensor([row] * batch)


def timeit(fn, label: str, min_run_time: float) -> float:
    fn()  # warm-up (and compilation for flex)
    measurement = benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=label).blocked_autorange(
        min_run_time=min_run_time
    )
    return measurement.median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--min-run-time", type=float, default=2.0, help="seconds of timing per backend")
    parser.add_argument("--no-flex", action="store_true", help="skip flex_attention (compiles on first call)")
    args = parser.parse_args()

    torch.manual_seed(0)
    types = paper_layout(args.batch)
    batch, seq = types.shape
    q, k, v = (torch.randn(batch, args.heads, seq, args.head_dim) for _ in range(3))
    scale = args.head_dim**-0.5

    dense = dst_attention_mask(types)  # [B, 1, S, S] bool
    additive = torch.zeros(dense.shape).masked_fill(~dense, torch.finfo(torch.float32).min)

    def causal_sdpa():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def dense_sdpa():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=dense)

    def eager():
        weights = torch.softmax(q @ k.transpose(-1, -2) * scale + additive, dim=-1)
        return weights @ v

    # Same outputs before timing anything.
    reference = eager()
    assert torch.allclose(dense_sdpa(), reference, atol=1e-5), "sdpa and eager disagree"

    results: list[tuple[str, float]] = []
    base = timeit(causal_sdpa, "causal sdpa", args.min_run_time)
    results.append(("sdpa, plain causal (baseline, is_causal=True)", base))
    results.append(("eager, DST additive mask", timeit(eager, "eager", args.min_run_time)))
    results.append(("sdpa, DST dense bool mask", timeit(dense_sdpa, "sdpa", args.min_run_time)))
    if not args.no_flex:
        from torch.nn.attention.flex_attention import flex_attention

        block_mask = dst_block_mask(types)
        compiled = torch.compile(flex_attention)

        def flex():
            return compiled(q, k, v, block_mask=block_mask, scale=scale)

        assert torch.allclose(flex(), reference, atol=1e-4), "flex and eager disagree"
        results.append(("flex_attention, DST BlockMask (compiled)", timeit(flex, "flex", args.min_run_time)))
    mask_time = timeit(lambda: dst_attention_mask(types), "mask", args.min_run_time)

    print(
        f"DST-attention prefill, B={batch}, S={seq} (35 text + 47 temporal + 576 spatial + 65 text), "
        f"heads={args.heads}, head_dim={args.head_dim}, float32"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print()
    print(f"| {'backend':<46} | {'median ms':>9} | {'x causal sdpa':>13} |")
    print(f"|{'-' * 48}|{'-' * 11}|{'-' * 15}|")
    for name, seconds in results:
        print(f"| {name:<46} | {seconds * 1e3:9.2f} | {seconds / base:13.2f} |")
    print(f"| {'(building the dense DST mask, once per prefill)':<46} | {mask_time * 1e3:9.2f} | {mask_time / base:13.2f} |")


if __name__ == "__main__":
    main()
