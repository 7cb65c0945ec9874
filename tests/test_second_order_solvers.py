"""Linear CG, Newton, Gauss-Newton and Levenberg-Marquardt: their documented claims, in float64."""

import pytest
import torch

from optlab.curvature import cg
from optlab.optim.gauss_newton import GaussNewton, LevenbergMarquardt, gauss_newton_direction, lm_damping_update
from optlab.optim.newton import Newton, newton_direction

DT = torch.float64


def spd(n, seed, cond=100.0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
    lam = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=DT)
    return Q @ torch.diag(lam) @ Q.T


# ---------------------------------------------------------------- linear CG
@pytest.mark.parametrize("n, seed, cond", [(2, 0, 1e3), (10, 1, 100.0), (30, 2, 10.0), (50, 3, 10.0)])
def test_cg_solves_spd_within_n_iterations(n, seed, cond):
    """Exact in n iterations up to rounding; rounding breaks conjugacy for large n * condition number."""
    A = spd(n, seed, cond)
    b = torch.randn(n, generator=torch.Generator().manual_seed(seed + 10), dtype=DT)
    res = cg(A, b, rtol=1e-12, max_iter=n)
    x_ref = torch.linalg.solve(A, b)
    assert res.iterations <= n
    assert torch.linalg.vector_norm(res.x - x_ref) <= 1e-8 * torch.linalg.vector_norm(x_ref)
    assert torch.linalg.vector_norm(A @ res.x - b) <= 1e-8 * torch.linalg.vector_norm(b)


def test_cg_with_k_distinct_eigenvalues_ends_in_k_iterations():
    """CG's exactness: with 3 distinct eigenvalues it needs 3 iterations, whatever n."""
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=DT))
    lam = torch.tensor([1.0, 5.0, 20.0] * 4, dtype=DT)
    A = Q @ torch.diag(lam) @ Q.T
    res = cg(A, torch.randn(12, generator=g, dtype=DT), rtol=1e-10)
    assert res.converged and res.iterations == 3


def test_cg_accepts_callable_and_matmul_objects_and_warm_start():
    A = spd(8, 4)
    b = torch.ones(8, dtype=DT)

    class Op:
        def __matmul__(self, v):
            return A @ v

    x1 = cg(lambda v: A @ v, b).x
    x2 = cg(Op(), b).x
    x_ref = torch.linalg.solve(A, b)
    torch.testing.assert_close(x1, x_ref)
    torch.testing.assert_close(x2, x_ref)
    cold = cg(A, b, rtol=1e-6)
    warm = cg(A, b, x0=x_ref + 1e-9, rtol=1e-6)  # a warm start near the solution needs fewer iterations
    assert warm.converged and warm.iterations < cold.iterations
    seen = []
    cg(A, b, callback=lambda k, x, r: seen.append((k, float(0.5 * x @ A @ x - b @ x))))
    qs = [q for _, q in seen]
    assert [k for k, _ in seen] == list(range(1, len(seen) + 1))
    assert all(q2 <= q1 + 1e-12 for q1, q2 in zip(qs, qs[1:]))  # the quadratic decreases monotonically


def test_cg_rejects_indefinite_and_bad_arguments():
    with pytest.raises(ValueError, match="positive-definite"):
        cg(torch.diag(torch.tensor([1.0, -1.0], dtype=DT)), torch.tensor([1.0, 1.0], dtype=DT))
    with pytest.raises(ValueError, match="max_iter=-1"):
        cg(torch.eye(2), torch.ones(2), max_iter=-1)
    with pytest.raises(ValueError, match="rtol=-1"):
        cg(torch.eye(2), torch.ones(2), rtol=-1.0)
    with pytest.raises(ValueError, match="shape"):
        cg(torch.eye(3), torch.ones(2))
    with pytest.raises(ValueError, match="1-D"):
        cg(torch.eye(2), torch.ones(2, 1))


# ---------------------------------------------------------------- Newton
def quadratic(n=6, seed=0):
    A = spd(n, seed, cond=1e3)
    b = torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=DT)
    w = torch.nn.Parameter(torch.randn(n, generator=torch.Generator().manual_seed(seed + 2), dtype=DT))
    return A, b, w, (lambda: 0.5 * w @ A @ w - b @ w)


def torch_closure(opt, f):
    """torch's closure convention (as for torch.optim.LBFGS): zero_grad, the loss, backward, return it."""
    def closure():
        opt.zero_grad()
        loss = f()
        loss.backward()
        return loss
    return closure


@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_newton_converges_in_one_step_on_a_quadratic(solver):
    A, b, w, f = quadratic()
    opt = Newton([w], solver=solver)
    opt.step(torch_closure(opt, f))
    torch.testing.assert_close(w.detach(), torch.linalg.solve(A, b), rtol=1e-9, atol=1e-9)
    if solver == "cg":  # CG's result counters are kept in the state
        assert opt.state[w]["cg_converged"] and 1 <= opt.state[w]["cg_iterations"] <= 60


def test_damped_newton_step_equals_the_equation_and_param_groups_scale_parts():
    A, b, w, f = quadratic(4)
    w0 = w.detach().clone()
    opt = Newton([w], lr=0.5, damping=2.0)
    opt.step(torch_closure(opt, f))
    expected = w0 - 0.5 * torch.linalg.solve(A + 2.0 * torch.eye(4, dtype=DT), A @ w0 - b)
    torch.testing.assert_close(w.detach(), expected)
    torch.testing.assert_close(w.grad, A @ w0 - b)  # p.grad: the gradient where the step started
    # two groups: the same joint solve, each part scaled by its own lr
    u = torch.nn.Parameter(w0[:2].clone()); v = torch.nn.Parameter(w0[2:].clone())
    opt = Newton([{"params": [u], "lr": 1.0}, {"params": [v], "lr": 0.0}])
    opt.step(torch_closure(opt, lambda: 0.5 * torch.cat([u, v]) @ A @ torch.cat([u, v]) - b @ torch.cat([u, v])))
    full = torch.linalg.solve(A, b)
    step = full - w0  # the pure Newton step on all four coordinates
    torch.testing.assert_close(u.detach(), w0[:2] + step[:2])
    torch.testing.assert_close(v.detach(), w0[2:])


def test_newton_direction_kernel():
    H = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=DT)
    g = torch.tensor([1.0, -1.0], dtype=DT)
    d = newton_direction(g, H, 0.5)
    torch.testing.assert_close((H + 0.5 * torch.eye(2, dtype=DT)) @ d, -g)


def test_newton_takes_torch_closure_and_names_a_missing_one():
    """torch's closure (with backward) and a closure that only returns the loss give the same step: the
    loss's graph is kept either way (optlab.optim.closure.evaluate)."""
    A, b, w, f = quadratic(3)
    w2 = torch.nn.Parameter(w.detach().clone())
    opt = Newton([w], damping=0.5)
    loss = opt.step(torch_closure(opt, f))
    Newton([w2], damping=0.5).step(lambda: 0.5 * w2 @ A @ w2 - b @ w2)
    assert torch.equal(w.detach(), w2.detach()) and loss.grad_fn is None
    with pytest.raises(TypeError, match="Newton: step\\(\\) needs torch's closure"):
        Newton([w]).step()


def test_newton_cg_refuses_an_indefinite_system():
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=DT))
    opt = Newton([w], solver="cg")
    with pytest.raises(ValueError, match="positive-definite"):
        opt.step(torch_closure(opt, lambda: w[0] ** 2 - w[1] ** 2))


# ---------------------------------------------------------------- Gauss-Newton and LM (model= and loss_fn=)


class HalfSquaredError(torch.nn.Module):
    r""":math:`\tfrac12\|r\|^2` with residuals :math:`r = N(\theta) - D`: the slides' least-squares loss."""

    def forward(self, outputs, targets):
        return 0.5 * ((outputs - targets) ** 2).sum()


def least_squares(model, X, y):
    """Gauss-Newton's problem as a model: ``loss_fn(model(X), y) = 1/2 |model(X) - y|^2``."""
    loss_fn = HalfSquaredError()
    return loss_fn, (lambda opt: torch_closure(opt, lambda: loss_fn(model(X), y)))


def linear_least_squares(seed=0, m=20, n=5):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(m, n, generator=g, dtype=DT)
    y = torch.randn(m, generator=g, dtype=DT)
    w = torch.nn.Parameter(torch.randn(n, generator=g, dtype=DT))
    return X, y, w


class Linear(torch.nn.Module):
    def __init__(self, w, activation=None):
        super().__init__()
        self.w, self.activation = w, activation

    def forward(self, X):
        z = X @ self.w
        return z if self.activation is None else self.activation(z)


@pytest.mark.parametrize("solver", ["dense", "cg"])
def test_gauss_newton_equals_newton_on_linear_least_squares(solver):
    X, y, w = linear_least_squares()
    w2 = torch.nn.Parameter(w.detach().clone())
    model = Linear(w)
    loss_fn, closure = least_squares(model, X, y)
    opt = GaussNewton([w], model=model, loss_fn=loss_fn, solver=solver, lr=0.7, damping=0.1)
    opt.step(closure(opt))
    newton = Newton([w2], lr=0.7, damping=0.1)
    newton.step(torch_closure(newton, lambda: 0.5 * ((X @ w2 - y) ** 2).sum()))
    torch.testing.assert_close(w.detach(), w2.detach(), rtol=1e-9, atol=1e-10)
    opt = GaussNewton([w], model=model, loss_fn=loss_fn, solver=solver)  # undamped: the least-squares solution
    opt.step(closure(opt))
    torch.testing.assert_close(w.detach(), torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1))


def test_gauss_newton_drops_the_second_order_term_on_a_nonlinear_model():
    """On r = tanh(X w) - y, GN's matrix is J^T J (checked against a dense Jacobian), not the Hessian."""
    X, y, w = linear_least_squares(1, m=8, n=3)
    w0 = w.detach().clone()
    J = torch.autograd.functional.jacobian(lambda v: torch.tanh(X @ v) - y, w0)
    r0 = torch.tanh(X @ w0) - y
    model = Linear(w, torch.tanh)
    loss_fn, closure = least_squares(model, X, y)
    opt = GaussNewton([w], model=model, loss_fn=loss_fn, damping=0.01)
    opt.step(closure(opt))
    torch.testing.assert_close(w.detach() - w0, -torch.linalg.solve(J.T @ J + 0.01 * torch.eye(3, dtype=DT), J.T @ r0))


def test_lm_direction_moves_between_gradient_descent_and_gauss_newton():
    X, y, w = linear_least_squares(2, m=10, n=4)
    J, r = X, X @ w.detach() - y
    g = J.T @ r
    d_gn = torch.linalg.lstsq(J, -r.unsqueeze(1)).solution.squeeze(1)
    # mu -> 0: the Gauss-Newton step
    torch.testing.assert_close(gauss_newton_direction(J, r, 1e-10), d_gn, rtol=1e-6, atol=1e-8)
    # mu -> infinity: gradient descent with learning rate 1/mu
    mu = 1e8
    d = gauss_newton_direction(J, r, mu)
    cos = (d @ -g) / (d.norm() * g.norm())
    assert cos > 1 - 1e-12
    torch.testing.assert_close(d * mu, -g, rtol=1e-5, atol=1e-8)
    # in between, the step length shrinks monotonically as mu grows
    lengths = [gauss_newton_direction(J, r, m).norm() for m in [1e-3, 1e-1, 1e1, 1e3]]
    assert all(a > b for a, b in zip(lengths, lengths[1:]))


def test_lm_damping_rule():
    assert lm_damping_update(1.0, 0.9) == pytest.approx(1 / 3)
    assert lm_damping_update(1.0, 0.1) == 2.0
    assert lm_damping_update(1.0, 0.5) == 1.0


class Exponential(torch.nn.Module):
    """y = a exp(b t) with theta = (a, b)."""

    def __init__(self, theta):
        super().__init__()
        self.theta = theta

    def forward(self, t):
        return self.theta[0] * torch.exp(self.theta[1] * t)


def test_lm_fits_a_nonlinear_curve_and_never_increases_the_loss():
    """Fit y = a exp(b t): LM from a poor start reaches the generating parameters; rejected steps stay put."""
    t = torch.linspace(0, 1, 30, dtype=DT)
    y = 2.0 * torch.exp(-1.5 * t)
    theta = torch.nn.Parameter(torch.tensor([0.5, 1.0], dtype=DT))
    model = Exponential(theta)
    loss_fn, closure = least_squares(model, t, y)
    opt = LevenbergMarquardt([theta], model=model, loss_fn=loss_fn, damping=10.0)
    losses = [float(opt.step(closure(opt))) for _ in range(40)]
    torch.testing.assert_close(theta.detach(), torch.tensor([2.0, -1.5], dtype=DT), rtol=1e-7, atol=1e-7)
    assert all(b <= a + 1e-15 for a, b in zip(losses, losses[1:]))  # rejected steps never increase the loss


def test_lm_rejects_a_bad_step():
    """With a tiny damping on a strongly nonlinear residual the first trial overshoots: LM must undo it (or,
    if it accepted the step, the loss went down)."""
    theta = torch.nn.Parameter(torch.tensor([3.0], dtype=DT))

    class Sine(torch.nn.Module):
        def forward(self, x):
            return torch.sin(theta * x)

    model = Sine()
    model.theta = theta
    loss_fn, closure = least_squares(model, torch.ones(1, dtype=DT), torch.ones(1, dtype=DT))
    opt = LevenbergMarquardt([theta], model=model, loss_fn=loss_fn, damping=1e-8)
    before = theta.detach().clone()
    opt.step(closure(opt))
    assert torch.equal(theta.detach(), before) or (torch.sin(theta[0]) - 1) ** 2 < (torch.sin(before[0]) - 1) ** 2
