"""PRONG vs plain SGD on a digits autoencoder: training loss per update, best of a learning-rate sweep each.

Desjardins et al. (2015) show PRONG (projected natural gradient, whitened layers) training a deep
autoencoder faster than SGD per update. This script reproduces the comparison offline on
scikit-learn's digits: a seeded 64-32-16-32-64 tanh autoencoder (sigmoid cross-entropy
reconstruction loss), identical initial function and mini-batch order, a learning-rate sweep for each
method, PRONG re-whitening every T updates from N_s samples with regularizer eps. It prints the full
training loss along the way, the updates each best run needs to reach the best final SGD loss, and the
ratio SGD updates / PRONG updates.

Usage: python benchmarks/bench_prong.py [--updates 2000] [--T 100] [--eps 0.1]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from optlab.optim import PRONG, WhitenedLinear, whiten_sequential
from optlab.problems import load_digits_data


def autoencoder(sizes, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).double()


def reconstruction_loss(net, x):
    return torch.nn.functional.binary_cross_entropy_with_logits(net(x), x, reduction="sum") / len(x)


def train(kind, lr, X, *, sizes, updates, batch, T, eps, n_samples, every, seed=1):
    """The full-data loss after every ``every`` updates (inf once diverged)."""
    net = autoencoder(sizes)
    if kind == "prong":
        net = whiten_sequential(net)
        g_s = torch.Generator().manual_seed(3)
        opt = PRONG(net.parameters(), [m for m in net if isinstance(m, WhitenedLinear)],
                    lambda: net(X[torch.randperm(len(X), generator=g_s)[:n_samples]]), lr=lr,
                    reparam_every=T, eps=eps)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    curve = []
    for t in range(1, updates + 1):
        idx = torch.randint(0, len(X), (batch,), generator=g)
        opt.zero_grad()
        reconstruction_loss(net, X[idx]).backward()
        try:
            opt.step()
        except torch.linalg.LinAlgError:
            return curve + [math.inf] * (updates // every - len(curve))
        if t % every == 0:
            with torch.no_grad():
                loss = float(reconstruction_loss(net, X))
            curve.append(loss if math.isfinite(loss) else math.inf)
    return curve


def updates_to(curve, target, every):
    for i, v in enumerate(curve):
        if v <= target:
            return (i + 1) * every
    return math.inf


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
    kw = dict(sizes=args.sizes, updates=args.updates, batch=args.batch, T=args.T, eps=args.eps,
              n_samples=args.n_samples, every=args.every)
    print(f"digits autoencoder {args.sizes}, {len(X)} images, batch {args.batch}, {args.updates} updates; "
          f"PRONG T={args.T}, N_s={args.n_samples}, eps={args.eps}")
    t0 = time.perf_counter()
    marks = [m for m in (250, 500, 1000, 2000, 4000) if m <= args.updates]
    runs = {}
    for kind, lrs in (("sgd", args.sgd_lrs), ("prong", args.prong_lrs)):
        for lr in lrs:
            t = time.perf_counter()
            curve = train(kind, lr, X, **kw)
            runs[kind, lr] = curve
            shown = "  ".join(f"{m}: {curve[m // args.every - 1]:7.3f}" for m in marks)
            print(f"  {kind:5s} lr={lr:<5}  loss after  {shown}   ({time.perf_counter() - t:.1f} s)")
    best = {k: min(((lr, c) for (kk, lr), c in runs.items() if kk == k), key=lambda lc: lc[1][-1]) for k in ("sgd", "prong")}
    target = best["sgd"][1][-1]
    n_sgd = updates_to(best["sgd"][1], target, args.every)
    n_prong = updates_to(best["prong"][1], target, args.every)
    print(f"best SGD  : lr={best['sgd'][0]}, final loss {best['sgd'][1][-1]:.3f}")
    print(f"best PRONG: lr={best['prong'][0]}, final loss {best['prong'][1][-1]:.3f}")
    print(f"updates to reach the best SGD final loss {target:.3f}: SGD {n_sgd}, PRONG {n_prong}; "
          f"ratio SGD/PRONG {n_sgd / n_prong:.2f}")
    print(f"wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
