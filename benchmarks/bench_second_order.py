"""Step time of every curvature-driven optimizer on the digits MLP: before (commit 2c40d28) and after (this
tree), in one run.

"Before" is optlab as of commit 2c40d28, each optimizer with its own closure convention and its own
Jacobians, Gauss-Newton products and Fisher matrices; "after" is this tree, where every optimizer takes
torch's closure and the curvature-matrix ones use ``optlab.curvature``'s operators (the Gauss-Newton and
Fisher products by the R-pass's linearization). Each side runs in its own Python process importing its
own optlab (``PYTHONPATH``), on the same seeded network, batch and hyper-parameters; the rounds alternate
before/after so that a busy machine slows both alike.

Problems: scikit-learn's digits (pixels / 16), a fixed seeded batch, tanh MLPs, float64:

* ``small``: 64-16-10 (1210 parameters), 256 samples: the dense methods (Newton, saddle-free Newton,
  Gauss-Newton, Levenberg-Marquardt, natural gradient), which build an n x n matrix;
* ``large``: 64-128-64-10 (17226 parameters), 1024 samples: the matrix-free ones (Newton and
  Gauss-Newton by CG, Hessian-free, nonlinear CG, scaled CG) and the diagonal ones (SDLM, PRONG, vSGD).

Gauss-Newton and Levenberg-Marquardt fit one-hot targets by least squares: before, the closure returned
the residuals r (E = 1/2 ||r||^2, damping mu); after, ``loss_fn=MSELoss(reduction="sum")`` (E = ||r||^2,
damping 2 mu: the same step). The others use the mean cross-entropy on both sides. Newton's damping is
1e-4 (the weights of the always-blank pixels have a zero Hessian), damped Newton's 10 (CG then meets no
negative curvature). Every timed repeat starts from the same parameters with a freshly built optimizer
and times one ``step`` (so Hessian-free's CG has no warm start, vSGD's step is the first of its n0 = 2
slow-start samples, PRONG's includes a re-whitening with ``reparam_every=1``). The last rows time the
operators themselves: ten GGN-vector products on one batch (as inside a CG solve), and the dense GGN and
Fisher matrices the dense solvers build.

The last column compares the two sides' results, ``|d_after - d_before| / |d_before|`` for the steps
(the operators' products for the operator rows): 0 up to rounding where the algorithm is the same.
Nonlinear CG's line search and SDLM's and vSGD's diagonals may legitimately differ after their
conversion; truncated CG on an ill-conditioned system amplifies rounding differences.

Timing: medians over ``--rounds`` x ``--repeats`` steps per side (one warm-up step per process); with the
default ``--threads 1`` the clock is the calling thread's CPU time (``time.thread_time``), which other
processes on a shared machine do not inflate.

    python benchmarks/bench_second_order.py [--before /tmp/optlab-before] [--rounds 3] [--repeats 3]

``--before`` is a checkout of commit 2c40d28 (made with ``git archive`` when missing, e.g. after
``git -C . worktree add /tmp/optlab-before 2c40d28`` it is used as it is); ``--after`` defaults to the
tree this script belongs to.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEFORE_COMMIT = "2c40d28"
ROOT = Path(__file__).resolve().parent.parent

PROBLEMS = {"small": ((64, 16, 10), 256), "large": ((64, 128, 64, 10), 1024)}

# name, problem, loss ("ce" or "lsq": least squares on one-hot targets)
CASES = [
    ("Newton (dense, mu=1e-4)", "small", "ce"),
    ("SaddleFreeNewton (dense)", "small", "ce"),
    ("GaussNewton (dense)", "small", "lsq"),
    ("LevenbergMarquardt (dense)", "small", "lsq"),
    ("NaturalGradient true (dense)", "small", "ce"),
    ("NaturalGradient empirical (dense)", "small", "ce"),
    ("damped Newton (cg, 20 it.)", "large", "ce"),
    ("GaussNewton (cg, 20 it.)", "large", "lsq"),
    ("HessianFree GGN (cg <= 30 it.)", "large", "ce"),
    ("HessianFree Hessian (cg <= 30 it.)", "large", "ce"),
    ("NaturalGradient true (cg, 20 it.)", "large", "ce"),
    ("NonlinearCG", "large", "ce"),
    ("ScaledCG", "large", "ce"),
    ("SDLM", "large", "ce"),
    ("PRONG", "large", "ce"),
    ("VSGD", "large", "ce"),
    # the operators the optimizers now share (before: autograd's double-vjp; after: the R-pass)
    ("GGNOperator @ v (x10, as in CG)", "large", "operator"),
    ("GGNOperator.to_dense()", "small", "operator"),
    ("FisherOperator true .to_dense()", "small", "operator"),
    ("FisherOperator empirical .to_dense()", "small", "operator"),
]


# ----------------------------------------------------------------------------- the worker (one side)
class Unavailable(Exception):
    """The case has no counterpart on this side (shown as n/a)."""


def _problem(name, dtype):
    import torch
    from sklearn.datasets import load_digits
    from torch import nn
    sizes, n = PROBLEMS[name]
    d = load_digits()
    idx = torch.randperm(len(d.data), generator=torch.Generator().manual_seed(0))[:n]
    x = torch.tensor(d.data / 16.0, dtype=dtype)[idx]
    y = torch.tensor(d.target, dtype=torch.long)[idx]
    layers = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers += [nn.Linear(a, b)] + ([nn.Tanh()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers).to(dtype), x, y


def _kwargs_for(cls, **kw):
    """``kw`` with the names this version of ``cls`` spells differently (``cg_maxiter``/``cg_max_iter``,
    ``mu``/``damping``, ``max_ls``/``ls_max_iter``), and only the names it accepts."""
    accepted = set(inspect.signature(cls.__init__).parameters)
    aliases = {"cg_max_iter": "cg_maxiter", "damping": "mu", "ls_max_iter": "max_ls", "estimate_steps": "estimate_batches"}
    out = {}
    for k, v in kw.items():
        if k in accepted:
            out[k] = v
        elif aliases.get(k) in accepted:
            out[aliases[k]] = v
    return out


def _torch_closure(opt, model, loss_fn, x, y):
    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss
    return closure


class _OperatorTask:
    """An operator product timed like an optimizer step: ``step(closure)`` runs ``closure``."""

    def step(self, closure):
        return closure()


def _operator_task(case: str, model, x, y):
    import torch
    import optlab.curvature as oc
    ce = torch.nn.CrossEntropyLoss()
    if case.startswith("GGNOperator @ v"):  # 10 products, as inside one CG solve
        cache = "cache_graph" in inspect.signature(oc.GGNOperator.__init__).parameters
        G = oc.GGNOperator(model, ce, (x, y), **({"cache_graph": True} if cache else {}))
        v = torch.linspace(-1, 1, G.shape[0], dtype=x.dtype)
        G @ v  # after: the linearization is built once per solve (before: no cache, a forward pass per product)
        return _OperatorTask(), lambda: [G @ v for _ in range(10)][-1]
    if case.startswith("GGNOperator"):
        return _OperatorTask(), oc.GGNOperator(model, ce, (x, y)).to_dense
    kind = "empirical" if "empirical" in case else "true"
    return _OperatorTask(), oc.FisherOperator(model, ce, (x, y), kind=kind).to_dense


def _build(side: str, case: str, model, x, y, kind: str):
    """The optimizer of ``case`` for ``side`` ("before": 2c40d28's conventions; "after": torch's closure)
    and the closure to step it with."""
    import torch
    import optlab.optim as oo
    from torch import nn
    if kind == "operator":
        return _operator_task(case, model, x, y)
    ce = nn.CrossEntropyLoss()
    onehot = nn.functional.one_hot(y, 10).to(x.dtype)
    ps = list(model.parameters())
    after = side == "after"

    def loss_closure():  # before: Newton's and SFN's closure returns the loss without backward()
        return ce(model(x), y)

    def make(cls, *args, needs_model_loss=None, **kw):
        kw = _kwargs_for(cls, **kw)
        if after and getattr(cls, "needs", None) == "model":
            kw.update(model=model, loss_fn=needs_model_loss or ce)
        return cls(*args, **kw)

    def standard(opt, loss_fn=ce, targets=y):
        return _torch_closure(opt, model, loss_fn, x, targets)

    if case.startswith("Newton"):  # mu > 0 only for the always-blank pixels, whose weights have H = 0
        opt = make(oo.Newton, ps, damping=1e-4, solver="dense")
        return opt, standard(opt) if after else loss_closure
    if case.startswith("damped Newton"):
        opt = make(oo.Newton, ps, damping=10.0, solver="cg", cg_max_iter=20, cg_rtol=0.0)
        return opt, standard(opt) if after else loss_closure
    if case.startswith("SaddleFreeNewton"):
        opt = make(oo.SaddleFreeNewton, ps, damping=0.1)
        return opt, standard(opt) if after else loss_closure
    if case.startswith("GaussNewton") or case.startswith("LevenbergMarquardt"):
        cls = oo.GaussNewton if case.startswith("GaussNewton") else oo.LevenbergMarquardt
        solver = "cg" if "cg" in case else "dense"
        mu = 1.0
        if after:
            sse = nn.MSELoss(reduction="sum")  # = 2 x (1/2 ||r||^2): damping 2 mu gives the same step
            opt = make(cls, ps, damping=2 * mu, solver=solver, cg_max_iter=20, cg_rtol=0.0, needs_model_loss=sse)
            return opt, standard(opt, sse, onehot)
        opt = make(cls, ps, damping=mu, solver=solver, cg_max_iter=20, cg_rtol=0.0)
        return opt, lambda: (model(x) - onehot).reshape(-1)
    if case.startswith("HessianFree"):
        curvature = "hessian" if "Hessian (" in case else "gauss-newton"
        opt = make(oo.HessianFree, ps, damping=1.0, curvature=curvature, cg_max_iter=30)
        if after:
            return opt, standard(opt)
        if curvature == "hessian":
            return opt, loss_closure
        return opt, lambda: (lambda z: (z, ce(z, y)))(model(x))
    if case.startswith("NaturalGradient"):
        kind_ = "empirical" if "empirical" in case else "true"
        solver = "cg" if "cg" in case else "dense"
        if after:
            opt = make(oo.NaturalGradient, ps, lr=1.0, damping=1e-2, kind=kind_, solver=solver, cg_max_iter=20,
                       cg_rtol=0.0)
            return opt, standard(opt)
        if solver == "cg":
            raise Unavailable("no matrix-free solver at 2c40d28 (its dense Fisher of this net needs > 4 GB)")
        opt = make(oo.NaturalGradient, ps, lr=1.0, damping=1e-2, fisher=kind_, likelihood="categorical")
        return opt, lambda: (model(x), y)
    if case == "NonlinearCG":
        opt = make(oo.NonlinearCG, ps)
        return opt, standard(opt)
    if case == "ScaledCG":
        opt = make(oo.ScaledCG, ps)
        return opt, standard(opt)
    if case in ("SDLM", "VSGD"):
        from optlab.curvature import diagonal_hessian
        cls = oo.SDLM if case == "SDLM" else oo.VSGD
        extra = dict(lr=0.01, damping=0.1, estimate_every=1) if case == "SDLM" else dict(n0=2)
        if getattr(cls, "needs", None) != "model":  # the diagonal comes from a function of no argument
            extra["diagonal_fn"] = lambda: diagonal_hessian(model, ce, (x, y), method="gauss-newton")
        opt = make(cls, ps, **extra)
        return opt, standard(opt)
    if case == "PRONG":
        layers = [m for m in model if isinstance(m, oo.WhitenedLinear)]
        opt = make(oo.PRONG, ps, layers, lambda: model(x), lr=0.01, reparam_every=1)
        return opt, standard(opt)
    raise ValueError(f"unknown case {case!r}")


def _sketch(result):
    """A dense matrix as its product with 8 fixed random vectors (enough to compare two sides)."""
    import torch
    if result.dim() < 2:
        return result.reshape(-1)
    R = torch.randn(result.shape[1], 8, generator=torch.Generator().manual_seed(0), dtype=result.dtype)
    return (result @ R).reshape(-1)


def worker(side: str, repeats: int, threads: int, out: str) -> None:
    import torch
    import optlab
    torch.set_num_threads(threads)
    clock = time.thread_time if threads == 1 else time.perf_counter
    results = {"optlab": optlab.__file__}
    for case, problem, kind in CASES:
        print(f"  {side}: {case}", file=sys.stderr, flush=True)
        model, x, y = _problem(problem, torch.float64)
        if case == "PRONG":
            from optlab.optim import whiten_sequential
            model = whiten_sequential(model)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        times, step = [], None
        try:
            for r in range(repeats + 1):  # the first one warms up
                model.load_state_dict(start)
                opt, closure = _build(side, case, model, x, y, kind)
                theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
                t0 = clock()
                result = opt.step(closure)
                t = clock() - t0
                if r == 0:  # what the sides must agree on: the step, or the operator's product
                    step = (_sketch(result.detach()) if kind == "operator" else
                            torch.cat([p.detach().reshape(-1) for p in model.parameters()]) - theta0)
                else:
                    times.append(t)
            results[case] = {"times": times, "step": step.tolist(),
                             "params": sum(p.numel() for p in model.parameters())}
        except Unavailable as e:
            results[case] = {"na": str(e)}
        except Exception as e:  # noqa: BLE001 -- reported in the table, not hidden
            results[case] = {"error": f"{type(e).__name__}: {e}"[:160]}
    Path(out).write_text(json.dumps(results))


# ----------------------------------------------------------------------------- the driver
def ensure_before(path: Path) -> None:
    """A checkout of BEFORE_COMMIT at ``path`` (``git archive`` of the commit if it is missing)."""
    if (path / "optlab" / "__init__.py").exists():
        return
    path.mkdir(parents=True, exist_ok=True)
    print(f"exporting {BEFORE_COMMIT} to {path} (git archive)", flush=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE_COMMIT, "optlab"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(path)], input=archive, check=True)


def run_side(side: str, tree: Path, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run([sys.executable, __file__, "--worker", side, "--repeats", str(args.repeats),
                        "--threads", str(args.threads), "--out", str(out)], env=env, check=True)
        return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, default=Path(tempfile.gettempdir()) / "optlab-before")
    ap.add_argument("--after", type=Path, default=ROOT)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--worker", choices=["before", "after"])
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.repeats, args.threads, args.out)
        return
    ensure_before(args.before)
    runs = {"before": [], "after": []}
    for r in range(args.rounds):
        for side, tree in (("before", args.before), ("after", args.after)):
            print(f"round {r + 1}/{args.rounds}: {side} ({tree})", flush=True)
            runs[side].append(run_side(side, tree, args))
    print(f"\nbefore: {runs['before'][0]['optlab']}\nafter:  {runs['after'][0]['optlab']}")
    print(f"median step time over {args.rounds} x {args.repeats} steps, {args.threads} thread(s), float64\n")
    header = (f"{'optimizer / operator':<36} {'problem':<7} {'params':>6} {'before ms':>10} {'after ms':>10} "
              f"{'after/before':>12} {'|d_a-d_b|/|d_b|':>16}")
    print(header)
    print("-" * len(header))
    for case, problem, _ in CASES:
        sides, cells = {}, []
        for side in ("before", "after"):
            got = [run[case] for run in runs[side]]
            bad = next((("n/a", g["na"]) if "na" in g else ("error", g["error"]) for g in got if "times" not in g), None)
            sides[side] = bad or (statistics.median(t for g in got for t in g["times"]), got[0])
            cells.append(f"{bad[0]:>10}" if bad else f"{sides[side][0] * 1e3:10.1f}")
        if any(isinstance(s[0], str) for s in sides.values()):
            params = next((s[1]["params"] for s in sides.values() if not isinstance(s[0], str)), "")
            print(f"{case:<36} {problem:<7} {params:>6} {cells[0]} {cells[1]} {'':>12} {'':>16}")
            for side, s in sides.items():
                if isinstance(s[0], str):
                    print(f"    {side}: {s[1]}")
            continue
        (tb, rb), (ta, ra) = sides["before"], sides["after"]
        db, da = rb["step"], ra["step"]
        norm = sum(v * v for v in db) ** 0.5
        diff = f"{sum((a - b) ** 2 for a, b in zip(da, db)) ** 0.5 / norm:16.1e}" if norm > 0 else f"{'(no step)':>16}"
        print(f"{case:<36} {problem:<7} {ra['params']:>6} {cells[0]} {cells[1]} {ta / tb:12.2f} {diff}")


if __name__ == "__main__":
    main()
