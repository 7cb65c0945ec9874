"""The one registry of curvature-driven optimizers that drives ``tests/test_second_order_registry.py`` and,
with ``optim_registry.py``'s first-order rows, ``tests/test_contract.py``.

Adding an optimizer means adding one ``Entry``, shaped as ``optim_registry.Entry``: its class, the base
settings, the grid of switches, the settings under which ``optlab.trajectory.run`` takes it down a quadratic
and the digits MLP, the invalid hyper-parameters it must reject, and -- the "reference" column -- what one
step must give, computed independently from dense autograd quantities (``torch.autograd.functional``'s
Hessian and Jacobians) at the starting point.

Every optimizer is stepped with torch's closure (``zero_grad``, loss, ``backward()``, return the loss); the
ones with ``needs = "model"`` are built with the problem's ``model=`` and ``loss_fn=``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import pytest
import torch
from torch import nn
from torch.func import functional_call

import optlab.optim as oo
from optlab.flat import flatten, unflatten
from optlab.optim import WhitenedLinear, whiten_sequential

DT = torch.float64


class Problem(NamedTuple):
    """A model, an ``nn.Module`` loss and one batch: ``loss_fn(model(inputs), targets)``."""

    model: nn.Module
    loss_fn: nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor

    def loss(self) -> torch.Tensor:
        return self.loss_fn(self.model(self.inputs), self.targets)

    def closure(self, opt):
        """torch's closure, the one convention every optimizer takes."""
        def closure():
            opt.zero_grad()
            loss = self.loss()
            loss.backward()
            return loss
        return closure


def small_problem(seed: int = 0) -> Problem:
    """A whitened 3-4-2 tanh net classifying 10 points into 2 classes (26 parameters), cross-entropy."""
    X = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    y = (torch.sin(X @ torch.randn(3, generator=torch.Generator().manual_seed(1), dtype=DT)) > 0).long()
    torch.manual_seed(seed)
    net = whiten_sequential(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double())
    return Problem(net, nn.CrossEntropyLoss(), X, y)


# ----------------------------------------------------------------------------- dense references
class Dense(NamedTuple):
    """Dense autograd quantities of a problem at its current parameters (flat, in ``parameters()`` order)."""

    theta: torch.Tensor
    g: torch.Tensor  # gradient
    H: torch.Tensor  # Hessian, torch.autograd.functional.hessian
    G: torch.Tensor  # generalized Gauss-Newton J' H_loss J (= the true Fisher for cross-entropy)
    F_emp: torch.Tensor  # empirical Fisher (1/N) sum_n g_n g_n' of the per-sample losses
    loss_at: Callable[[torch.Tensor], float]


def dense(problem: Problem) -> Dense:
    model, loss_fn, X, y = problem
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]
    theta = flatten(params)

    def outputs(t, x=X):
        return functional_call(model, dict(zip(names, unflatten(t, params))), (x,))

    def loss(t):
        return loss_fn(outputs(t), y)

    g = torch.autograd.functional.jacobian(loss, theta)
    H = torch.autograd.functional.hessian(loss, theta)
    z = outputs(theta).detach()
    J = torch.autograd.functional.jacobian(outputs, theta).reshape(z.numel(), -1)
    H_loss = torch.autograd.functional.hessian(lambda z_: loss_fn(z_, y), z).reshape(z.numel(), z.numel())
    per_sample = torch.stack([torch.autograd.functional.jacobian(
        lambda t, n=n: loss_fn(outputs(t, X[n:n + 1]), y[n:n + 1]), theta) for n in range(len(X))])
    with torch.no_grad():
        def loss_at(t):
            return float(loss(t))
    return Dense(theta, g, H, J.T @ H_loss @ J, per_sample.T @ per_sample / len(X), loss_at)


def solve(A: torch.Tensor, b: torch.Tensor, mu: float) -> torch.Tensor:
    return torch.linalg.solve(A + mu * torch.eye(len(b), dtype=A.dtype), b)


def ref_newton(d: Dense, kw) -> torch.Tensor:
    return d.theta - kw.get("lr", 1.0) * solve(d.H, d.g, kw.get("damping", 0.0))


def ref_saddle_free(d: Dense, kw) -> torch.Tensor:
    lam, Q = torch.linalg.eigh(d.H)
    return d.theta - kw.get("lr", 1.0) * Q @ ((Q.T @ d.g) / (lam.abs() + kw.get("damping", 0.0)))


def ref_gauss_newton(d: Dense, kw) -> torch.Tensor:
    return d.theta - kw.get("lr", 1.0) * solve(d.G, d.g, kw.get("damping", 0.0))


def ref_levenberg_marquardt(d: Dense, kw) -> torch.Tensor:
    trial = d.theta - solve(d.G, d.g, kw["damping"])
    return trial if d.loss_at(trial) < d.loss_at(d.theta) else d.theta


def ref_empirical_fisher(d: Dense, kw) -> torch.Tensor:
    return d.theta - kw.get("lr", 1.0) * solve(d.F_emp, d.g, kw["damping"])


def ref_exact_line_search(d: Dense, kw) -> torch.Tensor:
    """The minimizer of E(theta - t g) over t (scipy's bounded Brent search): the first iteration of
    nonlinear CG with an exact line search."""
    from scipy.optimize import minimize_scalar

    best = minimize_scalar(lambda t: d.loss_at(d.theta - t * d.g), bounds=(0.0, 100.0), method="bounded",
                           options=dict(xatol=1e-12))
    return d.theta - best.x * d.g


def ref_scaled_cg(d: Dense, kw) -> torch.Tensor:
    r"""Moller's first iteration with the exact curvature: :math:`\alpha = |g|^2 / (g^\top H g + \lambda |g|^2)`."""
    gg = d.g @ d.g
    return d.theta - gg / (d.g @ d.H @ d.g + kw.get("damping", 1e-6) * gg) * d.g


def ref_sdlm(d: Dense, kw) -> torch.Tensor:
    return d.theta - kw["lr"] / (torch.diagonal(d.G) + kw["damping"]) * d.g


def ref_vsgd_after_slow_start(d: Dense, kw) -> torch.Tensor:
    """The first n0 steps collect the same sample (g, h) and stay: g_bar = g, v_bar = C g^2, h_bar = C |h|,
    tau = n0. Step n0 + 1 sees it once more: with r = 1/n0, v_bar = ((1 - r) C + r) g^2, h_bar likewise, and
    eta = g_bar^2 / ((h_bar + eps)(v_bar + eps))."""
    eps, h, r, C = kw.get("eps", 1e-9), torch.diagonal(d.G).abs(), 1 / kw["n0"], kw["C"]
    v_bar, h_bar = ((1 - r) * C + r) * d.g ** 2, ((1 - r) * C + r) * h
    return d.theta - kw.get("lr", 1.0) * d.g ** 2 / ((h_bar + eps) * (v_bar + eps)) * d.g


def ref_sgd(d: Dense, kw) -> torch.Tensor:
    return d.theta - kw["lr"] * d.g


# ----------------------------------------------------------------------------- the registry
def model_and_loss(problem: Problem) -> dict:
    return dict(model=problem.model, loss_fn=problem.loss_fn)


def whitened_layers(problem: Problem) -> dict:
    return dict(layers=[m for m in problem.model.modules() if isinstance(m, WhitenedLinear)],
                sample_fn=lambda: problem.model(problem.inputs))


def no_wiring(problem: Problem) -> dict:
    return {}


WIRING = {"gradient": no_wiring, "closure": no_wiring, "model": model_and_loss}


@dataclass(frozen=True)
class Entry:
    """One curvature-driven optimizer, in ``optim_registry.Entry``'s shape plus the reference column."""

    cls: type
    base: dict  # kwargs every test starts from (on the small problem)
    reference: Callable[[Dense, dict], torch.Tensor]  # theta after `reference_steps` steps, from dense autograd
    quadratic: tuple[dict, int]  # (kwargs, steps) with which run() takes it down Quadratic([1, 10])
    mlp: tuple[dict, int]  # (kwargs, steps) with which run() lowers the digits MLP's loss
    label: str = ""  # the row's id when a class has several rows
    grid: dict = field(default_factory=dict)  # switch -> values; one row per combination (e.g. solvers)
    invalid: list = field(default_factory=list)  # (kwargs, name, value) that must raise ValueError
    groups: bool = True  # several parameter groups allowed (else: a ValueError naming them)
    reference_steps: int = 1
    rtol: float = 1e-8  # of the reference comparison
    wiring: Callable[[Problem], dict] | None = None  # constructor arguments taken from the problem
    whitened: bool = False  # runs on whitened models only (PRONG); on others run() must refuse it
    marks: list = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label or self.cls.__name__

    def cases(self) -> list[dict]:
        keys = list(self.grid)
        return [{**self.base, **dict(zip(keys, values))} for values in itertools.product(*self.grid.values())]

    def make(self, problem: Problem, params=None, **kwargs):
        """The optimizer on ``problem``'s model (``params``: its parameters, or groups of them), from the
        base settings updated by ``kwargs``."""
        params = problem.model.parameters() if params is None else params
        return self.factory(problem, **{**self.base, **kwargs})(params)

    def factory(self, problem: Problem, **kwargs):
        """A factory ``params -> optimizer`` with exactly ``kwargs`` (for ``optlab.trajectory.run``)."""
        wiring = (self.wiring or WIRING[self.cls.needs])(problem)
        return lambda params: self.cls(params, **wiring, **kwargs)


_NEWTON_INVALID = [(dict(lr=-1.0), "lr", -1.0), (dict(damping=-0.1), "damping", -0.1),
                   (dict(solver="lu"), "solver", "lu"), (dict(cg_max_iter=0), "cg_max_iter", 0)]

REGISTRY: dict[str, Entry] = {e.name: e for e in [
    # the net's Hessian has eigenvalues below 0: Newton needs damping above them to be a descent method
    Entry(oo.Newton, dict(damping=1.0), ref_newton, (dict(), 1), (dict(damping=1.0), 3),
          grid=dict(solver=["dense", "cg"]), invalid=_NEWTON_INVALID),
    Entry(oo.SaddleFreeNewton, dict(damping=0.1), ref_saddle_free, (dict(), 1), (dict(damping=0.1), 3),
          invalid=[(dict(lr=float("inf")), "lr", float("inf")), (dict(damping=-1.0), "damping", -1.0)]),
    Entry(oo.GaussNewton, dict(damping=0.01), ref_gauss_newton, (dict(), 1), (dict(damping=1.0), 3),
          grid=dict(solver=["dense", "cg"]),
          invalid=[(dict(lr=-0.5), "lr", -0.5), (dict(solver="qr"), "solver", "qr")]),
    Entry(oo.LevenbergMarquardt, dict(damping=0.1), ref_levenberg_marquardt, (dict(), 5), (dict(), 3),
          groups=False,
          invalid=[(dict(damping=0.0), "damping", 0.0), (dict(drop=1.5), "drop", 1.5),
                   (dict(boost=0.5), "boost", 0.5)]),
    Entry(oo.HessianFree, dict(damping=1.0, cg_max_iter=200), ref_gauss_newton, (dict(damping=1e-3), 5),
          (dict(), 3), groups=False, rtol=1e-5,
          invalid=[(dict(damping=-1.0), "damping", -1.0), (dict(curvature="fisher"), "curvature", "fisher"),
                   (dict(cg_max_iter=0), "cg_max_iter", 0), (dict(warm_start=1.0), "warm_start", 1.0),
                   (dict(lr=0), "lr", 0)]),
    # for a softmax the true Fisher is the generalized Gauss-Newton matrix
    Entry(oo.NaturalGradient, dict(damping=0.1), ref_gauss_newton, (dict(kind="empirical", damping=0.1), 30),
          (dict(damping=0.1), 3),
          invalid=[(dict(kind="exact"), "kind", "exact"), (dict(damping=-2.0), "damping", -2.0)]),
    Entry(oo.NaturalGradient, dict(kind="empirical", damping=0.1), ref_empirical_fisher,
          (dict(kind="empirical", damping=0.1), 30), (dict(kind="empirical", damping=0.1), 3),
          label="NaturalGradient-empirical"),
    Entry(oo.NonlinearCG, dict(c1=1e-10, c2=1e-9, ls_max_iter=60), ref_exact_line_search, (dict(), 10),
          (dict(), 3), groups=False, rtol=1e-6,
          invalid=[(dict(lr=0.0), "lr", 0.0), (dict(beta="hs"), "beta", "hs"), (dict(restart=0), "restart", 0),
                   (dict(c1=1.0), "c1", 1.0), (dict(c1=1e-4, c2=1e-5), "c2", 1e-5),
                   (dict(ls_max_iter=0), "ls_max_iter", 0)]),
    Entry(oo.ScaledCG, dict(sigma=1e-7), ref_scaled_cg, (dict(), 10), (dict(), 5), groups=False, rtol=1e-6,
          invalid=[(dict(sigma=0.0), "sigma", 0.0), (dict(damping=-1.0), "damping", -1.0),
                   (dict(restart=0), "restart", 0)]),
    Entry(oo.SDLM, dict(lr=0.5, damping=0.1, estimate_every=2), ref_sdlm, (dict(lr=0.5, damping=1e-3), 20),
          (dict(lr=0.02, damping=0.01), 3),
          invalid=[(dict(damping=-1.0), "damping", -1.0), (dict(gamma=2.0), "gamma", 2.0), (dict(lr=-3.0), "lr", -3.0),
                   (dict(diagonal="fisher"), "diagonal", "fisher"), (dict(estimate_steps=0), "estimate_steps", 0)]),
    # n0 >= 2: the slow start's overestimation C keeps the first rates small (the paper's advice)
    Entry(oo.VSGD, dict(n0=2, C=2.0), ref_vsgd_after_slow_start, (dict(), 30), (dict(n0=2), 4), reference_steps=3,
          invalid=[(dict(n0=0), "n0", 0), (dict(C=0.5), "C", 0.5), (dict(eps=-1.0), "eps", -1.0),
                   (dict(lr=-0.1), "lr", -0.1), (dict(diagonal="bbprop"), "diagonal", "bbprop")]),
    Entry(oo.PRONG, dict(lr=0.1, reparam_every=2), ref_sgd, (dict(), 10), (dict(lr=0.5, reparam_every=2), 4),
          wiring=whitened_layers, whitened=True,
          invalid=[(dict(lr=-0.1), "lr", -0.1), (dict(eps=-1.0), "eps", -1.0),
                   (dict(reparam_every=1.5), "reparam_every", 1.5)]),
]}
