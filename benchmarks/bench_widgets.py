"""Time every widget: its model update and its view update (model + readouts + render), over a sweep.

For each row of :data:`CASES` the view is built once at its default size, then a deterministic sweep
moves every control through its range (sliders from end to end, choices in turn, checkboxes on and
off; the first two settings are the controls' two ends). Per setting it times

* the model: ``view._compute(values)``, the widget's pure model function on those control values;
* the view: ``view.set(**values)`` -- the path a slider event takes: model, readouts, the artists'
  update and the figure rendered to PNG (inline here: outside a kernel renders are not deferred).

and prints the medians (and the 90th percentile) in milliseconds. The sweep is interleaved over
``--rounds`` rounds so that load from other processes hits every widget alike.

    python benchmarks/bench_widgets.py [--settings 40] [--rounds 3] [--only NAME]

Goals (the widgets' contract, optlab/widgets/__init__.py): model <= 5 ms, view <= 40 ms.
Adding a widget is one row in CASES: a name and a zero-argument constructor.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from optlab.widgets import LearningRateRegimes, MomentumExplorer

MODEL_GOAL_MS, VIEW_GOAL_MS = 5.0, 40.0


@dataclass(frozen=True)
class Case:
    name: str  #: the widget as a student builds it
    make: Callable  #: () -> a WidgetView at its default size


CASES = [
    Case("LearningRateRegimes([0.2, 1, 4])", lambda: LearningRateRegimes([0.2, 1.0, 4.0])),
    Case("LearningRateRegimes(10 lambdas, log alpha)",
         lambda: LearningRateRegimes(np.geomspace(0.01, 10.0, 10), log_alpha=True)),
    Case("MomentumExplorer()", MomentumExplorer),
]


def sweep(view, n: int) -> list[dict]:
    """``n`` settings of every control of ``view``: both ends first, then a low-discrepancy sweep."""
    settings = []
    names = list(view.controls)
    for i in range(n):
        values = {}
        for j, name in enumerate(names):
            c = view.controls[name]
            frac = [0.0, 1.0][i] if i < 2 else ((i + 1) * (0.6180339887 + 0.1 * j)) % 1.0
            if hasattr(c, "base"):  # log slider: exponents from min to max
                values[name] = float(c.base ** (c.min + frac * (c.max - c.min)))
            elif hasattr(c, "min"):
                values[name] = type(c.value)(c.min + frac * (c.max - c.min))
            elif getattr(c, "_options_values", None) is not None:
                options = c._options_values
                values[name] = options[(i + j) % len(options)]
            elif isinstance(c.value, bool):
                values[name] = bool((i + j) % 2)
        settings.append(values)
    return settings


def time_ms(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", type=int, default=40, help="settings per widget and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help="only the cases whose name contains this")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the models' torch runs are tiny
    cases = [c for c in CASES if args.only is None or args.only in c.name]
    views = {c.name: c.make() for c in cases}
    for view in views.values():  # warm up: imports, first renders, caches
        for values in sweep(view, 3):
            view.set(**values)
    model = {c.name: [] for c in cases}
    render = {c.name: [] for c in cases}
    for _ in range(args.rounds):
        for c in cases:
            view = views[c.name]
            for values in sweep(view, args.settings):
                model[c.name].append(time_ms(view._compute, values))
                render[c.name].append(time_ms(view.set, **values))
    print(f"bench_widgets: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}, torch threads 1, {args.rounds} rounds x {args.settings} settings")
    head = f"{'widget':45s} {'model median':>12s} {'p90':>7s} {'view median':>12s} {'p90':>7s}  goals (model <= " \
           f"{MODEL_GOAL_MS:g} ms, view <= {VIEW_GOAL_MS:g} ms)"
    print(head)
    print("-" * len(head))
    for c in cases:
        m, v = model[c.name], render[c.name]
        ok = ("ok" if statistics.median(m) <= MODEL_GOAL_MS else "MODEL SLOW",
              "ok" if statistics.median(v) <= VIEW_GOAL_MS else "VIEW SLOW")
        print(f"{c.name:45s} {statistics.median(m):9.2f} ms {np.percentile(m, 90):7.2f} "
              f"{statistics.median(v):9.2f} ms {np.percentile(v, 90):7.2f}  {ok[0]}, {ok[1]}")


if __name__ == "__main__":
    main()
