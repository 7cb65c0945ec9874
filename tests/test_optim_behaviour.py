"""torch.optim behaviour of every registered optimizer: groups, closures, zero_grad, state dicts,
lr schedulers, None and sparse gradients, the refused knobs, and the choice of kernel.

"Reference" below is the torch.optim counterpart (or, for AveragedSGD, optlab's readable kernel).
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from optim_registry import KERNELS, REGISTRY

from optlab.optim._base import KernelFallbackWarning

NAMES = list(REGISTRY)
D = torch.float64


def model_and_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).to(D)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=D) * 0.5)
    X = torch.randn(8, 16, 4, generator=g, dtype=D)
    Y = torch.randn(8, 16, 2, generator=g, dtype=D)
    return model, X, Y


def train(model, opt, X, Y, steps, start=0, scheduler=None):
    for k in range(start, start + steps):
        opt.zero_grad()
        ((model(X[k % len(X)]) - Y[k % len(Y)]) ** 2).mean().backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def params(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_same(a, b, rtol=1e-10):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].torch_cls is not None])
def test_signature_matches_torch(name):
    entry = REGISTRY[name]
    ours = inspect.signature(entry.cls).parameters
    theirs = inspect.signature(entry.torch_cls).parameters
    for arg, p in theirs.items():
        assert arg in ours, f"{name} lacks torch's argument {arg}"
        assert ours[arg].default == p.default, f"{name}.{arg}: default {ours[arg].default!r} != {p.default!r}"
        assert ours[arg].kind == p.kind, f"{name}.{arg}: kind {ours[arg].kind} != {p.kind}"
    assert set(ours) - set(theirs) == {"kernel"}
    assert ours["kernel"].kind == inspect.Parameter.KEYWORD_ONLY and ours["kernel"].default == "fused"
    assert issubclass(entry.cls, torch.optim.Optimizer)


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_different_hyper_parameters(name):
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    twin = copy.deepcopy(model)
    first, second = list(model[0].parameters()), list(model[2].parameters())
    t_first, t_second = list(twin[0].parameters()), list(twin[2].parameters())
    base = entry.base
    group2 = {"lr": base["lr"] * 0.3, "weight_decay": 0.05} if name != "Rprop" else {"lr": 0.003, "etas": (0.3, 1.5)}
    opt = entry.make([{"params": first}, {"params": second, **group2}], **base)
    ref = entry.make_reference([{"params": t_first}, {"params": t_second, **group2}], **base)
    assert opt.param_groups[1]["lr"] == group2["lr"] != opt.param_groups[0]["lr"]
    train(model, opt, X, Y, 40)
    train(twin, ref, X, Y, 40)
    assert_same(params(model), params(twin))


@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_the_loss(name):
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    opt = entry.make(model.parameters(), **entry.base)
    before = params(model)

    def closure():
        opt.zero_grad()
        loss = ((model(X[0]) - Y[0]) ** 2).mean()
        loss.backward()
        return loss

    expected = ((model(X[0]) - Y[0]) ** 2).mean().item()
    loss = opt.step(closure)
    assert loss.item() == expected
    assert any(not torch.equal(a, b) for a, b in zip(before, params(model)))
    assert opt.step() is None  # no closure: None, as torch


@pytest.mark.parametrize("name", NAMES)
def test_zero_grad(name):
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    opt = entry.make(model.parameters(), **entry.base)
    ((model(X[0]) - Y[0]) ** 2).mean().backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64], ids=["scalars32", "scalars64"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bit_identically(name, default_dtype):
    entry = REGISTRY[name]
    kw = {**entry.base, "weight_decay": 0.01} if "weight_decay" in entry.base or name not in ("Rprop",) else entry.base
    torch.set_default_dtype(default_dtype)
    try:
        model, X, Y = model_and_data()
        opt = entry.make(model.parameters(), **kw)
        train(model, opt, X, Y, 25)
        saved_params, saved_state = params(model), copy.deepcopy(opt.state_dict())
        train(model, opt, X, Y, 25, start=25)
        uninterrupted = params(model)

        resumed, _, _ = model_and_data(seed=1)  # different weights, overwritten below
        with torch.no_grad():
            for p, s in zip(resumed.parameters(), saved_params):
                p.copy_(s)
        opt2 = entry.make(resumed.parameters(), **entry.base)  # hyper-parameters come from the state dict
        opt2.load_state_dict(saved_state)
        train(resumed, opt2, X, Y, 25, start=25)
    finally:
        torch.set_default_dtype(torch.float32)
    for a, b in zip(uninterrupted, params(resumed)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].torch_cls is not None])
def test_state_dict_is_interchangeable_with_torch(name):
    """torch's state dict loads into optlab (and back), and the run continues as torch's would."""
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    theirs = entry.torch_cls(model.parameters(), **entry.base)
    train(model, theirs, X, Y, 20)
    twin = copy.deepcopy(model)
    ours = entry.make(twin.parameters(), **entry.base)
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    train(model, theirs, X, Y, 20, start=20)
    train(twin, ours, X, Y, 20, start=20)
    assert_same(params(twin), params(model))
    back = entry.torch_cls(copy.deepcopy(twin).parameters(), **entry.base)
    back.load_state_dict(ours.state_dict())  # and optlab's state dict loads into torch


SCHEDULERS = {
    "StepLR": lambda opt, steps: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5),
    "CosineAnnealingLR": lambda opt, steps: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps),
    "OneCycleLR": lambda opt, steps: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=opt.param_groups[0]["lr"] * 2, total_steps=steps,
        cycle_momentum="momentum" in opt.defaults or "betas" in opt.defaults),
}


@pytest.mark.parametrize("sched", list(SCHEDULERS))
@pytest.mark.parametrize("name", NAMES)
def test_lr_schedulers(name, sched):
    entry = REGISTRY[name]
    kw = {**entry.base, "momentum": 0.5} if name in ("SGD", "RMSprop") else entry.base
    model, X, Y = model_and_data()
    twin = copy.deepcopy(model)
    opt, ref = entry.make(model.parameters(), **kw), entry.make_reference(twin.parameters(), **kw)
    steps = 30
    s1, s2 = SCHEDULERS[sched](opt, steps), SCHEDULERS[sched](ref, steps)
    train(model, opt, X, Y, steps, scheduler=s1)
    train(twin, ref, X, Y, steps, scheduler=s2)
    assert s1.get_last_lr() == s2.get_last_lr() != [kw["lr"]]
    assert_same(params(model), params(twin))


@pytest.mark.parametrize("name", NAMES)
def test_parameters_without_gradient_are_skipped(name):
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    frozen = torch.nn.Parameter(torch.ones(3, dtype=D))  # in the optimizer, never in the loss
    twin = copy.deepcopy(model)
    t_frozen = torch.nn.Parameter(torch.ones(3, dtype=D))
    opt = entry.make([*model.parameters(), frozen], **entry.base)
    ref = entry.make_reference([*twin.parameters(), t_frozen], **entry.base)
    train(model, opt, X, Y, 10)
    train(twin, ref, X, Y, 10)
    assert frozen.grad is None and torch.equal(frozen, torch.ones(3, dtype=D))
    assert set(opt.state[frozen]) == set(ref.state[t_frozen])  # no state, or torch's eager state (Adagrad)
    assert_same(params(model), params(twin))


def embedding_problem(sparse):
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.Embedding(10, 3, sparse=sparse).to(D)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(10, 3, generator=g, dtype=D))
    idx = torch.randint(0, 10, (6, 5), generator=g)  # repeated indices: the sparse gradient needs coalescing
    return emb, idx


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")  # raised inside torch.optim.Adagrad
@pytest.mark.parametrize("name", NAMES)
def test_sparse_gradients_as_torch(name):
    entry = REGISTRY[name]
    emb, idx = embedding_problem(sparse=True)
    twin = copy.deepcopy(emb)
    kw = {**entry.base, "momentum": 0.9} if name == "SGD" else entry.base
    opt, ref = entry.make(emb.parameters(), **kw), entry.make_reference(twin.parameters(), **kw)

    def step(m, o, k):
        o.zero_grad()
        (m(idx[k]) ** 2).sum().backward()
        assert m.weight.grad.is_sparse
        o.step()

    if not entry.cls.supports_sparse:
        with pytest.raises(RuntimeError, match="sparse"):
            step(emb, opt, 0)
        if entry.torch_cls is not None:
            with pytest.raises(RuntimeError, match="sparse"):
                step(twin, ref, 0)
        return
    with pytest.warns(KernelFallbackWarning, match="kernel='fused' cannot step a parameter: the gradient is sparse"):
        step(emb, opt, 0)
    step(twin, ref, 0)
    for k in range(1, 6):
        step(emb, opt, k)
        step(twin, ref, k)
    assert opt.kernel_used[emb.weight] == "reference"  # the readable kernel is the one that takes sparse tensors
    untouched = sorted(set(range(10)) - set(idx.flatten().tolist()))
    assert_same([emb.weight], [twin.weight])
    assert torch.equal(emb.weight[untouched], embedding_problem(sparse=True)[0].weight[untouched])


KNOBS = [(n, k) for n in NAMES for k in ("capturable", "differentiable", "fused")
         if k in inspect.signature(REGISTRY[n].cls).parameters]


@pytest.mark.parametrize("name,knob", KNOBS)
def test_unsupported_torch_knobs_raise(name, knob):
    entry = REGISTRY[name]
    with pytest.raises(ValueError, match=f"{name}: invalid {knob}=True"):
        entry.make([torch.nn.Parameter(torch.ones(2))], **entry.base, **{knob: True})
    entry.make([torch.nn.Parameter(torch.ones(2))], **entry.base, **{knob: False})  # the default is fine


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_survives_pickling_and_deepcopy(name):
    import pickle

    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    opt = entry.make(model.parameters(), kernel="reference", **entry.base)
    train(model, opt, X, Y, 3)
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert clone.param_groups[0]["kernel"] == "reference"
        p = clone.param_groups[0]["params"][0]
        p.grad = torch.ones_like(p)
        before = p.detach().clone()
        clone.step()
        assert not torch.equal(before, p)


@pytest.mark.parametrize("name", NAMES)
def test_tensor_learning_rate_is_accepted(name):
    """A 0-d tensor lr works as in torch (torch rounds some products with it in float32: 1e-6 relative)."""
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    twin = copy.deepcopy(model)
    kw = {**entry.base, "lr": torch.tensor(entry.base["lr"])}
    opt, ref = entry.make(model.parameters(), **kw), entry.make_reference(twin.parameters(), **kw)
    train(model, opt, X, Y, 10)
    train(twin, ref, X, Y, 10)
    for a, b in zip(params(model), params(twin)):
        assert (a - b).abs().max() <= 1e-6 * b.abs().max()


@pytest.mark.parametrize("name", NAMES)
def test_complex_parameters_are_refused(name):
    entry = REGISTRY[name]
    p = torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))
    opt = entry.make([p], **entry.base)
    p.grad = torch.ones_like(p)
    with pytest.raises(TypeError, match=f"{name}: complex parameters are not supported"):
        opt.step()


# --- the kernel: one explicit hyper-parameter --------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_kernel_is_a_hyper_parameter_kept_by_the_state_dict(name):
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    opt = entry.make(model.parameters(), **entry.base, kernel="inplace")
    assert opt.defaults["kernel"] == opt.param_groups[0]["kernel"] == "inplace"
    train(model, opt, X, Y, 2)
    saved = opt.state_dict()
    assert saved["param_groups"][0]["kernel"] == "inplace"
    resumed = entry.make(copy.deepcopy(model).parameters(), **entry.base)  # asks for "fused"...
    resumed.load_state_dict(saved)  # ...but the state dict, like an lr, says "inplace"
    assert resumed.param_groups[0]["kernel"] == "inplace"
    if entry.torch_cls is not None:  # torch's state dict has no kernel: the constructor's stays
        theirs = entry.torch_cls(model.parameters(), **entry.base)
        ours = entry.make(model.parameters(), **entry.base, kernel="reference")
        ours.load_state_dict(theirs.state_dict())
        assert ours.param_groups[0]["kernel"] == "reference"
        train(model, ours, X, Y, 1)
        assert set(ours.kernel_used.values()) == {"reference"}


@pytest.mark.parametrize("name", NAMES)
def test_each_parameter_group_may_choose_its_kernel(name):
    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    first, second = list(model[0].parameters()), list(model[2].parameters())
    opt = entry.make([{"params": first, "kernel": "reference"}, {"params": second}], **entry.base)
    train(model, opt, X, Y, 2)
    assert [opt.kernel_used[p] for p in first + second] == ["reference"] * 2 + ["fused"] * 2
    with pytest.raises(ValueError, match=f"{name}: invalid kernel='numba'; expected 'fused' or 'inplace' or"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "kernel": "numba"})


@pytest.mark.parametrize("name", NAMES)
def test_fused_kernel_falls_back_visibly_and_keeps_torch_bits(name):
    """A parameter the fused loops cannot take (here a transposed, non-contiguous one) is stepped by the
    in-place kernel: one warning that says why, ``kernel_used`` says so, and the bits are still torch's."""
    entry = REGISTRY[name]
    g = torch.Generator().manual_seed(0)
    start, grads = torch.randn(6, 4, generator=g, dtype=D), torch.randn(5, 4, 6, generator=g, dtype=D)
    ours, theirs = torch.nn.Parameter(start.t()), torch.nn.Parameter(start.t())
    assert not ours.is_contiguous()
    kw = {**entry.base, "momentum": 0.9} if name == "SGD" else entry.base  # plain SGD is one _foreach_add_
    opt, ref = entry.make([ours], **kw), entry.make_reference([theirs], **kw)
    with pytest.warns(KernelFallbackWarning) as caught:
        for k in range(5):
            for p, o in ((ours, opt), (theirs, ref)):
                p.grad = grads[k].clone()
                o.step()
    fallbacks = [w for w in caught if issubclass(w.category, KernelFallbackWarning)]
    assert len(fallbacks) == 1
    assert str(fallbacks[0].message) == (f"{name}: kernel='fused' cannot step a parameter: the parameter is not "
                                         f"contiguous; it steps with kernel='inplace' (same equations and rounding)")
    assert fallbacks[0].filename == __file__  # the warning points at the step() call
    assert opt.kernel_used[ours] == "inplace"
    assert torch.equal(ours, theirs)


def test_kernel_names_are_the_three_documented_ones():
    assert KERNELS == ("fused", "inplace", "reference")


@pytest.mark.parametrize("name", NAMES)
def test_fused_kernel_follows_replaced_memory(name):
    """A fused step writes into the memory the parameter and its state have at that step: replacing
    ``p.data``, or the whole state through ``load_state_dict``, between steps must be seen (a kernel that
    kept the old memory, through a cached view or address, would leave ``p`` untouched and drift from torch)."""
    entry = REGISTRY[name]
    g = torch.Generator().manual_seed(1)
    start, grads = torch.randn(5, 3, generator=g, dtype=D), torch.randn(6, 5, 3, generator=g, dtype=D)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    kw = {**entry.base, "momentum": 0.9} if name == "SGD" else entry.base  # plain SGD is one _foreach_add_
    opt, ref = entry.make([ours], **kw), entry.make_reference([theirs], **kw)
    for k in range(6):
        if k == 2:
            ours.data = ours.data.clone()  # a new tensor, same values, other memory
        if k == 4:
            opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # new state tensors
        for p, o in ((ours, opt), (theirs, ref)):
            p.grad = grads[k].clone()
            o.step()
        assert torch.equal(ours, theirs), k
        assert set(opt.kernel_used.values()) == {"fused"}
    for key, value in ref.state[theirs].items():
        assert torch.equal(torch.as_tensor(opt.state[ours][key]), torch.as_tensor(value)), key


@pytest.mark.parametrize("name", NAMES)
def test_fused_kernel_steps_a_mixed_group_as_torch(name):
    """One group of float32 and float64 tensors, of which some miss a gradient on some steps (so their step
    counts differ) and one is not contiguous (stepped by the in-place kernel): every tensor ends with the
    reference's bits. An optimizer that binds its loops once per group and reuses them must bind them per
    dtype and per step count."""
    entry = REGISTRY[name]
    g = torch.Generator().manual_seed(2)
    shapes = [(4, 3), (5,), (3, 4), (6,)]
    dtypes = [torch.float64, torch.float32, torch.float64, torch.float32]
    starts = [torch.randn(s, generator=g, dtype=dt) for s, dt in zip(shapes, dtypes)]
    starts[2] = starts[2].t()  # transposed: not contiguous
    ours = [torch.nn.Parameter(s.clone() if i != 2 else s) for i, s in enumerate(starts)]
    theirs = [torch.nn.Parameter(s.clone()) for s in starts]
    # plain SGD is one _foreach_add_; Adagrad's step size depends on the step count only with a decay
    kw = {**entry.base, **{"SGD": {"momentum": 0.9}, "Adagrad": {"lr_decay": 0.5}}.get(name, {})}
    opt, ref = entry.make(ours, **kw), entry.make_reference(theirs, **kw)
    skips = {0: {1}, 1: {0, 3}, 3: {1}}  # step -> tensors without a gradient on that step
    with pytest.warns(KernelFallbackWarning):
        for k in range(5):
            for i, (a, b) in enumerate(zip(ours, theirs)):
                grad = None if i in skips.get(k, ()) else torch.randn(a.shape, generator=g, dtype=a.dtype)
                a.grad, b.grad = grad, None if grad is None else grad.clone()
            opt.step()
            ref.step()
            for i, (a, b) in enumerate(zip(ours, theirs)):
                assert torch.equal(a, b), (k, i)
    assert opt.kernel_used[ours[0]] == "fused" and opt.kernel_used[ours[2]] == "inplace"


@pytest.mark.parametrize("name", NAMES)
def test_a_step_keeps_no_gradient_alive(name):
    """After ``zero_grad()`` (``set_to_none=True``) the step's gradients are freed: the optimizer (its kernels'
    cached views included) holds no reference to them, so a model's gradients are not held twice."""
    import gc
    import weakref

    entry = REGISTRY[name]
    model, X, Y = model_and_data()
    kw = {**entry.base, "momentum": 0.9} if name == "SGD" else entry.base
    opt = entry.make(model.parameters(), **kw)
    train(model, opt, X, Y, 2)
    refs = [weakref.ref(p.grad) for p in model.parameters()]
    opt.zero_grad(set_to_none=True)
    gc.collect()
    assert all(r() is None for r in refs)
