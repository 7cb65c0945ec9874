"""Time ``step()`` of every optlab first-order optimizer against its torch.optim counterpart.

10M float32 parameters in 50 tensors, gradients fixed; torch is timed both with ``foreach=True`` and
``foreach=False`` and the faster counts: the one whose median over all rounds is lower (taking the lower
of the two in each round would pick whichever was luckier that round, a bias against optlab of the
size of the noise, about 2%, when both are equally fast).

Steps are interleaved so that load from other processes hits all alike, and the order rotates from one
repetition to the next (ours, foreach, loop; foreach, loop, ours; ...): how fast a step runs depends on
what the step before it left in the caches, so a fixed order would favour one position. Each optimizer
first takes ``--warmup`` steps (its state allocated and its memory faulted in, numba's kernels loaded
from their cache); each figure is the median of ``--reps`` steps, and the whole measurement is repeated
``--rounds`` times (the median ratio is reported).

    python benchmarks/bench_optim.py [--numel 10000000] [--tensors 50] [--reps 15] [--rounds 5] [--warmup 5]

Goal: ratio = optlab / fastest torch <= 1.0 for every optimizer.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import optlab.optim as oo

CASES = [  # (label, optlab class, torch class, kwargs)
    ("SGD", oo.SGD, torch.optim.SGD, dict(lr=1e-3)),
    ("SGD momentum", oo.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9)),
    ("SGD nesterov", oo.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9, nesterov=True)),
    ("Rprop", oo.Rprop, torch.optim.Rprop, dict()),
    ("Adagrad", oo.Adagrad, torch.optim.Adagrad, dict()),
    ("RMSprop", oo.RMSprop, torch.optim.RMSprop, dict()),
    ("RMSprop centered+mom", oo.RMSprop, torch.optim.RMSprop, dict(centered=True, momentum=0.9)),
    ("Adadelta", oo.Adadelta, torch.optim.Adadelta, dict()),
    ("Adam", oo.Adam, torch.optim.Adam, dict()),
    ("Adam amsgrad", oo.Adam, torch.optim.Adam, dict(amsgrad=True)),
    ("AdamW", oo.AdamW, torch.optim.AdamW, dict()),
    ("Adamax", oo.Adamax, torch.optim.Adamax, dict()),
    ("NAdam", oo.NAdam, torch.optim.NAdam, dict()),
    ("ASGD", oo.ASGD, torch.optim.ASGD, dict()),
    ("AveragedSGD (vs ASGD)", oo.AveragedSGD, torch.optim.ASGD, dict(average_start=0)),
]


def make_params(numel: int, tensors: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(numel // tensors, generator=g)) for _ in range(tensors)]
    for p in ps:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    return ps


def torch_kwargs(cls, kwargs):
    return {k: v for k, v in kwargs.items() if k != "average_start"}


def time_round(optimizers: dict, reps: int, warmup: int = 5) -> dict:
    for _ in range(warmup):  # state allocation, workspaces, page faults, numba's cache
        for opt in optimizers.values():
            opt.step()
    times = {k: [] for k in optimizers}
    names = list(optimizers)
    for rep in range(reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            opt = optimizers[name]
            t = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--numel", type=int, default=10_000_000)
    ap.add_argument("--tensors", type=int, default=50)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps of each optimizer per round")
    ap.add_argument("--only", nargs="*", default=None, help="labels to run (default: all)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    print(f"# optlab.optim vs torch.optim step(): {args.numel:,} float32 params in {args.tensors} tensors")
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    print(f"# median of {args.reps} steps per round, median over {args.rounds} rounds; ratio = optlab / faster torch")
    print(f"{'optimizer':24s} {'optlab ms':>10s} {'torch foreach':>14s} {'torch loop':>11s} {'ratio':>7s}")
    ratios = {}
    for label, ours, theirs, kw in CASES:
        if args.only and label not in args.only:
            continue
        params = make_params(args.numel, args.tensors)
        rounds = []
        for _ in range(args.rounds):
            opts = {
                "optlab": ours(params, **kw),
                "foreach": theirs(params, **torch_kwargs(theirs, kw), foreach=True),
                "loop": theirs(params, **torch_kwargs(theirs, kw), foreach=False),
            }
            rounds.append(time_round(opts, args.reps, args.warmup))
            del opts
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        best = min(("foreach", "loop"), key=med.get)  # torch's faster implementation, over every round
        ratio = statistics.median(r["optlab"] / r[best] for r in rounds)
        ratios[label] = ratio
        print(f"{label:24s} {med['optlab'] * 1e3:10.2f} {med['foreach'] * 1e3:14.2f} {med['loop'] * 1e3:11.2f} "
              f"{ratio:7.2f}", flush=True)
    worst = max(ratios.values())
    print(f"# worst ratio {worst:.2f} ({'goal met' if worst <= 1.0 else 'goal NOT met'}: <= 1.0)")
    return ratios


if __name__ == "__main__":
    main()
