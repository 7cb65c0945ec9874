"""The one registry of first-order optimizers that drives the generic ``tests/test_optim_*.py`` tests.

Adding an optimizer means adding one ``Entry``: its class, its torch.optim counterpart (or ``None``),
the grid of options that must match torch, the settings under which it converges on the test
problems, and the invalid hyper-parameters it must reject.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import torch

import optlab.optim as oo
from optlab.optim._base import KERNELS  # noqa: F401  (re-exported for the tests)


@dataclass(frozen=True)
class Entry:
    """One optimizer: how to build it, what to compare it with, and where it must converge."""

    cls: type
    torch_cls: type | None  # None: no torch counterpart; the readable reference kernel is the reference
    base: dict  # kwargs every trajectory case starts from
    grid: dict  # switch -> (off, on) values; the trajectory test runs every valid combination
    quadratic: tuple[dict, int]  # (kwargs, steps) that reach the minimum of the quadratic
    rosenbrock: tuple[dict, int]  # (kwargs, steps) that reach the minimum of Rosenbrock
    rosenbrock_tol: float = 1e-2  # distance to (1, 1) to reach (the quadratic's is 1e-4 for all)
    variants: list = field(default_factory=list)  # other values of the continuous options, one at a time
    invalid: list = field(default_factory=list)  # (kwargs, name, value) that must raise ValueError
    valid: Callable[[dict], bool] = lambda kw: True  # which grid combinations are legal
    required: dict = field(default_factory=dict)  # kwargs every construction needs (no torch analogue)

    @property
    def name(self) -> str:
        return self.cls.__name__

    def cases(self) -> list[dict]:
        """Every valid combination of the switches, then each variant alone, merged into ``base``."""
        keys = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[k] for k in keys)):
            kw = {**self.base, **dict(zip(keys, values))}
            if self.valid(kw):
                out.append(kw)
        return out + [{**self.base, **v} for v in self.variants]

    def make(self, params, **kwargs):
        """The optlab optimizer (``kernel=`` among the kwargs chooses the implementation)."""
        return self.cls(params, **{**self.required, **kwargs})

    def make_reference(self, params, **kwargs):
        """torch's optimizer (its for-loop), or optlab's readable kernel when torch has no counterpart."""
        if self.torch_cls is None:
            return self.make(params, **kwargs, kernel="reference")
        return self.torch_cls(params, **kwargs, foreach=False)


_NEG = -0.1  # a negative value every non-negative hyper-parameter must refuse


def _common_invalid(*names):
    """Each named hyper-parameter set negative, and an unknown kernel, must be refused."""
    return [({n: _NEG}, n, _NEG) for n in names] + [(dict(kernel="fast"), "kernel", "fast")]


REGISTRY: dict[str, Entry] = {e.name: e for e in [
    Entry(
        oo.SGD, torch.optim.SGD,
        base=dict(lr=0.05),
        grid=dict(momentum=[0.0, 0.9], dampening=[0.0, 0.3], nesterov=[False, True], weight_decay=[0.0, 0.05],
                  maximize=[False, True]),
        valid=lambda kw: not kw.get("nesterov") or (kw.get("momentum", 0) > 0 and kw.get("dampening", 0) == 0),
        quadratic=(dict(lr=0.1, momentum=0.9), 400),
        rosenbrock=(dict(lr=0.003, momentum=0.9), 800),
        invalid=_common_invalid("lr", "momentum", "weight_decay") + [
            (dict(momentum=0.0, nesterov=True), "nesterov", True),
            (dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov", True),
            (dict(lr=float("nan")), "lr", float("nan")),
            (dict(fused=True), "fused", True),
            (dict(differentiable=True), "differentiable", True),
        ],
    ),
    Entry(
        oo.Rprop, torch.optim.Rprop,
        base=dict(lr=0.01),
        grid=dict(maximize=[False, True]),
        variants=[dict(etas=(0.3, 1.5)), dict(step_sizes=(1e-3, 0.05))],
        quadratic=(dict(lr=0.1), 300),
        rosenbrock=(dict(lr=0.003), 4000),
        invalid=_common_invalid("lr") + [
            (dict(etas=(0.0, 1.2)), "etas", (0.0, 1.2)),
            (dict(etas=(0.5, 0.9)), "etas", (0.5, 0.9)),
            (dict(etas=(1.5, 1.2)), "etas", (1.5, 1.2)),
            (dict(step_sizes=(1.0, 0.1)), "step_sizes", (1.0, 0.1)),
            (dict(step_sizes=(-1.0, 1.0)), "step_sizes", (-1.0, 1.0)),
            (dict(capturable=True), "capturable", True),
        ],
    ),
    Entry(
        oo.Adagrad, torch.optim.Adagrad,
        base=dict(lr=0.05),
        grid=dict(lr_decay=[0.0, 0.01], weight_decay=[0.0, 0.05], initial_accumulator_value=[0.0, 0.1],
                  maximize=[False, True]),
        variants=[dict(eps=1e-3)],
        quadratic=(dict(lr=0.3), 2500),
        rosenbrock=(dict(lr=0.5), 9000),
        invalid=_common_invalid("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
        + [(dict(fused=True), "fused", True)],
    ),
    Entry(
        oo.RMSprop, torch.optim.RMSprop,
        base=dict(lr=0.005),
        grid=dict(momentum=[0.0, 0.5], centered=[False, True], weight_decay=[0.0, 0.05], maximize=[False, True]),
        variants=[dict(alpha=0.9), dict(alpha=0.4, centered=True), dict(eps=1e-3)],  # alpha < 0.5: lerp's other branch
        # eps = 0.1: near the minimum the step becomes plain GD; with a tiny eps RMSprop keeps a limit cycle
        quadratic=(dict(lr=0.03, eps=0.1), 1200),
        rosenbrock=(dict(lr=0.001, momentum=0.9), 1600),
        invalid=_common_invalid("lr", "eps", "weight_decay", "momentum", "alpha")
        + [(dict(alpha=1.5), "alpha", 1.5), (dict(capturable=True), "capturable", True)],
    ),
    Entry(
        oo.Adadelta, torch.optim.Adadelta,
        base=dict(lr=1.0),
        grid=dict(weight_decay=[0.0, 0.05], maximize=[False, True]),
        variants=[dict(rho=0.5), dict(eps=1e-3)],
        quadratic=(dict(lr=0.1, rho=0.9, eps=1e-3), 1600),
        rosenbrock=(dict(lr=1.0, rho=0.95, eps=1e-6), 6000),
        # Adadelta reaches the valley quickly but creeps along it (as torch's does): a looser target.
        rosenbrock_tol=0.7,
        invalid=_common_invalid("lr", "rho", "eps", "weight_decay") + [(dict(rho=1.1), "rho", 1.1)],
    ),
    Entry(
        oo.Adam, torch.optim.Adam,
        base=dict(lr=0.01),
        grid=dict(weight_decay=[0.0, 0.05], amsgrad=[False, True], maximize=[False, True],
                  decoupled_weight_decay=[False, True]),
        variants=[dict(betas=(0.5, 0.9)), dict(eps=1e-3)],
        valid=lambda kw: not kw.get("decoupled_weight_decay") or kw.get("weight_decay", 0) > 0,
        quadratic=(dict(lr=0.3), 400),
        rosenbrock=(dict(lr=0.3), 1200),
        invalid=_common_invalid("lr", "eps", "weight_decay") + [
            (dict(betas=(1.0, 0.999)), "betas[0]", 1.0),
            (dict(betas=(0.9, -0.1)), "betas[1]", -0.1),
            (dict(betas=(0.9, 1.5)), "betas[1]", 1.5),
            (dict(capturable=True), "capturable", True),
            (dict(fused=True), "fused", True),
        ],
    ),
    Entry(
        oo.AdamW, torch.optim.AdamW,
        base=dict(lr=0.01),
        grid=dict(weight_decay=[0.01, 0.0], amsgrad=[False, True], maximize=[False, True]),
        variants=[dict(betas=(0.5, 0.9)), dict(weight_decay=0.1)],
        quadratic=(dict(lr=0.3, weight_decay=0.0), 400),
        rosenbrock=(dict(lr=0.3, weight_decay=0.0), 1200),
        invalid=_common_invalid("lr", "eps", "weight_decay") + [(dict(betas=(0.9, 1.0)), "betas[1]", 1.0)],
    ),
    Entry(
        oo.Adamax, torch.optim.Adamax,
        base=dict(lr=0.01),
        grid=dict(weight_decay=[0.0, 0.05], maximize=[False, True]),
        variants=[dict(betas=(0.5, 0.9)), dict(eps=1e-3)],
        quadratic=(dict(lr=0.3), 400),
        rosenbrock=(dict(lr=0.3), 3000),
        invalid=_common_invalid("lr", "eps", "weight_decay") + [(dict(betas=(1.2, 0.9)), "betas[0]", 1.2)],
    ),
    Entry(
        oo.NAdam, torch.optim.NAdam,
        base=dict(lr=0.01),
        grid=dict(weight_decay=[0.0, 0.05], decoupled_weight_decay=[False, True], maximize=[False, True]),
        variants=[dict(betas=(0.5, 0.9)), dict(momentum_decay=0.1)],
        valid=lambda kw: not kw.get("decoupled_weight_decay") or kw.get("weight_decay", 0) > 0,
        quadratic=(dict(lr=0.1), 500),
        rosenbrock=(dict(lr=0.01), 6000),
        invalid=_common_invalid("lr", "eps", "weight_decay", "momentum_decay")
        + [(dict(betas=(0.9, 1.0)), "betas[1]", 1.0)],
    ),
    Entry(
        oo.ASGD, torch.optim.ASGD,
        base=dict(lr=0.05),
        grid=dict(t0=[1e6, 50], weight_decay=[0.0, 0.05], maximize=[False, True]),
        variants=[dict(lambd=0.1), dict(alpha=1.0)],
        quadratic=(dict(lr=0.3, lambd=0.0), 400),
        rosenbrock=(dict(lr=0.002, lambd=0.0), 8500),
        invalid=_common_invalid("lr", "lambd", "alpha", "t0", "weight_decay"),
    ),
    Entry(
        oo.AveragedSGD, None,
        base=dict(lr=0.05),
        grid=dict(average_start=[0, 50], weight_decay=[0.0, 0.05], maximize=[False, True]),
        variants=[dict(lambd=0.1), dict(power=1.0)],
        required=dict(steps_per_epoch=10),
        quadratic=(dict(lr=0.3, lambd=0.0), 400),
        rosenbrock=(dict(lr=0.002, lambd=0.0), 8500),
        invalid=_common_invalid("lr", "lambd", "power", "weight_decay") + [
            (dict(average_start=-1), "average_start", -1),
            (dict(steps_per_epoch=2.5), "steps_per_epoch", 2.5),
        ],
    ),
]}


def trajectory_cases() -> list[tuple[str, dict]]:
    """(optimizer name, kwargs) for every optimizer and every valid combination of its options."""
    return [(name, kw) for name, e in REGISTRY.items() for kw in e.cases()]


def case_id(case) -> str:
    name, kw = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items())
