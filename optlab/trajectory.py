r"""Run any ``torch.optim``-style optimizer on any problem and record what happens.

:func:`run` takes an :class:`~optlab.problems.Objective` (parameters + loss closure; every problem of
:mod:`optlab.problems` makes one) and an optimizer, takes ``steps`` steps and returns a
:class:`Trajectory`: the parameters :math:`\theta_0..\theta_K`, the losses :math:`J(\theta_k)`, the gradient
norms :math:`\|\nabla J(\theta_k)\|`, optional per-step diagnostics, and whether it **diverged** (a
non-finite loss, gradient or parameter, or :math:`|J(\theta_k)| > \text{explode} \cdot \max(|J(\theta_0)|, 1)`).
Divergence is a result, not an exception: the run stops and says at which step and why.

Built-in diagnostics (each a function of a :class:`StepInfo`, computed after the step):

* :func:`effective_lr`: :math:`\|\theta_{k+1} - \theta_k\| / \|g_k\|` (the learning rate plain GD would
  need to make the same move; shows what momentum and adaptive methods really do).
* :func:`alpha_lambda_max`: :math:`\alpha\lambda_{\max}` with the optimizer's current ``lr``; GD on a
  quadratic is stable iff it is < 2 (Zemel lecture 4; LeCun deck 000 "max learning rate").
* :func:`condition_number`: :math:`\lambda_{\max}/\lambda_{\min}` of the Hessian at :math:`\theta_k` (dense;
  small problems only).

The progress bar (tqdm) is off by default so notebooks and tests print nothing; pass ``progress=True``.

Reference: the diagnostics follow I. Goodfellow's tutorial (2015) "Make visualizations!" (gradient norm,
curvature) and Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", section 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from .problems.base import Objective, flat


@dataclass
class StepInfo:
    """What a diagnostic sees about step ``k``: the point before and after, the gradient and loss at ``theta``."""

    step: int
    theta: Tensor  #: theta_k (flat, detached)
    theta_next: Tensor  #: theta_{k+1}
    grad: Tensor  #: gradient at theta_k (flat)
    loss: float  #: J(theta_k)
    lr: float  #: the optimizer's lr for this step (first param group; nan if it has none)
    optimizer: torch.optim.Optimizer
    objective: Objective


@dataclass
class Trajectory:
    r"""The record of a run: ``thetas[k]`` is :math:`\theta_k`, ``losses[k]`` is :math:`J(\theta_k)`, ``k = 0..steps``.

    Attributes:
        thetas: shape ``(steps + 1, n)`` (``(0, n)`` if parameters were not recorded).
        losses, grad_norms: shape ``(steps + 1,)``.
        diagnostics: name -> array of shape ``(steps,)`` (value after step ``k``).
        lrs: the learning rate of each step, shape ``(steps,)`` (first param group; schedulers show here).
        steps: the number of steps actually taken (fewer than asked if it diverged).
        diverged: whether the run stopped on divergence; diverged_at: the index ``k`` of the first
            diverging record; reason: why (empty if it did not diverge).
    """

    thetas: np.ndarray
    losses: np.ndarray
    grad_norms: np.ndarray
    diagnostics: dict = field(default_factory=dict)
    lrs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps: int = 0
    diverged: bool = False
    diverged_at: int | None = None
    reason: str = ""
    name: str = ""

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1])

    @property
    def final_theta(self) -> np.ndarray:
        return self.thetas[-1]


def _check_divergence(loss: float, gnorm: float, theta: Tensor, loss0: float | None, explode: float | None) -> str:
    if not math.isfinite(loss):
        return f"non-finite loss ({loss})"
    if not math.isfinite(gnorm):
        return f"non-finite gradient norm ({gnorm})"
    if not bool(torch.isfinite(theta).all()):
        return "non-finite parameters"
    if explode is not None and loss0 is not None and abs(loss) > explode * max(abs(loss0), 1.0):
        bound = explode * max(abs(loss0), 1.0)
        return f"exploding loss: |{loss:.4g}| > {explode:g} * max(|J(theta_0)|, 1) = {bound:.4g}"
    return ""


def _evaluate(objective: Objective) -> tuple[float, Tensor]:
    """Loss and flat gradient at the current parameters (gradients left in ``.grad``)."""
    for p in objective.params:
        p.grad = None
    with torch.enable_grad():
        loss = objective.loss()
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"objective.loss() must return a scalar tensor, got {loss!r:.80}")
        loss.backward()
    g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1)
                   for p in objective.params])
    return float(loss.detach()), g


def _build_optimizer(optimizer, objective: Objective) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if ids != {id(p) for p in objective.params}:
            raise ValueError("the optimizer's parameters are not the objective's: build it on objective.params, "
                             "or pass a factory `lambda params: torch.optim.SGD(params, lr=...)`")
        return optimizer
    if callable(optimizer):
        opt = optimizer(objective.params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"the optimizer factory must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt
    raise TypeError(f"optimizer must be a torch.optim.Optimizer or a factory params -> optimizer, "
                    f"got {type(optimizer).__name__}")


def run(objective: Objective, optimizer, steps: int, *, diagnostics: dict | None = None,
        scheduler: Callable | None = None, record_params: bool = True, explode: float | None = 1e6,
        use_closure: bool = False, progress: bool = False) -> Trajectory:
    r"""Take ``steps`` optimizer steps on ``objective`` and record :math:`\theta_k`, :math:`J(\theta_k)`,
    :math:`\|g_k\|`.

    Args:
        objective: parameters and loss (e.g. ``Quadratic(...).objective()``, ``Digits().objective(model)``).
            Its parameters are trained in place.
        optimizer: a ``torch.optim.Optimizer`` built on ``objective.params``, or a factory
            ``params -> Optimizer`` (e.g. ``lambda p: torch.optim.SGD(p, lr=0.1)``).
        steps: number of steps (>= 0).
        diagnostics: name -> function of a :class:`StepInfo` returning a number, computed after each step
            (see :func:`effective_lr`, :func:`alpha_lambda_max`, :func:`condition_number`).
        scheduler: optional factory ``optimizer -> lr scheduler`` (e.g.
            ``lambda o: torch.optim.lr_scheduler.StepLR(o, 10)``), stepped after every optimizer step.
        record_params: keep every :math:`\theta_k` (turn off for big models).
        explode: the run is declared diverged when :math:`|J| > \text{explode}\cdot\max(|J(\theta_0)|, 1)`;
            ``None`` checks only for non-finite values.
        use_closure: pass a closure to ``optimizer.step`` (needed by L-BFGS-like optimizers; torch's SGD
            would then compute the gradient twice).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`Trajectory`. When the run diverges it stops early, ``diverged`` is set and the record
        ends at the diverging point.

    Example:
        >>> from optlab.problems import Quadratic
        >>> q = Quadratic([1.0, 10.0])
        >>> t = run(q.objective(), lambda p: torch.optim.SGD(p, lr=0.25), steps=20)
        >>> t.diverged, t.reason[:16]
        (True, 'exploding loss: ')
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if explode is not None and (not np.isscalar(explode) or not explode > 1):
        raise ValueError(f"explode must be a number > 1 or None, got {explode!r}")
    diagnostics = dict(diagnostics or {})
    for name, fn in diagnostics.items():
        if not callable(fn):
            raise TypeError(f"diagnostic {name!r} must be a function of a StepInfo, got {type(fn).__name__}")
    opt = _build_optimizer(optimizer, objective)
    sched = scheduler(opt) if scheduler is not None else None
    if sched is not None and not callable(getattr(sched, "step", None)):
        raise TypeError(f"scheduler must build an object with .step(), got {type(sched).__name__}")

    thetas, losses, gnorms, lrs = [], [], [], []
    diag = {name: [] for name in diagnostics}
    closure = None
    if use_closure:
        def closure():
            opt.zero_grad()
            loss = objective.loss()
            loss.backward()
            return loss

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=objective.name, leave=False)

    loss0 = None
    diverged_at, reason, k = None, "", 0
    try:
        for k in range(steps + 1):
            theta = objective.theta
            loss, g = _evaluate(objective)
            gnorm = float(g.norm())
            loss0 = loss if loss0 is None else loss0
            if record_params:
                thetas.append(theta.double().numpy())
            losses.append(loss)
            gnorms.append(gnorm)
            reason = _check_divergence(loss, gnorm, theta, loss0, explode)
            if reason:
                diverged_at = k
                break
            if k == steps:
                break
            lr = float(opt.param_groups[0].get("lr", float("nan")))
            lrs.append(lr)
            opt.step(closure) if closure is not None else opt.step()
            if diagnostics:
                info = StepInfo(k, theta, objective.theta, g, loss, lr, opt, objective)
                for name, fn in diagnostics.items():
                    diag[name].append(float(fn(info)))
            if sched is not None:
                sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    n = objective.theta.numel()
    return Trajectory(thetas=np.array(thetas) if record_params else np.zeros((0, n)), losses=np.array(losses),
                      grad_norms=np.array(gnorms), diagnostics={k_: np.array(v) for k_, v in diag.items()},
                      lrs=np.array(lrs),
                      steps=len(losses) - 1, diverged=diverged_at is not None, diverged_at=diverged_at,
                      reason=reason, name=objective.name)


# --------------------------------------------------------------------------- diagnostics


def effective_lr(info: StepInfo) -> float:
    r"""The effective learning rate :math:`\|\theta_{k+1} - \theta_k\| / \|g_k\|` (``nan`` when :math:`g_k = 0`)."""
    gn = float(info.grad.norm())
    return float((info.theta_next - info.theta).norm()) / gn if gn > 0 else float("nan")


def objective_hessian(objective: Objective) -> Tensor:
    r"""The dense Hessian :math:`\nabla^2 J` at the current parameters, column by column from exact
    Hessian-vector products (:func:`optlab.curvature.loss_hvp`). Small problems only."""
    from .curvature import loss_hvp

    n = objective.theta.numel()
    eye = torch.eye(n, dtype=objective.params[0].dtype)
    H = torch.stack([loss_hvp(objective.loss, objective.params, eye[i]) for i in range(n)], dim=1)
    return 0.5 * (H + H.T)


def alpha_lambda_max(lambda_max: float | None = None) -> Callable[[StepInfo], float]:
    r"""Diagnostic :math:`\alpha\lambda_{\max}` (the step's lr times the top Hessian eigenvalue at :math:`\theta_k`).

    Args:
        lambda_max: a fixed value (a quadratic's); default: the largest eigenvalue of the dense Hessian
            at :math:`\theta_k` (computed each step; small problems only).
    """
    if lambda_max is not None and (not np.isscalar(lambda_max) or not np.isfinite(lambda_max)):
        raise ValueError(f"lambda_max must be a finite number or None, got {lambda_max!r}")

    def diagnostic(info: StepInfo) -> float:
        lam = lambda_max
        if lam is None:
            lam = float(torch.linalg.eigvalsh(_hessian_at(info)).max())
        if not math.isfinite(info.lr):
            raise ValueError(f"alpha_lambda_max: {type(info.optimizer).__name__} has no 'lr' in its param_groups")
        return info.lr * float(lam)

    return diagnostic


def condition_number() -> Callable[[StepInfo], float]:
    r"""Diagnostic :math:`\lambda_{\max}/\lambda_{\min}` of the dense Hessian at :math:`\theta_k`
    (negative or infinite where the Hessian is not positive definite)."""

    def diagnostic(info: StepInfo) -> float:
        lam = torch.linalg.eigvalsh(_hessian_at(info))
        return float(lam.max() / lam.min()) if float(lam.min()) != 0 else float("inf")

    return diagnostic


def _hessian_at(info: StepInfo) -> Tensor:
    """The Hessian at theta_k (the parameters are moved there and put back to theta_{k+1})."""
    obj = info.objective
    obj.set_theta(info.theta)
    try:
        return objective_hessian(obj)
    finally:
        obj.set_theta(info.theta_next)
