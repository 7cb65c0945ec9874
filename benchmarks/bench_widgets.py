"""Time every widget: its model update and its view update (model + readouts + render), over a sweep.

For each row of :data:`CASES` the view is built once at its default size, then a deterministic sweep
moves every control through its range (sliders from end to end, choices in turn, checkboxes on and
off). Per setting it times

* the model: the widget's pure model function on those control values, timed as the first model call
  inside ``view.set`` (which checks the values with the model before it moves a control);
* the view: ``view.set(**values)`` -- the path a slider event takes: model, readouts, the artists'
  update and the figure rendered to PNG (inline here: outside a kernel renders are not deferred).

and prints the medians (and the 90th percentile) in milliseconds. The sweep is interleaved over
``--rounds`` rounds so that load from other processes hits every widget alike.

The warm-up takes the first three settings (the controls' two ends among them); every round then
continues the sweep with settings not seen before, so that widgets which cache their optimizer runs
per setting (SaddleFlow, OptimizerRace) are timed on new settings, not on their cache.

    python benchmarks/bench_widgets.py [--settings 40] [--rounds 3] [--only NAME]

Goals (the widgets' contract, optlab/widgets/__init__.py): model <= 5 ms, view <= 40 ms.
Adding a widget is one row in CASES: a name and a zero-argument constructor (and, to time one
control alone, the controls to sweep).

The widgets that train networks (NormalizationEffect's layers, CurvatureExplorer) are swept over settings
already in their cache (the view is warmed up on them first): the re-render a student sees when going
back to a setting or scrubbing a run; goal: median <= 50 ms. Their torch work is
timed in a second table, each widget in a fresh process (as in a fresh kernel): a new NormalizationEffect
setting (a normalization / lr / batch size / data set not seen yet; goal <= 1 s), a new
CurvatureExplorer run (<= 20 s), and every widget's peak resident memory after building it and going
through a few settings (<= 600 MB; the process's VmHWM, imports included). ``--no-fresh`` skips it.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from optlab.widgets import (CurvatureExplorer, LearningRateRegimes, MomentumExplorer, NormalizationEffect,
                            OptimizerRace, SaddleFlow)
from optlab.widgets.normalization import DATASETS, TRANSFORM_NAMES

MODEL_GOAL_MS, VIEW_GOAL_MS = 5.0, 40.0
CACHED_GOAL_MS, NEW_SETTING_GOAL_S, RUN_GOAL_S, RSS_GOAL_MB = 50.0, 1.0, 20.0, 600.0


@dataclass(frozen=True)
class Case:
    name: str  #: the widget as a student builds it
    make: Callable  #: () -> a WidgetView at its default size
    only: tuple = ()  #: sweep only these controls (the others stay put); () = every control
    settings: tuple = ()  #: a fixed list of settings, cycled (the view is warmed up on all of them: cached)


def warmed(make, settings):
    """A constructor of a view that has computed (and cached) every setting of ``settings`` once."""
    def build():
        view = make()
        for values in settings:
            view.set(**values)
        return view
    return build


NORM_INPUTS = tuple({"part": "inputs", "dataset": d, "transform": t} for d in DATASETS for t in TRANSFORM_NAMES)
NORM_LAYERS = tuple({"part": "layers", "model": "mlp", "norm": n, "lr": lr, "batch_size": 32}
                    for lr in (0.5, 0.1) for n in ("none", "batch", "layer", "group"))
CURVATURE_STEPS = tuple({"step": (7 * i) % 11 * 20} for i in range(11))

CASES = [
    Case("LearningRateRegimes([0.2, 1, 4])", lambda: LearningRateRegimes([0.2, 1.0, 4.0])),
    Case("LearningRateRegimes(10 lambdas, log alpha)",
         lambda: LearningRateRegimes(np.geomspace(0.01, 10.0, 10), log_alpha=True)),
    Case("MomentumExplorer()", MomentumExplorer),
    # every control at once: each setting is new, so all four optimizer runs are new (the worst case)
    Case("SaddleFlow()", SaddleFlow),
    # one slider, as a student drags it: only GD and momentum rerun, Newton's runs are reused
    Case("SaddleFlow(), alpha only", SaddleFlow, only=("lr",)),
    # Step / Play: the runs exist, a step reveals one more iterate
    Case("OptimizerRace(), step only", OptimizerRace, only=("step",)),
    # surface, optimizers and step at once: 1-4 new 200-step runs per setting
    Case("OptimizerRace()", OptimizerRace),
    # the network widgets re-render settings they have computed (their torch work: the fresh-process table)
    Case("NormalizationEffect() inputs, cached", warmed(NormalizationEffect, NORM_INPUTS), settings=NORM_INPUTS),
    Case("NormalizationEffect() layers, cached", warmed(NormalizationEffect, NORM_LAYERS), settings=NORM_LAYERS),
    Case("CurvatureExplorer() step slider, cached", CurvatureExplorer, settings=CURVATURE_STEPS),
]


def sweep(view, n: int, only: tuple = (), start: int = 0) -> list[dict]:
    """``n`` settings of every control of ``view`` (or of those in ``only``): both ends first, then a
    low-discrepancy sweep; ``start`` continues the sequence (a later round sees new settings, so a widget
    that caches its runs per setting is timed on new ones)."""
    settings = []
    names = [name for name in view.controls if not only or name in only]
    for i in range(start, start + n):
        values = {}
        for j, name in enumerate(names):
            c = view.controls[name]
            frac = [0.0, 1.0][i] if i < 2 else ((i + 1) * (0.6180339887 + 0.1 * j)) % 1.0
            if hasattr(c, "base"):  # log slider: exponents from min to max
                values[name] = float(c.base ** (c.min + frac * (c.max - c.min)))
            elif hasattr(c, "min"):
                values[name] = type(c.value)(c.min + frac * (c.max - c.min))
            elif getattr(c, "_options_values", None) is not None and isinstance(c.value, tuple):  # several
                options = c._options_values
                values[name] = tuple(options[(i + j + k) % len(options)] for k in range(1 + (i + j) % 4))
            elif getattr(c, "_options_values", None) is not None:
                options = c._options_values
                values[name] = options[(i + j) % len(options)]
            elif isinstance(c.value, bool):
                values[name] = bool((i + j) % 2)
        settings.append(values)
    return settings


def _timed(fn, values, out: list):
    t0 = time.perf_counter()
    result = fn(values)
    out.append((time.perf_counter() - t0) * 1e3)
    return result


def time_ms(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1e3


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", type=int, default=40, help="settings per widget and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=None, help="only the cases whose name contains this")
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-process table (torch work, memory)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the models' torch runs are tiny
    cases = [c for c in CASES if args.only is None or args.only in c.name]
    views = {c.name: c.make() for c in cases}
    cases_by_name = {c.name: c for c in cases}
    def settings_of(c: Case, view, n: int, start: int) -> list[dict]:
        if c.settings:
            return [c.settings[(start + i) % len(c.settings)] for i in range(n)]
        return sweep(view, n, c.only, start=start)

    for name, view in views.items():  # warm up: imports, first renders, caches
        for values in settings_of(cases_by_name[name], view, 3, 0):
            view.set(**values)
    model = {c.name: [] for c in cases}
    render = {c.name: [] for c in cases}
    for r in range(args.rounds):
        for c in cases:
            view = views[c.name]
            for values in settings_of(c, view, args.settings, 3 + r * args.settings):
                # the model's time is that of its first call inside set() (set checks the values with it before
                # moving a control), so a widget that caches runs is timed on a setting it has not seen
                inside = []
                view._compute = functools.partial(_timed, type(view)._compute.__get__(view), out=inside)
                render[c.name].append(time_ms(lambda: (view.set(**values), view.wait())))
                del view._compute  # back to the class's method
                model[c.name].append(inside[0])
    print(f"bench_widgets: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}, torch threads 1, {args.rounds} rounds x {args.settings} settings")
    head = f"{'widget':45s} {'model median':>12s} {'p90':>7s} {'view median':>12s} {'p90':>7s}  goals (model <= " \
           f"{MODEL_GOAL_MS:g} ms, view <= {VIEW_GOAL_MS:g} ms)"
    print(head)
    print("-" * len(head))
    for c in cases:
        m, v = model[c.name], render[c.name]
        view_goal = CACHED_GOAL_MS if c.settings else VIEW_GOAL_MS
        ok = ("ok" if c.settings or statistics.median(m) <= MODEL_GOAL_MS else "MODEL SLOW",
              "ok" if statistics.median(v) <= view_goal else "VIEW SLOW")
        print(f"{c.name:45s} {statistics.median(m):9.2f} ms {np.percentile(m, 90):7.2f} "
              f"{statistics.median(v):9.2f} ms {np.percentile(v, 90):7.2f}  {ok[0]}, {ok[1]}")
    if not args.no_fresh:
        fresh_process_table([n for n in FRESH if args.only is None or args.only in n])


if __name__ == "__main__":
    main()
