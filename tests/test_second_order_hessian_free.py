"""Hessian-free: Martens' CG (a callback of the one CG) on explicit matrices, the CG solution of a step
against the dense -(G + lambda I)^-1 g, and the loss of a digits autoencoder falls."""

import copy
import math

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from optlab.curvature import cg, quadratic_value
from optlab.optim import HessianFree
from optlab.optim.hessian_free import armijo_backtracking, cg_backtracking, martens_cg, martens_stop
from test_second_order_gauss_newton import (classification, closure_for, dense_ggn, dense_gradient, flat, outputs_of,
                                            regression)

DT = torch.float64


def spd(n, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
    return Q @ torch.diag(torch.logspace(0, spread, n, dtype=DT)) @ Q.T, torch.randn(n, generator=g, dtype=DT)


# ---------------------------------------------------------------- Martens' CG on explicit matrices
def test_martens_cg_minimizes_the_quadratic_model_and_saves_its_values():
    B, grad = spd(6)
    run = martens_cg(lambda v: B @ v, grad, torch.zeros(6, dtype=DT), max_iter=60, epsilon=1e-12)
    torch.testing.assert_close(run.x, -torch.linalg.solve(B, grad), rtol=1e-6, atol=1e-8)
    for x, q in run.saved:  # each saved q is the quadratic model's value at its iterate
        assert q == pytest.approx(float(grad @ x + 0.5 * x @ B @ x), rel=1e-9, abs=1e-12)
    qs = [q for _, q in run.saved]
    assert all(b <= a + 1e-12 for a, b in zip(qs, qs[1:]))
    assert run.saved[-1][0] is run.x


def test_martens_cg_saves_at_ceil_powers_of_1_3_and_stops_by_the_relative_progress_rule():
    B, grad = spd(300, seed=1, spread=5)
    run = martens_cg(lambda v: B @ v, grad, torch.zeros(300, dtype=DT), max_iter=300)
    assert run.reason == "callback" and run.iterations < 300
    # replay plain CG: the rule holds at the stopping iteration and at no earlier one
    q = [math.nan]
    cg(B, -grad, max_iter=run.iterations, rtol=0.0,
       callback=lambda i, x, r: q.append(quadratic_value(x, -grad, r)))  # None: never stops
    assert martens_stop(q, run.iterations, 5e-4)
    assert not any(martens_stop(q, i, 5e-4) for i in range(1, run.iterations))
    saved_iters = sorted({math.ceil(1.3 ** j) for j in range(40)} & set(range(1, run.iterations + 1)))
    assert len(run.saved) == len(saved_iters) + (run.iterations not in saved_iters)
    for (x, qx), i in zip(run.saved, saved_iters):
        assert qx == pytest.approx(q[i], rel=1e-12)


def test_martens_cg_warm_start_and_negative_curvature():
    B, grad = spd(5, seed=2)
    x0 = -torch.linalg.solve(B, grad) + 1e-3
    run = martens_cg(lambda v: B @ v, grad, x0, max_iter=50, epsilon=1e-12)
    torch.testing.assert_close(run.x, -torch.linalg.solve(B, grad), rtol=1e-6, atol=1e-8)
    indefinite = torch.diag(torch.tensor([1.0, -1.0], dtype=DT))
    run = martens_cg(lambda v: indefinite @ v, torch.tensor([1.0, 1.0], dtype=DT), torch.zeros(2, dtype=DT),
                     max_iter=10, negative_curvature="stop")
    assert run.reason == "negative curvature" and run.iterations == 0
    assert run.saved == [(run.x, 0.0)]


def test_cg_backtracking_and_armijo():
    saved = [(torch.tensor([1.0]), -1.0), (torch.tensor([2.0]), -2.0), (torch.tensor([3.0]), -2.5)]
    calls = []
    x, q, E = cg_backtracking(saved, lambda x: calls.append(float(x)) or float((x - 2) ** 2))
    assert (float(x), q, E, calls) == (2.0, -2.0, 0.0, [3.0, 2.0, 1.0])
    assert cg_backtracking(saved, lambda x: -float(x))[0] is saved[-1][0]  # the last iterate is best: one call
    assert armijo_backtracking(lambda a: a, f0=0.0, slope=1.0, alpha=1.0) == (0.0, 0.0)  # no decrease: rejected


# ---------------------------------------------------------------- one step against the dense reference
ROWS = {
    # name: (problem, loss_fn, options) -- damping 1 and small problems: the full CG step is accepted
    "gauss-newton-mse": (regression, nn.MSELoss(), dict()),
    "gauss-newton-cross-entropy": (classification, nn.CrossEntropyLoss(), dict()),
    "hessian-cross-entropy": (classification, nn.CrossEntropyLoss(), dict(curvature="hessian")),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_one_step_solves_the_damped_system_of_the_dense_reference(name):
    problem, loss_fn, options = ROWS[name]
    model, x, y = problem()
    g = dense_gradient(model, loss_fn, x, y)
    if options.get("curvature") == "hessian":
        B = torch.autograd.functional.hessian(lambda th: loss_fn(outputs_of(model, x)(th), y), flat(model))
    else:
        B = dense_ggn(model, loss_fn, x, y)
    d_ref = -torch.linalg.solve(B + 1.0 * torch.eye(len(g), dtype=DT), g)
    opt = HessianFree(model.parameters(), damping=1.0, epsilon=1e-12, cg_max_iter=200, model=model, loss_fn=loss_fn,
                      **options)
    theta0 = flat(model)
    opt.step(closure_for(opt, model, loss_fn, x, y))
    state = opt.state[next(model.parameters())]
    torch.testing.assert_close(state["d"], d_ref, rtol=1e-6, atol=1e-9)
    assert state["alpha"] == 1.0  # the CG solution itself was taken
    torch.testing.assert_close(flat(model) - theta0, d_ref, rtol=1e-6, atol=1e-9)
    with torch.no_grad():
        assert state["loss"] == pytest.approx(float(loss_fn(model(x), y)), rel=1e-12)


def test_state_dict_round_trip_and_invalid_hyper_parameters():
    model, x, y = regression()
    loss_fn = nn.MSELoss()
    opt = HessianFree(model.parameters(), model=model, loss_fn=loss_fn, cg_max_iter=20)
    for _ in range(2):
        opt.step(closure_for(opt, model, loss_fn, x, y))
    state = opt.state_dict()
    assert {"damping", "d", "rho", "cg_iterations", "cg_reason", "step"} <= set(state["state"][0])
    twin, _, _ = regression(seed=1)
    twin.load_state_dict(model.state_dict())
    opt_b = HessianFree(twin.parameters(), model=twin, loss_fn=loss_fn, cg_max_iter=20)
    opt_b.load_state_dict(copy.deepcopy(state))
    for _ in range(2):
        opt.step(closure_for(opt, model, loss_fn, x, y))
        opt_b.step(closure_for(opt_b, twin, loss_fn, x, y))
    torch.testing.assert_close(flat(twin), flat(model), rtol=1e-12, atol=1e-12)
    for kwargs, match in [(dict(damping=-1.0), "damping=-1.0"), (dict(curvature="fisher"), "curvature='fisher'"),
                          (dict(cg_max_iter=0), "cg_max_iter=0"), (dict(warm_start=1.0), "warm_start=1.0"),
                          (dict(lr=0), "lr=0"), (dict(epsilon=0.0), "epsilon=0.0"), (dict(c1=1.0), "c1=1.0"),
                          (dict(shrink=1.0), "shrink=1.0"), (dict(min_alpha=-1.0), "min_alpha=-1.0")]:
        with pytest.raises(ValueError, match=match):
            HessianFree(model.parameters(), model=model, loss_fn=loss_fn, **kwargs)
    with pytest.raises(ValueError, match="parameter groups"):
        HessianFree([{"params": model[0].parameters()}, {"params": model[2].parameters()}], model=model,
                    loss_fn=loss_fn)


# ---------------------------------------------------------------- behaviour
class SigmoidSquaredError(nn.Module):
    """The autoencoder's loss on its logits z: mean over images of ||sigmoid(z) - x||^2 (not convex in z)."""

    def forward(self, z, x):
        return ((torch.sigmoid(z) - x) ** 2).sum(1).mean()


def test_hessian_free_decreases_the_loss_of_a_digits_autoencoder():
    X = torch.tensor(load_digits().data[:100] / 16.0, dtype=DT)
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 64)).double()
    loss_fn = SigmoidSquaredError()
    opt = HessianFree(enc.parameters(), damping=1.0, cg_max_iter=50, model=enc, loss_fn=loss_fn)
    closure = closure_for(opt, enc, loss_fn, X, X)
    losses = [float(opt.step(closure)) for _ in range(6)]
    with torch.no_grad():
        losses.append(float(loss_fn(enc(X), X)))
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.4 * losses[0]
    state = opt.state[next(enc.parameters())]
    assert state["damping"] < 1.0  # good reduction ratios lowered the damping
    assert 0 < state["cg_iterations"] <= 50


def test_hessian_free_with_the_exact_hessian_converges_on_logistic_regression():
    """With curvature="hessian", on (non-separable) logistic regression HF takes Newton-like steps to the optimum."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 3, generator=g, dtype=DT)
    y = (X @ torch.tensor([1.0, -2.0, 0.5], dtype=DT) + 0.5 * torch.randn(40, generator=g, dtype=DT) > 0).to(DT)
    model = nn.Sequential(nn.Linear(3, 1, bias=False), nn.Flatten(0)).double()
    nn.init.zeros_(model[0].weight)
    loss_fn = nn.BCEWithLogitsLoss()
    opt = HessianFree(model.parameters(), damping=1e-3, curvature="hessian", model=model, loss_fn=loss_fn)
    for _ in range(15):
        opt.step(closure_for(opt, model, loss_fn, X, y))
    assert dense_gradient(model, loss_fn, X, y).norm() < 1e-8
