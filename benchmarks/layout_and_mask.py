"""Before/after: the sequence layout and the DST mask at the paper's shape, vectorised against the per-token loop
they replaced (issue 15), as ratios measured in the same process.

Sequence: 35 text tokens, one 16-frame video (M = 47 temporal, N = 576 spatial tokens), 65 text tokens: S = 723.
Batch 8 is left-padded (row b shorter by 4b tokens), as generate() sees it.

    python benchmarks/layout_and_mask.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "core")]  # timing helper; the old loop, the slow reference

from mash_core_loop_layout import loop_dst_attention_mask, loop_harmonic_position_ids  # noqa: E402
from timing import interleaved  # noqa: E402

from mashvlm import TokenType, dst_attention_mask, harmonic_position_ids  # noqa: E402


def paper_layout(batch: int, text_before: int = 35, text_after: int = 65, frames: int = 16, spatial: int = 576):
    """``(token_types, attention_mask)`` ``[batch, 723]``; row b left-padded by 4 b tokens of its system prompt."""
    row = (
        [TokenType.TEXT] * text_before
        + [TokenType.TEMPORAL] * (3 * frames - 1)
        + [TokenType.SPATIAL] * spatial
        + [TokenType.TEXT] * text_after
    )
    types = torch.tensor([row] * batch)
    mask = torch.ones_like(types)
    for b in range(batch):
        mask[b, : 4 * b] = 0
    return types, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating timing rounds (minimum taken)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"Layout and DST mask, S=723; torch {torch.__version__}, {torch.get_num_threads()} thread, "
          f"{platform.processor() or platform.machine()}")
    print()
    print(f"| {'function':<24} | {'batch':>5} | {'loop ms':>8} | {'vectorised ms':>13} | {'old / new':>9} |")
    print(f"|{'-' * 26}|{'-' * 7}|{'-' * 10}|{'-' * 15}|{'-' * 11}|")
    for batch in (1, 8):
        types, mask = paper_layout(batch)
        for name, old, new in (
            ("harmonic_position_ids", loop_harmonic_position_ids, harmonic_position_ids),
            ("dst_attention_mask", loop_dst_attention_mask, dst_attention_mask),
        ):
            assert torch.equal(old(types, mask), new(types, mask)), name
            times = interleaved(
                {"loop": lambda old=old, t=types, m=mask: old(t, m), "vectorised": lambda new=new, t=types, m=mask: new(t, m)},
                rounds=args.rounds,
            )
            before, after = times["loop"], times["vectorised"]
            print(f"| {name:<24} | {batch:>5} | {before * 1e3:8.2f} | {after * 1e3:13.3f} | {before / after:9.1f} |")


if __name__ == "__main__":
    main()
