"""Time each widget's model update and view update (render included) over a sweep of settings.

For every case: the median over the sweep of (a) the pure model on the new setting, as the view calls
it, and (b) the whole ``view.set(**setting)``: model, readouts and the render into the image (inline
outside a kernel, so the figure is finished when ``set`` returns) -- what one slider event costs.
Caches of the widgets' optimizer runs are cleared before each setting where a case says ``cold`` (a
setting seen for the first time, the worst case), and kept otherwise (a slider event: only the methods
whose settings moved rerun).

    python benchmarks/bench_widgets.py [--rounds 3] [--only NAME]

Goals (issue "Widgets I"): model <= 5 ms, view <= 40 ms at the default size on a 2-core machine.
Adding a widget means adding rows to ``CASES``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Case:
    """One row: a widget view and the settings it is swept over."""

    widget: str
    sweep: str  #: what moves, in words
    make_view: Callable  #: () -> view
    settings: list  #: the dicts passed to view.set(**s), in order
    clear: Callable = field(default=lambda: None)  #: run before each model call (cold cases)


def _sweep(view, n: int) -> list[dict]:
    """``n`` settings moving every slider of ``view`` at once: both ends first, then a low-discrepancy sweep."""
    settings = []
    for i in range(n):
        values = {}
        for j, (name, c) in enumerate(view.controls.items()):
            frac = [0.0, 1.0][i] if i < 2 else ((i + 1) * (0.6180339887 + 0.1 * j)) % 1.0
            if hasattr(c, "base"):  # log slider: the exponent moves
                values[name] = float(c.base ** (c.min + frac * (c.max - c.min)))
            else:
                values[name] = float(c.min + frac * (c.max - c.min))
        settings.append(values)
    return settings


def _lr_cases() -> list[Case]:
    from optlab.widgets import LearningRateRegimes

    three = lambda: LearningRateRegimes([0.2, 1.0, 4.0])  # noqa: E731
    ten = lambda: LearningRateRegimes(np.geomspace(0.01, 10.0, 10), log_alpha=True)  # noqa: E731
    return [
        Case("LearningRateRegimes", "alpha 0..2.5/lambda_max (3 lambdas)", three, _sweep(three(), 15)),
        Case("LearningRateRegimes", "log alpha over 2 decades (10 lambdas)", ten, _sweep(ten(), 15)),
    ]


def _momentum_cases() -> list[Case]:
    from optlab.widgets import MomentumExplorer

    mus = [dict(mu=float(m)) for m in np.round(np.linspace(0.0, 0.99, 15), 2)]
    return [
        Case("MomentumExplorer", "mu 0..0.99", MomentumExplorer, mus),
        Case("MomentumExplorer", "all five sliders at once, ends included", MomentumExplorer,
             _sweep(MomentumExplorer(), 15)),
    ]


def _saddle_cases() -> list[Case]:
    from optlab.widgets import SaddleFlow
    from optlab.widgets import saddle_flow as sf

    alphas = [dict(lr=float(a)) for a in np.round(np.linspace(0.04, 0.6, 15), 2)]
    damping = [dict(damping=float(d)) for d in np.round(np.linspace(0.05, 1.0, 15), 2)]
    return [
        Case("SaddleFlow", "alpha 0.04..0.6 (GD, momentum rerun)", SaddleFlow, alphas),
        Case("SaddleFlow", "damping 0.05..1 (Newton, SFN rerun)", SaddleFlow, damping),
        Case("SaddleFlow", "alpha, cold (all four methods run)", SaddleFlow, alphas, sf._run.cache_clear),
    ]


def _race_cases() -> list[Case]:
    from optlab.widgets import OptimizerRace
    from optlab.widgets import race as rc

    steps = [dict(step=k) for k in range(5, 200, 13)]
    lrs = [dict(hyper={"Adam": {"lr": float(a)}}) for a in np.round(np.geomspace(0.005, 0.5, 12), 4)]
    return [
        Case("OptimizerRace", "step 5..200 (Step / Play)", OptimizerRace, steps),
        Case("OptimizerRace", "Adam lr 0.005..0.5 (one 200-step run)", OptimizerRace, lrs),
        Case("OptimizerRace", "step, cold (four 200-step runs)", OptimizerRace, steps, rc._race_run.cache_clear),
    ]


CASES: list[Callable[[], list[Case]]] = [_lr_cases, _momentum_cases, _saddle_cases, _race_cases]


def measure(case: Case, rounds: int) -> tuple[float, float]:
    """Median model and view times: ``view.set(s)`` is timed whole (model, readouts, render), and the model
    part is the view's first model call inside it (``set`` checks the setting with the model before it
    moves a control; the update after it finds the runs cached)."""
    view = case.make_view()
    compute, inside = view._compute, []

    def timed(values):
        t = time.perf_counter()
        state = compute(values)
        inside.append(1e3 * (time.perf_counter() - t))
        return state

    view._compute = timed
    model_ms, view_ms = [], []
    for _ in range(rounds):
        for s in case.settings:
            case.clear()
            inside.clear()
            t = time.perf_counter()
            view.set(**s)
            view.wait()
            view_ms.append(1e3 * (time.perf_counter() - t))
            model_ms.append(inside[0])
    return statistics.median(model_ms), statistics.median(view_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help="only the widgets whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; median over the sweep x {args.rounds} rounds")
    print(f"{'widget':20s} {'sweep':42s} {'model ms':>9s} {'view ms':>8s}  goals: model <= 5, view <= 40")
    for make in CASES:
        for case in make():
            if args.only and args.only not in case.widget:
                continue
            m, v = measure(case, args.rounds)
            print(f"{case.widget:20s} {case.sweep:42s} {m:9.1f} {v:8.1f}")


if __name__ == "__main__":
    main()
