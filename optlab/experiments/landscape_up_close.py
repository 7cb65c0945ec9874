r"""Lecture 08, the landscape up close (Goodfellow's tutorial): the experiments behind its claims.

* :func:`minimum_fraction`: the share of random symmetric (GOE) matrices whose eigenvalues are all positive,
  against the coin-flip guess :math:`2^{-n}` ("are saddle points or local minima more common?").
* :func:`gradient_flow`: the closed form of gradient flow on a quadratic,
  :math:`\theta(t) = \theta_0 - Q\Lambda'(t)Q^\top g` with :math:`\lambda'(t) = (1 - e^{-\lambda t})/\lambda`
  ("gradient descent flees saddle points").
* :func:`random_walk`: a random walk with the same step lengths as a trajectory (the random-walk control of
  Goodfellow et al. 2015).
* :func:`training_diagnostics`: mini-batch SGD on a model with, every few steps, the full gradient norm, the
  held-out loss and the curvature along the gradient :math:`g^\top Hg/g^\top g` (with Goodfellow's optimal step
  :math:`\epsilon^* = g^\top g/g^\top Hg`): "SGD may not encounter critical points", "poor conditioning".

References:
    I. Goodfellow (2015), "Tutorial on neural network optimization problems", Deep Learning Summer School.
    I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015), "Qualitatively characterizing neural network optimization
    problems", ICLR.
    Y. Dauphin, R. Pascanu, C. Gulcehre, K. Cho, S. Ganguli, Y. Bengio (2014), "Identifying and attacking the
    saddle point problem in high-dimensional non-convex optimization", NIPS.
    A. M. Saxe, J. L. McClelland, S. Ganguli (2014), "Exact solutions to the nonlinear dynamics of learning in
    deep linear neural networks", ICLR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..curvature import HessianOperator, optimal_step
from ..errors import check, check_shape, int_in_range, non_negative, positive
from ..flat import flatten
from ..problems.base import Objective
from ..trajectory import run


def minimum_fraction(n: int, samples: int = 100_000, seed: int = 0) -> float:
    r"""Share of ``samples`` GOE matrices :math:`A = (G + G^\top)/2` (:math:`G` standard normal, ``n x n``) whose
    eigenvalues are all positive: the chance that a "random critical point" is a minimum.

    Example:
        >>> round(minimum_fraction(1, 10_000), 1)
        0.5
    """
    int_in_range("minimum_fraction", "n", n, 1)
    int_in_range("minimum_fraction", "samples", samples, 1)
    G = np.random.default_rng(seed).standard_normal((samples, n, n))
    lam_min = np.linalg.eigvalsh(0.5 * (G + np.swapaxes(G, 1, 2)))[:, 0]
    return float(np.mean(lam_min > 0))


def gradient_flow(H, g, t) -> np.ndarray:
    r"""The displacement :math:`\theta(t) - \theta_0 = -Q\Lambda'(t)Q^\top g` of gradient flow
    :math:`\dot\theta = -g - H(\theta - \theta_0)` on a quadratic, :math:`\lambda'(t) = (1 - e^{-\lambda t})/\lambda`
    (:math:`= t` for :math:`\lambda = 0`); one row per time of ``t``.

    Along a negative eigenvalue :math:`\lambda'(t)` grows like :math:`e^{|\lambda| t}`: the flow leaves the saddle.
    """
    H, g = np.asarray(H, dtype=float), np.asarray(g, dtype=float).reshape(-1)
    check_shape("gradient_flow", "H", H.shape, H.shape == (g.size, g.size) and np.allclose(H, H.T),
                f"a symmetric ({g.size}, {g.size}) matrix")
    t = np.atleast_1d(np.asarray(t, dtype=float))
    lam, Q = np.linalg.eigh(H)
    lt = lam[None, :] * t[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_prime = np.where(np.abs(lt) > 1e-12, -np.expm1(-lt) / np.where(lam == 0, 1, lam)[None, :], t[:, None])
    return -(lam_prime * (Q.T @ g)[None, :]) @ Q.T


def random_walk(thetas, seed: int = 0) -> np.ndarray:
    """A random walk from ``thetas[0]`` whose k-th step has the length of the trajectory's k-th step and a
    uniformly random direction (the control experiment of Goodfellow et al. 2015)."""
    T = np.asarray(thetas, dtype=float)
    check_shape("random_walk", "thetas", T.shape, T.ndim == 2 and T.shape[0] >= 2, "(steps + 1, n) with >= 2 points")
    lengths = np.linalg.norm(np.diff(T, axis=0), axis=1)
    d = np.random.default_rng(seed).standard_normal((len(lengths), T.shape[1]))
    d *= (lengths / np.linalg.norm(d, axis=1))[:, None]
    return np.vstack([T[:1], T[0] + np.cumsum(d, axis=0)])


@dataclass(frozen=True)
class TrainingDiagnostics:
    """Checkpoints of a mini-batch SGD run: ``steps``; the full-batch training loss, gradient norm and
    :math:`g^\\top Hg/g^\\top g` (curvature along the full gradient) and :math:`\\epsilon^*`; the held-out loss;
    ``thetas``: the parameters at every step (``(steps + 1, n)``)."""

    steps: np.ndarray
    train_loss: np.ndarray
    grad_norm: np.ndarray
    curvature: np.ndarray
    epsilon_star: np.ndarray
    valid_loss: np.ndarray
    thetas: np.ndarray


def training_diagnostics(model: nn.Module, loss_fn: Callable, train, valid, *, lr: float, steps: int,
                         batch_size: int = 32, every: int = 50, momentum: float = 0.0, seed: int = 0
                         ) -> TrainingDiagnostics:
    r"""Train ``model`` by SGD on random mini-batches of ``train = (X, y)`` (seeded), measuring every ``every``
    steps the full training loss, the norm of the full gradient :math:`g`, :math:`g^\top Hg/g^\top g` (exact
    Hessian-vector product), :math:`\epsilon^* = g^\top g/g^\top Hg` (``inf`` if not positive) and the loss on
    ``valid = (X, y)``."""
    positive("training_diagnostics", "lr", lr)
    int_in_range("training_diagnostics", "steps", steps, 1)
    int_in_range("training_diagnostics", "every", every, 1, steps)
    non_negative("training_diagnostics", "momentum", momentum)
    X, y = train
    check("training_diagnostics", "batch_size", batch_size, 1 <= batch_size <= len(X), f"an integer in [1, {len(X)}]")
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)

    def minibatch_loss():
        idx = torch.randperm(len(X), generator=gen)[:batch_size]
        return loss_fn(model(X[idx]), y[idx])

    rows = []

    def measure(k: int) -> None:
        loss = loss_fn(model(X), y)
        g = flatten(torch.autograd.grad(loss, params), params).detach()
        step = optimal_step(HessianOperator(model, loss_fn, (X, y)), g)
        with torch.no_grad():
            v = float(loss_fn(model(valid[0]), valid[1]))
        rows.append((k, float(loss.detach()), float(g.norm()), step.gHg / step.gg, step.epsilon_star, v))

    def diagnostic(info) -> float:
        if (info.step + 1) % every == 0:
            measure(info.step + 1)
        return 0.0

    measure(0)
    traj = run(Objective(params, minibatch_loss, name="minibatch SGD"),
               lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum), steps, diagnostics={"measure": diagnostic})
    cols = [np.array(c) for c in zip(*rows)]
    return TrainingDiagnostics(cols[0].astype(int), *cols[1:], thetas=traj.thetas)
