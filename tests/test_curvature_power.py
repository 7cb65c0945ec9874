"""Power method, deflation and the learning-rate recipes against ``torch.linalg.eigvalsh`` (float64)."""

import pytest
import torch

import optlab.curvature as oc
from test_curvature_cases import CASES, case, dense_hessian

DT = torch.float64


def _sym(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=DT))
    return Q @ torch.diag(torch.tensor(eigs, dtype=DT)) @ Q.T


# matrices with known spectra: (eigenvalues, top by magnitude, top algebraic)
MATRICES = {
    "psd": ([5.0, 2.0, 1.0, 0.1], 5.0, 5.0),
    "negative-on-top": ([-6.0, 3.0, 1.0, -0.5], -6.0, 3.0),
    "all-negative": ([-1.0, -2.0, -4.0], -4.0, -1.0),
}


@pytest.mark.parametrize("name", list(MATRICES))
def test_power_method_on_plain_matrices(name):
    eigs, top_mag, top_alg = MATRICES[name]
    A = _sym(eigs)
    r = oc.top_eigenvalue(A, tol=1e-12)
    assert r.value == pytest.approx(top_mag, rel=1e-6)
    torch.testing.assert_close(A @ r.vector, r.value * r.vector, rtol=0, atol=1e-5)
    assert r.iterations >= 2
    a = oc.top_eigenvalue(A, which="algebraic", tol=1e-12)
    assert a.value == pytest.approx(top_alg, rel=1e-6)
    # a 3x3 typed as nested lists works too
    assert oc.top_eigenvalue([[2.0, 0, 0], [0, -3.0, 0], [0, 0, 1.0]], tol=1e-12).value == pytest.approx(-3.0)


@pytest.mark.parametrize("name", list(CASES))
def test_power_method_on_network_hessians(name):
    model, loss_fn, data = case(name)
    H = dense_hessian(model, loss_fn, data)
    ev = torch.linalg.eigvalsh(H)
    op = oc.HessianOperator(model, loss_fn, data)  # the solvers keep one gradient graph per call
    mag = ev[ev.abs().argmax()]
    for method in (None, "power"):  # the default on an operator is Lanczos; the slides' method too
        r = oc.top_eigenvalue(op, tol=1e-12, max_iter=5000, method=method)
        assert r.value == pytest.approx(float(mag), rel=1e-6)
        a = oc.top_eigenvalue(op, which="algebraic", tol=1e-12, max_iter=5000, method=method)
        assert a.value == pytest.approx(float(ev[-1]), rel=1e-6)
        torch.testing.assert_close(H @ a.vector, a.value * a.vector, rtol=0, atol=1e-5 * float(ev.abs().max()))


def test_some_network_hessian_is_indefinite():
    # the registry really exercises negative eigenvalues
    model, loss_fn, data = case("mlp-tanh-mse")
    ev = torch.linalg.eigvalsh(dense_hessian(model, loss_fn, data))
    assert ev[0] < -1e-3 < 1e-3 < ev[-1]


def test_deflated_top_k():
    A = _sym([7.0, -5.0, 3.0, 1.0, 0.5], seed=3)
    r = oc.top_eigenvalues(A, 3, tol=1e-13, max_iter=10000)
    torch.testing.assert_close(r.values, torch.tensor([7.0, -5.0, 3.0], dtype=DT), rtol=1e-6, atol=0)
    torch.testing.assert_close(r.vectors.T @ r.vectors, torch.eye(3, dtype=DT), rtol=0, atol=1e-5)


@pytest.mark.parametrize("eigs", [[4.0, 1.0, 0.25], [10.0, 9.0, 0.5, 0.2]])
def test_gd_just_under_max_learning_rate_converges_and_just_over_diverges(eigs):
    A = _sym(eigs, seed=1)
    lr_max = oc.max_learning_rate(A, tol=1e-12)
    assert lr_max == pytest.approx(2 / max(eigs), rel=1e-6)
    assert oc.optimal_learning_rate(A, tol=1e-12) == pytest.approx(1 / max(eigs), rel=1e-6)

    def run(lr, steps=3000):
        theta = torch.ones(len(eigs), dtype=DT)
        for _ in range(steps):
            theta = theta - lr * (A @ theta)
        return float(theta.norm())

    assert run(0.98 * lr_max) < 1e-6
    assert run(1.02 * lr_max) > 1e6


def test_learning_rate_from_a_number_and_an_operator():
    assert oc.max_learning_rate(0.84) == pytest.approx(2.38, abs=0.01)  # the slides' example
    assert oc.optimal_learning_rate(0.5) == 2.0
    model, loss_fn, data = case("mlp-sigmoid-ce")
    ev = torch.linalg.eigvalsh(dense_hessian(model, loss_fn, data))
    op = oc.HessianOperator(model, loss_fn, data, cache_graph=True)
    assert oc.max_learning_rate(op, tol=1e-12, max_iter=5000) == pytest.approx(2 / float(ev[-1]), rel=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="not symmetric"):
        oc.top_eigenvalue(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        oc.top_eigenvalue(torch.ones(2, 3))
    with pytest.raises(ValueError, match="which"):
        oc.top_eigenvalue(torch.eye(2), which="largest")
    with pytest.raises(ValueError, match="max_iter"):
        oc.top_eigenvalue(torch.eye(2), max_iter=0)
    with pytest.raises(ValueError, match="lambda_max"):
        oc.max_learning_rate(-1.0)
    with pytest.raises(ValueError, match="lambda_max"):
        oc.optimal_learning_rate(-torch.eye(3))
    with pytest.raises(ValueError, match="k="):
        oc.top_eigenvalues(torch.eye(2), 3)
    with pytest.raises(TypeError):
        oc.top_eigenvalue("not a matrix")


@pytest.mark.parametrize("which", ["magnitude", "algebraic"])
def test_lanczos_variant_of_top_eigenvalue(which):
    A = _sym([-6.0, 3.0, 2.9, 1.0, -0.5, 0.2], seed=7)
    power = oc.top_eigenvalue(A, which=which, tol=1e-12, max_iter=20000)
    lz = oc.top_eigenvalue(A, which=which, tol=1e-12, method="lanczos")
    assert lz.value == pytest.approx(power.value, rel=1e-6)
    assert lz.value == pytest.approx(-6.0 if which == "magnitude" else 3.0, rel=1e-6)
    assert lz.iterations < power.iterations
    torch.testing.assert_close(A @ lz.vector, lz.value * lz.vector, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="method='arnoldi'.*None"):
        oc.top_eigenvalue(A, method="arnoldi")
    with pytest.raises(ValueError, match="tol"):
        oc.top_eigenvalue(A, method="lanczos", tol=-1.0)


def test_default_method_is_power_on_a_matrix_and_lanczos_on_an_operator():
    A = _sym([5.0, 4.5, 1.0, 0.3, -0.2], seed=11)
    default, power = oc.top_eigenvalue(A, tol=1e-10), oc.top_eigenvalue(A, tol=1e-10, method="power")
    assert (default.value, default.iterations) == (power.value, power.iterations)  # the slides' method, unchanged
    torch.testing.assert_close(default.vector, power.vector, rtol=0, atol=0)
    model, loss_fn, data = case("cnn-tanh-ce")
    op = oc.HessianOperator(model, loss_fn, data)
    ev = torch.linalg.eigvalsh(dense_hessian(model, loss_fn, data))
    default = oc.top_eigenvalue(op, which="algebraic", tol=1e-8)
    lanczos = oc.top_eigenvalue(op, which="algebraic", tol=1e-8, method="lanczos")
    power = oc.top_eigenvalue(op, which="algebraic", tol=1e-8, method="power", max_iter=5000)
    assert (default.value, default.iterations) == (lanczos.value, lanczos.iterations)
    assert default.value == pytest.approx(float(ev[-1]), rel=1e-7)
    assert default.iterations < power.iterations


@pytest.mark.parametrize("method", ["r-op", "double-backprop"])
@pytest.mark.parametrize("cached", [True, False])
def test_hessian_start_vector_mixes_the_gradient_with_a_seeded_random_vector(method, cached):
    model, loss_fn, data = case("mlp-tanh-ce-batches")
    op = oc.HessianOperator(model, loss_fn, data, method=method)
    g = torch.cat([t.reshape(-1) for t in torch.autograd.grad(
        sum(x.shape[0] / 13 * loss_fn(model(x), y) for x, y in data), list(model.parameters()))])
    if cached:
        with op.many_products():
            q = op.start_vector(3)
    else:
        q = op.start_vector(3)
    r = oc.CurvatureOperator.start_vector(op, 3)  # the random part alone
    expected = g / g.norm() + r
    torch.testing.assert_close(q, expected / expected.norm(), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(q, op.start_vector(4))  # the seed moves the random part


def test_start_vector_is_random_where_the_gradient_vanishes_or_for_other_operators():
    # a linear least-squares model at its minimum: zero gradient, a start vector all the same
    torch.manual_seed(0)
    x = torch.randn(20, 3, dtype=torch.float64)
    model = torch.nn.Linear(3, 1, bias=False).double()
    y = model(x).detach()
    op = oc.HessianOperator(model, torch.nn.MSELoss(), (x, y))
    torch.testing.assert_close(op.start_vector(1), oc.CurvatureOperator.start_vector(op, 1))
    value, vector, _ = oc.top_eigenvalue(op, tol=1e-10)
    assert abs(value - float(torch.linalg.eigvalsh(2 * x.T @ x / 20)[-1])) <= 1e-8 * abs(value)
    A = oc.as_operator(torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
    assert torch.equal(A.start_vector(5), oc.CurvatureOperator.start_vector(A, 5))
