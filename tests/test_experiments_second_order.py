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


# --------------------------------------------------------------------------- lecture 06's other experiments


def test_sdlm_speedup_compares_the_bests_of_two_sweeps():
    from optlab.experiments.second_order import sdlm_speedup

    s = sdlm_speedup((64, 10), "tanh", D.X_train, D.y_train, sgd_lrs=[0.1, 0.5], sdlm_grid=[(0.01, 0.01), (1e-5, 0.01)],
                     target=0.5, epochs=10)
    assert s.best_sgd == 0.5 and s.sgd[0.1] > s.sgd[0.5]
    assert s.sdlm[1e-5, 0.01] == math.inf and s.best_sdlm == (0.01, 0.01)
    assert s.factor == pytest.approx(s.sgd[0.5] / s.sdlm[0.01, 0.01])


def test_steps_in_theta_units_against_the_closed_forms():
    from optlab.experiments.second_order import steps_in_theta_units

    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    A = torch.tensor([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    s = torch.tensor([2.0, 0.5, 10.0], dtype=torch.float64)
    steps = steps_in_theta_units(g, A, s, 0.1)
    assert torch.allclose(steps["Newton"], -torch.linalg.solve(A, g))
    assert torch.allclose(steps["gradient descent"], -0.1 * s ** 2 * g)
    assert torch.allclose(steps["RMSprop (first step)"], -0.1 * s * torch.sign(g))


def test_rescaled_logistic_runs_same_start_and_natural_gradient_invariance():
    from optlab.experiments.second_order import rescaled_logistic_runs
    from optlab.optim import NaturalGradient

    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 2, generator=g, dtype=torch.float64)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.5 * torch.randn(60, generator=g, dtype=torch.float64) > 0).double()
    scales = [torch.ones(2), torch.tensor([5.0, 0.2])]
    ng = rescaled_logistic_runs(lambda p, model, loss_fn: NaturalGradient(p, lr=1.0, damping=0.0, model=model,
                                                                          loss_fn=loss_fn), X, y, scales, steps=4)
    sgd = rescaled_logistic_runs(lambda p, model, loss_fn: torch.optim.SGD(p, lr=1.0), X, y, scales, steps=4)
    assert ng.shape == (2, 5) and ng[0, 0] == ng[1, 0] == sgd[0, 0]
    assert abs(ng[0] - ng[1]).max() < 1e-12 and ng[0, -1] < ng[0, 0]
    assert abs(sgd[0, -1] - sgd[1, -1]) > 1e-3


def test_autoencoder_and_reconstruction_loss():
    from optlab.experiments.second_order import autoencoder, reconstruction_loss

    net = autoencoder((64, 8, 64), seed=0)
    assert [type(m).__name__ for m in net] == ["Linear", "Tanh", "Linear"]
    x = D.X_train[:5]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(net(x), x, reduction="none").sum(1).mean()
    assert torch.allclose(reconstruction_loss(net, x), expected)


def test_train_autoencoder_prong_projections_keep_the_function_and_sgd_makes_none():
    from optlab.experiments.second_order import train_autoencoder

    X = D.X_train
    prong = train_autoencoder("prong", 0.05, X, sizes=(64, 16, 64), updates=60, every=20, T=20, n_samples=100)
    once = train_autoencoder("prong", 0.05, X, sizes=(64, 16, 64), updates=60, every=20, T=None, n_samples=100)
    sgd = train_autoencoder("sgd", 0.05, X, sizes=(64, 16, 64), updates=60, every=20)
    assert prong.losses.shape == (3,) and prong.reparametrizations == 3 and once.reparametrizations == 1
    assert 0 < prong.function_change < 1e-9 and sgd.reparametrizations == 0 and sgd.function_change == 0
    assert prong.updates_to(float(prong.losses[1]), 20) == 40.0 and prong.updates_to(0.0, 20) == math.inf
    assert prong.cpu_seconds > 0


def test_train_autoencoder_rejects_bad_arguments():
    from optlab.experiments.second_order import train_autoencoder

    with pytest.raises(ValueError, match="method"):
        train_autoencoder("adam", 0.1, D.X_train, updates=10, every=5)
    with pytest.raises(ValueError, match="T"):
        train_autoencoder("prong", 0.1, D.X_train, updates=10, every=5, T=0)
    with pytest.raises(ValueError, match="every"):
        train_autoencoder("sgd", 0.1, D.X_train, updates=10, every=20)
