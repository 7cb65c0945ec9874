"""Unit tests of optlab.experiments.second_order (lecture 06's speed-up measurements)."""

from __future__ import annotations

import math

import pytest
import torch

from optlab.experiments.second_order import epochs_to_target, sdlm_factory
from optlab.optim import SDLM
from optlab.problems import load_digits_data, mlp

D = load_digits_data(n=200)


def sgd(lr):
    return lambda m: torch.optim.SGD(m.parameters(), lr=lr)


def test_epochs_to_target_counts_quarter_epochs_and_reports_never():
    kw = dict(target=0.5, epochs=10, batch=16)
    fast = epochs_to_target(sgd(0.5), mlp((64, 10), seed=0), D.X_train, D.y_train, **kw)
    slow = epochs_to_target(sgd(0.1), mlp((64, 10), seed=0), D.X_train, D.y_train, **kw)
    assert fast == pytest.approx(5.6) and slow > fast
    assert epochs_to_target(sgd(0.01), mlp((64, 10), seed=0), D.X_train, D.y_train, **kw) == math.inf
    assert epochs_to_target(sgd(1e4), mlp((64, 30, 10), seed=0), D.X_train, D.y_train, **kw) == math.inf  # diverges


def test_epochs_to_target_rejects_bad_arguments():
    with pytest.raises(ValueError, match="target"):
        epochs_to_target(sgd(0.1), mlp((64, 10), seed=0), D.X_train, D.y_train, target=0, epochs=1, batch=16)
    with pytest.raises(ValueError, match="batch"):
        epochs_to_target(sgd(0.1), mlp((64, 10), seed=0), D.X_train, D.y_train, target=0.1, epochs=1, batch=10 ** 6)


def test_sdlm_factory_builds_the_slides_sdlm():
    net = mlp((64, 10), seed=0)
    opt = sdlm_factory(lr=0.01, damping=1e-3, gamma=0.2, estimate_steps=12, estimate_every=10)(net)
    assert isinstance(opt, SDLM)
    group = opt.param_groups[0]
    assert (group["lr"], group["damping"], group["gamma"]) == (0.01, 1e-3, 0.2)
