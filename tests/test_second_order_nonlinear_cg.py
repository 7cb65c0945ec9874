"""Nonlinear CG: reproduces linear CG on a quadratic with an exact line search; minimizes Rosenbrock."""

import pytest
import torch

import math

from optlab.curvature import cg
from optlab.optim.line_search import cubic_minimizer, strong_wolfe
from optlab.optim.nonlinear_cg import (NonlinearCG, ScaledCG, conjugate_direction, fletcher_reeves_beta,
                                      polak_ribiere_beta, scg_scale_update, scg_scaled_curvature)

DT = torch.float64


def closure_for(opt, w, f):
    """torch's closure, as for torch.optim.LBFGS."""
    def closure():
        opt.zero_grad()
        loss = f(w)
        loss.backward()
        return loss
    return closure


# ---------------------------------------------------------------- the line search, a function of one variable
def counted(f, df):
    calls = []

    def phi(t):
        calls.append(t)
        return f(t), df(t)
    return phi, calls


@pytest.mark.parametrize("t0", [1e-3, 0.5, 1.0, 30.0])
def test_strong_wolfe_conditions_hold_at_the_returned_step(t0):
    f = lambda t: math.exp(-t) + 0.5 * t ** 2 - 2 * t  # noqa: E731  convex, minimum near t = 2.12
    df = lambda t: -math.exp(-t) + t - 2  # noqa: E731
    c1, c2 = 1e-4, 0.1
    phi, calls = counted(f, df)
    res = strong_wolfe(phi, f(0.0), df(0.0), t0, c1=c1, c2=c2, max_iter=25)
    assert res.reason == "wolfe" and res.iterations == len(calls) and res.value == f(res.t)
    assert f(res.t) <= f(0.0) + c1 * res.t * df(0.0)          # sufficient decrease
    assert abs(df(res.t)) <= c2 * abs(df(0.0))                # curvature (strong Wolfe)


def test_strong_wolfe_with_a_tiny_c2_is_an_exact_line_search_on_a_quadratic():
    a, b = 3.0, -7.5  # phi(t) = a t^2 / 2 + b t, minimum at t = 2.5
    res = strong_wolfe(lambda t: (0.5 * a * t * t + b * t, a * t + b), 0.0, b, 0.1, c1=1e-10, c2=1e-9, max_iter=50)
    assert res.t == pytest.approx(2.5, rel=1e-9)


def test_strong_wolfe_without_decrease_returns_zero_within_its_budget():
    """A slope that lies (phi'(0) < 0 but phi only grows): no step is accepted, and max_iter caps the work."""
    phi, calls = counted(lambda t: t, lambda t: 1.0)
    res = strong_wolfe(phi, 0.0, -1.0, 1.0, c1=1e-4, c2=0.1, max_iter=7)
    assert (res.t, res.value, res.reason) == (0.0, 0.0, "max_iter") and len(calls) == 7
    nan = strong_wolfe(lambda t: (float("nan"), float("nan")), 0.0, -1.0, 1.0, max_iter=5)
    assert nan.t == 0.0  # non-finite losses are never accepted


@pytest.mark.parametrize("kwargs, match", [
    (dict(dphi0=1.0), "dphi0=1.0; expected a number < 0"), (dict(t=0.0), "t=0.0"),
    (dict(c1=0.5, c2=0.4), "c2=0.4"), (dict(max_iter=0), "max_iter=0")])
def test_strong_wolfe_refuses_bad_arguments_by_name(kwargs, match):
    args = {**dict(phi=lambda t: (t, 1.0), phi0=0.0, dphi0=-1.0, t=1.0), **kwargs}
    with pytest.raises(ValueError, match=f"strong_wolfe: invalid {match}"):
        strong_wolfe(**args)


def test_cubic_minimizer_interpolates_and_safeguards():
    # exact for a cubic's minimizer: f = t^3 - 3t on [0, 2] has its minimum at t = 1
    f, df = (lambda t: t ** 3 - 3 * t), (lambda t: 3 * t ** 2 - 3)
    assert cubic_minimizer((0.0, f(0.0), df(0.0)), (2.0, f(2.0), df(2.0))) == pytest.approx(1.0)
    # kept inside the middle 80% of the bracket, and the midpoint for a non-finite end
    assert cubic_minimizer((0.0, 0.0, -1.0), (1.0, -100.0, -50.0)) == pytest.approx(0.9)
    assert cubic_minimizer((0.0, 0.0, -1.0), (4.0, float("inf"), 1.0)) == 2.0


@pytest.mark.parametrize("beta", ["fletcher-reeves", "polak-ribiere"])
def test_reproduces_linear_cg_iterates_on_a_quadratic(beta):
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=DT))
    A = Q @ torch.diag(torch.logspace(0, 2, 8, dtype=DT)) @ Q.T
    b = torch.randn(8, generator=g, dtype=DT)
    linear = []
    cg(A, b, max_iter=8, callback=lambda k, x, r: linear.append(x))
    w = torch.nn.Parameter(torch.zeros(8, dtype=DT))
    opt = NonlinearCG([w], beta=beta, c1=1e-10, c2=1e-9)  # a (nearly) exact line search
    closure = closure_for(opt, w, lambda w: 0.5 * w @ A @ w - b @ w)
    for x_k in linear:
        opt.step(closure)
        assert torch.linalg.vector_norm(w.detach() - x_k) <= 1e-7 * torch.linalg.vector_norm(x_k)
    torch.testing.assert_close(w.detach(), torch.linalg.solve(A, b), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("beta, iterations", [("polak-ribiere", 100), ("fletcher-reeves", 100)])
def test_minimizes_rosenbrock(beta, iterations):
    w = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=DT))
    opt = NonlinearCG([w], beta=beta)
    closure = closure_for(opt, w, lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2)
    losses = [float(opt.step(closure)) for _ in range(iterations)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # the line search only accepts decreases
    torch.testing.assert_close(w.detach(), torch.ones(2, dtype=DT), rtol=1e-5, atol=1e-5)


def test_beta_formulas_and_restarts():
    g0 = torch.tensor([1.0, 2.0], dtype=DT)
    g1 = torch.tensor([0.5, -1.0], dtype=DT)
    d0 = -g0
    assert float(fletcher_reeves_beta(g1, g0)) == pytest.approx(1.25 / 5)
    assert float(polak_ribiere_beta(g1, g0)) == pytest.approx(max(0.0, (0.5 * -0.5 + -1.0 * -3.0) / 5))
    assert float(polak_ribiere_beta(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]))) == 0.0  # PR+ clips -0.25
    torch.testing.assert_close(conjugate_direction(g1, g0, d0, beta="fletcher-reeves"), -g1 + 0.25 * d0)
    torch.testing.assert_close(conjugate_direction(g1, g0, d0, beta="fletcher-reeves", restart=True), -g1)
    torch.testing.assert_close(conjugate_direction(g1, None, None, beta="polak-ribiere"), -g1)
    # a non-descent combination falls back to steepest descent
    torch.testing.assert_close(conjugate_direction(g1, g0, 100 * g1, beta="fletcher-reeves"), -g1)


def test_periodic_restart_is_applied():
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0, 1.0], dtype=DT))
    opt = NonlinearCG([w], restart=1)  # every iteration a restart: steepest descent with line search
    closure = closure_for(opt, w, lambda w: (w ** 2 * torch.tensor([1.0, 10.0, 100.0], dtype=DT)).sum())
    opt.step(closure)
    g = w.grad.clone()
    before = w.detach().clone()
    opt.step(closure)
    step = w.detach() - before
    cos = (step @ -g) / (step.norm() * g.norm())
    assert cos > 1 - 1e-12


def test_scaled_cg_solves_a_quadratic_without_line_search():
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=DT))
    A = Q @ torch.diag(torch.logspace(0, 2, 10, dtype=DT)) @ Q.T
    b = torch.randn(10, generator=g, dtype=DT)
    w = torch.nn.Parameter(torch.zeros(10, dtype=DT))
    opt = ScaledCG([w])
    closure = closure_for(opt, w, lambda w: 0.5 * w @ A @ w - b @ w)
    for _ in range(30):  # 3n iterations: the finite-difference curvature costs a little exactness
        opt.step(closure)
    x = torch.linalg.solve(A, b)
    assert torch.linalg.vector_norm(w.detach() - x) <= 1e-6 * torch.linalg.vector_norm(x)


def test_scaled_cg_minimizes_rosenbrock_and_never_increases_the_loss():
    w = torch.nn.Parameter(torch.tensor([-1.2, 1.0], dtype=DT))
    opt = ScaledCG([w])
    closure = closure_for(opt, w, lambda w: (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2)
    losses = [float(opt.step(closure)) for _ in range(600)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # failed iterations stay put (Delta < 0)
    torch.testing.assert_close(w.detach(), torch.ones(2, dtype=DT), rtol=1e-6, atol=1e-6)


def test_scaled_cg_lands_on_the_minimum_without_dividing_by_zero():
    """At the minimum p.r can be so small that (p.r)^2 underflows; the comparison parameter avoids squaring it."""
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=DT))
    opt = ScaledCG([w])
    closure = closure_for(opt, w, lambda w: 0.5 * (w[0] ** 2 + 10 * w[1] ** 2))
    for _ in range(30):
        opt.step(closure)
    assert float(w.detach().abs().max()) < 1e-12 and opt.state[w]["restarts"] >= 1


def test_scg_scaled_curvature_makes_the_curvature_positive():
    assert scg_scaled_curvature(2.0, 0.5, 1.0) == (2.5, 0.5)  # positive: unchanged lambda
    delta, lam = scg_scaled_curvature(-3.0, 0.5, 2.0)         # negative along p: Moller's step 4
    assert lam == 2 * (0.5 - (-3.0 + 1.0) / 2.0) and delta == -(-3.0 + 1.0) + 0.5 * 2.0 and delta > 0


def test_scg_scale_update():
    assert scg_scale_update(1.0, 0.9, 5.0, 2.0) == 0.25               # good agreement: lambda / 4
    assert scg_scale_update(1.0, 0.5, 5.0, 2.0) == 1.0                # in between: unchanged
    assert scg_scale_update(1.0, 0.1, 5.0, 2.0) == 1.0 + 5.0 * 0.9 / 2.0  # poor: raised
