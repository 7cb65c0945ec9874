"""Generic tests run on every curvature-driven optimizer (one registry row each): a few steps lower the
loss, invalid hyper-parameters raise a ValueError naming the value, state_dict round trip, param groups."""

import copy

import pytest
import torch

from optlab.optim import (PRONG, SDLM, GaussNewton, HessianFree, LevenbergMarquardt, NaturalGradient, Newton,
                          NonlinearCG, SaddleFreeNewton, ScaledCG, WhitenedLinear, whiten_sequential)

DT = torch.float64
X = torch.randn(10, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
Y = torch.sin(X @ torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=DT))


def make_net(seed=0):
    torch.manual_seed(seed)
    return whiten_sequential(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double())


def loss_of(net):
    return 0.5 * ((net(X) - Y) ** 2).sum(1).mean()


def exact_diagonal(net):
    """The exact Hessian diagonal of ``loss_of`` (clamped at 0), for SDLM."""
    params = list(net.parameters())
    g = torch.autograd.grad(loss_of(net), params, create_graph=True)
    out = []
    for p, gp in zip(params, g):
        flat = gp.reshape(-1)
        diag = torch.stack([torch.autograd.grad(flat[i], p, retain_graph=True)[0].reshape(-1)[i]
                            for i in range(flat.numel())])
        out.append(diag.reshape(p.shape).clamp(min=0).detach())
    return out


# closure kinds: what step() expects the closure to return
def closure_for(kind, net, opt):
    if kind == "loss":
        return lambda: loss_of(net)
    if kind == "residual":
        return lambda: (net(X) - Y).reshape(-1) / len(X) ** 0.5
    if kind == "outputs-loss":
        return lambda: (lambda z: (z, 0.5 * ((z - Y) ** 2).sum(1).mean()))(net(X))
    if kind == "outputs-targets":
        return lambda: (net(X), Y)

    def closure():  # "backward": the torch convention
        opt.zero_grad()
        loss = loss_of(net)
        loss.backward()
        return loss
    return closure


def layers(net):
    return [m for m in net if isinstance(m, WhitenedLinear)]


# name, factory(net, params), closure kind, several groups allowed, invalid kwargs -> message fragment
OPTIMIZERS = [
    # the net's Hessian has eigenvalues down to about -1.1: Newton needs damping > 1.1 to be a descent method here
    ("Newton", lambda net, ps, **kw: Newton(ps, **{"damping": 2.0, **kw}), "loss", True,
     [(dict(lr=-1.0), "lr=-1.0"), (dict(damping=-0.1), "damping=-0.1"), (dict(solver="lu"), "solver='lu'"),
      (dict(cg_maxiter=0), "cg_maxiter=0")]),
    ("Newton-cg", lambda net, ps, **kw: Newton(ps, **{"damping": 2.0, "solver": "cg", **kw}), "loss", True, []),
    ("SaddleFreeNewton", lambda net, ps, **kw: SaddleFreeNewton(ps, **{"damping": 0.1, **kw}), "loss", True,
     [(dict(lr=float("inf")), "lr=inf"), (dict(damping=-1.0), "damping=-1.0")]),
    ("GaussNewton", lambda net, ps, **kw: GaussNewton(ps, **{"damping": 0.01, **kw}), "residual", True,
     [(dict(lr=-0.5), "lr=-0.5"), (dict(solver="qr"), "solver='qr'")]),
    ("GaussNewton-cg", lambda net, ps, **kw: GaussNewton(ps, **{"damping": 0.01, "solver": "cg", **kw}), "residual",
     True, []),
    ("LevenbergMarquardt", lambda net, ps, **kw: LevenbergMarquardt(ps, **kw), "residual", False,
     [(dict(damping=0.0), "damping=0.0"), (dict(drop=1.5), "drop=1.5"), (dict(boost=0.5), "boost=0.5")]),
    ("NonlinearCG", lambda net, ps, **kw: NonlinearCG(ps, **kw), "backward", False,
     [(dict(lr=0.0), "lr=0.0"), (dict(beta="hs"), "beta='hs'"), (dict(restart=0), "restart=0"),
      (dict(c1=1.0), "c1=1.0"), (dict(c2=1e-5), "c2=1e-05"), (dict(max_ls=0), "max_ls=0")]),
    ("ScaledCG", lambda net, ps, **kw: ScaledCG(ps, **kw), "backward", False,
     [(dict(sigma=0.0), "sigma=0.0"), (dict(lambda_=-1.0), "lambda_=-1.0"), (dict(restart=0), "restart=0")]),
    ("HessianFree", lambda net, ps, **kw: HessianFree(ps, **kw), "outputs-loss", False,
     [(dict(damping=-1.0), "damping=-1.0"), (dict(curvature="fisher"), "curvature='fisher'"),
      (dict(cg_maxiter=0), "cg_maxiter=0"), (dict(warm_start=1.0), "warm_start=1.0"), (dict(lr=0), "lr=0")]),
    ("HessianFree-hessian", lambda net, ps, **kw: HessianFree(ps, **{"curvature": "hessian", **kw}), "loss", False, []),
    ("NaturalGradient", lambda net, ps, **kw: NaturalGradient(ps, **{"likelihood": "gaussian", "damping": 0.1, **kw}),
     "outputs-targets", True, [(dict(fisher="exact"), "fisher='exact'"), (dict(damping=-2.0), "damping=-2.0")]),
    ("NaturalGradient-empirical", lambda net, ps, **kw: NaturalGradient(
        ps, **{"likelihood": "gaussian", "fisher": "empirical", "damping": 0.1, **kw}), "outputs-targets", True, []),
    ("SDLM", lambda net, ps, **kw: SDLM(ps, **{"lr": 0.5, "mu": 0.1, "diagonal_fn": lambda: exact_diagonal(net),
                                              "estimate_every": 2, **kw}), "backward", True,
     [(dict(mu=-1.0), "mu=-1.0"), (dict(gamma=2.0), "gamma=2.0"), (dict(lr=-3.0), "lr=-3.0")]),
    ("PRONG", lambda net, ps, **kw: PRONG(ps, layers(net), lambda: net(X), **{"lr": 0.1, "reparam_every": 2, **kw}),
     "backward", True, [(dict(lr=-0.1), "lr=-0.1"), (dict(eps=-1.0), "eps=-1.0"),
                        (dict(reparam_every=1.5), "reparam_every=1.5")]),
]
IDS = [row[0] for row in OPTIMIZERS]


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_a_few_steps_lower_the_loss(row):
    name, make, kind, _, _ = row
    net = make_net()
    opt = make(net, net.parameters())
    before = float(loss_of(net).detach())
    for _ in range(5):
        opt.step(closure_for(kind, net, opt))
    assert float(loss_of(net).detach()) < before


@pytest.mark.parametrize("row", [r for r in OPTIMIZERS if r[4]], ids=[r[0] for r in OPTIMIZERS if r[4]])
def test_invalid_hyper_parameters_raise_named_errors(row):
    name, make, _, _, invalid = row
    net = make_net()
    for kwargs, match in invalid:
        with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("[", r"\[")):
            make(net, net.parameters(), **kwargs)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_state_dict_round_trip(row):
    name, make, kind, _, _ = row
    net_a = make_net()
    opt_a = make(net_a, net_a.parameters())
    for _ in range(3):
        opt_a.step(closure_for(kind, net_a, opt_a))
    net_b = make_net(seed=1)  # resume as from a checkpoint: build model and optimizer, then load both
    opt_b = make(net_b, net_b.parameters())
    net_b.load_state_dict(net_a.state_dict())
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    for _ in range(2):
        opt_a.step(closure_for(kind, net_a, opt_a))
        opt_b.step(closure_for(kind, net_b, opt_b))
    for p, q in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("row", OPTIMIZERS, ids=IDS)
def test_param_groups(row):
    name, make, kind, groups_ok, _ = row
    net = make_net()
    first, rest = list(net[0].parameters()), list(net[2].parameters())
    groups = [{"params": first}, {"params": rest, "lr": 0.0}]
    if not groups_ok:
        with pytest.raises(ValueError, match="parameter groups"):
            make(net, groups)
        return
    opt = make(net, groups)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.0
    frozen = [p.detach().clone() for p in rest]
    moving = [p.detach().clone() for p in first]
    opt.step(closure_for(kind, net, opt))
    for p, q in zip(rest, frozen):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0 if name != "PRONG" else 1e-12)
    assert any(not torch.equal(p.detach(), q) for p, q in zip(first, moving))
