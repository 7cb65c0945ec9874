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
Adding a widget is one row in CASES: a name and a zero-argument constructor (and, for a widget whose
controls start torch work, the cached settings to sweep).

The widgets that train networks (NormalizationEffect's layers, CurvatureExplorer) sweep only settings
already in their cache in that table -- the re-render a student sees when going back to a setting or
scrubbing a run; budget: median <= 50 ms. A second table times their torch work, each in a fresh
process: a new NormalizationEffect setting (a normalization / lr / batch size not seen yet; budget
<= 1 s), a new CurvatureExplorer run (<= 20 s), and every widget's peak resident memory after building
it and going through a few settings (<= 600 MB; ``ru_maxrss`` of the process, imports included).
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

from optlab.widgets import CurvatureExplorer, LearningRateRegimes, MomentumExplorer, NormalizationEffect

MODEL_GOAL_MS, VIEW_GOAL_MS = 5.0, 40.0
CACHED_GOAL_MS, NEW_SETTING_GOAL_S, RUN_GOAL_S, RSS_GOAL_MB = 50.0, 1.0, 20.0, 600.0


def normalization_inputs_settings(view, n: int) -> list[dict]:
    """Every data set x transform (cached after the warm-up), repeated to ``n`` settings."""
    from optlab.widgets.normalization import DATASETS, TRANSFORM_NAMES

    grid = [{"part": "inputs", "dataset": d, "transform": t} for d in DATASETS for t in TRANSFORM_NAMES]
    return [grid[i % len(grid)] for i in range(n)]


def normalization_layers_settings(view, n: int) -> list[dict]:
    """Four layer settings (every normalization of the MLP at lr 0.5, batch 32), cached after the warm-up."""
    grid = [{"part": "layers", "model": "mlp", "norm": m, "lr": 0.5, "batch_size": 32}
            for m in ["none", "batch", "layer", "group"]]
    return [grid[i % len(grid)] for i in range(n)]


def curvature_steps(view, n: int) -> list[dict]:
    """The step slider over the run computed by the constructor (no new run)."""
    return [{"step": int((i * 7) % (view.steps // view.every + 1)) * view.every} for i in range(n)]


@dataclass(frozen=True)
class Case:
    name: str  #: the widget as a student builds it
    make: Callable  #: () -> a WidgetView at its default size
    settings: Callable | None = None  #: (view, n) -> n settings; None: sweep every control (see sweep)
    goal_ms: float = VIEW_GOAL_MS  #: the view's goal


CASES = [
    Case("LearningRateRegimes([0.2, 1, 4])", lambda: LearningRateRegimes([0.2, 1.0, 4.0])),
    Case("LearningRateRegimes(10 lambdas, log alpha)",
         lambda: LearningRateRegimes(np.geomspace(0.01, 10.0, 10), log_alpha=True)),
    Case("MomentumExplorer()", MomentumExplorer),
    Case("NormalizationEffect() inputs, cached", NormalizationEffect, normalization_inputs_settings, CACHED_GOAL_MS),
    Case("NormalizationEffect() layers, cached", NormalizationEffect, normalization_layers_settings, CACHED_GOAL_MS),
    Case("CurvatureExplorer() step slider, cached run", CurvatureExplorer, curvature_steps, CACHED_GOAL_MS),
]

#: what each fresh process builds and does for the torch-work table (name -> code run after the imports)
FRESH = {
    "LearningRateRegimes": "v = LearningRateRegimes([0.2, 1.0, 4.0])\nfor a in (0.1, 0.3, 0.5): v.set(alpha=a)",
    "MomentumExplorer": "v = MomentumExplorer()",
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
from optlab.widgets import CurvatureExplorer, LearningRateRegimes, MomentumExplorer, NormalizationEffect
result = {{}}
{body}
result["peak RSS MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
                     f"({'ok' if statistics.median(times) <= NEW_SETTING_GOAL_S else 'SLOW'})")
            line += "\n" + "\n".join(f"{'':24s}{kw:40s} {t:6.2f} s" for kw, t in r["new settings s"])
        if "first run s" in r:
            worst = max(r["first run s"], r["second run s"])
            line += (f"; runs: {r['first run s']:.1f} s (sgd), {r['second run s']:.1f} s (adam) "
                     f"({'ok' if worst <= RUN_GOAL_S else 'SLOW'})")
        print(line)


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
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-process table (torch work, memory)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the models' torch runs are tiny
    cases = [c for c in CASES if args.only is None or args.only in c.name]
    views = {c.name: c.make() for c in cases}
    for c in cases:  # warm up: imports, first renders, caches (every cached setting computed once)
        view = views[c.name]
        for values in (c.settings(view, 40) if c.settings else sweep(view, 3)):
            view.set(**values)
    model = {c.name: [] for c in cases}
    render = {c.name: [] for c in cases}
    for _ in range(args.rounds):
        for c in cases:
            view = views[c.name]
            settings = (c.settings or sweep)(view, args.settings)
            for values in settings:
                model[c.name].append(time_ms(view._compute, {**view.values(), **values}))
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
              "ok" if statistics.median(v) <= c.goal_ms else f"VIEW SLOW (goal {c.goal_ms:g} ms)")
        print(f"{c.name:45s} {statistics.median(m):9.2f} ms {np.percentile(m, 90):7.2f} "
              f"{statistics.median(v):9.2f} ms {np.percentile(v, 90):7.2f}  {ok[0]}, {ok[1]}")
    if not args.no_fresh:
        fresh_process_table([n for n in FRESH if args.only is None or args.only in n])


if __name__ == "__main__":
    main()
