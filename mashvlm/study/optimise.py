"""The optimisation loop of the study's two stand-in pre-trainings (vision tower, language model).

Both draw a batch of example indices uniformly with replacement from a seeded generator, take one AdamW
step under a one-cycle learning-rate schedule, and show the loss on a progress bar. Instruction tuning
itself uses transformers' Trainer (``mashvlm.training``); these pre-trainings are small enough that a
plain loop over in-memory examples is all they need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from mashvlm.errors import MashVlmError, UsageError

__all__ = ["TrainingDiverged", "fit"]

# One step's loss on the examples at the given indices, and what the progress bar shows beside it.
BatchLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class TrainingDiverged(MashVlmError, RuntimeError):
    """The loss became NaN or infinite; a lower learning rate is the usual fix."""


def fit(
    params: Iterable[torch.nn.Parameter],
    batch_loss: BatchLoss,
    *,
    num_examples: int,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float = 0.0,
    max_grad_norm: float | None = None,
    seed: int = 0,
    desc: str = "training",
    progress: bool = True,
) -> float:
    """Minimise ``batch_loss`` over ``steps`` batches of ``batch_size`` indices in ``[0, num_examples)``.

    AdamW with ``weight_decay``; one-cycle schedule peaking at ``lr`` after 10% of the steps; gradients
    clipped to ``max_grad_norm`` when given. The batches depend only on ``seed``. Returns the last step's
    loss; raises :class:`TrainingDiverged` if it is not finite.
    """
    from tqdm.auto import tqdm

    if steps < 1 or batch_size < 1:
        raise UsageError(f"{desc}: steps and batch size must be at least 1, got {steps} and {batch_size}")
    params = list(params)
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(optim, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for step in bar:
        idx = torch.randint(num_examples, (batch_size,), generator=gen)
        loss, shown = batch_loss(idx)
        optim.zero_grad()
        loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optim.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.2f}" for k, v in shown.items()}, refresh=False)
    final_loss = loss.item()
    if not math.isfinite(final_loss):
        raise TrainingDiverged(f"{desc} diverged (loss is not finite); lower its learning rate")
    return final_loss
