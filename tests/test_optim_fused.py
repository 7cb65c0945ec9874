"""The fused kernels' group path (:mod:`optlab.optim._fused`): one compiled call per loop for all the
tensors of a parameter group, torch's own square root between two loops, and the drivers' names in
numba's on-disk cache. That each optimizer gives torch's bits is ``test_optim_one_step``'s business;
here the group path is checked where it can go wrong on its own: tensors of many sizes in one call
(several blocks, a tail, a 0-d tensor), the fallback without MKL's root, and which calls are made.
"""

from __future__ import annotations

import platform

import pytest
import torch

import optlab.optim as oo
from optlab.optim import _fused
from optlab.optim._fused import SCRATCH, BoundKernel, RootedLoops, fused_kernel, prange, torch_root

SHAPES = [(3,), (7, 5), (33, 1213), (), (2 * _fused.CHUNK + 5,)]  # a tail, several blocks, 0-d, over GRAIN in all

CASES = [  # (name, kwargs, the class whose ``over`` each step calls once)
    ("SGD", dict(lr=0.1, momentum=0.9), BoundKernel),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True), BoundKernel),
    ("ASGD", dict(lr=0.05, t0=2), BoundKernel),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1), RootedLoops),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1), RootedLoops),
    ("RMSprop", dict(lr=0.01), RootedLoops),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9, maximize=True), RootedLoops),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1), RootedLoops),
    ("AdamW", dict(lr=0.01), RootedLoops),
    ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1), RootedLoops),
    ("Adamax", dict(lr=0.01, maximize=True), BoundKernel),
    ("Rprop", dict(lr=0.01), BoundKernel),
]


def group(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=dtype) for shape in SHAPES]


def run_steps(name, kw, dtype, steps=3, torch_cls=False):
    params = [p.clone().requires_grad_() for p in group(dtype)]
    opt = (getattr(torch.optim, name) if torch_cls else getattr(oo, name))(params, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=dtype)
        opt.step()
    return params, opt


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw,cls", CASES, ids=lambda x: x if isinstance(x, str) else None)
def test_a_group_steps_in_one_call_per_loop_with_torchs_bits(monkeypatch, name, kw, cls, dtype):
    calls = []
    over = cls.over

    def counted(self, sets, *args, **kwargs):
        calls.append(len(sets))
        return over(self, sets, *args, **kwargs)

    monkeypatch.setattr(cls, "over", counted)
    ours, opt = run_steps(name, kw, dtype)
    assert calls == [len(SHAPES)] * 3  # every tensor of the group in one call, at each step
    assert set(opt.kernel_used.values()) == {"fused"}
    theirs, _ = run_steps(name, kw, dtype, torch_cls=True)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kw", [(n, k) for n, k, cls in CASES if cls is RootedLoops])
def test_the_root_between_loops_gives_the_same_bits_with_and_without_mkl(monkeypatch, name, kw, dtype):
    """With MKL's root the loops and the root run block by block in one call; without it (another torch
    build), ``torch.sqrt`` runs between two calls. Both are torch's bits."""
    with_mkl, opt = run_steps(name, kw, dtype)
    monkeypatch.setattr(_fused, "torch_root", lambda dtype: None)
    without, _ = run_steps(name, kw, dtype)
    assert all(torch.equal(a, b) for a, b in zip(with_mkl, without))
    assert not any(torch.equal(a, b) for a, b in zip(with_mkl, group(dtype)))  # the steps moved every tensor


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_torchs_root_runs_between_the_loops_on_scratch(dtype):
    """On an x86 build with MKL, torch's ``sqrt`` is MKL's and :func:`torch_root` finds it (its own check
    compares it with ``torch.sqrt`` bit for bit); never for a dtype the loops do not take. The first loop
    writes scratch (``SCRATCH[0]``), the root reads it back into a tensor, block by block."""
    assert torch_root(torch.float16) is None
    if torch.backends.mkl.is_available() and platform.machine() == "x86_64":
        assert torch_root(dtype) is not None
    x = (torch.rand(3 * _fused.CHUNK + 7, dtype=torch.float64) * 1e3).to(dtype)
    x[:4] = torch.tensor([0.0, -1.0, float("inf"), 1e-40])
    r = torch.full_like(x, 5.0)
    copy = _copy_loop.bind(2)
    loops = RootedLoops(copy, (0, 2), ((2, 1),), copy, (1, 1))
    loops.over([(x, r, SCRATCH[0]), (x[:9], r[:9].clone(), SCRATCH[0])])
    assert torch.equal(r.view(-1).isnan(), x.view(-1) < 0)
    assert torch.equal(r[1:].nan_to_num(), torch.sqrt(x)[1:].nan_to_num()) and r[0] == 0


@fused_kernel
def _copy_loop(a, b):
    for i in prange(a.shape[0]):
        b[i] = a[i]


def _doubling():
    def _change_loop(x):
        for i in prange(x.shape[0]):
            x[i] = x[i] * 2.0
    return fused_kernel(_change_loop)


def _shifting():
    def _change_loop(x):
        for i in prange(x.shape[0]):
            x[i] = x[i] + 2.0
    return fused_kernel(_change_loop)


def test_a_driver_is_named_by_its_loops_source():
    """numba's disk cache knows a driver by its name and its own file (``_fused.py``): two loops of one
    name but different code must not share a cached driver, or a changed loop would run stale."""
    names = {_fused._compile_driver(_fused._over_blocks, {"LOOP": make()}, True).py_func.__qualname__
             for make in (_doubling, _shifting)}
    assert len(names) == 2 and all("_change_loop" in name for name in names)


def test_an_error_in_a_group_leaves_the_tensors_before_it_stepped():
    """The batch runs when the group's step stops on an error: the tensors before the failing one are
    stepped (and their new state filled), as when each tensor stepped on its own."""
    import warnings

    from optlab.optim._base import KernelFallbackWarning

    first = torch.nn.Parameter(torch.zeros(5))
    second = torch.nn.Parameter(torch.zeros(3, 4).t())  # not contiguous: the fused kernel cannot take it
    first.grad, second.grad = torch.ones(5), torch.ones(4, 3)
    opt = oo.SGD([first, second], lr=0.5, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelFallbackWarning)
        with pytest.raises(KernelFallbackWarning, match="not contiguous"):
            opt.step()
    assert torch.equal(first.detach(), torch.full((5,), -0.5))
    assert torch.equal(opt.state[first]["momentum_buffer"], torch.ones(5))
