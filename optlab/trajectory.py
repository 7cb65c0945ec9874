r"""Run any ``torch.optim``-style optimizer on any problem and record what happens.

:func:`run` takes an :class:`~optlab.problems.Objective` (parameters + loss closure; every problem of
:mod:`optlab.problems` makes one) and an optimizer (any ``torch.optim.Optimizer``: every optimizer of
:mod:`optlab.optim`, stepped as its ``needs`` attribute says, torch's own, or a foreign one), takes
``steps`` steps and returns a
:class:`Trajectory`: the parameters :math:`\theta_0..\theta_K`, the losses :math:`J(\theta_k)`, the gradient
norms :math:`\|\nabla J(\theta_k)\|`, optional per-step diagnostics, and whether it **diverged** (a
non-finite loss, gradient or parameter, or :math:`|J(\theta_k)| > \text{explode} \cdot \max(|J(\theta_0)|, 1)`).
Divergence is a result, not an exception: the run stops and says at which step and why.

Built-in diagnostics (each a function of a :class:`StepInfo`, computed after the step):

* :func:`effective_lr`: :math:`\|\theta_{k+1} - \theta_k\| / \|g_k\|` (the learning rate plain GD would
  need to make the same move; shows what momentum and adaptive methods really do).
* :func:`alpha_lambda_max`: :math:`\alpha\lambda_{\max}` with the optimizer's current ``lr``; GD on a
  quadratic is stable iff it is < 2 (Zemel lecture 4; LeCun deck 000 "max learning rate").
* :func:`condition_number`: :math:`\lambda_{\max}/\lambda_{\min}` of the Hessian at :math:`\theta_k` (dense,
  from :class:`optlab.curvature.LossHessianOperator`; small problems only).

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

from .curvature import LossHessianOperator
from .flat import flatten
from .optim.closure import NEEDS
from .problems.base import Objective


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
    return float(loss.detach()), flatten([None if p.grad is None else p.grad.detach() for p in objective.params],
                                         objective.params)


def build_optimizer(optimizer, objective: Objective) -> torch.optim.Optimizer:
    """The optimizer ``run`` steps: ``optimizer`` itself if it is built on ``objective.params``; else the
    result of ``optimizer(objective.params)`` (a factory or a class), where a class with
    ``needs = "model"`` is built as ``cls(objective.params, model=objective.model, loss_fn=objective.loss_fn)``."""
    if isinstance(optimizer, torch.optim.Optimizer):
        ids = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if ids != {id(p) for p in objective.params}:
            raise ValueError(f"run: invalid optimizer={type(optimizer).__name__}: its parameters are not the "
                             f"objective's; expected one built on objective.params, or a factory "
                             f"`lambda params: torch.optim.SGD(params, lr=...)`")
        return optimizer
    if isinstance(optimizer, type) and getattr(optimizer, "needs", None) == "model":
        if objective.model is None:
            raise ValueError(f"{optimizer.__name__} needs the model and loss_fn of the objective, and objective "
                             f"{objective.name!r} has none: build it with optlab.problems.model_objective (or "
                             f"pass a factory `lambda params: {optimizer.__name__}(params, model=..., loss_fn=...)`)")
        opt = optimizer(objective.params, model=objective.model, loss_fn=objective.loss_fn)
    elif callable(optimizer):
        opt = optimizer(objective.params)
    else:
        raise TypeError(f"run: invalid optimizer={optimizer!r:.60}; expected a torch.optim.Optimizer, an optimizer "
                        f"class or a factory params -> optimizer")
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"run: the optimizer factory returned {opt!r:.60}; expected a torch.optim.Optimizer")
    return opt


def step_closure(objective: Objective, opt: torch.optim.Optimizer, use_closure: bool):
    """torch's closure for ``opt.step`` when ``opt`` needs one (``needs`` other than ``"gradient"``, or
    ``use_closure`` for foreign optimizers such as ``torch.optim.LBFGS``); ``None`` otherwise."""
    needs = getattr(opt, "needs", "gradient")
    if needs not in NEEDS:
        raise ValueError(f"{type(opt).__name__}: invalid needs={needs!r}; expected one of {NEEDS}")
    if needs == "gradient" and not use_closure:
        return None

    def closure():
        opt.zero_grad()
        loss = objective.loss()
        loss.backward()
        return loss

    return closure


def _check_run_arguments(steps, explode, diagnostics: dict) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"run: invalid steps={steps!r}; expected an integer >= 0")
    if explode is not None and (not np.isscalar(explode) or not explode > 1):
        raise ValueError(f"run: invalid explode={explode!r}; expected a number > 1 or None")
    for name, fn in diagnostics.items():
        if not callable(fn):
            raise TypeError(f"run: invalid diagnostics[{name!r}]={fn!r:.60}; expected a function of a StepInfo")


class _Recorder:
    """The growing record of a run: what :class:`Trajectory` is built from."""

    def __init__(self, objective: Objective, diagnostics: dict, record_params: bool, explode: float | None):
        self.objective, self.diagnostics = objective, diagnostics
        self.record_params, self.explode = record_params, explode
        self.thetas, self.losses, self.gnorms, self.lrs = [], [], [], []
        self.diag = {name: [] for name in diagnostics}
        self.diverged_at, self.reason = None, ""

    def point(self, k: int) -> tuple[Tensor, Tensor, float]:
        """Record :math:`\\theta_k, J(\\theta_k), \\|g_k\\|`; returns ``(theta, g, loss)``, and sets ``reason``
        when the run diverged there."""
        theta = self.objective.theta
        loss, g = _evaluate(self.objective)
        gnorm = float(g.norm())
        if self.record_params:
            self.thetas.append(theta)  # a copy; converted to numpy once, at the end
        self.losses.append(loss)
        self.gnorms.append(gnorm)
        self.reason = _check_divergence(loss, gnorm, theta, self.losses[0], self.explode)
        if self.reason:
            self.diverged_at = k
        return theta, g, loss

    def after_step(self, info: StepInfo) -> None:
        for name, fn in self.diagnostics.items():
            self.diag[name].append(float(fn(info)))

    def trajectory(self) -> Trajectory:
        n = self.objective.theta.numel()
        thetas = torch.stack(self.thetas).double().numpy() if self.record_params else np.zeros((0, n))
        return Trajectory(thetas=thetas,
                          losses=np.array(self.losses), grad_norms=np.array(self.gnorms),
                          diagnostics={name: np.array(v) for name, v in self.diag.items()}, lrs=np.array(self.lrs),
                          steps=len(self.losses) - 1, diverged=self.diverged_at is not None,
                          diverged_at=self.diverged_at, reason=self.reason, name=self.objective.name)


def run(objective: Objective, optimizer, steps: int, *, diagnostics: dict | None = None,
        scheduler: Callable | None = None, record_params: bool = True, explode: float | None = 1e6,
        use_closure: bool = False, progress: bool = False) -> Trajectory:
    r"""Take ``steps`` optimizer steps on ``objective`` and record :math:`\theta_k`, :math:`J(\theta_k)`,
    :math:`\|g_k\|`.

    Args:
        objective: parameters and loss (e.g. ``Quadratic(...).objective()``, ``Digits().objective(model)``).
            Its parameters are trained in place.
        optimizer: a ``torch.optim.Optimizer`` built on ``objective.params``, a factory
            ``params -> Optimizer`` (e.g. ``lambda p: torch.optim.SGD(p, lr=0.1)``), or an optimizer class
            (built with its defaults; a class with ``needs = "model"``, e.g. ``optlab.optim.GaussNewton``,
            as ``cls(objective.params, model=objective.model, loss_fn=objective.loss_fn)``, a
            ``ValueError`` if the objective has no model).
        steps: number of steps (>= 0).
        diagnostics: name -> function of a :class:`StepInfo` returning a number, computed after each step
            (see :func:`effective_lr`, :func:`alpha_lambda_max`, :func:`condition_number`).
        scheduler: optional factory ``optimizer -> lr scheduler`` (e.g.
            ``lambda o: torch.optim.lr_scheduler.StepLR(o, 10)``), stepped after every optimizer step.
        record_params: keep every :math:`\theta_k` (turn off for big models).
        explode: the run is declared diverged when :math:`|J| > \text{explode}\cdot\max(|J(\theta_0)|, 1)`;
            ``None`` checks only for non-finite values.
        use_closure: give torch's closure to an optimizer that does not declare ``needs`` (foreign
            optimizers such as ``torch.optim.LBFGS``). optlab's optimizers need no flag: those with
            ``needs = "closure"`` or ``"model"`` always get the closure (:mod:`optlab.optim.closure`), those
            with ``needs = "gradient"`` step on the gradient ``run`` has just computed.
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
        >>> from optlab.optim import Newton
        >>> run(q.objective(), Newton, steps=1).final_loss   # Newton: the minimum in one step
        0.0
    """
    diagnostics = dict(diagnostics or {})
    _check_run_arguments(steps, explode, diagnostics)
    opt = build_optimizer(optimizer, objective)
    sched = scheduler(opt) if scheduler is not None else None
    if sched is not None and not callable(getattr(sched, "step", None)):
        raise TypeError(f"run: invalid scheduler: it built {sched!r:.60}; expected an object with .step()")
    closure = step_closure(objective, opt, use_closure)
    record = _Recorder(objective, diagnostics, record_params, explode)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=objective.name, leave=False)
    try:
        for k in range(steps + 1):
            theta, g, loss = record.point(k)
            if record.reason or k == steps:
                break
            lr = float(opt.param_groups[0].get("lr", float("nan")))
            record.lrs.append(lr)
            opt.step(closure) if closure is not None else opt.step()
            if diagnostics:
                record.after_step(StepInfo(k, theta, objective.theta, g, loss, lr, opt, objective))
            if sched is not None:
                sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
    finally:
        if bar is not None:
            bar.close()
    return record.trajectory()


# --------------------------------------------------------------------------- diagnostics


def effective_lr(info: StepInfo) -> float:
    r"""The effective learning rate :math:`\|\theta_{k+1} - \theta_k\| / \|g_k\|` (``nan`` when :math:`g_k = 0`)."""
    gn = float(info.grad.norm())
    return float((info.theta_next - info.theta).norm()) / gn if gn > 0 else float("nan")


def objective_hessian(objective: Objective) -> Tensor:
    r"""The dense Hessian :math:`\nabla^2 J` at the current parameters:
    :class:`optlab.curvature.LossHessianOperator` of ``objective.loss``, ``to_dense()``. Small problems only."""
    return LossHessianOperator(objective.loss, objective.params).to_dense()


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
