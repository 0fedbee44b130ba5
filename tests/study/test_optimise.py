"""The study's pre-training loop: it minimises, depends only on its seed, and refuses bad settings."""

from __future__ import annotations

import pytest
import torch

from mashvlm.errors import UsageError
from mashvlm.study.optimise import TrainingDiverged, fit


def _regression(seed: int, steps: int = 60, lr: float = 0.1):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    model = torch.nn.Linear(3, 1)
    drawn = []

    def batch_loss(idx):
        drawn.append(idx.tolist())
        return ((model(x[idx])[:, 0] - y[idx]) ** 2).mean(), {}

    initial = batch_loss(torch.arange(64))[0].item()
    drawn.clear()
    final = fit(model.parameters(), batch_loss, num_examples=64, steps=steps, batch_size=16, lr=lr, seed=seed,
                progress=False)
    return initial, final, drawn, model.weight.detach().clone()


def test_fit_minimises_and_its_batches_follow_the_seed():
    initial, final, drawn, weight = _regression(seed=1)
    assert final < 0.05 * initial
    assert len(drawn) == 60 and all(len(b) == 16 and min(b) >= 0 and max(b) < 64 for b in drawn)
    again = _regression(seed=1)
    assert again[2] == drawn and torch.equal(again[3], weight)
    assert _regression(seed=2)[2] != drawn


def test_fit_refuses_empty_training_and_reports_divergence():
    param = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(UsageError, match="steps and batch size"):
        fit([param], lambda idx: (param.sum(), {}), num_examples=4, steps=0, batch_size=2, lr=0.1, progress=False)
    with pytest.raises(TrainingDiverged, match="lower its learning rate"):
        fit([param], lambda idx: (param.sum() * float("nan"), {}), num_examples=4, steps=2, batch_size=2,
            lr=0.1, progress=False)
