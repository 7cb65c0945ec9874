"""Nonlinear CG: reproduces linear CG on a quadratic with an exact line search; minimizes Rosenbrock."""

import pytest
import torch

from optlab.curvature import cg
from optlab.optim.nonlinear_cg import (NonlinearCG, ScaledCG, conjugate_direction, fletcher_reeves_beta,
                                      polak_ribiere_beta, scg_scale_update)

DT = torch.float64


def closure_for(opt, w, f):
    def closure():
        opt.zero_grad()
        loss = f(w)
        loss.backward()
        return loss.detach()
    return closure


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


def test_scg_scale_update():
    assert scg_scale_update(1.0, 0.9, 5.0, 2.0) == 0.25               # good agreement: lambda / 4
    assert scg_scale_update(1.0, 0.5, 5.0, 2.0) == 1.0                # in between: unchanged
    assert scg_scale_update(1.0, 0.1, 5.0, 2.0) == 1.0 + 5.0 * 0.9 / 2.0  # poor: raised
