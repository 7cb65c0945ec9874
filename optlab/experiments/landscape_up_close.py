r"""Lecture 08, the landscape up close (Goodfellow's tutorial): the experiments behind its claims.

* :func:`minimum_fraction`: the share of random symmetric (GOE) matrices whose eigenvalues are all positive,
  against the coin-flip guess :math:`2^{-n}` ("are saddle points or local minima more common?"); with a
  ``shift`` it models the weighted coin (lower cost, a Hessian shifted towards positive eigenvalues).
* :func:`gradient_flow`: the closed form of gradient flow on a quadratic,
  :math:`\theta(t) = \theta_0 - Q\Lambda'(t)Q^\top g` with :math:`\lambda'(t) = (1 - e^{-\lambda t})/\lambda`
  ("gradient descent flees saddle points").
* :func:`random_walk`: a random walk with the same step lengths as a trajectory (the random-walk control of
  Goodfellow et al. 2015).
* :func:`sgd_landscape`: an SGD run seen from the straight line and the plane through its start and end (the
  monotone linear path, projection vs residual, the random-walk control, the 2-D subspace).
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
from ..errors import check, check_shape, finite, int_in_range, non_negative, positive
from ..flat import flatten
from ..landscape import (LinePath, Plane, linear_path, model_loss_function, plane_through, project_to_plane,
                         projection_residual)
from ..problems.base import Objective
from ..trajectory import run


def minimum_fraction(n: int, samples: int = 100_000, seed: int = 0, shift: float = 0.0) -> float:
    r"""Share of ``samples`` GOE matrices :math:`A = (G + G^\top)/2 + \text{shift}\cdot I` (:math:`G` standard
    normal, ``n x n``) whose eigenvalues are all positive: the chance that a "random critical point" is a minimum.

    ``shift > 0`` weights the coin towards positive eigenvalues. In the random-matrix picture of Bray & Dean
    (2007) and Dauphin et al. (2014) the Hessian at a critical point of lower cost :math:`J` is shifted that
    way, so minima are found at low :math:`J` and high critical points are saddles.

    Example:
        >>> round(minimum_fraction(1, 10_000), 1)
        0.5
    """
    int_in_range("minimum_fraction", "n", n, 1)
    int_in_range("minimum_fraction", "samples", samples, 1)
    finite("minimum_fraction", "shift", shift)
    G = np.random.default_rng(seed).standard_normal((samples, n, n))
    lam_min = np.linalg.eigvalsh(0.5 * (G + np.swapaxes(G, 1, 2)))[:, 0] + shift
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
    grads: np.ndarray
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
        rows.append((k, float(loss.detach()), float(g.norm()), step.gHg / step.gg, step.epsilon_star, v, g.numpy()))

    def diagnostic(info) -> float:
        if (info.step + 1) % every == 0:
            measure(info.step + 1)
        return 0.0

    measure(0)
    traj = run(Objective(params, minibatch_loss, name="minibatch SGD"),
               lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum), steps, diagnostics={"measure": diagnostic})
    cols = [np.array(c) for c in zip(*rows)]
    return TrainingDiagnostics(cols[0].astype(int), *cols[1:], thetas=traj.thetas)


@dataclass(frozen=True)
class SGDLandscape:
    r"""Goodfellow et al.'s views of one SGD run from :math:`\theta_0` to :math:`\theta_1` (its last point).

    ``path``: the loss on the straight line :math:`(1-\alpha)\theta_0 + \alpha\theta_1`; ``thetas``: the SGD
    path, every ``every`` steps; ``losses``: the full training loss there; ``projection``, ``residual``: their
    coordinate along the line and distance from it; ``walk``, ``walk_losses``, ``walk_projection``,
    ``walk_residual``: the same for the random-walk control (:func:`random_walk`); ``plane``: the plane
    through :math:`\theta_0`, :math:`\theta_1` and the SGD point at step ``steps // 4``, with ``plane_xy``
    the SGD path projected on it; ``loss_at``: the full training loss as a function of a flat vector."""

    path: LinePath
    thetas: np.ndarray
    losses: np.ndarray
    projection: np.ndarray
    residual: np.ndarray
    walk: np.ndarray
    walk_losses: np.ndarray
    walk_projection: np.ndarray
    walk_residual: np.ndarray
    plane: Plane
    plane_xy: np.ndarray
    loss_at: Callable

    @property
    def max_rise(self) -> float:
        r"""The largest increase between neighbouring points of the straight path on :math:`[0, 1]`
        (:math:`\le 0`: the path decreases monotonically)."""
        a, J = self.path.alphas, self.path.losses
        inside = (a >= 0) & (a <= 1)
        return float(np.diff(J[inside]).max())


def sgd_landscape(model: nn.Module, loss_fn: Callable, train, *, lr: float, steps: int, batch_size: int = 32,
                  every: int = 10, alphas=None, seed: int = 0, walk_seed: int = 0) -> SGDLandscape:
    r"""Train ``model`` (in place) by mini-batch SGD on ``train = (X, y)`` with
    :func:`~optlab.experiments.sgd_tricks.stream_objective` and look at the landscape its path crossed
    (Goodfellow, Vinyals & Saxe 2015): the straight line from the initial to the final parameters
    (``alphas``, default 21 points on :math:`[0, 1]`), the path's projection on that line and its residual,
    a random walk with the same step lengths, and the plane through the start, the end and the point at
    a quarter of the run.

    Example:
        >>> from optlab.problems import Digits, mlp
        >>> d = Digits(n=120)
        >>> s = sgd_landscape(mlp((64, 8, 10), seed=0), d.loss_fn, d.batch("train"), lr=0.5, steps=40)
        >>> bool(s.path.losses[-1] < s.path.losses[0]), s.thetas.shape[0]
        (True, 5)
    """
    from .sgd_tricks import stream_objective

    positive("sgd_landscape", "lr", lr)
    int_in_range("sgd_landscape", "steps", steps, 4)
    int_in_range("sgd_landscape", "every", every, 1, steps)
    X, y = train
    loss_at = model_loss_function(model, loss_fn, (X, y))
    traj = run(stream_objective(model, loss_fn, X, y, batch_size=batch_size, seed=seed),
               lambda p: torch.optim.SGD(p, lr=lr), steps)
    T = traj.thetas
    keep = np.unique(np.r_[np.arange(0, steps + 1, every), steps])
    path = linear_path(loss_at, T[0], T[-1], np.linspace(0, 1, 21) if alphas is None else alphas)
    proj, res = projection_residual(T[keep], T[0], T[-1])
    W = random_walk(T, seed=walk_seed)[keep]
    wproj, wres = projection_residual(W, T[0], T[-1])
    plane = plane_through(T[0], T[-1], T[steps // 4])
    xy, _ = project_to_plane(T[keep], plane)
    return SGDLandscape(path, T[keep], np.array([loss_at(t) for t in T[keep]]), proj, res, W,
                        np.array([loss_at(w) for w in W]), wproj, wres, plane, xy, loss_at)
