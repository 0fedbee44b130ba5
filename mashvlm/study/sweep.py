"""The bias sweep (beyond the paper): the study at several training co-occurrences rho.

The paper's claim predicts that as the action-scene bias of the training data grows, MASH-VLM's
unusual-context action accuracy falls more slowly than the baseline's. Each rho gets its own world (the
world depends on rho) and a complete study in ``<out>/rho<rho>/`` (``run_study``, resumable as always);
the sweep then collects unusual-context action, scene-only action and the motion control per rho into one
table and one chart.

The tower and the language model follow the study's policy: each study pre-trains its own, with the
same steps and seeds. Neither sees the action-scene pairing: the tower is trained on single frames with
scene / person / position targets, and the language model's texts pair actions and scenes uniformly. So
they depend on rho only through which training videos' frames the tower sees and the text the
tokenizer is trained on, not through the bias; their held-out metrics are kept per rho.

Layout of ``out_dir``::

    rho<rho>/                  one study per rho (world, tower, language model, runs, study_* files)
    sweep_results.json, sweep_table.txt, sweep.png
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mashvlm.errors import UsageError
from mashvlm.files import save_figure_atomic, write_json_atomic, write_text_atomic
from mashvlm.study.config import VARIANTS, StudyConfig
from mashvlm.study.report import paired_cell
from mashvlm.study.run import Log, run_study

__all__ = ["DEFAULT_RHOS", "SWEEP_METRICS", "format_sweep", "plot_sweep", "rho_dir", "run_rho_sweep"]

DEFAULT_RHOS: tuple[float, ...] = (0.5, 0.7, 0.9, 0.97)
# (section, key, title): what the sweep follows against rho.
SWEEP_METRICS: tuple[tuple[str, str, str], ...] = (
    ("binary", "unusual_action", "unusual-context action"),
    ("binary", "scene_only_action", "scene-only action"),
    ("motion", "action", "motion-control action"),
)
_MAIN = ("baseline", "mash")


def rho_dir(out_dir: Path, rho: float) -> Path:
    return out_dir / f"rho{rho:g}"


def _check_rhos(rhos: Sequence[float]) -> list[float]:
    rhos = [float(r) for r in rhos]
    bad = [r for r in rhos if not 0 <= r <= 1]
    if bad:
        raise UsageError(f"--sweep-rho: rho must lie in [0, 1], got {bad}")
    if len(set(rhos)) != len(rhos):
        raise UsageError(f"--sweep-rho: each rho once, got {rhos}")
    if not rhos:
        raise UsageError("--sweep-rho: need at least one rho")
    return sorted(rhos)


def run_rho_sweep(out_dir: str | os.PathLike, config: StudyConfig, rhos: Sequence[float] = DEFAULT_RHOS, *,
                  progress: bool = True, log: Log = print, jobs: int = 1) -> dict[str, Any]:
    """One study per rho (``config`` with its world's rho replaced); returns (and writes) the sweep's results.
    ``jobs``: runs trained at once within each rho's study (``run_study``)."""
    rhos = _check_rhos(rhos)
    missing = [v for v in _MAIN if v not in config.variants]
    if missing:
        raise UsageError(f"the rho sweep compares baseline and MASH-VLM; variants {missing} are not in the study")
    out = Path(out_dir)
    per_rho = []
    for rho in rhos:
        log(f"--- rho = {rho:g} ---")
        study = dataclasses.replace(config, world={**config.world, "rho": rho})
        results = run_study(rho_dir(out, rho), study, progress=progress, log=log, jobs=jobs)
        per_rho.append({
            "rho": rho,
            "dir": str(rho_dir(out, rho)),
            "world": results["world"],
            "summary": results["summary"],
            "paired": results["paired"],
            "vision_tower": results["vision_tower"],
            "language_model": results["language_model"],
        })
    sweep = {"rhos": rhos, "config": config.to_dict(), "metrics": [list(m) for m in SWEEP_METRICS],
             "per_rho": per_rho}
    write_json_atomic(out / "sweep_results.json", sweep)
    write_text_atomic(out / "sweep_table.txt", format_sweep(sweep))
    plot_sweep(sweep, out / "sweep.png")
    return sweep


def _mean_std(stat: dict[str, Any]) -> str:
    if stat["mean"] is None:
        return "n/a"
    return f"{stat['mean']:.1f} ± {stat['std']:.1f}" if stat["n"] > 1 else f"{stat['mean']:.1f}"


def format_sweep(sweep: dict[str, Any]) -> str:
    """Per rho and metric: mean ± std over seeds for both models, and the paired MASH-VLM - baseline test."""
    labels = [VARIANTS[v][0] for v in _MAIN]
    width = max(len(label) for label in labels) + 2
    head = f"{'rho':6}{'metric':24}" + "".join(f"{label:>{width}}" for label in labels)
    lines = [head + "   MASH-VLM - baseline (paired over seeds)"]
    for entry in sweep["per_rho"]:
        for i, (section, key, title) in enumerate(SWEEP_METRICS):
            cells = "".join(f"{_mean_std(entry['summary'][v][section][key]):>{width}}" for v in _MAIN)
            paired = entry["paired"].get("mash", {}).get(section, {}).get(key)
            rho = f"{entry['rho']:g}" if i == 0 else ""
            lines.append(f"{rho:6}{title:24}{cells}   {paired_cell(paired) if paired else 'n/a'}")
    seeds = sorted({s for e in sweep["per_rho"] for v in _MAIN for s in e["summary"][v]["seeds"]})
    lines += [
        "",
        "Dual accuracy (%), mean ± sample std over seeds; paired: mean ± std of the per-seed differences,",
        "paired t with n - 1 degrees of freedom, two-sided p. Motion control: actions in neutral scenes never",
        "paired with them in training. rho: training share of an action's videos (outside neutral scenes)",
        f"in its typical scene. seeds: {seeds}",
    ]
    return "\n".join(lines) + "\n"


def plot_sweep(sweep: dict[str, Any], path: Path) -> None:
    """Three panels (the sweep's metrics) against rho, both models with ± std error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rhos = [e["rho"] for e in sweep["per_rho"]]
    fig, axes = plt.subplots(1, len(SWEEP_METRICS), figsize=(4.2 * len(SWEEP_METRICS), 3.6), sharey=True)
    for ax, (section, key, title) in zip(axes, SWEEP_METRICS, strict=True):
        for k, variant in enumerate(_MAIN):
            stats = [e["summary"][variant][section][key] for e in sweep["per_rho"]]
            points = [(r + (k - 0.5) * 0.006, s["mean"], s["std"]) for r, s in zip(rhos, stats, strict=True)
                      if s["mean"] is not None]  # a small x offset keeps the error bars apart
            if points:
                xs, ys, es = zip(*points, strict=True)
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=VARIANTS[variant][0])
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training co-occurrence rho")
        ax.set_xticks(rhos, [f"{r:g}" for r in rhos])
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("dual accuracy (%)")
    axes[0].legend(fontsize=8, loc="best")
    seeds = sorted({s for e in sweep["per_rho"] for v in _MAIN for s in e["summary"][v]["seeds"]})
    fig.suptitle(f"Bias sweep (seeds {seeds}; mean ± std)", fontsize=10)
    fig.tight_layout()
    save_figure_atomic(fig, path, dpi=130)
    plt.close(fig)

