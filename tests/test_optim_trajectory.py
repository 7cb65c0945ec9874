"""Trajectories, bit for bit: every optimizer, every kernel, against torch.optim over hundreds of steps.

Copies of the same model take the same mini-batch steps, each with its own gradients: one copy per
optlab kernel (fused, in-place, readable) and one with torch.optim's counterpart (for AveragedSGD,
which torch lacks, the readable kernel is the reference). After every step all copies must hold the
same bits. On a chaotic problem (a small sigmoid net, where Adam with betas (0.5, 0.9) turns a one-ulp
difference in one weight into a difference of 1e-3 after 300 steps) anything less would show.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from optim_registry import KERNELS, REGISTRY, case_id, trajectory_cases

from optlab.optim._base import KernelFallbackWarning

STEPS = 300
SHORT_STEPS = 60
FUSED_CASE = {"SGD": dict(momentum=0.9)}  # plain SGD is one torch._foreach_add_, not a loop per tensor


def tanh_mlp(dtype):
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


def sigmoid_net(dtype):
    """A 2-8-8-1 sigmoid net with N(0, 1) weights fitting sign(x1 x2) on 32 points: one full batch."""
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 8), torch.nn.Sigmoid(),
                                torch.nn.Linear(8, 1)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype))
    X = torch.randn(32, 2, generator=g, dtype=dtype)
    return model, X.unsqueeze(0), torch.sign(X[:, :1] * X[:, 1:]).unsqueeze(0)


def train(models, opts, X, Y, steps, sign=1.0, compare=True):
    """``steps`` mini-batch steps of every model with its optimizer; with ``compare``, after each step
    every model must hold the first one's bits (the first step where one does not is reported)."""
    for k in range(steps):
        x, y = X[k % len(X)], Y[k % len(Y)]
        for model, opt in zip(models, opts):
            opt.zero_grad()
            (sign * ((model(x) - y) ** 2).mean()).backward()
            opt.step()
        if compare:
            reference = list(models[0].parameters())
            for model, opt in zip(models[1:], opts[1:]):
                for i, (a, b) in enumerate(zip(model.parameters(), reference)):
                    assert torch.equal(a, b), (f"{describe(opt)}: parameter {i} differs from {describe(opts[0])} "
                                               f"after {k + 1} steps, by {(a - b).abs().max().item():.3g}")


def describe(opt) -> str:
    kernel = opt.param_groups[0].get("kernel")
    return f"torch.optim.{type(opt).__name__}" if kernel is None else f"{type(opt).__name__}(kernel={kernel!r})"


def run_every_kernel(name, kw, make_problem, dtype, steps):
    """The reference optimizer and optlab's three kernels on copies of one problem, compared after every step."""
    entry = REGISTRY[name]
    model, X, Y = make_problem(dtype)
    models = [model] + [copy.deepcopy(model) for _ in KERNELS]
    opts = [entry.make_reference(models[0].parameters(), **kw)]
    opts += [entry.make(m.parameters(), **kw, kernel=kernel) for m, kernel in zip(models[1:], KERNELS)]
    train(models, opts, X, Y, steps, sign=-1.0 if kw.get("maximize") else 1.0)  # maximize -loss: descent
    for opt, kernel in zip(opts[1:], KERNELS):
        assert set(opt.kernel_used.values()) == {kernel}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", trajectory_cases(), ids=case_id)
def test_trajectory_every_option_combination(case, dtype):
    run_every_kernel(*case, tanh_mlp, dtype, STEPS)


@pytest.mark.parametrize("case", trajectory_cases(), ids=case_id)
def test_every_kernel_follows_torch(case):
    """The short version of the test above, float64: every kernel gives torch's bits for 60 steps."""
    run_every_kernel(*case, tanh_mlp, torch.float64, SHORT_STEPS)


CHAOTIC = {name: {**entry.base, **({"betas": (0.5, 0.9)} if name == "Adam" else {})}
           for name, entry in REGISTRY.items()}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(REGISTRY))
def test_chaotic_run_bit_identical_to_torch(name, dtype):
    """300 full-batch steps on the sigmoid net: the three kernels stay on torch's bits throughout."""
    run_every_kernel(name, CHAOTIC[name], sigmoid_net, dtype, STEPS)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_chaotic_run_amplifies_one_ulp(dtype):
    """Why the test above needs bit identity: nudging one weight by one ulp moves Adam (betas (0.5, 0.9))
    by more than 1e-3 (relative) after 300 steps, so agreement "to rounding" would not mean much."""
    model, X, Y = sigmoid_net(dtype)
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        w = nudged[0].weight.view(-1)
        w[0] = torch.nextafter(w[0], torch.tensor(torch.inf, dtype=dtype))
    opts = [REGISTRY["Adam"].make(m.parameters(), **CHAOTIC["Adam"]) for m in (model, nudged)]
    train([model, nudged], opts, X, Y, STEPS, compare=False)
    a, b = (torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (model, nudged))
    assert (a - b).abs().max() / a.abs().max() > 1e-3


@pytest.mark.parametrize("name", list(REGISTRY))
def test_trajectory_really_moves(name):
    """The comparison is not vacuous: every default case moves the weights well beyond rounding."""
    model, X, Y = tanh_mlp(torch.float64)
    start = [p.detach().clone() for p in model.parameters()]
    entry = REGISTRY[name]
    opt = entry.make(model.parameters(), **entry.base)
    train([model], [opt], X, Y, 30)
    assert max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(model.parameters(), start)) > 1e-3


@pytest.mark.parametrize("name", list(REGISTRY))
def test_fused_kernel_steps_dense_tensors(name):
    """The default kernel is the fused one, and it does step the MLP's tensors (no fallback, no warning)."""
    entry = REGISTRY[name]
    for dtype in (torch.float32, torch.float64):
        model, X, Y = tanh_mlp(dtype)
        opt = entry.make(model.parameters(), **{**entry.base, **FUSED_CASE.get(name, {})})
        assert opt.param_groups[0]["kernel"] == "fused"
        with warnings.catch_warnings():
            warnings.simplefilter("error", KernelFallbackWarning)
            train([model], [opt], X, Y, 3)
        assert [opt.kernel_used[p] for p in model.parameters()] == ["fused"] * 4
