"""Gauss-Newton and Levenberg-Marquardt on torch's closure, one registry row each, against an independent
dense computation: J from ``torch.autograd.functional.jacobian``, G = J' H_out J, direction = solve(...).

The dense references here are shared with the Hessian-free and natural-gradient tests."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
from torch import nn
from torch.func import functional_call

from optlab.optim import GaussNewton, LevenbergMarquardt, gauss_newton_direction, lm_damping_update

DT = torch.float64


# ---------------------------------------------------------------- independent dense references
def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def outputs_of(model, x) -> Callable:
    """theta (flat) -> model(x) with those parameters."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta):
        d, i = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            d[n] = theta[i:i + k].view(s)
            i += k
        return functional_call(model, d, (x,))

    return f


def dense_jacobian(model, x) -> torch.Tensor:
    """J, (number of outputs) x P, from torch.autograd.functional.jacobian."""
    theta = flat(model)
    return torch.autograd.functional.jacobian(outputs_of(model, x), theta).reshape(-1, theta.numel())


def dense_gradient(model, loss_fn, x, y) -> torch.Tensor:
    f = outputs_of(model, x)
    return torch.autograd.functional.jacobian(lambda th: loss_fn(f(th), y), flat(model))


def dense_ggn(model, loss_fn, x, y) -> torch.Tensor:
    """G = J' H_out J with H_out the loss's Hessian in output space (torch.autograd.functional.hessian)."""
    J = dense_jacobian(model, x)
    with torch.no_grad():
        out = model(x)
    H = torch.autograd.functional.hessian(lambda o: loss_fn(o.view_as(out), y), out.reshape(-1))
    return J.T @ H @ J


def closure_for(opt, model, loss_fn, x, y):
    """torch's standard closure."""
    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    return closure


def take_step(opt, model, loss_fn, x, y) -> torch.Tensor:
    """theta_1 - theta_0 of one step."""
    before = flat(model)
    opt.step(closure_for(opt, model, loss_fn, x, y))
    return flat(model) - before


# ---------------------------------------------------------------- problems
def regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(10, 3, generator=g, dtype=DT)
    y = torch.sin(x @ torch.randn(3, 2, generator=g, dtype=DT))
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double(), x, y


def classification(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 3, generator=g, dtype=DT)
    y = torch.randint(0, 3, (12,), generator=g)
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double(), x, y


PROBLEMS = {"regression": regression, "classification": classification}


# ---------------------------------------------------------------- the registry
def _slides_gn(lr, mu_slides):
    """The slides' step -lr (J'J + mu I)^-1 J'r for r = N - D."""
    def reference(model, loss_fn, x, y):
        J = dense_jacobian(model, x)
        with torch.no_grad():
            r = (model(x) - y).reshape(-1)
        return lr * gauss_newton_direction(J, r, mu_slides)
    return reference


def _ggn_step(lr, mu):
    """-lr (G + mu I)^-1 g with G = J' H_out J."""
    def reference(model, loss_fn, x, y):
        G, g = dense_ggn(model, loss_fn, x, y), dense_gradient(model, loss_fn, x, y)
        return -lr * torch.linalg.solve(G + mu * torch.eye(len(g), dtype=DT), g)
    return reference


def _lm_step(mu):
    """LM's step -(G + mu I)^-1 g, kept only if the loss decreases."""
    def reference(model, loss_fn, x, y):
        d = _ggn_step(1.0, mu)(model, loss_fn, x, y)
        E0 = float(loss_fn(outputs_of(model, x)(flat(model)), y))
        return d if float(loss_fn(outputs_of(model, x)(flat(model) + d), y)) < E0 else torch.zeros_like(d)
    return reference


@dataclass(frozen=True)
class Row:
    """One optimizer configuration and the dense reference its first step must equal."""

    name: str
    make: Callable  # (params, model, loss_fn) -> optimizer
    loss_fn: nn.Module
    problem: str
    reference: Callable  # (model, loss_fn, x, y) -> theta_1 - theta_0
    invalid: tuple = ()  # (kwargs, message fragment) the constructor must refuse


SUM, MEAN = nn.MSELoss(reduction="sum"), nn.MSELoss()
M = 10 * 2  # the residual entries of the regression problem

ROWS = [
    # MSELoss(reduction="sum") = 2 x the slides' 1/2 ||r||^2: G = 2 J'J, g = 2 J'r, the slides' damping is mu / 2
    Row("GaussNewton-mse-sum", lambda ps, m, l: GaussNewton(ps, lr=0.7, damping=0.1, model=m, loss_fn=l), SUM,
        "regression", _slides_gn(0.7, 0.05),
        invalid=((dict(lr=-0.5), "lr=-0.5"), (dict(solver="qr"), "solver='qr'"), (dict(damping=-1.0), "damping=-1.0"),
                 (dict(cg_max_iter=0), "cg_max_iter=0"), (dict(cg_rtol=float("nan")), "cg_rtol=nan"))),
    # MSELoss() = (2 / M) x the slides' loss: the slides' damping is M mu / 2
    Row("GaussNewton-mse-mean-cg",
        lambda ps, m, l: GaussNewton(ps, damping=0.1, solver="cg", cg_rtol=1e-13, model=m, loss_fn=l), MEAN,
        "regression", _slides_gn(1.0, M * 0.1 / 2)),
    Row("GaussNewton-cross-entropy", lambda ps, m, l: GaussNewton(ps, lr=0.5, damping=0.01, model=m, loss_fn=l),
        nn.CrossEntropyLoss(), "classification", _ggn_step(0.5, 0.01)),
    Row("LevenbergMarquardt", lambda ps, m, l: LevenbergMarquardt(ps, damping=1.0, model=m, loss_fn=l), SUM,
        "regression", _lm_step(1.0),
        invalid=((dict(damping=0.0), "damping=0.0"), (dict(drop=1.5), "drop=1.5"), (dict(boost=0.5), "boost=0.5"),
                 (dict(solver="lu"), "solver='lu'"))),
    Row("LevenbergMarquardt-cg",
        lambda ps, m, l: LevenbergMarquardt(ps, damping=0.1, solver="cg", cg_rtol=1e-13, model=m, loss_fn=l),
        nn.CrossEntropyLoss(), "classification", _lm_step(0.1)),
]
IDS = [r.name for r in ROWS]


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_one_step_equals_the_dense_reference(row):
    model, x, y = PROBLEMS[row.problem]()
    expected = row.reference(model, row.loss_fn, x, y)
    g0 = dense_gradient(model, row.loss_fn, x, y)
    opt = row.make(model.parameters(), model, row.loss_fn)
    assert opt.needs == "model"
    step = take_step(opt, model, row.loss_fn, x, y)
    assert step.abs().max() > 0
    torch.testing.assert_close(step, expected, rtol=1e-7, atol=1e-10)
    # p.grad holds the gradient at the point the step started from, as after loss.backward()
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), g0)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_a_few_steps_lower_the_loss_and_state_dict_round_trips(row):
    model, x, y = PROBLEMS[row.problem]()
    opt = row.make(model.parameters(), model, row.loss_fn)
    with torch.no_grad():
        before = float(row.loss_fn(model(x), y))
    for _ in range(3):
        opt.step(closure_for(opt, model, row.loss_fn, x, y))
    with torch.no_grad():
        assert float(row.loss_fn(model(x), y)) < before
    state = opt.state_dict()
    assert state["state"][0]["step"] == 3 and "cg_max_iter" in state["param_groups"][0]
    twin, _, _ = PROBLEMS[row.problem](seed=1)
    twin.load_state_dict(model.state_dict())
    opt_b = row.make(twin.parameters(), twin, row.loss_fn)
    opt_b.load_state_dict(copy.deepcopy(state))
    for _ in range(2):
        opt.step(closure_for(opt, model, row.loss_fn, x, y))
        opt_b.step(closure_for(opt_b, twin, row.loss_fn, x, y))
    torch.testing.assert_close(flat(twin), flat(model), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("row", [r for r in ROWS if r.invalid], ids=[r.name for r in ROWS if r.invalid])
def test_invalid_hyper_parameters_name_the_value(row):
    model, _, _ = PROBLEMS[row.problem]()
    cls = type(row.make(model.parameters(), model, row.loss_fn))
    for kwargs, match in row.invalid:
        with pytest.raises(ValueError, match=match):
            cls(model.parameters(), model=model, loss_fn=row.loss_fn, **kwargs)


def test_the_closure_contract_errors():
    model, x, y = regression()
    opt = GaussNewton(model.parameters(), model=model, loss_fn=SUM)
    with pytest.raises(TypeError, match="torch's closure"):
        opt.step()
    with pytest.raises(ValueError, match="called model 2 times"):
        opt.step(lambda: SUM(model(x), y) + SUM(model(x), y))
    with pytest.raises(TypeError, match="loss_fn=.*must be the torch.nn.Module loss"):
        GaussNewton(model.parameters(), model=model, loss_fn=lambda a, b: ((a - b) ** 2).sum())
    with pytest.raises(ValueError, match=r"invalid param_groups\[0\]\['params'\]\[0\]=<tensor of shape \(2,\), not in "
                                         r"model>; expected a parameter of model="):
        GaussNewton([nn.Parameter(torch.zeros(2, dtype=DT))], model=model, loss_fn=SUM)


# ---------------------------------------------------------------- Gauss-Newton specifics
def test_param_groups_scale_and_damp_their_own_coordinates():
    model, x, y = regression(2)
    first, rest = list(model[0].parameters()), list(model[2].parameters())
    n1, n2 = sum(p.numel() for p in first), sum(p.numel() for p in rest)
    lr = torch.cat([torch.full((n1,), 0.5, dtype=DT), torch.full((n2,), 1.0, dtype=DT)])
    mu = torch.cat([torch.full((n1,), 0.2, dtype=DT), torch.full((n2,), 0.01, dtype=DT)])
    G, g = dense_ggn(model, SUM, x, y), dense_gradient(model, SUM, x, y)
    expected = -lr * torch.linalg.solve(G + torch.diag(mu), g)
    opt = GaussNewton([{"params": first, "lr": 0.5, "damping": 0.2}, {"params": rest, "damping": 0.01}],
                      model=model, loss_fn=SUM)
    torch.testing.assert_close(take_step(opt, model, SUM, x, y), expected, rtol=1e-8, atol=1e-12)
    opt.param_groups[1]["solver"] = "cg"
    with pytest.raises(ValueError, match=r"invalid param_groups\[1\]\['solver'\]='cg'; expected 'dense'"):
        opt.step(closure_for(opt, model, SUM, x, y))
    with pytest.raises(ValueError, match="expected exactly 1"):
        LevenbergMarquardt([{"params": first}, {"params": rest}], model=model, loss_fn=SUM)


def test_undamped_gauss_newton_solves_linear_least_squares_in_one_step():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 5, generator=g, dtype=DT), torch.randn(20, 1, generator=g, dtype=DT)
    for solver in ("dense", "cg"):
        model = nn.Linear(5, 1, bias=False).double()
        opt = GaussNewton(model.parameters(), solver=solver, model=model, loss_fn=MEAN)
        opt.step(closure_for(opt, model, MEAN, x, y))
        torch.testing.assert_close(model.weight.detach().T, torch.linalg.lstsq(x, y).solution)


def test_gauss_newton_drops_the_second_order_term():
    """On a nonlinear model GN's matrix is J'J, not the Hessian: the step differs from Newton's."""
    model, x, y = regression(3)
    H = torch.autograd.functional.hessian(lambda th: SUM(outputs_of(model, x)(th), y), flat(model))
    G, g = dense_ggn(model, SUM, x, y), dense_gradient(model, SUM, x, y)
    assert not torch.allclose(G, H)
    step = take_step(GaussNewton(model.parameters(), damping=0.1, model=model, loss_fn=SUM), model, SUM, x, y)
    torch.testing.assert_close(step, -torch.linalg.solve(G + 0.1 * torch.eye(len(g), dtype=DT), g))


def test_lm_direction_moves_between_gradient_descent_and_gauss_newton():
    g = torch.Generator().manual_seed(2)
    J, r = torch.randn(10, 4, generator=g, dtype=DT), torch.randn(10, generator=g, dtype=DT)
    grad = J.T @ r
    d_gn = torch.linalg.lstsq(J, -r.unsqueeze(1)).solution.squeeze(1)
    torch.testing.assert_close(gauss_newton_direction(J, r, 1e-10), d_gn, rtol=1e-6, atol=1e-8)  # mu -> 0
    torch.testing.assert_close(gauss_newton_direction(J, r, 1e8) * 1e8, -grad, rtol=1e-5, atol=1e-8)  # mu -> inf
    lengths = [gauss_newton_direction(J, r, m).norm() for m in [1e-3, 1e-1, 1e1, 1e3]]
    assert all(a > b for a, b in zip(lengths, lengths[1:]))


def test_lm_damping_rule():
    assert lm_damping_update(1.0, 0.9) == pytest.approx(1 / 3)
    assert lm_damping_update(1.0, 0.1) == 2.0
    assert lm_damping_update(1.0, 0.5) == 1.0


class Exponential(nn.Module):
    """N(t) = a exp(b t), the parameters theta = (a, b); the input is t."""

    def __init__(self, a, b):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([a, b], dtype=DT))

    def forward(self, t):
        return self.theta[0] * torch.exp(self.theta[1] * t)


def test_lm_fits_a_nonlinear_curve_and_adapts_the_damping():
    t = torch.linspace(0, 1, 30, dtype=DT)
    y = 2.0 * torch.exp(-1.5 * t)
    model = Exponential(0.5, 1.0)
    opt = LevenbergMarquardt(model.parameters(), damping=10.0, model=model, loss_fn=SUM)
    losses, mus = [], []
    for _ in range(40):
        losses.append(float(opt.step(closure_for(opt, model, SUM, t, y))))
        mus.append(opt.state[model.theta]["damping"])
    torch.testing.assert_close(model.theta.detach(), torch.tensor([2.0, -1.5], dtype=DT), rtol=1e-7, atol=1e-7)
    assert all(b <= a + 1e-15 for a, b in zip(losses, losses[1:]))  # rejected steps never increase the loss
    assert min(mus) < 10.0 * (1 / 3) ** 5
    assert opt.state_dict()["state"][0]["damping"] == mus[-1]


class Arctan(nn.Module):
    def __init__(self, theta):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([theta], dtype=DT))

    def forward(self, x):
        return torch.atan(self.theta).expand(x.shape[0])


def test_lm_rejects_a_bad_step_and_restores_the_parameters_exactly():
    """r = atan(theta) from theta = 3: the undamped Gauss-Newton step -r/r' = -12.5 overshoots to a larger
    residual; LM undoes it and raises mu."""
    model = Arctan(3.0)
    x, y = torch.zeros(1, dtype=DT), torch.zeros(1, dtype=DT)
    opt = LevenbergMarquardt(model.parameters(), damping=1e-8, model=model, loss_fn=SUM)
    before = model.theta.detach().clone()
    opt.step(closure_for(opt, model, SUM, x, y))
    assert opt.state[model.theta]["rho"] < 0
    assert torch.equal(model.theta.detach(), before)
    assert opt.state[model.theta]["damping"] == pytest.approx(2e-8)
