"""Speed of optlab.curvature on the digits MLP 64-128-64-10 (tanh, 1797 standardized samples, cross-entropy).

Prints, from one run, times relative to one full-batch gradient measured in the same run:
HVP / gradient; top eigenvalue time and value vs PyHessian's (tol 1e-3); diagonal GGN and Becker-LeCun
time / gradient vs BackPACK's DiagGGNExact and DiagHessian. Benchmark peers (``pip install
-c constraints.txt backpack-for-pytorch pyhessian``, the ``bench`` extra) are optional: a missing
peer is reported and skipped.

HVP rows: the default exact product (Pearlmutter's R-pass, ``optlab.curvature.rop``, which
``HessianOperator`` picks for this ``nn.Sequential``) and autograd's double backprop, each one-off
(forward, first-order and second-order passes); after the top-eigenvalue table, one product inside an
eigensolver, where what does not depend on the vector is cached.

Timing: every task runs ``--repeats`` times, interleaved round-robin with the others so that a
shared, noisy machine slows them alike; the table shows the minimum and the median (ratios of
minima are the least noisy). With the default ``--threads 1`` the clock is the CPU time of the
calling thread (``time.thread_time``: with one intra-op thread, torch's CPU kernels and autograd's
CPU backward run on the caller), which other processes on a shared machine do not inflate;
``--clock wall`` uses ``time.perf_counter``.

Top eigenvalue: every solver starts from a random vector (optlab's from the gradient direction plus a
random vector, ``HessianOperator.start_vector``), and the number of products it needs depends on that
vector, so each is run from ``--seeds`` start vectors (optlab: ``seed=s``; PyHessian:
``torch.manual_seed(s)``), each timed ``--eig-repeats`` times; the table gives, per solver, the mean
number of Hessian-vector products, the mean and worst relative error against a float64 Lanczos
reference (150 steps), and the summed time over the seeds relative to PyHessian's. Matched accuracy:
optlab's default (Lanczos stopped by the Ritz residual bound) is also run with ``tol`` set to
PyHessian's mean relative error measured in the same run (its ``tol`` is a bound on the error, so
this asks it for the accuracy PyHessian delivered), and its errors are printed next to PyHessian's.

    python benchmarks/bench_curvature.py [--repeats 15] [--threads 1] [--dtype float32] [--seeds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from torch import nn

import optlab.curvature as oc


def digits_problem(dtype):
    from sklearn.datasets import load_digits
    d = load_digits()
    X = d.data.astype(np.float64)
    std = X.std(0)
    X = (X - X.mean(0)) / np.where(std > 0, std, 1.0)  # constant pixels stay 0
    x, y = torch.tensor(X, dtype=dtype), torch.tensor(d.target, dtype=torch.long)
    try:
        from optlab.problems.digits import mlp
        model = mlp((64, 128, 64, 10), activation="tanh", seed=0, dtype=dtype)
        source = "optlab.problems.digits.mlp"
    except (ImportError, TypeError):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(64, 128), nn.Tanh(), nn.Linear(128, 64), nn.Tanh(), nn.Linear(64, 10)).to(dtype)
        source = "nn.Sequential built here"
    return model, nn.CrossEntropyLoss(), (x, y), source


CLOCK = {"thread": time.thread_time, "wall": time.perf_counter}


def time_tasks(tasks: dict, repeats: int, clock=time.perf_counter) -> dict:
    """Run every task ``repeats`` times (after one warm-up), interleaved; return name -> list of seconds."""
    for f in tasks.values():
        f()
    times = {k: [] for k in tasks}
    for _ in range(repeats):
        for k, f in tasks.items():
            t0 = clock()
            f()
            times[k].append(clock() - t0)
    return times


def pyhessian_top(PyHessian, model, loss_fn, x, y, seed):
    """PyHessian's power method (tol 1e-3, its default), on a copy of the model; returns (value, products)."""
    import sys
    module = sys.modules[PyHessian.__module__]
    count = [0]
    product = module.hessian_vector_product

    def counted(*a, **k):
        count[0] += 1
        return product(*a, **k)

    module.hessian_vector_product = counted
    try:
        torch.manual_seed(seed)  # PyHessian draws its start vector from the global generator
        h = PyHessian(copy.deepcopy(model), loss_fn, data=(x, y), cuda=False)
        vals, _ = h.eigenvalues(maxIter=100, tol=1e-3, top_n=1)
    finally:
        module.hessian_vector_product = product
    return float(vals[0]), count[0]


def top_eigenvalue_table(model, loss_fn, x, y, lam_ref, PyHessian, args, clock):
    """Time, products and error of each top-eigenvalue solver over ``args.seeds`` start vectors."""
    seeds = range(args.seeds)
    H = oc.HessianOperator(model, loss_fn, (x, y))  # no cache_graph: the solvers cache inside by default
    rel = lambda v: abs(v - lam_ref) / abs(lam_ref)  # noqa: E731
    solvers = {}
    target = None
    if PyHessian is not None:
        runs = [pyhessian_top(PyHessian, model, loss_fn, x, y, s) for s in seeds]
        target = sum(rel(v) for v, _ in runs) / len(runs)
        solvers["PyHessian power (tol 1e-3)"] = lambda s: pyhessian_top(PyHessian, model, loss_fn, x, y, s)
    solvers["optlab default (Lanczos, tol 1e-3)"] = lambda s: oc.top_eigenvalue(
        H, which="algebraic", tol=1e-3, max_iter=100, seed=s)[::2]
    if target is not None:
        solvers[f"optlab default, tol {target:.1e} (= PyHessian's error)"] = lambda s: oc.top_eigenvalue(
            H, which="algebraic", tol=target, max_iter=100, seed=s)[::2]
    Hd = oc.HessianOperator(model, loss_fn, (x, y), method="double-backprop")
    solvers["optlab default, double-backprop products"] = lambda s: oc.top_eigenvalue(
        Hd, which="algebraic", tol=1e-3, max_iter=100, seed=s)[::2]
    solvers["optlab method='power' (tol 1e-3)"] = lambda s: oc.top_eigenvalue(
        H, which="algebraic", tol=1e-3, max_iter=100, method="power", seed=s)[::2]

    results = {name: [f(s) for s in seeds] for name, f in solvers.items()}
    tasks = {(name, s): (lambda f=f, s=s: f(s)) for name, f in solvers.items() for s in seeds}
    times = time_tasks(tasks, args.eig_repeats, clock)
    total = {name: sum(min(times[(name, s)]) for s in seeds) for name in solvers}
    ref = total.get("PyHessian power (tol 1e-3)")
    print(f"\ntop eigenvalue vs PyHessian's (tol 1e-3): reference {lam_ref:.6f} (Lanczos 150 steps, float64); "
          f"{args.seeds} start vectors, sum over them of the min of {args.eig_repeats} runs")
    print(f"  {'solver':50s} {'products (mean)':>15s} {'rel. error mean':>16s} {'worst':>9s} {'time ms':>9s}"
          f" {'/PyHessian':>11s}")
    for name in solvers:
        errs = [rel(v) for v, _ in results[name]]
        its = [n for _, n in results[name]]
        print(f"  {name:50s} {sum(its) / len(its):15.1f} {sum(errs) / len(errs):16.2e} {max(errs):9.2e} "
              f"{1e3 * total[name]:9.1f} {total[name] / ref if ref else float('nan'):11.2f}")
    for name in solvers:
        print(f"    {name}: products per seed {[n for _, n in results[name]]}, "
              f"errors {['%.1e' % rel(v) for v, _ in results[name]]}")
    if target is not None:
        # what a perfect stopping rule would cost: the first Lanczos step whose top Ritz value is within
        # PyHessian's error of the reference (needs the reference, so no solver can stop there by itself)
        from optlab.curvature.lanczos import lanczos_iteration, tridiagonal
        first = []
        with torch.no_grad(), H.many_products():
            for s in seeds:
                steps = lanczos_iteration(lambda v: H @ v, H.start_vector(s), 60)
                ks = [k for k, step in enumerate(steps, 1)
                      if rel(float(torch.linalg.eigvalsh(tridiagonal(step.alpha, step.beta))[-1])) <= target]
                first.append(ks[0] if ks else None)
        print(f"    Lanczos, first step within {target:.1e} of the reference (oracle stop): {first}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--seeds", type=int, default=5, help="start vectors per top-eigenvalue solver")
    ap.add_argument("--eig-repeats", type=int, default=5, help="timed runs per solver and start vector")
    ap.add_argument("--clock", choices=["thread", "wall"], default=None,
                    help="default: thread CPU time with --threads 1, wall time otherwise")
    args = ap.parse_args(argv)
    clock_name = args.clock or ("thread" if args.threads == 1 else "wall")
    clock = CLOCK[clock_name]
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    model, loss_fn, data, source = digits_problem(dtype)
    x, y = data
    params = list(model.parameters())
    P = sum(p.numel() for p in params)
    print(f"digits MLP 64-128-64-10 tanh ({source}), {x.shape[0]} samples, P = {P}, {args.dtype}, "
          f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} interleaved repeats, "
          f"{clock_name} clock\n")

    try:
        from pyhessian import hessian as PyHessian
    except ImportError:
        PyHessian = None
        print("PyHessian not installed: its rows are skipped (pip install -c constraints.txt pyhessian)")
    try:
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact, DiagHessian
    except ImportError:
        backpack = None
        print("BackPACK not installed: its rows are skipped (pip install -c constraints.txt backpack-for-pytorch)")

    g = torch.Generator().manual_seed(0)
    v = torch.randn(P, generator=g).to(dtype)
    H = oc.HessianOperator(model, loss_fn, data)  # default: the R-pass for this nn.Sequential
    Hd = oc.HessianOperator(model, loss_fn, data, method="double-backprop")
    assert H.method == "r-op"

    # --- reference top eigenvalue (Lanczos, 150 steps, float64 copy) ---
    model64 = copy.deepcopy(model).double()
    H64 = oc.HessianOperator(model64, loss_fn, (x.double(), y))
    lam_ref = float(oc.lanczos(H64, 1, which="algebraic", num_steps=150).values[0])

    def gradient():
        return torch.autograd.grad(loss_fn(model(x), y), params)

    tasks = {
        "gradient": gradient,
        "HVP exact (default: R-pass)": lambda: H @ v,
        "HVP exact (double backprop)": lambda: Hd @ v,
        "HVP finite difference": lambda: oc.finite_difference_hvp(model, loss_fn, data, v),
        "diag GGN (exact)": lambda: oc.ggn_diagonal(model, loss_fn, data),
        "Becker-LeCun (keep f'')": lambda: oc.becker_lecun_diagonal(model, loss_fn, data),
        "Becker-LeCun (drop f'')": lambda: oc.becker_lecun_diagonal(model, loss_fn, data, keep_f2=False),
    }
    if backpack is not None:
        bp_model, bp_loss = extend(copy.deepcopy(model)), extend(nn.CrossEntropyLoss())

        def bp(ext, attr):
            def run():
                bp_model.zero_grad()
                with backpack(ext()):
                    bp_loss(bp_model(x), y).backward()
                return torch.cat([getattr(p, attr).reshape(-1) for p in bp_model.parameters()])
            return run
        tasks["BackPACK DiagGGNExact"] = bp(DiagGGNExact, "diag_ggn_exact")
        tasks["BackPACK DiagHessian"] = bp(DiagHessian, "diag_h")

    times = time_tasks(tasks, args.repeats, clock)
    tg_min, tg_med = min(times["gradient"]), statistics.median(times["gradient"])
    print(f"{'task':40s} {'min ms':>9s} {'median ms':>10s} {'/grad (min)':>12s} {'/grad (median)':>15s}")
    for k, ts in times.items():
        print(f"{k:40s} {1e3 * min(ts):9.2f} {1e3 * statistics.median(ts):10.2f} {min(ts) / tg_min:12.2f} "
              f"{statistics.median(ts) / tg_med:15.2f}")

    top_eigenvalue_table(model, loss_fn, x, y, lam_ref, PyHessian, args, clock)

    # inside an eigensolver the shared part is cached: a product costs only the v-dependent passes
    cached = {"R-pass": oc.HessianOperator(model, loss_fn, data, cache_graph=True),
              "double backprop": oc.HessianOperator(model, loss_fn, data, cache_graph=True, method="double-backprop")}
    t = time_tasks({"gradient": gradient, **{k: (lambda op=op: op @ v) for k, op in cached.items()}}, args.repeats, clock)
    print("  one product inside an eigensolver (cached) / gradient, minima: "
          + ", ".join(f"{k} {min(t[k]) / min(t['gradient']):.2f}" for k in cached))

    # accuracy of the diagonals (float64 copies)
    d64 = (x.double(), y)
    ggn = oc.ggn_diagonal(model64, loss_fn, d64)
    bl = oc.becker_lecun_diagonal(model64, loss_fn, d64)
    bl0 = oc.becker_lecun_diagonal(model64, loss_fn, d64, keep_f2=False)
    if backpack is not None:
        m_ext, l_ext = extend(copy.deepcopy(model64)), extend(nn.CrossEntropyLoss())
        with backpack(DiagGGNExact(), DiagHessian()):
            l_ext(m_ext(d64[0]), y).backward()
        bp_ggn = torch.cat([p.diag_ggn_exact.reshape(-1) for p in m_ext.parameters()])
        bp_h = torch.cat([p.diag_h.reshape(-1) for p in m_ext.parameters()])
        # spot-check BackPACK's exact diagonal Hessian with our exact HVPs on 20 coordinates
        idx = torch.randperm(P, generator=g)[:20]
        E = torch.zeros(P, 20, dtype=torch.float64)
        E[idx, torch.arange(20)] = 1
        spot = (H64 @ E)[idx, torch.arange(20)]
        rel = lambda a, b: float((a - b).norm() / b.norm())  # noqa: E731
        print("\ndiagonals (float64):")
        print(f"  our GGN diagonal vs BackPACK DiagGGNExact: rel. difference {rel(ggn, bp_ggn):.2e}")
        print(f"  BackPACK DiagHessian vs our exact HVPs on 20 coordinates: rel. difference {rel(bp_h[idx], spot):.2e}")
        print(f"  Becker-LeCun (keep f'') vs exact diagonal Hessian: rel. error {rel(bl, bp_h):.3e}")
        print(f"  Becker-LeCun (drop f'') vs exact diagonal Hessian: rel. error {rel(bl0, bp_h):.3e}")
        print(f"  Becker-LeCun (drop f'') vs exact GGN diagonal:     rel. error {rel(bl0, ggn):.3e}")
        last = slice(P - 64 * 10 - 10, P)
        print(f"  Becker-LeCun on the last layer vs exact:          rel. error {rel(bl[last], bp_h[last]):.2e}")


if __name__ == "__main__":
    main()
