"""SDLM vs plain SGD on the digits MLP: epochs to reach a target training loss, best of a sweep each.

The slides (LeCun, "Stochastic Diagonal Levenberg-Marquardt") claim SDLM "is usually about 3 times faster
than carefully tuned stochastic gradient". This script measures it on scikit-learn's digits (the
offline stand-in for the slides' handwritten digits): the same seeded MLP, the same mini-batch order,
a learning-rate sweep for SGD and an (epsilon, mu) sweep for SDLM with the Gauss-Newton diagonal
(``optlab.curvature.diagonal_hessian``, which SDLM runs on the training batches) estimated on the first
batches of every epoch (a few hundred patterns). Every optimizer is stepped with torch's closure. It prints the epochs each run needs (evaluated every quarter epoch) and the
ratio best SGD / best SDLM. A diverged run counts as "never".

Usage: python benchmarks/bench_sdlm.py [--sizes 64 30 10] [--activation tanh] [--target 0.05]
"""

from __future__ import annotations

import argparse
import time

import torch

from optlab.experiments.second_order import epochs_to_target, sdlm_factory
from optlab.problems import load_digits_data, mlp



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 30, 10])
    ap.add_argument("--activation", default="tanh")
    ap.add_argument("--target", type=float, default=0.05)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--sgd-lrs", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0])
    ap.add_argument("--sdlm-lrs", type=float, nargs="+", default=[0.002, 0.003, 0.005, 0.007, 0.01, 0.02])
    ap.add_argument("--dampings", type=float, nargs="+", default=[0.0001, 0.0003, 0.001, 0.003, 0.01])
    ap.add_argument("--gamma", type=float, default=0.2)
    ap.add_argument("--estimate-steps", type=int, default=12, help="batches per re-estimation")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    d = load_digits_data()
    X, y = d.X_train, d.y_train
    steps_per_epoch = len(X) // args.batch
    print(f"digits MLP {args.sizes} {args.activation}, {len(X)} training images, batch {args.batch}, "
          f"target training loss {args.target}, at most {args.epochs} epochs")
    t0 = time.perf_counter()
    sgd = {}
    for lr in args.sgd_lrs:
        sgd[lr] = epochs_to_target(lambda net: torch.optim.SGD(net.parameters(), lr=lr),
                                   mlp(args.sizes, args.activation, seed=0), X, y,
                                   target=args.target, epochs=args.epochs, batch=args.batch)
        print(f"  SGD  lr={lr:<6}            epochs to target: {sgd[lr]:.2f}")
    sdlm = {}
    for lr in args.sdlm_lrs:
        for mu in args.dampings:
            make = sdlm_factory(lr=lr, damping=mu, gamma=args.gamma, estimate_steps=args.estimate_steps,
                                estimate_every=steps_per_epoch)
            sdlm[lr, mu] = epochs_to_target(make, mlp(args.sizes, args.activation, seed=0), X, y,
                                            target=args.target, epochs=args.epochs, batch=args.batch)
            print(f"  SDLM eps={lr:<6} mu={mu:<6} epochs to target: {sdlm[lr, mu]:.2f}")
    best_sgd = min(sgd.items(), key=lambda kv: kv[1])
    best_sdlm = min(sdlm.items(), key=lambda kv: kv[1])
    print(f"best SGD : lr={best_sgd[0]} -> {best_sgd[1]:.2f} epochs")
    print(f"best SDLM: eps, mu={best_sdlm[0]} -> {best_sdlm[1]:.2f} epochs")
    print(f"ratio (SGD epochs / SDLM epochs): {best_sgd[1] / best_sdlm[1]:.2f}  (slides: about 3)")
    print(f"wall time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
