"""Unit tests of optlab.experiments.normalization (lecture 07's experiments)."""

import numpy as np
import pytest
import torch

from optlab.experiments.normalization import (LRGrid, bn_mlp, diagonal_prong, lr_grid, normalized_stats,
                                             preactivations, saturated_fraction)
from optlab.nn import BatchNorm1d, batch_norm
from optlab.problems import Digits


@pytest.mark.parametrize("placement, affine, kinds", [
    ("none", True, ["Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]),
    ("before", True, ["Linear", "BatchNorm1d", "Sigmoid", "Linear", "BatchNorm1d", "Sigmoid", "Linear"]),
    ("after", False, ["Linear", "Sigmoid", "BatchNorm1d", "Linear", "Sigmoid", "BatchNorm1d", "Linear"]),
])
def test_bn_mlp_layouts(placement, affine, kinds):
    net = bn_mlp((64, 8, 8, 10), placement=placement, affine=affine)
    assert [type(m).__name__ for m in net] == kinds
    bns = [m for m in net if isinstance(m, BatchNorm1d)]
    assert all((m.weight is not None) == affine for m in bns)
    # the linear layers start from the same weights whatever the placement
    ref = bn_mlp((64, 8, 8, 10), placement="none")
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(lin, [m for m in ref if isinstance(m, torch.nn.Linear)]))


def test_bn_mlp_rejects_bad_input():
    with pytest.raises(ValueError, match="placement"):
        bn_mlp(placement="inside")
    with pytest.raises(ValueError, match="activation"):
        bn_mlp(activation="swish")
    with pytest.raises(TypeError, match="affine"):
        bn_mlp(affine=1)


def test_lr_grid_measures():
    grid = LRGrid(np.array([0.1, 1.0, 10.0]), np.array([0, 10, 20]),
                  np.array([[2.0, 1.0, 0.5], [2.0, 0.1, 0.05], [2.0, np.inf, np.inf]]), np.array([False, False, True]))
    assert grid.steps_to(0.6).tolist() == [20.0, 10.0, np.inf]
    assert grid.best(0.6) == (1.0, 10.0)
    assert grid.max_usable_lr(0.6) == 1.0
    assert np.isnan(grid.max_usable_lr(0.01))


def test_lr_grid_runs_and_is_deterministic():
    d = Digits(n=200, dtype=torch.float32)
    make = lambda: bn_mlp((64, 8, 10), activation="tanh", placement="before")
    a = lr_grid(make, d, [0.5, 1e4], steps=20, every=10)
    b = lr_grid(make, d, [0.5, 1e4], steps=20, every=10)
    assert a.losses.shape == (2, 3) and a.checkpoints.tolist() == [0, 10, 20]
    assert np.array_equal(a.losses, b.losses)
    assert a.losses[0, -1] < a.losses[0, 0]
    assert not a.diverged[0] and (a.diverged[1] or a.losses[1, -1] > a.losses[0, -1])
    with pytest.raises(ValueError, match="lrs"):
        lr_grid(make, d, [], steps=10)
    with pytest.raises(ValueError, match="every"):
        lr_grid(make, d, [0.1], steps=10, every=20)


def test_preactivations_and_saturation():
    net = bn_mlp((64, 8, 8, 10), placement="none")
    X = torch.rand(30, 64)
    z = preactivations(net, X)
    assert len(z) == 2 and z[0].shape == (30, 8)
    assert torch.allclose(z[0], net[0](X))
    assert saturated_fraction(torch.tensor([-5.0, -1.0, 0.0, 4.5])) == 0.5
    with pytest.raises(ValueError, match="threshold"):
        saturated_fraction(torch.zeros(3), threshold=0.0)


def test_normalized_stats_and_diagonal_prong():
    h = 5.0 + 2.0 * torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m, v = normalized_stats(h, (0,))
    assert m > 4 and v > 1
    y = diagonal_prong(h, eps=1e-5)
    assert torch.allclose(y, batch_norm(h, eps=1e-5), atol=1e-12)
    assert max(normalized_stats(diagonal_prong(h, eps=0.0), (0,))) < 1e-12
    with pytest.raises(TypeError, match="h"):
        diagonal_prong(torch.zeros(3))
