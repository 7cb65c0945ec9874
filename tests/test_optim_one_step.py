"""One step of every optimizer: against its equation written out by hand, and bit for bit against torch.

Each hand-written check builds the optimizer on a 3-vector, writes a non-trivial state into
``opt.state`` (as if some steps had already been taken), takes one step with a known gradient, and
compares the parameters and state with the update equation typed out in numpy-like torch (float64,
exact to 1e-14). The bit-identity test takes every option combination of the registry from a state
torch.optim reached after a few steps and asks for torch's very bits. Both run every kernel.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
import torch

from optim_registry import KERNELS, REGISTRY, case_id, trajectory_cases

from optlab.optim._fused import fma, fused_kernel, prange, torch_arithmetic_mismatch

D = torch.float64
THETA = torch.tensor([0.5, -1.0, 2.0], dtype=D)
G = torch.tensor([0.3, -0.2, 0.0], dtype=D)  # one zero entry: sign and max branches
G_PREV = torch.tensor([0.1, 0.4, -0.5], dtype=D)


def state_of(t, **tensors):
    return {"step": torch.tensor(float(t)), **{k: v.clone() for k, v in tensors.items()}}


def one_step(entry, state, kernel, **kw):
    p = torch.nn.Parameter(THETA.clone())
    opt = entry.make([p], kernel=kernel, **kw)
    opt.state[p] = state
    p.grad = G.clone()
    opt.step()
    return p.detach(), opt.state[p]


def sgd(kernel):
    b = torch.tensor([1.0, 2.0, -1.0], dtype=D)
    lr, mu, tau, lam = 0.1, 0.9, 0.2, 0.01
    theta, st = one_step(REGISTRY["SGD"], {"momentum_buffer": b.clone()}, kernel, lr=lr, momentum=mu,
                         dampening=tau, weight_decay=lam)
    g = G + lam * THETA
    b_new = mu * b + (1 - tau) * g
    return theta, THETA - lr * b_new, st["momentum_buffer"], b_new


def sgd_nesterov(kernel):
    b = torch.tensor([1.0, 2.0, -1.0], dtype=D)
    lr, mu = 0.1, 0.9
    theta, st = one_step(REGISTRY["SGD"], {"momentum_buffer": b.clone()}, kernel, lr=lr, momentum=mu,
                         nesterov=True)
    b_new = mu * b + G
    return theta, THETA - lr * (G + mu * b_new), st["momentum_buffer"], b_new


def rprop(kernel):
    delta = torch.tensor([0.1, 0.2, 0.3], dtype=D)
    st0 = state_of(4, prev=G_PREV, step_size=delta)
    theta, st = one_step(REGISTRY["Rprop"], st0, kernel, lr=0.01, etas=(0.5, 1.2), step_sizes=(1e-6, 50))
    # entry 0: same sign -> grow; entry 1: sign change -> shrink and skip; entry 2: g = 0 -> keep
    delta_new = torch.tensor([0.1 * 1.2, 0.2 * 0.5, 0.3], dtype=D)
    expected = THETA - torch.tensor([1.0, 0.0, 0.0], dtype=D) * delta_new
    return theta, expected, st["step_size"], delta_new


def rprop_manhattan(kernel):
    st0 = state_of(4, prev=G_PREV, step_size=torch.full((3,), 0.05, dtype=D))
    theta, st = one_step(REGISTRY["Rprop"], st0, kernel, lr=0.05, etas=(1.0, 1.0))
    return theta, THETA - 0.05 * torch.sign(G), st["step_size"], torch.full((3,), 0.05, dtype=D)


def adagrad(kernel):
    r = torch.tensor([0.5, 1.0, 2.0], dtype=D)
    lr, kappa, eps = 0.1, 0.05, 1e-3
    theta, st = one_step(REGISTRY["Adagrad"], state_of(6, sum=r), kernel, lr=lr, lr_decay=kappa, eps=eps)
    r_new = r + G**2
    return theta, THETA - lr / (1 + 6 * kappa) * G / (r_new.sqrt() + eps), st["sum"], r_new


def rmsprop(kernel):
    r = torch.tensor([0.5, 1.0, 2.0], dtype=D)
    g_bar = torch.tensor([0.1, -0.1, 0.2], dtype=D)
    b = torch.tensor([0.3, 0.0, -0.3], dtype=D)
    lr, gamma, eps, mu = 0.01, 0.9, 1e-4, 0.5
    theta, st = one_step(REGISTRY["RMSprop"], state_of(3, square_avg=r, grad_avg=g_bar, momentum_buffer=b),
                         kernel, lr=lr, alpha=gamma, eps=eps, momentum=mu, centered=True)
    r_new = gamma * r + (1 - gamma) * G**2
    g_bar_new = gamma * g_bar + (1 - gamma) * G
    b_new = mu * b + G / ((r_new - g_bar_new**2).sqrt() + eps)
    return theta, THETA - lr * b_new, st["momentum_buffer"], b_new


def adadelta(kernel):
    r = torch.tensor([0.5, 1.0, 2.0], dtype=D)
    acc = torch.tensor([0.01, 0.02, 0.03], dtype=D)
    lr, rho, eps = 0.7, 0.9, 1e-6
    theta, st = one_step(REGISTRY["Adadelta"], state_of(3, square_avg=r, acc_delta=acc), kernel, lr=lr, rho=rho,
                         eps=eps)
    r_new = rho * r + (1 - rho) * G**2
    v = (acc + eps).sqrt() / (r_new + eps).sqrt() * G
    acc_new = rho * acc + (1 - rho) * v**2
    return theta, THETA - lr * v, st["acc_delta"], acc_new


def _adam(name, kernel, **extra):
    m = torch.tensor([0.1, -0.2, 0.05], dtype=D)
    v = torch.tensor([0.01, 0.04, 0.02], dtype=D)
    v_max = torch.tensor([0.02, 0.03, 0.03], dtype=D)
    lr, b1, b2, eps, t = 0.01, 0.8, 0.95, 1e-6, 5
    st0 = state_of(t - 1, exp_avg=m, exp_avg_sq=v, max_exp_avg_sq=v_max)
    theta, st = one_step(REGISTRY[name], st0, kernel, lr=lr, betas=(b1, b2), eps=eps, **extra)
    lam = extra.get("weight_decay", 0.0)
    decoupled = name == "AdamW" or extra.get("decoupled_weight_decay", False)
    g = G if decoupled else G + lam * THETA
    theta0 = THETA * (1 - lr * lam) if decoupled else THETA
    m_new = b1 * m + (1 - b1) * g
    v_new = b2 * v + (1 - b2) * g**2
    v_use = torch.maximum(v_max, v_new) if extra.get("amsgrad") else v_new
    m_hat, v_hat = m_new / (1 - b1**t), v_use / (1 - b2**t)
    return theta, theta0 - lr * m_hat / (v_hat.sqrt() + eps), st["exp_avg_sq"], v_new


def adam(kernel):
    return _adam("Adam", kernel, weight_decay=0.1, amsgrad=True)


def adamw(kernel):
    return _adam("AdamW", kernel, weight_decay=0.1)


def adamax(kernel):
    m = torch.tensor([0.1, -0.2, 0.05], dtype=D)
    u = torch.tensor([0.5, 0.1, 0.2], dtype=D)
    lr, b1, b2, eps, t = 0.01, 0.8, 0.95, 1e-6, 5
    theta, st = one_step(REGISTRY["Adamax"], state_of(t - 1, exp_avg=m, exp_inf=u), kernel, lr=lr,
                         betas=(b1, b2), eps=eps)
    m_new = b1 * m + (1 - b1) * G
    u_new = torch.maximum(b2 * u, G.abs() + eps)
    return theta, THETA - lr / (1 - b1**t) * m_new / u_new, st["exp_inf"], u_new


def nadam(kernel):
    m = torch.tensor([0.1, -0.2, 0.05], dtype=D)
    v = torch.tensor([0.01, 0.04, 0.02], dtype=D)
    lr, b1, b2, eps, psi, t = 0.01, 0.8, 0.95, 1e-6, 0.004, 5
    mus = [b1 * (1 - 0.5 * 0.96 ** (i * psi)) for i in range(1, t + 2)]
    prod_before = math.prod(mus[: t - 1])
    st0 = state_of(t - 1, exp_avg=m, exp_avg_sq=v)
    st0["mu_product"] = torch.tensor(prod_before, dtype=D)
    with torch.no_grad():
        torch.set_default_dtype(D)  # keep torch's scalar state (mu_product) in float64 for this check
        try:
            theta, st = one_step(REGISTRY["NAdam"], st0, kernel, lr=lr, betas=(b1, b2), eps=eps,
                                 momentum_decay=psi)
        finally:
            torch.set_default_dtype(torch.float32)
    mu_t, mu_next = mus[t - 1], mus[t]
    prod_t = prod_before * mu_t
    m_new = b1 * m + (1 - b1) * G
    v_new = b2 * v + (1 - b2) * G**2
    denom = (v_new / (1 - b2**t)).sqrt() + eps
    expected = THETA - lr * ((1 - mu_t) / (1 - prod_t) * G + mu_next / (1 - prod_t * mu_next) * m_new) / denom
    return theta, expected, st["exp_avg"], m_new


def asgd(kernel):
    ax = torch.tensor([0.4, -0.8, 1.0], dtype=D)
    lr, lambd, a, t0, eta, mu = 0.1, 0.01, 0.75, 2.0, 0.05, 0.25
    st0 = state_of(4, ax=ax)
    st0["eta"], st0["mu"] = torch.tensor(eta), torch.tensor(mu)
    theta, st = one_step(REGISTRY["ASGD"], st0, kernel, lr=lr, lambd=lambd, alpha=a, t0=t0)
    eta32 = float(torch.tensor(eta))  # torch keeps eta and mu as float32 scalars
    theta_new = THETA * (1 - lambd * eta32) - eta32 * G
    ax_new = ax + mu * (theta_new - ax)
    assert st["eta"].item() == pytest.approx(lr / (1 + lambd * lr * 5) ** a, rel=1e-6)
    assert st["mu"].item() == pytest.approx(1 / (5 - t0), rel=1e-7)
    return theta, theta_new, st["ax"], ax_new


def averaged_sgd(kernel):
    theta_bar = torch.tensor([0.4, -0.8, 1.0], dtype=D)
    lr, lambd, wd, s, t = 0.1, 0.5, 0.01, 2, 6  # the 7th step: the average holds 7 - 2 = 5 iterates
    st0 = {"step": t, "theta_bar": theta_bar.clone()}
    theta, st = one_step(REGISTRY["AveragedSGD"], st0, kernel, lr=lr, lambd=lambd, weight_decay=wd,
                         average_start=s)
    eta = lr / (1 + lambd * lr * t) ** 0.75
    theta_new = THETA - eta * (G + wd * THETA)
    return theta, theta_new, st["theta_bar"], theta_bar + (theta_new - theta_bar) / (t + 1 - s)


CHECKS = {
    "SGD": [sgd, sgd_nesterov], "Rprop": [rprop, rprop_manhattan], "Adagrad": [adagrad], "RMSprop": [rmsprop],
    "Adadelta": [adadelta], "Adam": [adam], "AdamW": [adamw], "Adamax": [adamax], "NAdam": [nadam],
    "ASGD": [asgd], "AveragedSGD": [averaged_sgd],
}


def test_every_registered_optimizer_has_a_one_step_check():
    assert set(CHECKS) == set(REGISTRY)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("check", [c for cs in CHECKS.values() for c in cs], ids=lambda c: c.__name__)
def test_one_step_matches_hand_written_equation(check, kernel):
    theta, expected, state, expected_state = check(kernel)
    torch.testing.assert_close(theta, expected, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(state, expected_state, rtol=1e-14, atol=1e-15)
    assert not torch.equal(theta, THETA)  # the step did something


# --- bit for bit against torch.optim ---------------------------------------------------------------

SHAPES = [(3,), (7, 5), (33, 1213)]  # torch's scalar tail; a vector body and tail; over the fused loops' GRAIN
WARMUP = 3  # steps torch takes first, so that every state tensor is non-trivial
# torch's foreach path rounds differently from its for-loop (torch 2.13); optlab follows the for-loop,
# which torch.optim takes on CPU by default
TORCH_FOREACH_DIFFERS = {
    "NAdam": "foreach divides sqrt(v) by sqrt(1 - beta2^t), the for-loop takes sqrt(v / (1 - beta2^t))",
    "ASGD": "foreach steps theta - eta (g + lambda theta) and updates ax with addcmul (one rounding); "
            "the for-loop steps theta (1 - lambda eta) - eta g and ax + (theta - ax) mu",
}


def gradients(dtype, steps, seed=0):
    """Random gradients, every 7th entry exactly 0 (the sign, max and clamp branches)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        grads = [torch.randn(s, generator=g, dtype=dtype) for s in SHAPES]
        for x in grads:
            x.view(-1)[::7] = 0.0
        out.append(grads)
    return out


@functools.cache
def start_state(name, dtype, kw_items):
    """Parameters and per-parameter state after WARMUP steps of the reference optimizer (torch's for-loop).

    The state is handed over as it is in memory, not through ``load_state_dict``: that casts torch's
    scalar state (NAdam's ``mu_product``, ASGD's ``eta``) to the parameters' dtype, so that even torch
    resumes a float64 run with other bits than it would have had.
    """
    g = torch.Generator().manual_seed(1)
    params = [torch.nn.Parameter(torch.randn(s, generator=g, dtype=dtype)) for s in SHAPES]
    ref = REGISTRY[name].make_reference(params, **dict(kw_items))
    for grads in gradients(dtype, WARMUP):
        for p, gr in zip(params, grads):
            p.grad = gr
        ref.step()
    return [p.detach().clone() for p in params], [copy.deepcopy(ref.state[p]) for p in params]


def step_from(make, theta, states, grads):
    """The optimizer ``make`` builds, given ``states``, after one step with ``grads``; and its parameters."""
    params = [torch.nn.Parameter(t.clone()) for t in theta]
    opt = make(params)
    for p, state, gr in zip(params, states, grads):
        opt.state[p] = copy.deepcopy(state)
        p.grad = gr.clone()
    opt.step()
    return opt, params


def assert_bit_identical(ours, our_params, theirs, their_params):
    for k, (a, b) in enumerate(zip(our_params, their_params)):
        assert torch.equal(a, b), f"parameter {k}: {(a != b).sum().item()} of {a.numel()} elements differ"
        state, expected = ours.state[a], theirs.state[b]
        assert set(state) == set(expected)
        for key, value in expected.items():
            same = torch.equal(state[key], value) if isinstance(value, torch.Tensor) else state[key] == value
            assert same, f"parameter {k}, state {key!r} differs"


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", trajectory_cases(), ids=case_id)
def test_one_step_bit_identical_to_torch(case, dtype, kernel):
    """From the same non-trivial state, one step gives torch.optim's bits in the parameters and every state
    tensor (AveragedSGD, which torch lacks: the readable kernel's bits), whichever kernel takes it."""
    name, kw = case
    entry = REGISTRY[name]
    theta, saved = start_state(name, dtype, tuple(kw.items()))  # step_from copies them
    grads = gradients(dtype, WARMUP + 1)[-1]
    theirs, their_params = step_from(lambda ps: entry.make_reference(ps, **kw), theta, saved, grads)
    ours, our_params = step_from(lambda ps: entry.make(ps, **kw, kernel=kernel), theta, saved, grads)
    assert_bit_identical(ours, our_params, theirs, their_params)
    assert set(ours.kernel_used.values()) == {kernel}
    assert any(not torch.equal(a, b) for a, b in zip(our_params, theta))  # the step did something
    if entry.torch_cls is not None and name not in TORCH_FOREACH_DIFFERS:  # torch's foreach: the same bits
        foreach, foreach_params = step_from(lambda ps: entry.torch_cls(ps, **kw, foreach=True), theta, saved, grads)
        assert_bit_identical(foreach, foreach_params, theirs, their_params)


@fused_kernel
def _fma_loop(a, b, c, out):
    for i in prange(a.shape[0]):
        out[i] = fma(a[i], b[i], c[i])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_fma_is_torch_addcmul_rounded_once(dtype):
    """The fused loops' fma, compiled and in Python, is torch's addcmul: a b + c with one rounding."""
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(1001, generator=g, dtype=dtype) for _ in range(3))
    expected = torch.addcmul(c, a, b)
    assert not torch.equal(expected, c + a * b)  # two roundings differ somewhere
    out = torch.empty_like(a)
    _fma_loop.bind(4).over([(a, b, c, out)])
    assert torch.equal(out, expected)
    A, B, C = (x.numpy() for x in (a, b, c))
    assert all(fma(A[i], B[i], C[i]) == expected[i].item() for i in range(len(A)))


def test_torch_rounds_as_the_fused_loops_assume():
    assert torch_arithmetic_mismatch() is None


@fused_kernel
def _axpy_loop(x, y, s):
    for i in prange(x.shape[0]):
        y[i] = fma(x[i], s, y[i])


@pytest.mark.parametrize("scalars", [{}, {"t": 2.0}, {"s": 2.0, "t": 1.0}], ids=["missing", "misnamed", "extra"])
def test_fused_kernel_takes_exactly_its_scalars_by_keyword(scalars):
    x, y = torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"_axpy_loop: got scalars .*; expected \['s'\]"):
        _axpy_loop.bind(2, **scalars)
    _axpy_loop.bind(2, s=np.float64(2.0)).over([(x, y)])
    assert y.tolist() == [2.0, 2.0, 2.0]
