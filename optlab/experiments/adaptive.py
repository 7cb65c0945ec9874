r"""Lecture 04, momentum and adaptive methods: the measurements behind the slides' claims.

Every optimizer is the real class of :mod:`optlab.optim` run by :func:`optlab.trajectory.run` (or, for one
weight and a given gradient sequence, its update kernel); these functions only read the runs:

* :func:`eigen_speed`: how far a run moves along each Hessian eigenvector per unit of
  :math:`\alpha|g|` -- about 1 for plain GD; momentum damps the stiff direction (gradients cancel)
  and speeds up the flat one (towards :math:`1/(1-\mu)`) (Zemel, lecture 4);
* :func:`slide_nag_path`: Misra's NAG slide as printed (its velocity drops the :math:`\mu v_t` term), to
  compare with the published Nesterov update (:func:`optlab.problems.nesterov_path`);
* :func:`plane_objective` and :func:`step_lengths`: an inclined plane :math:`f(\theta) = g^\top\theta`, on
  which each method's step length shows its learning-rate schedule (AdaGrad's :math:`1/\sqrt t`, RMSprop's
  constant, AdaDelta's slow start);
* :func:`rprop_displacement`: one weight's total move under Rprop for a gradient sequence (the slide's
  "nine +0.1, one -0.9" problem);
* :func:`layer_gradient_norms`: the gradient norm of every linear layer (vanishing in the early layers);
* :func:`forward_passes_per_step`: forward passes through the model per optimizer step (the cost of
  vSGD's diagonal Hessian);
* :func:`compare_optimizers`: Kingma & Ba's comparison -- each optimizer at the best of a few learning
  rates, mini-batch training on a data set.

References:
    B. T. Polyak (1964); Y. Nesterov (1983); I. Sutskever, J. Martens, G. Dahl, G. Hinton (2013), ICML.
    M. Riedmiller, H. Braun (1993), RPROP, IEEE ICNN. J. Duchi, E. Hazan, Y. Singer (2011), JMLR 12.
    T. Tieleman, G. Hinton (2012), RMSProp, Coursera lecture 6.5. M. D. Zeiler (2012), arXiv:1212.5701.
    T. Schaul, S. Zhang, Y. LeCun (2013), "No more pesky learning rates", ICML.
    D. P. Kingma, J. Ba (2015), "Adam: a method for stochastic optimization", ICLR.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import check, check_type, is_integer, positive
from ..optim.rprop import rprop_update
from ..problems.base import Objective
from ..problems.quadratic import Quadratic
from ..trajectory import run
from .gd_quadratic import eigen_coordinates
from .sgd_tricks import stream_objective


def eigen_speed(quadratic: Quadratic, thetas, lr: float, steps: int | None = None) -> np.ndarray:
    r"""Per eigen-direction :math:`i`: :math:`\sum_k |c_{k+1,i} - c_{k,i}| \,/\, \big(\alpha\sum_k |\lambda_i c_{k,i}|\big)`,
    the distance moved per unit of plain-GD step :math:`\alpha|g_i|` over the first ``steps`` steps
    (``c`` the eigen coordinates; columns in the order of ``quadratic.lambdas``).

    Plain GD gives exactly 1 in every direction.

    Example:
        >>> q = Quadratic([1.0, 10.0])
        >>> eigen_speed(q, q.gd_iterates(0.05, 20), lr=0.05)
        array([1., 1.])
    """
    positive("eigen_speed", "lr", lr)
    c = eigen_coordinates(thetas, quadratic.Q, quadratic.theta_star)
    n = len(c) - 1 if steps is None else steps
    check("eigen_speed", "steps", steps, is_integer(n) and 1 <= n <= len(c) - 1, f"None or 1..{len(c) - 1}")
    moved = np.abs(np.diff(c[: n + 1], axis=0)).sum(0)
    pushed = lr * np.abs(c[:n] * quadratic.lambdas).sum(0)
    return moved / pushed


def slide_nag_path(alpha: float, mu: float, lam: float, theta0: float, k: int) -> np.ndarray:
    r"""The NAG of Misra's slide, as printed, on :math:`f = \tfrac12\lambda\theta^2`:
    :math:`\theta_{t+1/2} = \theta_t - \mu v_t`, :math:`v_{t+1} = \alpha f'(\theta_{t+1/2})`,
    :math:`\theta_{t+1} = \theta_t - v_{t+1}`, :math:`v_0 = 0`. Returns :math:`\theta_0..\theta_k`.

    The published update (Sutskever et al. 2013) is :math:`v_{t+1} = \mu v_t + \alpha f'(\theta_t - \mu v_t)`:
    the slide drops :math:`\mu v_t`, which leaves a gradient step taken at an extrapolated point with
    no accumulated velocity.

    Example:
        >>> slide_nag_path(0.1, 0.0, 1.0, 1.0, 2)   # mu = 0: plain GD
        array([1.  , 0.9 , 0.81])
    """
    positive("slide_nag_path", "alpha", alpha)
    check("slide_nag_path", "k", k, is_integer(k) and k >= 0, "an integer >= 0")
    theta, v = float(theta0), 0.0
    out = [theta]
    for _ in range(k):
        v = alpha * lam * (theta - mu * v)
        theta = theta - v
        out.append(theta)
    return np.array(out)


def plane_objective(g: Sequence[float], dtype: torch.dtype = torch.float64) -> Objective:
    r"""The inclined plane :math:`f(\theta) = g^\top\theta` from :math:`\theta_0 = 0`: a constant gradient :math:`g`.

    Example:
        >>> obj = plane_objective([1.0, -2.0])
        >>> float(obj.loss_at(torch.tensor([1.0, 1.0], dtype=torch.float64)))
        -1.0
    """
    g_t = torch.as_tensor(np.asarray(g, dtype=float), dtype=dtype)
    theta = torch.zeros_like(g_t, requires_grad=True)
    return Objective([theta], lambda: (g_t * theta).sum(), name="plane")


def step_lengths(thetas) -> np.ndarray:
    r""":math:`\|\theta_{k+1} - \theta_k\|` for ``k = 0..K-1``."""
    return np.linalg.norm(np.diff(np.asarray(thetas, float), axis=0), axis=1)


def rprop_displacement(grads: Sequence[float], delta: float, etas=(0.5, 1.2), delta_max: float = 50.0) -> float:
    r"""The total move of one weight under Rprop (:func:`optlab.optim.rprop_update`) for the gradient
    sequence ``grads``, with initial step :math:`\delta` and factors ``etas`` = :math:`(\eta^-, \eta^+)`
    (``(1, 1)``: the Manhattan rule, a step of :math:`\delta` against the gradient's sign every time).

    Example:
        >>> round(rprop_displacement([-1.0] * 9 + [9.0], delta=0.01, etas=(1.0, 1.0)), 10)
        0.08
    """
    positive("rprop_displacement", "delta", delta)
    theta = torch.zeros(1, dtype=torch.float64)
    g_prev, d = torch.zeros(1, dtype=torch.float64), torch.full((1,), float(delta), dtype=torch.float64)
    for g in grads:
        theta, g_prev, d = rprop_update(theta, torch.tensor([float(g)], dtype=torch.float64), g_prev, d,
                                        eta_minus=etas[0], eta_plus=etas[1], delta_max=delta_max)
    return float(theta[0])


def layer_gradient_norms(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    r""":math:`\|\partial L/\partial W_l\|` for every ``nn.Linear`` layer :math:`l` of ``model`` (input first), at
    the current weights, on the batch ``(X, y)``. The model's gradients are left untouched.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
        >>> layer_gradient_norms(net, nn.functional.mse_loss, torch.ones(4, 2), torch.zeros(4, 1)).shape
        (2,)
    """
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    check("layer_gradient_norms", "model", type(model).__name__, len(layers) > 0, "a model with nn.Linear layers")
    grads = torch.autograd.grad(loss_fn(model(X), y), [m.weight for m in layers])
    return np.array([float(g.norm()) for g in grads])


def forward_passes_per_step(objective: Objective, optimizer, steps: int = 5) -> float:
    r"""Forward passes through ``objective.model`` per optimizer step, counted with a forward hook over
    ``steps`` steps of :func:`optlab.trajectory.run` (whose own loss-and-gradient evaluation is one forward
    pass per step: plain SGD needs nothing else, so it scores 1).

    Example:
        >>> from optlab.optim import SGD
        >>> from optlab.problems import model_objective
        >>> obj = model_objective(nn.Linear(2, 1), nn.functional.mse_loss, torch.ones(4, 2), torch.zeros(4, 1))
        >>> forward_passes_per_step(obj, lambda p: SGD(p, lr=0.1))
        1.0
    """
    check_type("forward_passes_per_step", "objective.model", objective.model,
               isinstance(objective.model, nn.Module), "an objective with a model (optlab.problems.model_objective)")
    check("forward_passes_per_step", "steps", steps, is_integer(steps) and steps >= 1, "an integer >= 1")
    count = [0]
    hook = objective.model.register_forward_hook(lambda *a: count.__setitem__(0, count[0] + 1))
    try:
        run(objective, optimizer, steps, record_params=False)
    finally:
        hook.remove()
    return (count[0] - 1) / steps  # run evaluates steps + 1 points: the last one is after the last step


@dataclass(frozen=True)
class Comparison:
    """One optimizer of :func:`compare_optimizers`: the full training loss after the run, per learning rate."""

    name: str
    lrs: tuple
    losses: tuple  #: the full-batch training loss after ``steps`` mini-batch steps, one per lr
    curve: np.ndarray  #: the mini-batch losses of the run at the best lr

    @property
    def best(self) -> int:
        return int(np.nanargmin(self.losses))

    @property
    def best_lr(self) -> float:
        return self.lrs[self.best]

    @property
    def best_loss(self) -> float:
        return self.losses[self.best]


def compare_optimizers(make_model: Callable[[], nn.Module], loss_fn: Callable, X: torch.Tensor, y: torch.Tensor,
                       contestants: dict, *, steps: int, batch_size: int, seed: int = 0) -> dict:
    r"""Kingma & Ba's protocol in small: every optimizer trains a fresh ``make_model()`` (the same
    initial weights) for ``steps`` mini-batch steps at each of its learning rates; the full-batch
    training loss at the end decides its best rate.

    Args:
        make_model: builds the (seeded) model.
        loss_fn, X, y: the loss (a mean over the batch) and the training set.
        contestants: name -> ``(factory, lrs)`` with ``factory(params, lr) -> Optimizer``.
        steps, batch_size, seed: the mini-batches (drawn without replacement, the same for everyone).

    Returns:
        name -> :class:`Comparison`.
    """
    check_type("compare_optimizers", "contestants", contestants, isinstance(contestants, dict) and contestants,
               "a non-empty dict name -> (factory, lrs)")
    out = {}
    for name, (factory, lrs) in contestants.items():
        losses, curves = [], []
        for lr in lrs:
            model = make_model()
            obj = stream_objective(model, loss_fn, X, y, batch_size=batch_size, seed=seed)
            traj = run(obj, lambda p: factory(p, lr), steps, record_params=False, explode=None)
            with torch.no_grad():
                full = float(loss_fn(model(X), y))
            losses.append(full if np.isfinite(full) else float("nan"))
            curves.append(traj.losses)
        best = int(np.nanargmin(losses))
        out[name] = Comparison(name, tuple(lrs), tuple(losses), curves[best])
    return out
