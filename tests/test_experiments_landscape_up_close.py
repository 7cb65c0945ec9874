"""Unit tests of optlab.experiments.landscape_up_close (groundwork for lecture 08)."""

import numpy as np
import pytest
import torch

from optlab.experiments.landscape_up_close import (gradient_flow, minimum_fraction, random_walk, sgd_landscape,
                                                   training_diagnostics)
from optlab.problems import Digits, mlp


def test_minimum_fraction_is_half_in_1d_and_falls_faster_than_coin_flips():
    assert minimum_fraction(1, 20_000) == pytest.approx(0.5, abs=0.02)
    f3 = minimum_fraction(3, 20_000)
    assert f3 < 2.0 ** -3 and f3 > 0.01
    with pytest.raises(ValueError, match="n"):
        minimum_fraction(0)


def test_gradient_flow_matches_small_step_gradient_descent():
    H = np.array([[2.0, 0.5], [0.5, -1.0]])
    g = np.array([1.0, 0.3])
    eps, k = 1e-4, 20_000  # t = 2
    theta = np.zeros(2)
    for _ in range(k):
        theta = theta - eps * (g + H @ theta)
    flow = gradient_flow(H, g, [0.0, eps * k])
    assert np.allclose(flow[0], 0.0) and np.allclose(flow[1], theta, rtol=1e-3)
    # a zero eigenvalue gives lambda'(t) = t
    assert np.allclose(gradient_flow(np.zeros((2, 2)), g, 3.0)[0], -3.0 * g)
    with pytest.raises(ValueError, match="H"):
        gradient_flow(np.array([[1.0, 2.0], [0.0, 1.0]]), g, 1.0)


def test_random_walk_keeps_the_step_lengths():
    T = np.cumsum(np.random.default_rng(0).standard_normal((30, 5)), axis=0)
    W = random_walk(T, seed=1)
    assert W.shape == T.shape and np.allclose(W[0], T[0])
    assert np.allclose(np.linalg.norm(np.diff(W, axis=0), axis=1), np.linalg.norm(np.diff(T, axis=0), axis=1))
    assert not np.allclose(W, T)
    with pytest.raises(ValueError, match="thetas"):
        random_walk(np.zeros((1, 3)))


def test_training_diagnostics_records_checkpoints():
    d = Digits(n=200)
    net = mlp((64, 8, 10), seed=0)
    r = training_diagnostics(net, d.loss_fn, d.batch("train"), d.batch("test"), lr=0.5, steps=40, every=20)
    assert r.steps.tolist() == [0, 20, 40] and r.thetas.shape[0] == 41
    assert r.train_loss[-1] < r.train_loss[0]
    assert np.all(r.grad_norm > 0) and np.all(np.isfinite(r.valid_loss))
    pos = r.curvature > 0
    assert np.allclose(r.epsilon_star[pos], 1 / r.curvature[pos])
    with pytest.raises(ValueError, match="every"):
        training_diagnostics(net, d.loss_fn, d.batch("train"), d.batch("test"), lr=0.5, steps=10, every=20)


def test_minimum_fraction_shift_weights_the_coin():
    assert minimum_fraction(3, 20_000, shift=1.0) > 3 * minimum_fraction(3, 20_000)
    assert minimum_fraction(2, 20_000, shift=-10.0) == 0.0
    with pytest.raises(ValueError, match="shift"):
        minimum_fraction(2, 10, shift=float("nan"))


def test_training_diagnostics_keeps_the_full_gradients():
    d = Digits(n=120)
    r = training_diagnostics(mlp((64, 4, 10), seed=0), d.loss_fn, d.batch("train"), d.batch("test"), lr=0.5,
                             steps=20, every=10)
    assert r.grads.shape == (3, r.thetas.shape[1])
    assert np.allclose(np.linalg.norm(r.grads, axis=1), r.grad_norm)


def test_sgd_landscape_line_plane_and_walk():
    d = Digits(n=150)
    s = sgd_landscape(mlp((64, 8, 10), seed=0), d.loss_fn, d.batch("train"), lr=0.5, steps=60, every=10)
    T = s.thetas
    assert T.shape[0] == 7 and s.path.alphas.tolist() == np.linspace(0, 1, 21).tolist()
    assert s.path.losses[0] == pytest.approx(s.losses[0]) and s.path.losses[-1] == pytest.approx(s.losses[-1])
    # the line's end points: projection 0 and |theta1 - theta0|, residual 0
    assert s.projection[0] == pytest.approx(0) and s.projection[-1] == pytest.approx(np.linalg.norm(T[-1] - T[0]))
    assert s.residual[0] == pytest.approx(0, abs=1e-9) and s.residual[-1] == pytest.approx(0, abs=1e-6)
    # the walk keeps the step lengths of the sampled path only in total, but starts at theta0
    assert np.allclose(s.walk[0], T[0]) and s.walk.shape == T.shape
    assert s.plane_xy.shape == (7, 2) and s.max_rise == pytest.approx(np.diff(s.path.losses).max())
    with pytest.raises(ValueError, match="steps"):
        sgd_landscape(mlp((64, 8, 10), seed=0), d.loss_fn, d.batch("train"), lr=0.5, steps=2)
