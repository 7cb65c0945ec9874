"""Unit tests of optlab.experiments.curvature_measures (lecture 05's measurements), on cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from optlab.experiments.curvature_measures import (fd_hvp_errors, finite_difference_power, flop_count,
                                                   relative_change, snapshot)

X = torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
T = torch.zeros(2, 1, dtype=torch.float64)
half_sse = lambda out, t: 0.5 * ((out - t) ** 2).sum()  # H = X'X = diag(1, 9) for a linear unit without bias


def linear():
    return nn.Linear(2, 1, bias=False).double()


def test_flop_count_counts_matrix_products():
    a, b = torch.ones(5, 7, dtype=torch.float64), torch.ones(7, 3, dtype=torch.float64)
    assert flop_count(lambda: a @ b) == 2 * 5 * 7 * 3
    assert flop_count(lambda: a + 1) == 0
    with pytest.raises(ValueError, match="fn"):
        flop_count(3)


def test_fd_hvp_errors_exact_on_a_quadratic_and_grow_with_the_step_elsewhere():
    # on a quadratic the forward difference is exact up to rounding, whatever the step
    errors = fd_hvp_errors(linear(), half_sse, (X, T), torch.tensor([1.0, 1.0], dtype=torch.float64), [1e-1, 1e-3])
    assert np.all(errors < 1e-12)
    net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)).double()
    errors = fd_hvp_errors(net, half_sse, (X, torch.ones(2, 1, dtype=torch.float64)), torch.ones(13, dtype=torch.float64),
                           [1e-2, 1e-4])
    assert errors[0] > 10 * errors[1] > 0
    with pytest.raises(ValueError, match="alphas"):
        fd_hvp_errors(net, half_sse, (X, T), torch.ones(13, dtype=torch.float64), [])
    with pytest.raises(TypeError, match="v"):
        fd_hvp_errors(net, half_sse, (X, T), [1.0] * 13, [1e-3])


def test_finite_difference_power_finds_the_largest_eigenvalue():
    history = finite_difference_power(linear(), half_sse, (X, T), 30, seed=1)
    assert history.shape == (30,)
    assert history[-1] == pytest.approx(9.0, rel=1e-6)
    assert abs(history[1] - 9) > abs(history[-1] - 9)  # it converges, from further away
    with pytest.raises(ValueError, match="num_iter"):
        finite_difference_power(linear(), half_sse, (X, T), 0)


def test_relative_change_per_layer():
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1)).double()
    before = snapshot(net)
    with torch.no_grad():
        net[2].weight.mul_(3.0)
        net[2].bias.mul_(3.0)
    moved = relative_change(before, net)
    assert moved["0"] == 0.0 and moved["2"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="before"):
        relative_change({"0": before["0"]}, net)
