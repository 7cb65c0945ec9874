r"""An optimizer race: any subset of :mod:`optlab.optim`'s optimizers on one 2-D surface, step by step.

Every optimizer is the real class, driven by :func:`optlab.trajectory.run` from the surface's start
point for :data:`HORIZON` steps (once per setting: a step of the race reveals one more iterate, it does
not rerun anything). At step ``k`` the race shows each path :math:`\theta_0..\theta_k`, its loss
:math:`f(\theta_k)`, its distance to the nearest known minimum and what became of it: still running,
reached the minimum (:math:`\|\theta - \theta^*\| <` :data:`REACHED`), diverged (a non-finite or exploding
loss, see :func:`optlab.trajectory.run`) or stopped (the optimizer refused to step, e.g. SDLM on negative
curvature, or a singular Newton system; its message is shown).

Surfaces: Rosenbrock's curved valley, Beale's plateaux, a rotated ravine quadratic (condition number
25) and the saddle :math:`\tfrac12(x^2 - y^2)`.

Slides: R. Zemel, COMS 4995 lecture 4 (ravines, plateaux, saddles; momentum, RMSprop, Adam); I. Misra,
deck 003, "Optimization for Deep Networks" (SGD, momentum, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam,
AdaMax). Natural gradient and PRONG are not in the race: they need a likelihood or whitened layers,
which a 2-D surface does not have.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import check, check_type, int_in_range, is_number, one_of

#: steps each optimizer runs (the end of Play)
HORIZON = 200
#: distance to a minimum that counts as reached
REACHED = 1e-3


@dataclass(frozen=True)
class RaceSurface:
    """A surface of the race: how to build it and the learning rate plain SGD needs on it."""

    name: str
    label: str
    sgd_lr: float
    log_loss: bool  #: the loss panel on a log scale (f >= 0 with minimum 0)
    slide: str


RACE_SURFACES = {s.name: s for s in [
    RaceSurface("rosenbrock", "Rosenbrock (a curved valley)", 1e-3, True, "Zemel lecture 4: narrow ravines"),
    RaceSurface("beale", "Beale (plateaux)", 1e-3, True, "Zemel lecture 4: plateaux"),
    RaceSurface("ravine", "rotated ravine quadratic, kappa = 25", 0.03, True, "Zemel lecture 4: ill-conditioned curvature"),
    RaceSurface("saddle", "saddle (x^2 - y^2)/2", 0.1, False, "Goodfellow deck 004: gradient descent flees saddles"),
]}


@functools.lru_cache(maxsize=None)
def race_surface(name: str):
    """The :class:`~optlab.problems.base.Surface` of a race surface (built once)."""
    from ..problems import Quadratic, beale_surface, rosenbrock_surface, saddle_surface

    one_of("OptimizerRace", "surface", name, tuple(RACE_SURFACES))
    if name == "ravine":
        q = Quadratic.ravine(25.0, angle=math.pi / 6, theta0=[-1.5, 1.0])
        q.name = "ravine"
        return q
    return {"rosenbrock": rosenbrock_surface, "beale": beale_surface, "saddle": saddle_surface}[name]()


@dataclass(frozen=True)
class RaceOptimizer:
    """One contestant: an ``optlab.optim`` class, fixed options, and the hyper-parameters a student sets."""

    label: str
    cls_name: str
    fixed: dict  #: options that define this contestant (e.g. momentum for "Nesterov")
    defaults: dict  #: default values of the knobs (``lr: None`` means the surface's SGD learning rate)
    knobs: dict  #: hyper-parameter -> (low, high, log scale)

    def cls(self):
        from .. import optim

        return getattr(optim, self.cls_name)


_LR = (1e-5, 10.0, True)
_UNIT = (0.0, 0.999, False)
_DAMP = (0.0, 10.0, False)
RACE_OPTIMIZERS = {o.label: o for o in [
    RaceOptimizer("SGD", "SGD", {}, {"lr": None}, {"lr": _LR}),
    RaceOptimizer("Momentum", "SGD", {}, {"lr": None, "momentum": 0.9}, {"lr": _LR, "momentum": _UNIT}),
    RaceOptimizer("Nesterov", "SGD", {"nesterov": True}, {"lr": None, "momentum": 0.9},
                  {"lr": _LR, "momentum": (0.01, 0.999, False)}),
    RaceOptimizer("Adagrad", "Adagrad", {}, {"lr": 0.5}, {"lr": _LR}),
    RaceOptimizer("RMSprop", "RMSprop", {}, {"lr": 0.01, "alpha": 0.99}, {"lr": _LR, "alpha": _UNIT}),
    RaceOptimizer("Adadelta", "Adadelta", {}, {"lr": 1.0, "rho": 0.9}, {"lr": _LR, "rho": _UNIT}),
    RaceOptimizer("Adam", "Adam", {}, {"lr": 0.05}, {"lr": _LR}),
    RaceOptimizer("AdamW", "AdamW", {}, {"lr": 0.05, "weight_decay": 0.01}, {"lr": _LR, "weight_decay": (0.0, 1.0, False)}),
    RaceOptimizer("Adamax", "Adamax", {}, {"lr": 0.05}, {"lr": _LR}),
    RaceOptimizer("NAdam", "NAdam", {}, {"lr": 0.05}, {"lr": _LR}),
    RaceOptimizer("Rprop", "Rprop", {}, {"lr": 0.01}, {"lr": _LR}),
    RaceOptimizer("ASGD", "ASGD", {}, {"lr": None}, {"lr": _LR}),
    RaceOptimizer("AveragedSGD", "AveragedSGD", {"average_start": 0}, {"lr": None}, {"lr": _LR}),
    RaceOptimizer("Newton", "Newton", {}, {"lr": 1.0, "damping": 1e-3}, {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("SaddleFreeNewton", "SaddleFreeNewton", {}, {"lr": 1.0, "damping": 1e-3},
                  {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("NonlinearCG", "NonlinearCG", {}, {"lr": 1.0}, {"lr": _LR}),
    RaceOptimizer("ScaledCG", "ScaledCG", {}, {"damping": 1e-6}, {"damping": (1e-9, 10.0, True)}),
    RaceOptimizer("GaussNewton", "GaussNewton", {}, {"lr": 1.0, "damping": 1e-3}, {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("LevenbergMarquardt", "LevenbergMarquardt", {}, {"damping": 0.01}, {"damping": (1e-9, 10.0, True)}),
    RaceOptimizer("HessianFree", "HessianFree", {}, {"lr": 1.0, "damping": 1.0}, {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("SDLM", "SDLM", {}, {"lr": 0.01, "damping": 0.1}, {"lr": _LR, "damping": (1e-6, 10.0, True)}),
    RaceOptimizer("VSGD", "VSGD", {}, {}, {}),
]}
DEFAULT_FIELD = ("SGD", "Momentum", "Adam", "Newton")


def default_hyper(label: str, surface: str) -> dict:
    """The knobs' starting values of contestant ``label`` on ``surface`` (``lr: None`` -> the surface's SGD lr)."""
    one_of("OptimizerRace", "optimizer", label, tuple(RACE_OPTIMIZERS))
    sgd_lr = RACE_SURFACES[surface].sgd_lr
    return {k: (sgd_lr if v is None else v) for k, v in RACE_OPTIMIZERS[label].defaults.items()}


def _checked_hyper(label: str, surface: str, given) -> dict:
    entry = RACE_OPTIMIZERS[label]
    hyper = default_hyper(label, surface)
    if given is None:
        return hyper
    check_type("OptimizerRace", f"hyper[{label!r}]", given, isinstance(given, dict), "a dict knob -> value")
    for name, value in given.items():
        one_of("OptimizerRace", f"hyper[{label!r}] knob", name, tuple(entry.knobs))
        low, high, _ = entry.knobs[name]
        check("OptimizerRace", f"{label}.{name}", value, is_number(value) and low <= value <= high,
              f"a number in [{low:g}, {high:g}]")
        hyper[name] = float(value)
    return hyper


@functools.lru_cache(maxsize=256)
def _race_run(surface: str, label: str, hyper: tuple, horizon: int):
    """The whole run of one contestant (cached: Step and Play only reveal more of it)."""
    import torch

    from ..trajectory import run

    entry, surf = RACE_OPTIMIZERS[label], race_surface(surface)
    cls, kwargs = entry.cls(), {**entry.fixed, **dict(hyper)}
    objective = surf.objective()
    extra = dict(model=objective.model, loss_fn=objective.loss_fn) if cls.needs == "model" else {}
    done = []  # steps completed (a diagnostic): where a refusing optimizer stopped

    def make(params):
        return cls(params, **kwargs, **extra)

    try:
        return run(objective, make, horizon, diagnostics={"k": lambda info: done.append(info.step) or 0}), ""
    except (ValueError, RuntimeError, torch.linalg.LinAlgError) as err:  # the optimizer refused a step: say so
        k = len(done)
        return run(surf.objective(), make, k), f"stopped at step {k}: {str(err).splitlines()[0][:160]}"


@dataclass(frozen=True)
class Contestant:
    """One optimizer at step ``k`` of the race."""

    label: str
    hyper: dict
    path: np.ndarray  #: theta_0..theta_j, j = min(k, the step it stopped at); finite rows only
    losses: np.ndarray  #: f along the path
    loss: float  #: f at the last point shown
    distance: float  #: distance from the last point to the nearest known minimum (inf if the surface has none)
    status: str  #: "running", "reached the minimum at step j", "diverged at step j: ...", "stopped at step j: ..."
    finished_at: int | None  #: the step it reached the minimum, diverged or stopped (None while running)


@dataclass(frozen=True)
class RaceState:
    """What :class:`OptimizerRace` shows at step ``step``."""

    surface: str
    step: int
    horizon: int
    contestants: tuple
    leader: str | None  #: the lowest loss among those that have not diverged or stopped (None if none)

    def contestant(self, label: str) -> Contestant:
        return {c.label: c for c in self.contestants}[label]

    def to_dict(self) -> dict:
        from .saddle_flow import _plain

        return _plain(self)


def _contestant(surface: str, label: str, hyper: dict, step: int, horizon: int) -> Contestant:
    traj, stopped = _race_run(surface, label, tuple(sorted(hyper.items())), horizon)
    finite = np.all(np.isfinite(traj.thetas), axis=1) & np.isfinite(traj.losses)
    n_ok = int(np.argmin(finite)) if not finite.all() else finite.size  # finite prefix
    j = min(step, n_ok - 1)
    path, losses = traj.thetas[: j + 1], traj.losses[: j + 1]
    minima = race_surface(surface).minima
    dists = np.linalg.norm(traj.thetas[:n_ok, None, :] - minima[None], axis=-1).min(-1) if len(minima) else None
    reached = np.nonzero(dists < REACHED)[0] if dists is not None else np.array([], int)
    distance = float(dists[j]) if dists is not None else math.inf
    status, finished = "running", None
    if reached.size and reached[0] <= step:
        status, finished = f"reached the minimum at step {reached[0]}", int(reached[0])
    elif traj.diverged and traj.diverged_at <= step:
        status, finished = f"diverged at step {traj.diverged_at}: {traj.reason}", int(traj.diverged_at)
    elif stopped and traj.steps <= step:
        status, finished = stopped, traj.steps
    return Contestant(label, dict(hyper), path, losses, float(losses[-1]), distance, status, finished)


def race_model(surface: str = "rosenbrock", optimizers=DEFAULT_FIELD, *, hyper: dict | None = None, step: int = 0,
               horizon: int = HORIZON) -> RaceState:
    r"""The race of ``optimizers`` on ``surface`` at step ``step``.

    Args:
        surface: one of :data:`RACE_SURFACES`.
        optimizers: labels from :data:`RACE_OPTIMIZERS` (one or more, no repeats).
        hyper: label -> {knob: value} overriding :func:`default_hyper` (each knob within its range).
        step: how far the race has gone (0..horizon).
        horizon: the steps each optimizer runs (1..1000).

    Example:
        >>> s = race_model("ravine", ["SGD", "Newton"], step=3)
        >>> s.contestant("Newton").status, s.leader
        ('reached the minimum at step 1', 'Newton')
        >>> s.contestant("SGD").path.shape
        (4, 2)
    """
    one_of("OptimizerRace", "surface", surface, tuple(RACE_SURFACES))
    check_type("OptimizerRace", "optimizers", optimizers, isinstance(optimizers, (list, tuple)),
               "a list of optimizer labels")
    labels = tuple(optimizers)
    check("OptimizerRace", "optimizers", optimizers, len(labels) > 0 and len(set(labels)) == len(labels),
          f"one or more distinct labels from {tuple(RACE_OPTIMIZERS)}")
    for label in labels:
        one_of("OptimizerRace", "optimizer", label, tuple(RACE_OPTIMIZERS))
    hyper = {} if hyper is None else hyper
    check_type("OptimizerRace", "hyper", hyper, isinstance(hyper, dict), "a dict label -> {knob: value}")
    for label in hyper:
        check("OptimizerRace", "hyper", label, label in labels, f"a label among the racing optimizers {labels}")
    int_in_range("OptimizerRace", "horizon", horizon, 1, 1000)
    int_in_range("OptimizerRace", "step", step, 0, horizon)
    contestants = tuple(_contestant(surface, label, _checked_hyper(label, surface, hyper.get(label)), step, horizon)
                        for label in labels)
    alive = [c for c in contestants if not c.status.startswith(("diverged", "stopped"))]
    leader = min(alive, key=lambda c: c.loss).label if alive else None
    return RaceState(surface, int(step), int(horizon), contestants, leader)
