"""Side-by-side timing for the benchmarks: the contenders run in alternating rounds in one process, so a slower
or busier stretch of a shared machine hits them all alike; each gets the minimum over rounds of its per-call
mean (the least-disturbed estimate), and ratios are taken between those.

Time is the process's CPU time (the benchmarks run torch on one thread), not wall time: on a machine shared
with other jobs, wall time also counts the stretches the process spends waiting for a core."""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int = 7, min_round_s: float = 0.2) -> dict:
    """Seconds per call of each contender: ``{name: min over rounds of the mean per call in a round}``."""
    calls = {}
    for name, fn in contenders.items():  # warm-up, and how many calls fill a round
        fn()
        start = time.process_time()
        fn()
        calls[name] = max(1, int(min_round_s / max(time.process_time() - start, 1e-9)))
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.process_time()
            for _ in range(calls[name]):
                fn()
            best[name] = min(best[name], (time.process_time() - start) / calls[name])
    return best
