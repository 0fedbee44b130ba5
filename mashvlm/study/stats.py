"""Statistics over the study's seeds: mean and sample standard deviation, and the paired t-test.

One implementation, used by the study's summary and by the rho sweep. The variants of a study share the
world, the tower, the language model and, per seed, the data order, so their per-seed results are paired.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

__all__ = ["paired_difference", "seed_stats", "student_t_two_sided_p"]


def seed_stats(values: list[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation of the values that are not None (std 0 for one value)."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "n": len(values), "values": values}


def student_t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with an integer number of degrees of freedom ``df`` >= 1.

    The closed form of the t distribution for integer ``df`` (Abramowitz & Stegun 26.7.3-4), with
    theta = atan(|t| / sqrt(df)): A = P(|T| < |t|) is a finite series in cos(theta); p = 1 - A.
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    term = total = 1.0
    if df % 2:  # odd: A = 2/pi * (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        if df == 1:
            return 1.0 - 2.0 * theta / math.pi
        for k in range(1, (df - 3) // 2 + 1):
            term *= 2 * k / (2 * k + 1) * cos2
            total += term
        return max(0.0, 1.0 - 2.0 / math.pi * (theta + sin * math.sqrt(cos2) * total))
    for k in range(1, (df - 2) // 2 + 1):  # even: A = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
        term *= (2 * k - 1) / (2 * k) * cos2
        total += term
    return max(0.0, 1.0 - sin * total)


def paired_difference(reference: Mapping[int, float | None], other: Mapping[int, float | None]) -> dict[str, Any]:
    """Paired t-test of ``other - reference`` over the seeds both have a value for.

    Returns the seeds, the per-seed differences, their mean and sample std, t = mean / (std / sqrt(n)) with
    n - 1 degrees of freedom and the two-sided p. ``t`` and ``p`` are None with fewer than two seeds, or when
    every difference is the same (std 0: the test is undefined).
    """
    seeds = sorted(s for s in reference if s in other and reference[s] is not None and other[s] is not None)
    diffs = [other[s] - reference[s] for s in seeds]  # type: ignore[operator]
    out: dict[str, Any] = {"seeds": seeds, "differences": diffs, "n": len(diffs), "mean": None, "std": None,
                           "t": None, "df": None, "p": None}
    if not diffs:
        return out
    out["mean"] = statistics.fmean(diffs)
    out["std"] = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    if len(diffs) > 1 and out["std"] > 0:
        out["t"] = out["mean"] / (out["std"] / math.sqrt(len(diffs)))
        out["df"] = len(diffs) - 1
        out["p"] = student_t_two_sided_p(out["t"], out["df"])
    return out
