"""Trajectory equality: every optimizer x every option combination of the registry, 300 steps on a small MLP.

Three copies of the same MLP take 300 mini-batch steps, each with its own gradients: optlab's fast
path, optlab's readable reference kernel, and torch.optim's counterpart (for AveragedSGD, which torch
lacks, the reference kernel is the reference). The error is the largest, over parameter tensors, of
max|a - b| / max|b|.
"""

from __future__ import annotations

import copy

import pytest
import torch

from optim_registry import REGISTRY, case_id, trajectory_cases

from optlab.optim import _fused

STEPS = 300
FALLBACK_STEPS = 60
NOT_FUSED = {"Rprop"}  # one pass of torch's sign/where operations is already 0.7x torch's time
FUSED_CASE = {"SGD": dict(momentum=0.9)}  # plain SGD is one torch._foreach_add_, faster than any per-tensor call
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
FAST_VS_REFERENCE_TOL = {torch.float64: 1e-12, torch.float32: 1e-5}


def make_problem(dtype):
    """A 5-8-3 tanh MLP (4 parameter tensors) and 10 fixed mini-batches of a regression task."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    model = model.to(dtype)
    X = torch.randn(10, 16, 5, generator=g, dtype=dtype)
    Y = torch.sin(X @ torch.randn(5, 3, generator=g, dtype=dtype))
    return model, X, Y


def rel_error(a_params, b_params) -> float:
    return max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(a_params, b_params))


def run_three(name, kw, dtype, steps=STEPS):
    entry = REGISTRY[name]
    model, X, Y = make_problem(dtype)
    models = [model, copy.deepcopy(model), copy.deepcopy(model)]
    opts = [entry.make(models[0].parameters(), **kw),
            entry.make(models[1].parameters(), reference=True, **kw),
            entry.make_reference(models[2].parameters(), **kw)]
    sign = -1.0 if kw.get("maximize") else 1.0  # maximize the negated loss: the same descent
    for k in range(steps):
        x, y = X[k % len(X)], Y[k % len(Y)]
        for opt in opts:
            opt.zero_grad()
        loss = sum(((m(x) - y) ** 2).mean() for m in models)
        (sign * loss).backward()
        for opt in opts:
            opt.step()
    fast, ref, theirs = (list(m.parameters()) for m in models)
    return rel_error(fast, theirs), rel_error(fast, ref), rel_error(ref, theirs), model, X, Y


def check_case(name, kw, dtype):
    fast_vs_torch, fast_vs_ref, ref_vs_torch, model, X, Y = run_three(name, kw, dtype)
    assert fast_vs_torch <= TOL[dtype], f"fast path vs reference optimizer: {fast_vs_torch:.3g}"
    assert ref_vs_torch <= TOL[dtype], f"readable kernel vs reference optimizer: {ref_vs_torch:.3g}"
    assert fast_vs_ref <= FAST_VS_REFERENCE_TOL[dtype], f"fast path vs readable kernel: {fast_vs_ref:.3g}"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", trajectory_cases(), ids=case_id)
def test_trajectory_every_option_combination(case, dtype):
    check_case(*case, dtype)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_trajectory_really_moves(name):
    """The comparison is not vacuous: every default case moves the weights well beyond the tolerance."""
    model, X, Y = make_problem(torch.float64)
    start = [p.detach().clone() for p in model.parameters()]
    entry = REGISTRY[name]
    opt = entry.make(model.parameters(), **entry.base)
    for k in range(30):
        opt.zero_grad()
        ((model(X[k % 10]) - Y[k % 10]) ** 2).mean().backward()
        opt.step()
    assert rel_error(start, list(model.parameters())) > 1e-3


@pytest.mark.parametrize("case", trajectory_cases(), ids=case_id)
def test_torch_operations_fallback_matches(case):
    """Where the fused kernels do not apply (no numba, sparse or non-contiguous tensors), optlab steps
    with torch's in-place operations: that path too matches torch.optim and the readable kernel."""
    with _fused.disabled():
        fast_vs_torch, fast_vs_ref, ref_vs_torch, *_ = run_three(*case, torch.float64, steps=FALLBACK_STEPS)
    assert fast_vs_torch <= TOL[torch.float64], f"torch-operations path vs reference optimizer: {fast_vs_torch:.3g}"
    assert fast_vs_ref <= FAST_VS_REFERENCE_TOL[torch.float64], f"torch-operations path vs readable kernel: {fast_vs_ref:.3g}"


@pytest.mark.parametrize("name", list(REGISTRY))
def test_fused_kernels_step_dense_tensors(name, monkeypatch):
    """The trajectory tests above exercise the fused kernels: they do run on the MLP's tensors."""
    assert _fused.available()
    ran = []
    call = _fused.fused_kernel.__call__

    def spy(kernel, *args):
        ran.append(kernel.loop.__name__)
        return call(kernel, *args)

    monkeypatch.setattr(_fused.fused_kernel, "__call__", spy)
    entry = REGISTRY[name]
    for dtype in (torch.float32, torch.float64):
        model, X, Y = make_problem(dtype)
        opt = entry.make(model.parameters(), **{**entry.base, **FUSED_CASE.get(name, {})})
        for k in range(3):
            opt.zero_grad()
            ((model(X[k]) - Y[k]) ** 2).mean().backward()
            opt.step()
    assert bool(ran) == (name not in NOT_FUSED), f"{name}: fused kernels called: {sorted(set(ran))}"
