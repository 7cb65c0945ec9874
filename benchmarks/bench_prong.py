"""PRONG vs plain SGD on a digits autoencoder: training loss per update and per CPU second, best of a sweep each.

Desjardins et al. (2015) show PRONG (projected natural gradient, whitened layers) training a deep
autoencoder faster than SGD per update and per CPU second. This script reproduces the comparison offline
on scikit-learn's digits with :func:`optlab.experiments.second_order.train_autoencoder` (the function
lecture 06 calls): a seeded 64-32-16-32-64 tanh autoencoder (sigmoid cross-entropy reconstruction loss),
identical initial function and mini-batch order, a learning-rate sweep for each method, PRONG re-whitening
every T updates from N_s samples with regularizer eps. It prints the full training loss along the way,
the updates and CPU seconds each best run needs to reach the best final SGD loss, and their ratios.

Usage: python benchmarks/bench_prong.py [--updates 2000] [--T 100] [--eps 0.1]
"""

from __future__ import annotations

import argparse
import time

import torch

from optlab.experiments.second_order import train_autoencoder
from optlab.problems import load_digits_data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 32, 16, 32, 64])
    ap.add_argument("--updates", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--n-samples", type=int, default=500)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--sgd-lrs", type=float, nargs="+", default=[0.03, 0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--prong-lrs", type=float, nargs="+", default=[0.01, 0.02, 0.03, 0.05, 0.1])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    X = load_digits_data().X_train
    kw = dict(sizes=args.sizes, updates=args.updates, batch=args.batch, n_samples=args.n_samples, every=args.every)
    print(f"digits autoencoder {args.sizes}, {len(X)} images, batch {args.batch}, {args.updates} updates; "
          f"PRONG T={args.T}, N_s={args.n_samples}, eps={args.eps}")
    t0 = time.perf_counter()
    marks = [m for m in (250, 500, 1000, 2000, 4000) if m <= args.updates]
    runs = {}
    for kind, lrs in (("sgd", args.sgd_lrs), ("prong", args.prong_lrs)):
        for lr in lrs:
            extra = dict(T=args.T, eps=args.eps) if kind == "prong" else {}
            r = runs[kind, lr] = train_autoencoder(kind, lr, X, **kw, **extra)
            shown = "  ".join(f"{m}: {r.losses[m // args.every - 1]:7.3f}" for m in marks)
            print(f"  {kind:5s} lr={lr:<5}  loss after  {shown}   ({r.cpu_seconds:.2f} s CPU)")
    best = {k: min(((lr, r) for (kk, lr), r in runs.items() if kk == k), key=lambda lr_r: lr_r[1].losses[-1])
            for k in ("sgd", "prong")}
    target = best["sgd"][1].losses[-1]
    n = {k: best[k][1].updates_to(target, args.every) for k in best}
    cpu = {k: n[k] * best[k][1].cpu_seconds / args.updates for k in best}
    print(f"best SGD  : lr={best['sgd'][0]}, final loss {best['sgd'][1].losses[-1]:.3f}")
    print(f"best PRONG: lr={best['prong'][0]}, final loss {best['prong'][1].losses[-1]:.3f}")
    print(f"to reach the best SGD final loss {target:.3f}: updates SGD {n['sgd']:.0f}, PRONG {n['prong']:.0f} "
          f"(ratio {n['sgd'] / n['prong']:.2f}); CPU SGD {cpu['sgd']:.2f} s, PRONG {cpu['prong']:.2f} s "
          f"(ratio {cpu['sgd'] / cpu['prong']:.2f})")
    print(f"wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
