"""Speed of optlab.curvature on the digits MLP 64-128-64-10 (tanh, 1797 standardized samples, cross-entropy).

Prints, from one run, times relative to one full-batch gradient measured in the same run:
HVP / gradient; top eigenvalue time and value vs PyHessian (tol 1e-3); diagonal GGN and Becker-LeCun
time / gradient vs BackPACK's DiagGGNExact and DiagHessian. Benchmark peers (``pip install
-c constraints.txt backpack-for-pytorch pyhessian``, the ``bench`` extra) are optional: a missing
peer is reported and skipped.

Timing: every task runs ``--repeats`` times, interleaved round-robin with the others so that a
shared, noisy machine slows them alike; the table shows the minimum and the median (ratios of
minima are the least noisy). With the default ``--threads 1`` the clock is the CPU time of the
calling thread (``time.thread_time``: with one intra-op thread, torch's CPU kernels and autograd's
CPU backward run on the caller), which other processes on a shared machine do not inflate;
``--clock wall`` uses ``time.perf_counter``.

    python benchmarks/bench_curvature.py [--repeats 15] [--threads 1] [--dtype float32]
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
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
    H = oc.HessianOperator(model, loss_fn, data)
    Hc = oc.HessianOperator(model, loss_fn, data, cache_graph=True)

    # --- reference top eigenvalue (Lanczos, 150 steps, float64 copy) ---
    model64 = copy.deepcopy(model).double()
    H64 = oc.HessianOperator(model64, loss_fn, (x.double(), y))
    lam_ref = float(oc.lanczos(H64, 1, which="algebraic", num_steps=150).values[0])

    results = {}

    def power():
        results["power"] = oc.top_eigenvalue(H, which="algebraic", tol=1e-3, max_iter=100)

    def lanczos():
        results["lanczos"] = oc.top_eigenvalue(H, which="algebraic", tol=1e-3, max_iter=100, method="lanczos")

    def power_cached():
        results["power, cached graph"] = oc.top_eigenvalue(Hc, which="algebraic", tol=1e-3, max_iter=100)

    def lanczos_cached():
        results["lanczos, cached graph"] = oc.top_eigenvalue(Hc, which="algebraic", tol=1e-3, max_iter=100,
                                                             method="lanczos")

    def lanczos_cached_loose():
        results["lanczos, cached, tol 1e-2"] = oc.top_eigenvalue(Hc, which="algebraic", tol=1e-2, max_iter=100,
                                                                 method="lanczos")

    def pyhessian():
        m = copy.deepcopy(model)
        torch.manual_seed(0)  # PyHessian draws its start vector from the global generator
        h = PyHessian(m, loss_fn, data=(x, y), cuda=False)
        vals, _ = h.eigenvalues(maxIter=100, tol=1e-3, top_n=1)
        results["pyhessian"] = vals[0]

    def gradient():
        return torch.autograd.grad(loss_fn(model(x), y), params)

    tasks = {
        "gradient": gradient,
        "HVP exact (double backprop)": lambda: H @ v,
        "HVP finite difference": lambda: oc.finite_difference_hvp(model, loss_fn, data, v),
        "top eigenvalue: power (tol 1e-3)": power,
        "top eigenvalue: Lanczos (tol 1e-3)": lanczos,
        "top eigenvalue: power, cached graph": power_cached,
        "top eigenvalue: Lanczos, cached graph": lanczos_cached,
        "top eigenvalue: Lanczos, cached, tol 1e-2": lanczos_cached_loose,
        "diag GGN (exact)": lambda: oc.ggn_diagonal(model, loss_fn, data),
        "Becker-LeCun (keep f'')": lambda: oc.becker_lecun_diagonal(model, loss_fn, data),
        "Becker-LeCun (drop f'')": lambda: oc.becker_lecun_diagonal(model, loss_fn, data, keep_f2=False),
    }
    if PyHessian is not None:
        tasks["top eigenvalue: PyHessian (tol 1e-3)"] = pyhessian
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

    print(f"\ntop eigenvalue (reference: Lanczos 150 steps, float64): {lam_ref:.6f}")
    for k in ("power", "lanczos", "power, cached graph", "lanczos, cached graph", "lanczos, cached, tol 1e-2",
              "pyhessian"):
        if k in results:
            r = results[k]
            val, its = (r.value, r.iterations) if hasattr(r, "value") else (float(r), None)
            print(f"  {k:22s} value {val:.6f}  rel. error {abs(val - lam_ref) / abs(lam_ref):.2e}"
                  + (f"  ({its} Hessian-vector products)" if its is not None else ""))
    if PyHessian is not None:
        ph = statistics.median(times["top eigenvalue: PyHessian (tol 1e-3)"])
        phm = min(times["top eigenvalue: PyHessian (tol 1e-3)"])
        for name in ("power (tol 1e-3)", "Lanczos (tol 1e-3)", "power, cached graph", "Lanczos, cached graph",
                     "Lanczos, cached, tol 1e-2"):
            ts = times[f"top eigenvalue: {name}"]
            print(f"  time {name} / PyHessian: {min(ts) / phm:.2f} (minima), {statistics.median(ts) / ph:.2f} (medians)")

    # the cached operator really caches: one product costs about one backward pass
    t = time_tasks({"HVP exact, cached graph": lambda: Hc @ v, "gradient": gradient}, args.repeats, clock)
    print(f"  HVP with a cached graph / gradient: {min(t['HVP exact, cached graph']) / min(t['gradient']):.2f} (minima)")

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
