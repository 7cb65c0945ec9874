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

The widgets that train networks (NormalizationEffect's layers, CurvatureExplorer) are swept over settings
already in their cache (the view is warmed up on them first): the re-render a student sees when going
back to a setting or scrubbing a run; budget (issue "Widgets II"): median <= 50 ms. Their torch work is
timed in a second table, each widget in a fresh process (as in a fresh kernel): a new NormalizationEffect
setting (a normalization / lr / batch size / data set not seen yet; budget <= 1 s), a new
CurvatureExplorer run (<= 20 s), and every widget's peak resident memory after building it and going
through a few settings (<= 600 MB; the process's VmHWM, imports included).
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


def _warm(make, settings):
    """A view that has computed (and cached) every setting of ``settings`` once."""
    def build():
        view = make()
        for s in settings:
            view.set(**s)
        return view
    return build


def _normalization_cases() -> list[Case]:
    from optlab.widgets import NormalizationEffect
    from optlab.widgets.normalization import DATASETS, TRANSFORM_NAMES

    inputs = [{"part": "inputs", "dataset": d, "transform": t} for d in DATASETS for t in TRANSFORM_NAMES]
    layers = [{"part": "layers", "model": "mlp", "norm": n, "lr": lr, "batch_size": 32}
              for lr in (0.5, 0.1) for n in ("none", "batch", "layer", "group")]
    return [
        Case("NormalizationEffect", "inputs: 5 data sets x 5 transforms, cached", _warm(NormalizationEffect, inputs),
             inputs),
        Case("NormalizationEffect", "layers: 4 norms x 2 lrs (MLP), cached", _warm(NormalizationEffect, layers),
             layers),
    ]


def _curvature_cases() -> list[Case]:
    from optlab.widgets import CurvatureExplorer

    steps = [{"step": (7 * i) % 11 * 20} for i in range(11)]
    return [Case("CurvatureExplorer", "step slider over the default run, cached", CurvatureExplorer, steps)]


CASES: list[Callable[[], list[Case]]] = [_lr_cases, _momentum_cases, _saddle_cases, _race_cases,
                                         _normalization_cases, _curvature_cases]

CACHED_GOAL_MS, NEW_SETTING_GOAL_S, RUN_GOAL_S, RSS_GOAL_MB = 50.0, 1.0, 20.0, 600.0



#: what each fresh process builds and does for the torch-work table (name -> code run after the imports)
FRESH = {
    "LearningRateRegimes": "v = LearningRateRegimes([0.2, 1.0, 4.0])\nfor a in (0.1, 0.3, 0.5): v.set(alpha=a)",
    "MomentumExplorer": "v = MomentumExplorer()",
    "SaddleFlow": "v = SaddleFlow()",
    "OptimizerRace": "v = OptimizerRace()",
    "NormalizationEffect": (
        "v = NormalizationEffect(part='layers')\n"  # the first layers setting: the plain and batch-norm nets
        "new = []\n"
        "for kw in [dict(norm='layer'), dict(norm='group'), dict(norm='instance'), dict(lr=0.2), dict(batch_size=128),\n"
        "           dict(model='cnn', norm='batch'), dict(model='cnn', norm='group')]:\n"
        "    t = time.perf_counter(); v.set(**kw); new.append((str(kw), time.perf_counter() - t))\n"
        "for d in ['digits', 'badly scaled']:\n"
        "    for t in ['raw', 'whitened']:\n"
        "        kw = dict(part='inputs', dataset=d, transform=t)\n"
        "        t0 = time.perf_counter(); v.set(**kw); new.append((str(kw), time.perf_counter() - t0))\n"
        "result['new settings s'] = new"),
    "CurvatureExplorer": (
        "t = time.perf_counter(); v = CurvatureExplorer(); result['first run s'] = time.perf_counter() - t\n"
        "t = time.perf_counter(); v.set(optimizer='adam', lr=0.01); result['second run s'] = time.perf_counter() - t\n"
        "for s in range(0, 201, 20): v.set(step=s)"),
}
FRESH_CODE = """
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from optlab.widgets import (CurvatureExplorer, LearningRateRegimes, MomentumExplorer, NormalizationEffect,
                            OptimizerRace, SaddleFlow)
result = {{}}
{body}
# VmHWM: this address space's peak resident memory (ru_maxrss would include the benchmark's own peak: Linux
# keeps it across the fork + exec that starts this process)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
result["peak RSS MB"] = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def fresh_process_table(names) -> None:
    """The torch work and peak memory of each widget, each in a fresh Python process (as a fresh kernel)."""
    import json
    import subprocess
    import sys

    print(f"\ntorch work and memory, one fresh process per widget (goals: new NormalizationEffect setting <= "
          f"{NEW_SETTING_GOAL_S:g} s, CurvatureExplorer run <= {RUN_GOAL_S:g} s, peak RSS <= {RSS_GOAL_MB:g} MB)")
    for name in names:
        out = subprocess.run([sys.executable, "-c", FRESH_CODE.format(body=FRESH[name])], capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rss = r["peak RSS MB"]
        line = f"{name:22s} peak RSS {rss:6.0f} MB ({'ok' if rss <= RSS_GOAL_MB else 'OVER'})"
        if "new settings s" in r:
            times = [t for _, t in r["new settings s"]]
            worst = max(r["new settings s"], key=lambda kv: kv[1])
            line += (f"; new setting: median {statistics.median(times):.2f} s, worst {worst[1]:.2f} s ({worst[0]}) "
                     f"(median {'ok' if statistics.median(times) <= NEW_SETTING_GOAL_S else 'SLOW'}, "
                     f"{sum(t > NEW_SETTING_GOAL_S for t in times)} of {len(times)} over the goal)")
            line += "\n" + "\n".join(f"{'':24s}{kw:40s} {t:6.2f} s" for kw, t in r["new settings s"])
        if "first run s" in r:
            worst = max(r["first run s"], r["second run s"])
            line += (f"; runs: {r['first run s']:.1f} s (sgd), {r['second run s']:.1f} s (adam) "
                     f"({'ok' if worst <= RUN_GOAL_S else 'SLOW'})")
        print(line)


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
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-process table (torch work, memory)")
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
    if not args.no_fresh:
        fresh_process_table([n for n in FRESH if args.only is None or args.only in n])


if __name__ == "__main__":
    main()
