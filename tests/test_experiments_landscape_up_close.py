"""Unit tests of optlab.experiments.landscape_up_close (groundwork for lecture 08)."""

import numpy as np
import pytest
import torch

from optlab.experiments.landscape_up_close import gradient_flow, minimum_fraction, random_walk, training_diagnostics
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
