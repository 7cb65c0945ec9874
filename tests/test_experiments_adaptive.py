"""Unit tests of optlab.experiments.gd_quadratic and optlab.experiments.adaptive (lectures 01 and 04)."""

import numpy as np
import pytest
import torch
from torch import nn

from optlab.experiments.adaptive import (compare_optimizers, eigen_speed, forward_passes_per_step,
                                         layer_gradient_norms, plane_objective, rprop_displacement, slide_nag_path,
                                         step_lengths)
from optlab.experiments.gd_quadratic import contour_slope, eigen_coordinates, local_quadratic, zigzag
from optlab.optim import SGD, Adagrad
from optlab.problems import Quadratic, model_objective, nesterov_path, rosenbrock_surface
from optlab.trajectory import run


def test_eigen_coordinates_and_zigzag_follow_the_closed_form():
    q = Quadratic([1.0, 10.0], angle=0.3, theta_star=[1.0, -1.0])
    thetas = q.gd_iterates(0.15, 12)  # alpha*lambda = 0.15 and 1.5
    c = eigen_coordinates(thetas, q.Q, q.theta_star)
    assert np.allclose(c[1:], c[:-1] * (1 - 0.15 * q.lambdas))
    z = zigzag(q, thetas)
    assert (z.sign_changes_stiff, z.sign_changes_flat) == (12, 0)
    assert z.flat_left == pytest.approx(0.85 ** 12) and z.stiff_left == pytest.approx(0.5 ** 12)


def test_contour_slope_is_second_order_and_local_quadratic_is_the_hessian():
    q = Quadratic([1.0, 30.0], angle=0.5)
    pts = [[1.0, 0.2], [-0.3, 0.7]]
    assert np.all(contour_slope(q, pts, eps=1e-3) < 0.05) and np.all(contour_slope(q, pts, eps=1e-5) < 5e-4)
    r = rosenbrock_surface()
    lq = local_quadratic(r, [1.0, 1.0])
    assert np.allclose(lq.A, [[802.0, -400.0], [-400.0, 200.0]]) and np.allclose(lq.theta_star, [1.0, 1.0])
    with pytest.raises(ValueError, match="2-D"):
        contour_slope(Quadratic([1.0, 2.0, 3.0]), [[1.0, 1.0, 1.0]])


def test_eigen_speed_of_momentum_grows_in_the_flat_direction():
    q = Quadratic.ravine(100.0, theta0=[-1.5, 1.0])
    gd = run(q.objective(), lambda p: SGD(p, lr=0.002), 50)
    mom = run(q.objective(), lambda p: SGD(p, lr=0.002, momentum=0.9), 50)
    assert np.allclose(eigen_speed(q, gd.thetas, 0.002), 1.0)
    speed = eigen_speed(q, mom.thetas, 0.002)
    assert speed[0] > 3 and speed[0] > speed[1]
    with pytest.raises(ValueError, match="lr"):
        eigen_speed(q, gd.thetas, 0.0)


def test_slide_nag_is_not_the_published_nesterov():
    published = nesterov_path(0.1, 0.9, 1.0, 1.0, 30)[0]
    slide = slide_nag_path(0.1, 0.9, 1.0, 1.0, 30)
    assert np.allclose(slide[:2], published[:2]) and not np.allclose(slide, published)
    assert np.allclose(slide_nag_path(0.1, 0.0, 2.0, 1.0, 5), 0.8 ** np.arange(6))


def test_plane_steps_and_rprop_displacement():
    t = run(plane_objective([3.0, -4.0]), lambda p: Adagrad(p, lr=0.1), 4, explode=None)
    s = step_lengths(t.thetas)
    assert np.allclose(s, 0.1 * np.sqrt(2) / np.sqrt(np.arange(1, 5)))  # each coordinate: alpha/sqrt(t)
    grads = [-1.0] * 9 + [9.0]
    assert rprop_displacement(grads, 0.01, etas=(1.0, 1.0)) == pytest.approx(0.08)
    assert rprop_displacement(grads, 0.01) == pytest.approx(0.01 * sum(1.2 ** k for k in range(9)))
    with pytest.raises(ValueError, match="delta"):
        rprop_displacement(grads, -1.0)


def test_layer_gradient_norms_and_forward_passes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    X, y = torch.randn(5, 3), torch.randn(5, 2)
    norms = layer_gradient_norms(net, nn.functional.mse_loss, X, y)
    nn.functional.mse_loss(net(X), y).backward()
    assert np.allclose(norms, [float(net[0].weight.grad.norm()), float(net[2].weight.grad.norm())])
    obj = model_objective(net, nn.functional.mse_loss, X, y)
    assert forward_passes_per_step(obj, lambda p: SGD(p, lr=0.01), steps=3) == 1.0
    with pytest.raises(TypeError, match="model"):
        forward_passes_per_step(plane_objective([1.0]), lambda p: SGD(p, lr=0.1))


def test_compare_optimizers_picks_the_best_rate():
    torch.manual_seed(0)
    X = torch.randn(40, 3, dtype=torch.float64)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    make = lambda: nn.Linear(3, 1, bias=False).double()
    out = compare_optimizers(make, nn.functional.mse_loss, X, y,
                             {"SGD": (lambda p, lr: SGD(p, lr=lr), [1e-4, 0.1])}, steps=50, batch_size=8)
    assert out["SGD"].best_lr == 0.1 and out["SGD"].best_loss < out["SGD"].losses[0] and len(out["SGD"].curve) == 51
