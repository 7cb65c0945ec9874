"""Problems: closed forms against autograd and against the slides' formulas, driven by one registry."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

import optlab.problems as P
from optlab.curvature import HessianOperator, hessian, top_eigenvalue
from optlab.trajectory import run


# --------------------------------------------------------------------------- the registry of surfaces
# name -> builder of a Surface with its closed-form (or known) minimisers
SURFACES = {
    "quadratic_rotated": lambda: P.Quadratic([0.5, 20.0], angle=0.4, theta_star=[1.0, -2.0]),
    "quadratic_3d": lambda: P.Quadratic([1.0, 3.0, 9.0], P.random_rotation(3, seed=1), theta_star=[1.0, 0.0, -1.0]),
    "quadratic_saddle": lambda: P.Quadratic([1.0, -2.0], angle=1.0),
    "rosenbrock": P.rosenbrock_surface,
    "beale": P.beale_surface,
    "himmelblau": P.himmelblau_surface,
    "saddle": P.saddle_surface,
    "monkey_saddle": P.monkey_saddle_surface,
    "quartic_saddle": P.quartic_saddle_surface,
    "chain_slice_3": P.chain_slice_surface,
    "two_gaussians": lambda: P.TwoGaussians().surface,
    "tanh_identity": lambda: P.TanhIdentity().surface,
    "noisy_identity": lambda: P.NoisyIdentity().surface,
    "linear_chain_2": P.LinearChain,
    "linear_chain_4": lambda: P.LinearChain(4),
    "badly_scaled": lambda: P.badly_scaled().surface,
    "non_centered_bias": lambda: P.non_centered(bias=True).surface,
}


def _points(s, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return s.theta0 + 0.3 * rng.standard_normal((k, s.n))


@pytest.mark.parametrize("name", SURFACES)
def test_surface_numpy_and_torch_agree(name):
    s = SURFACES[name]()
    pts = _points(s)
    np.testing.assert_allclose(s(pts), s(torch.tensor(pts)).numpy(), rtol=1e-12, atol=1e-12)
    assert s(pts).shape == (len(pts),)


@pytest.mark.parametrize("name", SURFACES)
def test_surface_gradient_and_hessian_match_finite_differences(name):
    s = SURFACES[name]()
    th = _points(s, k=1, seed=1)[0]
    h = 1e-5 * max(1.0, float(np.abs(th).max()))
    E = np.eye(s.n) * h
    g_fd = np.array([(s(th + e) - s(th - e)) / (2 * h) for e in E])
    g = s.grad(th)
    np.testing.assert_allclose(g, g_fd, rtol=1e-5, atol=1e-6 * max(1.0, np.abs(g).max()))
    H = s.hessian(th)
    H_fd = np.array([(s.grad(th + e) - s.grad(th - e)) / (2 * h) for e in E])
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(H, H_fd, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(H).max()))


@pytest.mark.parametrize("name", SURFACES)
def test_known_minima_are_critical_points(name):
    s = SURFACES[name]()
    for m in s.minima:
        g = s.grad(m)
        assert np.linalg.norm(g) <= 1e-5 * max(1.0, np.linalg.norm(s.grad(s.theta0))), (m, g)
        assert np.all(np.linalg.eigvalsh(s.hessian(m)) > -1e-8)


@pytest.mark.parametrize("name", SURFACES)
def test_surface_grid_layout(name):
    s = SURFACES[name]()
    if s.n != 2:
        with pytest.raises(ValueError, match="2-D"):
            s.grid([0.0], [0.0])
        return
    xs, ys = np.linspace(*s.bounds[0], 5), np.linspace(*s.bounds[1], 4)
    Z = s.grid(xs, ys)
    assert Z.shape == (4, 5)
    assert Z[2, 3] == pytest.approx(float(s(np.array([xs[3], ys[2]]))), rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- every problem names its slide
PROBLEM_OBJECTS = [P.Quadratic, P.rosenbrock_surface, P.beale_surface, P.himmelblau_surface, P.saddle_surface,
                   P.monkey_saddle_surface, P.TwoGaussians, P.TanhIdentity, P.NoisyIdentity, P.LinearChain,
                   P.FactoredLinear, P.RegressionTable, P.badly_scaled, P.non_centered, P.Digits, P.center,
                   P.standardize, P.decorrelate, P.whiten]


@pytest.mark.parametrize("obj", PROBLEM_OBJECTS, ids=lambda o: o.__name__)
def test_every_problem_says_which_slide_it_comes_from(obj):
    doc = inspect.getdoc(obj) + "\n" + (inspect.getmodule(obj).__doc__ or "")
    assert "Slide" in doc, f"{obj.__name__}: no 'Slide:' line in its docstring or its module's"
    assert any(k in doc for k in ("LeCun", "Zemel", "Goodfellow")), obj.__name__


# --------------------------------------------------------------------------- quadratic
def test_quadratic_matrix_has_the_chosen_eigenvalues_and_vectors():
    Q = P.random_rotation(4, seed=3)
    lam = np.array([0.1, 1.0, 5.0, 50.0])
    A = P.quadratic_matrix(lam, Q)
    np.testing.assert_allclose(np.linalg.eigvalsh(A), lam, rtol=1e-12)
    np.testing.assert_allclose(A @ Q, Q * lam, atol=1e-12)
    q = P.Quadratic(lam, Q)
    assert q.condition_number == pytest.approx(500.0)
    np.testing.assert_allclose(q.hessian(), Surface_hessian(q, q.theta0), atol=1e-12)


def Surface_hessian(s, th):  # the generic autograd Hessian of the base class
    return P.Surface.hessian(s, th)


def test_quadratic_closed_form_gd_matches_a_plain_gd_loop():
    q = P.Quadratic([1.0, 10.0], angle=np.pi / 5, theta_star=[0.5, -1.0], theta0=[2.0, 1.0])
    alpha, k = 0.15, 25
    th = q.theta0.copy()
    loop = [th.copy()]
    for _ in range(k):
        th = th - alpha * q.A @ (th - q.theta_star)
        loop.append(th.copy())
    np.testing.assert_allclose(q.gd_iterates(alpha, k), np.array(loop), rtol=1e-12, atol=1e-12)
    # the eigen-coordinates of the error are scaled by gd_factors (the lead's closed form)
    err = (q.gd_iterates(alpha, k) - q.theta_star) @ q.Q
    F = P.gd_factors(q.lambdas, alpha, k)
    np.testing.assert_allclose(err, (F * (q.Q.T @ (q.theta0 - q.theta_star))[:, None]).T, atol=1e-12)


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1e4])
def test_ravine_has_the_requested_condition_number(kappa):
    q = P.Quadratic.ravine(kappa, angle=0.3, lambda_min=0.5)
    lam = np.linalg.eigvalsh(q.hessian())
    assert lam[-1] / lam[0] == pytest.approx(kappa, rel=1e-9)
    assert q.condition_number == pytest.approx(kappa, rel=1e-12)
    # the long axis of the ravine (smallest curvature) is the first axis rotated by the angle
    v = np.linalg.eigh(q.hessian())[1][:, 0]
    if kappa > 1:
        assert abs(v @ [np.cos(0.3), np.sin(0.3)]) == pytest.approx(1.0, abs=1e-9)


def test_quadratic_saddle_has_no_minimum_and_rejects_a_condition_number():
    q = P.Quadratic([1.0, -2.0])
    assert len(q.minima) == 0
    with pytest.raises(ValueError, match="positive eigenvalues"):
        q.condition_number


# --------------------------------------------------------------------------- two Gaussians (decks 000, 002)
def test_two_gaussians_data_follow_the_slide():
    p = P.TwoGaussians()
    assert p.X.shape == (100, 2) and set(p.y) == {-1.0, 1.0}
    assert np.sum(p.y == -1) == 50
    # class means near [-0.4, -0.8] and [0.4, 0.8] (standard error 1/sqrt(50) = 0.14)
    np.testing.assert_allclose(p.X[p.y == -1].mean(0), [-0.4, -0.8], atol=0.45)
    np.testing.assert_allclose(p.X[p.y == 1].mean(0), [0.4, 0.8], atol=0.45)
    np.testing.assert_array_equal(P.TwoGaussians(seed=0).X, p.X)
    assert not np.array_equal(P.TwoGaussians(seed=1).X, p.X)


def test_two_gaussians_hessian_is_the_input_covariance():
    p = P.TwoGaussians()
    X, y = p.tensors()
    H_autograd = hessian(p.model(W0=(0.3, -0.7)), p.loss_fn, (X, y)).numpy()
    H_slide = sum(np.outer(x, x) for x in p.X) / len(p.X)  # deck 002: H = 1/p sum X_p X_p^T
    np.testing.assert_allclose(H_autograd, H_slide, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(p.surface.hessian([1.0, 2.0]), H_slide, rtol=1e-12)
    np.testing.assert_allclose(p.H, H_slide, rtol=1e-12)


def test_two_gaussians_lambda_max_and_eta_max_by_two_routes(capsys):
    p = P.TwoGaussians()
    X, y = p.tensors()
    # route 1: eigenvalues of the closed-form input covariance; route 2: power method on the autograd Hessian
    lam_closed = float(np.linalg.eigvalsh(input_cov := P.input_covariance(p.X)).max())
    pair = top_eigenvalue(HessianOperator(p.model(), p.loss_fn, (X, y)), tol=1e-12, max_iter=5000)
    with capsys.disabled():
        print(f"\n[two Gaussians, seed 0, L = 1/P sum 1/2 (y - W'x)^2] lambda_max: closed form {lam_closed:.4f}, "
              f"power method {pair.value:.4f}; eta_max = 2/lambda_max = {2 / lam_closed:.4f} "
              f"(slides: 0.84 / 2.38; with H = 1/(2P) sum XX': {lam_closed / 2:.4f} / {4 / lam_closed:.4f})")
    assert pair.value == pytest.approx(lam_closed, rel=1e-8)
    assert p.lambda_max == pytest.approx(lam_closed, rel=1e-12)
    assert p.eta_max == pytest.approx(2 / pair.value, rel=1e-8)
    # the top eigenvector agrees up to sign
    assert abs(float(pair.vector.numpy() @ np.linalg.eigh(input_cov)[1][:, -1])) == pytest.approx(1.0, abs=1e-8)


def test_two_gaussians_population_lambda_max_and_the_slides_convention():
    # E[xx'] = I + m m' (m = [0.4, 0.8]): eigenvalues 1 + |m|^2 = 1.8 and 1; a large sample gets close
    big = P.TwoGaussians(n=40000, seed=5)
    m = np.array([0.4, 0.8])
    assert big.lambda_max == pytest.approx(1 + m @ m, rel=0.03)
    # c = 1/4 is the H = 1/(2P) sum XX' convention: exactly half, which is where the slides' 0.84 sits
    p, half = P.TwoGaussians(), P.TwoGaussians(c=0.25)
    assert half.lambda_max == pytest.approx(p.lambda_max / 2, rel=1e-12)
    assert half.eta_max == pytest.approx(2 * p.eta_max, rel=1e-12)
    assert big.lambda_max / 2 == pytest.approx(0.84, rel=0.1)


@pytest.mark.parametrize("factor, diverges", [(0.95, False), (1.05, True)])
def test_two_gaussians_gd_diverges_exactly_above_eta_max(factor, diverges):
    p = P.TwoGaussians()
    t = run(p.objective(), lambda ps: torch.optim.SGD(ps, lr=factor * p.eta_max), steps=600)
    assert t.diverged is diverges, t.reason
    if not diverges:
        np.testing.assert_allclose(t.final_theta, p.W_star, atol=1e-6)


@pytest.mark.parametrize("lr, diverges", [(1.5, False), (2.5, True)])
def test_the_slides_learning_rates_behave_as_on_the_slides_in_their_convention(lr, diverges):
    # deck 000/002: lr 1.5 converges, 2.5 diverges (eta_max 2.38); in the H = 1/(2P) sum XX' convention (c=1/4)
    p = P.TwoGaussians(c=0.25)
    assert (lr > p.eta_max) is diverges
    t = run(p.objective(), lambda ps: torch.optim.SGD(ps, lr=lr), steps=400)
    assert t.diverged is diverges


# --------------------------------------------------------------------------- tiny nets (deck 000)
def test_tanh_identity_is_the_slide_formula():
    p = P.TanhIdentity()
    W = np.random.default_rng(0).uniform(-3, 3, (20, 2))
    slide = (0.5 - np.tanh(W[:, 1] * np.tanh(W[:, 0] * 0.5))) ** 2
    np.testing.assert_allclose(p.surface(W), slide, rtol=1e-12)
    w0 = np.array([-2.0, 0.7, 3.0])
    sol = np.stack([w0, p.solution_w1(w0)], axis=1)
    np.testing.assert_allclose(p.surface(sol), 0.0, atol=1e-24)
    # near 0 the net is linear: L ~ 1/4 (1 - w0 w1)^2, so the origin is a saddle with Hessian [[0, -1/2], [-1/2, 0]]
    np.testing.assert_allclose(p.surface.grad([0.0, 0.0]), 0.0, atol=1e-15)
    np.testing.assert_allclose(p.surface.hessian([0.0, 0.0]), [[0.0, -0.5], [-0.5, 0.0]], atol=1e-12)


def test_tanh_identity_model_matches_its_surface():
    p = P.TanhIdentity()
    x, y = p.tensors()
    m = p.model(w0=0.8, w1=-1.3)
    assert not m.b0.requires_grad  # the slide's net has no biases
    assert float(p.loss_fn(m(x), y).detach()) == pytest.approx(float(p.surface(np.array([0.8, -1.3]))), rel=1e-12)


def test_noisy_identity_data_and_activation():
    p = P.NoisyIdentity()
    assert p.x.shape == (20,) and np.sum(p.y == -1) == 10
    assert np.all(p.x[:10] < 0.6) and np.all(p.x[10:] > -0.6)  # 4 standard deviations away from the other class
    assert abs(p.x[:10].mean() + 1) < 0.4 and abs(p.x[10:].mean() - 1) < 0.4
    assert float(P.scaled_tanh(np.array(1.0))) == pytest.approx(1.0, abs=2e-4)  # 1.7159 tanh(2/3) = 1
    x, y = p.tensors()
    m = p.model(w0=1.2, w1=0.4)
    assert m.b0.requires_grad and m.b1.requires_grad
    assert float(p.loss_fn(m(x), y).detach()) == pytest.approx(float(p.surface(np.array([1.2, 0.4]))), rel=1e-12)
    with torch.no_grad():
        m.b1.fill_(0.3)
    theta4 = torch.tensor([1.2, 0.0, 0.4, 0.3], dtype=torch.float64)
    expected = float(P.tiny_net_loss(theta4, x, y, P.scaled_tanh))
    assert float(p.loss_fn(m(x), y).detach()) == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- linear models (decks 002, 004)
def test_linear_net_hyperbola_and_saddle():
    c = P.LinearChain(2)
    w1 = np.array([-3.0, -0.5, 0.25, 2.0])
    sol = np.stack([w1, c.hyperbola_w2(w1)], axis=1)
    np.testing.assert_allclose(c(sol), 0.0, atol=1e-28)
    for s in sol:
        np.testing.assert_allclose(c.grad(s), 0.0, atol=1e-14)
    H0 = c.hessian([0.0, 0.0])
    np.testing.assert_allclose(H0, [[0.0, -2.0], [-2.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(H0), [-2.0, 2.0], atol=1e-12)


@pytest.mark.parametrize("depth", [2, 5, 8])
def test_deep_chain_gradient_is_the_product_of_the_other_weights(depth):
    c = P.LinearChain(depth)
    w = np.full(depth, 0.5)
    expected = -2 * (1 - w.prod()) * w.prod() / w  # dL/dw_i = -2 (1 - prod w) prod_{j != i} w_j
    np.testing.assert_allclose(c.grad(w), expected, rtol=1e-12)


def test_factored_linear_follows_saxe_closed_form():
    p = P.FactoredLinear(s=(3.0, 1.0), n_in=4, n_out=3, n_samples=32, seed=2)
    np.testing.assert_allclose(p.X.T @ p.X / len(p.X), np.eye(4), atol=1e-12)  # whitened inputs
    u0, lr, steps = 1e-3, 2e-3, 1500
    net = p.balanced_model(u0)
    np.testing.assert_allclose(p.mode_strengths(net), u0, rtol=1e-10)
    t = run(p.objective(net), lambda ps: torch.optim.SGD(ps, lr=lr), steps=steps)
    u = p.mode_strengths(net)
    u_theory = P.saxe_mode_strength(steps, p.s, u0, tau=1 / lr)
    assert not t.diverged
    np.testing.assert_allclose(u, u_theory, rtol=0.05)
    # the strong mode is learned first: a sigmoid in time, with the time constant tau / s
    assert u[0] / 3.0 > 0.99 and 0.05 < u[1] < 0.95


def test_factored_linear_converges_to_the_target_map():
    p = P.FactoredLinear(seed=0)
    net = p.model(depth=3, init_scale=0.3, seed=1)
    t = run(p.objective(net), lambda ps: torch.optim.SGD(ps, lr=0.05), steps=1500)
    assert t.final_loss < 1e-6 * t.losses[0]
    np.testing.assert_allclose(P.end_to_end(net), p.M, atol=1e-3)


# --------------------------------------------------------------------------- regression tables (Zemel)
def test_regression_tables_start_with_the_slides_rows():
    X, t = P.badly_scaled_table(n=20, seed=1)
    np.testing.assert_array_equal(X[:3], [[114.8, 0.00323], [338.1, 0.00183], [98.8, 0.00279]])
    np.testing.assert_array_equal(t[:3], [5.1, 3.2, 4.1])
    X, t = P.non_centered_table(n=20, seed=1)
    np.testing.assert_array_equal(X[:3], [[1003.2, 1005.1], [1001.1, 1008.2], [998.3, 1003.4]])
    assert X.shape == (20, 2)


@pytest.mark.parametrize("build", [P.badly_scaled, P.non_centered])
@pytest.mark.parametrize("bias", [False, True])
def test_regression_closed_form_hessian_and_solution(build, bias):
    p = build(bias=bias)
    H_autograd = P.Surface.hessian(p.surface, np.zeros(p.X.shape[1]))
    np.testing.assert_allclose(H_autograd, p.H, rtol=1e-10)
    g = p.surface.grad(p.w_star)
    assert np.linalg.norm(g) <= 1e-8 * np.linalg.norm(p.surface.grad(np.zeros(p.X.shape[1])))


def test_normalizing_the_tables_fixes_the_conditioning():
    bad, nc = P.badly_scaled(), P.non_centered()
    assert bad.condition_number > 1e8
    assert nc.condition_number > 1e5
    # non-zero-mean inputs: the top eigenvector is along (1, 1) (deck 000: "non-zero mean inputs create
    # large eigenvalues")
    v = np.linalg.eigh(nc.H)[1][:, -1]
    assert abs(v @ np.array([1.0, 1.0]) / np.sqrt(2)) > 0.999
    assert bad.transformed(P.standardize).condition_number < 3
    assert nc.transformed(P.whiten).condition_number == pytest.approx(1.0, abs=1e-8)
    assert nc.transformed(P.standardize).condition_number < nc.condition_number / 1e4


# --------------------------------------------------------------------------- transforms
def _correlated(seed=0, n=200):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, 3))
    return Z @ np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]]) + np.array([5.0, -3.0, 100.0])


def test_transforms_have_the_promised_statistics():
    X = _correlated()
    C, T = P.center(X)
    np.testing.assert_allclose(C.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(C, X - X.mean(0), atol=1e-12)
    S, _ = P.standardize(X)
    np.testing.assert_allclose(S.var(0), 1, rtol=1e-12)
    D, _ = P.decorrelate(X)
    cov = D.T @ D / len(D)
    np.testing.assert_allclose(cov, np.diag(np.diag(cov)), atol=1e-10)
    np.testing.assert_allclose(np.diag(cov), np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True)))[::-1], rtol=1e-10)
    for kind in ("pca", "zca"):
        W, T = P.whiten(X, kind=kind)
        np.testing.assert_allclose(W.T @ W / len(W), np.eye(3), atol=1e-10)
    np.testing.assert_allclose(T.matrix, T.matrix.T, atol=1e-12)  # ZCA is symmetric


@pytest.mark.parametrize("name", P.TRANSFORMS)
def test_transforms_apply_to_new_data_and_invert(name):
    X, Xnew = _correlated(0), _correlated(1, n=7)
    Z, T = P.TRANSFORMS[name](X)
    np.testing.assert_allclose(T(X), Z, atol=1e-12)
    np.testing.assert_allclose(T.inverse(T(Xnew)), Xnew, rtol=1e-9)
    with pytest.raises(ValueError, match="features"):
        T(Xnew[:, :2])


def test_transforms_reject_degenerate_data_instead_of_clipping():
    X = _correlated()
    X[:, 1] = 4.0
    with pytest.raises(ValueError, match="constant"):
        P.standardize(X)
    with pytest.raises(ValueError, match="singular"):
        P.whiten(X)
    _, T = P.standardize(X, eps=1e-3)  # regularised on request
    assert np.all(np.isfinite(T.matrix))
    with pytest.raises(ValueError, match="kind"):
        P.whiten(_correlated(), kind="pcaa")
    with pytest.raises(ValueError, match="NaN"):
        P.center(np.array([[1.0, np.nan], [2.0, 3.0]]))


# --------------------------------------------------------------------------- digits
def test_digits_split_is_seeded_and_offline():
    a, b, c = P.Digits(seed=0), P.Digits(seed=0), P.Digits(seed=1)
    assert a.data.X_train.shape == (1438, 64) and a.data.X_test.shape == (359, 64)
    assert torch.equal(a.data.X_train, b.data.X_train) and not torch.equal(a.data.X_train, c.data.X_train)
    assert float(a.data.X_train.max()) == 1.0 and float(a.data.X_train.min()) == 0.0
    assert set(a.data.y_train.tolist()) == set(range(10))


def test_digits_builders_are_seeded_and_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    m1, m2 = P.mlp(seed=4), P.mlp(seed=4)
    assert torch.rand(1) == before
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert sum(p.numel() for p in m1.parameters()) == 64 * 30 + 30 + 30 * 10 + 10
    d = P.Digits(n=100)
    for kind in ("mlp", "cnn"):
        out = d.model(kind)(d.data.X_train)
        assert out.shape == (len(d.data.X_train), 10) and out.dtype == torch.float64
    bn = P.mlp(batch_norm=True)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in bn)


def test_digits_minibatch_objective_is_seeded_sgd():
    d = P.Digits(n=200)
    runs = []
    for seed in (0, 0, 1):
        m = d.model("mlp", seed=3)
        runs.append(run(d.objective(m, batch_size=16, seed=seed), lambda ps: torch.optim.SGD(ps, lr=0.3), steps=30))
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)  # same seed, same batches
    assert not np.array_equal(runs[0].losses, runs[2].losses)
    # each recorded loss is a 16-sample loss: they fluctuate, unlike full-batch GD's monotone decrease here
    full = run(d.objective(d.model("mlp", seed=3)), lambda ps: torch.optim.SGD(ps, lr=0.3), steps=30)
    assert np.all(np.diff(full.losses) < 0) and np.any(np.diff(runs[0].losses) > 0)
    with pytest.raises(ValueError, match="batch_size"):
        d.objective(d.model(), batch_size=0)


# --------------------------------------------------------------------------- bad input
BAD_INPUT = [
    (lambda: P.Quadratic([1.0, 2.0], angle=0.1, Q=np.eye(2)), "angle"),
    (lambda: P.Quadratic([1.0, 2.0], Q=[[1.0, 1.0], [0.0, 1.0]]), "orthogonal"),
    (lambda: P.Quadratic([1.0, np.nan]), "finite"),
    (lambda: P.random_rotation(0), "positive integer"),
    (lambda: P.Quadratic.ravine(0.5), "kappa"),
    (lambda: P.TwoGaussians(n=99), "even"),
    (lambda: P.TwoGaussians(c=-1), "c"),
    (lambda: P.rosenbrock_surface(b=0), "invalid b=0"),
    (lambda: P.LinearChain(0), "depth"),
    (lambda: P.FactoredLinear(s=(1.0, -1.0)), "positive"),
    (lambda: P.badly_scaled(n=2), "n"),
    (lambda: P.load_digits_data(test_fraction=1.5), "test_fraction"),
    (lambda: P.mlp(activation="gelu"), "activation"),
    (lambda: P.Digits().model("rnn"), "kind"),
    (lambda: P.TanhIdentity.solution_w1(0.0), "w0 = 0"),
    (lambda: P.Quadratic([1.0, 2.0]).grad([1.0, 2.0, 3.0]), "shape"),
    (lambda: P.saxe_mode_strength(1.0, s=-1.0, u0=0.1), "s > 0"),
]


@pytest.mark.parametrize("call, match", BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("name", SURFACES)
def test_batched_derivatives_are_the_pointwise_ones(name):
    s = SURFACES[name]()
    pts = _points(s, k=6, seed=2).reshape(2, 3, s.n)
    g, H = s.derivatives(pts)
    assert g.shape == (2, 3, s.n) and H.shape == (2, 3, s.n, s.n)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(g[i, j], s.grad(pts[i, j]), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(H[i, j], s.hessian(pts[i, j]), rtol=1e-12, atol=1e-12)


def test_quartic_saddle_closed_form():
    s = P.quartic_saddle_surface()
    x, y = 0.3, -0.7
    assert s([x, y]) == pytest.approx(x ** 2 / 2 - y ** 2 / 2 + y ** 4 / 4)
    np.testing.assert_allclose(s.grad([x, y]), [x, -y + y ** 3])
    np.testing.assert_allclose(s.hessian([x, y]), np.diag([1.0, -1.0 + 3 * y ** 2]))
    np.testing.assert_allclose(s.hessian([0.0, 0.0]), np.diag([1.0, -1.0]))
    assert s(s.minima).tolist() == [-0.25, -0.25]


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_chain_slice_is_the_chain_on_the_tied_plane(depth):
    s = P.chain_slice_surface(depth)
    pts = np.random.default_rng(depth).standard_normal((5, 2))
    full = np.concatenate([pts[:, :1], np.repeat(pts[:, 1:], depth - 1, axis=1)], axis=1)
    np.testing.assert_allclose(s(pts), P.chain_loss(full), rtol=1e-12)
    H0 = s.hessian([0.0, 0.0])
    if depth == 2:
        np.testing.assert_allclose(H0, [[0.0, -2.0], [-2.0, 0.0]])  # the 1-1-1 net's saddle
    else:
        np.testing.assert_allclose(H0, np.zeros((2, 2)))  # a saddle the second-order test cannot see
        assert s([0.1, 0.1]) < s([0.0, 0.0]) < s([-0.1, 0.1])


def test_chain_slice_rejects_depth_one():
    with pytest.raises(ValueError, match="depth"):
        P.chain_slice_surface(1)


def test_digits_nets_take_each_optlab_normalization():
    import optlab.nn as onn

    d = P.Digits(n=60)
    X, _ = d.batch()
    kinds = {"batch": (onn.BatchNorm1d, onn.BatchNorm2d), "layer": (onn.LayerNorm,), "group": (onn.GroupNorm,),
             "instance": (onn.InstanceNorm1d, onn.InstanceNorm2d)}
    for model in ("mlp", "cnn"):
        plain = d.model(model)
        for norm, classes in kinds.items():
            net = d.model(model, norm=norm)
            found = [m for m in net.modules() if isinstance(m, classes)]
            assert len(found) == (1 if model == "mlp" else 2), (model, norm)
            # the same seeded weights as the plain net: a normalization adds modules, draws no random numbers
            def weights(m):
                return [x.weight for x in m.modules() if isinstance(x, (torch.nn.Linear, torch.nn.Conv2d))]

            assert all(torch.equal(a, b) for a, b in zip(weights(net), weights(plain), strict=True))
            assert net(X).shape == (len(X), 10)
    with pytest.raises(ValueError, match="norm='weight'"):
        P.mlp(norm="weight")
    with pytest.raises(ValueError, match="batch_norm"):
        P.cnn(batch_norm=True, norm="batch")
    X, t = P.correlated_cloud_data(500, seed=1)
    assert X.shape == (500, 2) and t.shape == (500,)
