"""Landscape tools: linear path, planes, directions, projections; models are never mutated."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from optlab.landscape import (Plane, hessian_directions, linear_path, model_loss_function, params_vector,
                              plane_along, plane_grid, plane_through, project_to_plane, projection_residual,
                              random_direction)
from optlab.problems import Digits, Quadratic, TwoGaussians
from optlab.trajectory import run


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, model.training


def _assert_unchanged(model, snap):
    state, training = snap
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k in state:
        assert torch.equal(now[k], state[k]), f"{k} changed"
    assert model.training == training


@pytest.fixture(scope="module")
def digits_run():
    """A 64-30-10 MLP on 400 digits: its initialization, the trained copy and the trajectory."""
    d = Digits(n=400, seed=0)
    init = d.model("mlp", seed=0)
    trained = copy.deepcopy(init)
    t = run(d.objective(trained), lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9), steps=120)
    assert not t.diverged and t.final_loss < 0.2 * t.losses[0]
    return d, init, trained, t


def test_digits_linear_path_from_init_to_solution(digits_run):
    d, init, trained, t = digits_run
    snaps = _snapshot(init), _snapshot(trained)
    f = model_loss_function(trained, d.loss_fn, d.batch())
    th0, th1 = params_vector(init), params_vector(trained)
    path = linear_path(f, th0, th1, alphas=np.linspace(-0.5, 1.5, 61))
    assert path.alphas.shape == path.losses.shape == (61,)  # >= 50 points, alpha beyond [0, 1]
    assert path.alphas.min() < 0 and path.alphas.max() > 1
    # the end points are the losses of the two models, recomputed directly
    X, y = d.batch()
    with torch.no_grad():
        j0, j1 = float(d.loss_fn(init(X), y)), float(d.loss_fn(trained(X), y))
    i0, i1 = np.argmin(abs(path.alphas)), np.argmin(abs(path.alphas - 1))
    assert path.losses[i0] == pytest.approx(j0, rel=1e-12)
    assert path.losses[i1] == pytest.approx(j1, rel=1e-12)
    assert path.losses[i1] < path.losses[i0]
    # the final point of the recorded trajectory is the trained model
    np.testing.assert_allclose(t.final_theta, th1.numpy(), rtol=0, atol=0)
    _assert_unchanged(init, snaps[0])
    _assert_unchanged(trained, snaps[1])


def test_digits_plane_through_init_solution_and_a_trajectory_point(digits_run):
    d, init, trained, t = digits_run
    snap = _snapshot(trained)
    f = model_loss_function(trained, d.loss_fn, d.batch())
    plane = plane_through(params_vector(init), params_vector(trained), t.thetas[30])
    s = plane_grid(f, plane, xs=np.linspace(-0.2, 1.2, 8), ys=np.linspace(-0.2, 1.2, 7))
    assert s.Z.shape == (7, 8) and np.all(np.isfinite(s.Z))
    # the trajectory's own points lie in the plane (residual 0) at the coordinates plane_through gave
    xy, res = project_to_plane(np.stack([params_vector(init).numpy(), params_vector(trained).numpy(), t.thetas[30]]),
                               plane)
    np.testing.assert_allclose(xy, plane.points, atol=1e-10)
    np.testing.assert_allclose(res, 0.0, atol=1e-10)
    # the loss at the solution's coordinates is the trained model's loss
    assert f(plane.origin + plane.points[1, 0] * plane.d1) == pytest.approx(t.final_loss, rel=1e-10)
    _assert_unchanged(trained, snap)


def test_plane_through_is_an_orthonormal_frame_that_recovers_the_points():
    rng = np.random.default_rng(0)
    pts = rng.standard_normal((3, 6))
    plane = plane_through(*pts)
    D = torch.stack([plane.d1, plane.d2])
    np.testing.assert_allclose((D @ D.T).numpy(), np.eye(2), atol=1e-12)
    for (x, y), p in zip(plane.points, pts):
        np.testing.assert_allclose((plane.origin + x * plane.d1 + y * plane.d2).numpy(), p, atol=1e-12)
    with pytest.raises(ValueError, match="collinear"):
        plane_through(pts[0], pts[1], 2 * pts[1] - pts[0])
    with pytest.raises(ValueError, match="coincide"):
        plane_through(pts[0], pts[0], pts[1])


def test_plane_grid_of_a_quadratic_is_the_quadratic_form_in_plane_coordinates():
    q = Quadratic([1.0, 4.0, 9.0], theta_star=[0.5, 0.0, -0.5])
    origin = np.array([1.0, 1.0, 1.0])
    d1, d2 = np.array([1.0, 0.0, 1.0]), np.array([0.0, 2.0, 0.0])
    s = plane_grid(lambda th: float(q(th.numpy())), plane_along(origin, d1, d2), xs=[-1.0, 0.0, 0.5], ys=[0.0, 1.0])
    e = origin - q.theta_star
    for j, y in enumerate(s.ys):
        for i, x in enumerate(s.xs):
            v = e + x * d1 + y * d2
            assert s.Z[j, i] == pytest.approx(0.5 * v @ q.A @ v, rel=1e-12)


def test_linear_path_on_a_quadratic_is_a_parabola_in_alpha():
    q = Quadratic([1.0, 10.0], angle=0.7)
    a, b = np.array([2.0, -1.0]), np.array([0.5, 0.5])
    path = linear_path(lambda th: float(q(th.numpy())), a, b, alphas=np.linspace(-1, 2, 50))
    u = b - a
    expected = [0.5 * (a + al * u) @ q.A @ (a + al * u) for al in path.alphas]
    np.testing.assert_allclose(path.losses, expected, rtol=1e-12)


def test_batchnorm_modes_and_no_mutation():
    d = Digits(n=200, seed=1)
    model = d.model("mlp", batch_norm=True, seed=2)
    X, y = d.batch()
    model.train()
    with torch.no_grad():
        model(X)  # give the running statistics something non-trivial
    snap = _snapshot(model)
    theta = params_vector(model)
    f_eval = model_loss_function(model, d.loss_fn, (X, y))
    f_train = model_loss_function(model, d.loss_fn, (X, y), bn_mode="train")
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin.eval()
        j_eval = float(d.loss_fn(twin(X), y))
        twin.train()
        j_train = float(d.loss_fn(twin(X), y))
    assert f_eval(theta) == pytest.approx(j_eval, rel=1e-12)
    assert f_train(theta) == pytest.approx(j_train, rel=1e-12)
    assert j_eval != pytest.approx(j_train, rel=1e-6)  # the two conventions really differ
    # train mode: repeated evaluations do not drift (running statistics restored on the copy)
    other = theta + 0.1 * random_direction(model, seed=3, filter_normalize=False)
    first = f_train(theta)
    f_train(other)
    assert f_train(theta) == first
    _assert_unchanged(model, snap)
    with pytest.raises(ValueError, match="bn_mode"):
        model_loss_function(model, d.loss_fn, (X, y), bn_mode="test")


def test_loss_of_several_batches_is_the_size_weighted_mean():
    d = Digits(n=120, seed=0)
    model = d.model("mlp")
    X, y = d.batch()
    f_one = model_loss_function(model, d.loss_fn, (X, y))
    f_many = model_loss_function(model, d.loss_fn, [(X[:10], y[:10]), (X[10:], y[10:])])
    th = params_vector(model)
    assert f_many(th) == pytest.approx(f_one(th), rel=1e-12)


def test_filter_normalized_random_direction():
    model = Digits(n=50).model("cnn", batch_norm=True)
    d = random_direction(model, seed=7)
    assert torch.equal(d, random_direction(model, seed=7)) and not torch.equal(d, random_direction(model, seed=8))
    i = 0
    for p in model.parameters():
        part = d[i:i + p.numel()].reshape(p.shape)
        i += p.numel()
        if p.dim() <= 1:  # biases and BatchNorm affine parameters are left out (Li et al. 2018)
            assert torch.count_nonzero(part) == 0
        else:  # each filter has the norm of the parameter's filter
            np.testing.assert_allclose(part.reshape(len(part), -1).norm(dim=1).numpy(),
                                       p.detach().reshape(len(p), -1).norm(dim=1).numpy(), rtol=1e-12)
    assert i == d.numel() == params_vector(model).numel()


def test_hessian_directions_of_the_two_gaussian_unit_are_the_covariance_eigenvectors():
    p = TwoGaussians()
    model = p.model(W0=(0.2, 0.1))
    snap = _snapshot(model)
    values, vectors = hessian_directions(model, p.loss_fn, p.tensors(), k=2, tol=1e-12, max_iter=5000)
    lam, V = np.linalg.eigh(p.H)
    np.testing.assert_allclose(values.numpy(), lam[::-1], rtol=1e-8)
    np.testing.assert_allclose(np.abs(vectors.numpy().T @ V[:, ::-1]), np.eye(2), atol=1e-6)
    _assert_unchanged(model, snap)


def test_hessian_plane_of_a_digits_mlp_leaves_it_alone(digits_run):
    d, _, trained, _ = digits_run
    snap = _snapshot(trained)
    X, y = d.batch()
    values, vectors = hessian_directions(trained, d.loss_fn, (X[:100], y[:100]), k=2, max_iter=500, tol=1e-9)
    assert vectors.shape == (params_vector(trained).numel(), 2)
    assert float(vectors[:, 0] @ vectors[:, 1]) == pytest.approx(0.0, abs=1e-4)
    assert abs(float(values[0])) >= abs(float(values[1])) - 1e-6
    f = model_loss_function(trained, d.loss_fn, (X, y))
    s = plane_grid(f, plane_along(params_vector(trained), vectors[:, 0], vectors[:, 1]), xs=[-0.5, 0.0, 0.5],
                   ys=[-0.5, 0.0, 0.5])
    assert s.Z[1, 1] == pytest.approx(f(params_vector(trained)), rel=1e-12)
    _assert_unchanged(trained, snap)


def test_projection_and_residual():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5), rng.standard_normal(5)
    alphas = np.array([-0.5, 0.0, 0.3, 1.0, 1.7])
    on_line = a + alphas[:, None] * (b - a)
    p, r = projection_residual(on_line, a, b)
    np.testing.assert_allclose(p, alphas * np.linalg.norm(b - a), atol=1e-12)
    np.testing.assert_allclose(r, 0.0, atol=1e-12)
    off = rng.standard_normal(5)
    off -= off @ (b - a) / np.linalg.norm(b - a) ** 2 * (b - a)  # orthogonal to the line
    p2, r2 = projection_residual(on_line + off, a, b)
    np.testing.assert_allclose(p2, p, atol=1e-12)
    np.testing.assert_allclose(r2, np.linalg.norm(off), rtol=1e-12)
    with pytest.raises(ValueError, match="coincide"):
        projection_residual(on_line, a, a)
    with pytest.raises(ValueError, match=r"invalid theta0 of shape \(3,\); expected \(5,\)"):
        projection_residual(on_line, a[:3], b[:3])


@pytest.mark.parametrize("call, err, match", [
    (lambda: linear_path(float, [0.0, 1.0], [1.0]), ValueError, r"invalid theta1 of shape \(1,\); expected \(2,\)"),
    (lambda: linear_path(float, [[0.0]], [[1.0]]), ValueError, "flat vector"),
    (lambda: linear_path(lambda t: 0.0, [0.0], [1.0], alphas=[np.nan]), ValueError, "finite"),
    (lambda: plane_grid(lambda t: 0.0, "plane"), TypeError, "Plane"),
    (lambda: model_loss_function(torch.nn.Linear(2, 1), None, (torch.zeros(2, 2), torch.zeros(2)))(torch.zeros(5)),
     ValueError, "3 entries"),
    (lambda: random_direction("model"), TypeError, "nn.Module"),
])
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_plane_type():
    assert isinstance(plane_through([0.0, 0.0], [1.0, 0.0], [0.0, 1.0]), Plane)
