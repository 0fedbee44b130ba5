"""DST-attention prefill speed at the paper's shape, as ratios to plain causal SDPA in the same process.

Sequence: 35 text tokens (system prompt), one video with T = 16 frames -> M = 47 temporal and N = 576
spatial tokens, then 65 text tokens: S = 723, as for LLaVA-1.5 / CLIP ViT-L/14-336. Heads and head
size are scaled down to fit a small CPU machine (override with flags).

    python benchmarks/dst_attention_prefill.py [--heads 8 --head-dim 64 --batch 1 --device cpu --no-flex]

Each backend's timed call builds its mask from the token types (as the model does once per forward) and
runs one attention call over the whole prefill: eager (matmul + additive mask + softmax), sdpa with the
dense boolean mask, and flex_attention with a BlockMask (compiled; its block mask built per call too).
Mask construction alone is a separate line. One thread on CPU, as the other benchmarks. The same kernel with
the causal mask given as a dense mask separates the mask's cost from the kernel's (is_causal lets the CPU
kernel skip the blocks above the diagonal).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import interleaved  # noqa: E402

from mashvlm import TokenType, dst_attention_mask, dst_block_mask  # noqa: E402


def paper_layout(batch: int, text_before: int = 35, text_after: int = 65, frames: int = 16, spatial: int = 576):
    temporal = 3 * frames - 1
    row = (
        [TokenType.TEXT] * text_before
        + [TokenType.TEMPORAL] * temporal
        + [TokenType.SPATIAL] * spatial
        + [TokenType.TEXT] * text_after
    )
    return torch.tensor([row] * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing rounds (minimum taken)")
    parser.add_argument("--no-flex", action="store_true", help="skip flex_attention (compiles on first call)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    device = torch.device(args.device)
    types = paper_layout(args.batch).to(device)
    batch, seq = types.shape
    q, k, v = (torch.randn(batch, args.heads, seq, args.head_dim, device=device) for _ in range(3))
    scale = args.head_dim**-0.5

    def causal_sdpa():
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    causal_mask = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()

    def causal_dense_sdpa():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask)

    def dense_sdpa():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=dst_attention_mask(types))

    def eager():
        allowed = dst_attention_mask(types)
        additive = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, torch.finfo(torch.float32).min)
        weights = torch.softmax(q @ k.transpose(-1, -2) * scale + additive, dim=-1)
        return weights @ v

    contenders = {
        "sdpa, plain causal (baseline, is_causal=True)": causal_sdpa,
        "sdpa, plain causal as a dense bool mask": causal_dense_sdpa,
        "eager, DST additive mask": eager,
        "sdpa, DST dense bool mask": dense_sdpa,
    }
    reference = eager()  # the same outputs before timing anything
    assert torch.allclose(dense_sdpa(), reference, atol=1e-5), "sdpa and eager disagree"
    if not args.no_flex:
        from torch.nn.attention.flex_attention import flex_attention

        compiled = torch.compile(flex_attention)

        def flex():
            return compiled(q, k, v, block_mask=dst_block_mask(types), scale=scale)

        with torch.no_grad():  # flex on CPU runs only without autograd
            assert torch.allclose(flex(), reference, atol=1e-4), "flex and eager disagree"
        contenders["flex_attention, DST BlockMask (compiled)"] = flex
    contenders["(building the dense DST mask alone)"] = lambda: dst_attention_mask(types)
    if not args.no_flex:
        contenders["(building the BlockMask alone)"] = lambda: dst_block_mask(types)

    with torch.no_grad():
        times = interleaved(contenders, rounds=args.rounds)
    base = times["sdpa, plain causal (baseline, is_causal=True)"]

    print(
        f"DST-attention prefill incl. mask construction, B={batch}, S={seq} (35 text + 47 temporal + 576 spatial "
        f"+ 65 text), heads={args.heads}, head_dim={args.head_dim}, float32, {device.type}"
    )
    dense = dst_attention_mask(types)[0, 0]
    print(f"The DST mask allows {dense.sum() / causal_mask.sum():.2f}x the query-key pairs of the causal one (spatial "
          "tokens attend all 576 spatial tokens): the least extra work any kernel must do.")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread, {platform.processor() or platform.machine()}")
    print()
    print(f"| {'backend':<46} | {'ms':>8} | {'x causal sdpa':>13} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 15}|")
    for name, seconds in times.items():
        print(f"| {name:<46} | {seconds * 1e3:8.2f} | {seconds / base:13.2f} |")


if __name__ == "__main__":
    main()
