"""Natural gradient on torch's closure, one registry row per Fisher, against the dense reference built from
per-sample gradients by a python loop; invariance to rescaled inputs; faster than GD where it should be."""

import copy

import pytest
import torch
from torch import nn

from optlab.curvature import FisherOperator
from optlab.optim import NaturalGradient, empirical_fisher, natural_gradient_direction, true_fisher
from test_curvature_ggn import per_sample_gradient, true_fisher_by_definition
from test_second_order_gauss_newton import (classification, closure_for, dense_gradient, dense_jacobian, flat,
                                            regression, take_step)

DT = torch.float64


def empirical_fisher_by_definition(model, loss_fn, x, y):
    """(1/N) sum_n g_n g_n^T with g_n the gradient of sample n's loss at its observed label."""
    G = torch.stack([per_sample_gradient(model, loss_fn, x[n:n + 1], y[n:n + 1]) for n in range(x.shape[0])])
    return G.T @ G / x.shape[0]


def gaussian_fisher(model, loss_fn, x, y):
    """MSELoss's Gaussian: F = (2/O) (1/N) sum_n J_n^T J_n = (2 / numel) J^T J, the Gauss-Newton matrix."""
    J = dense_jacobian(model, x)
    return 2.0 / J.shape[0] * J.T @ J


# name: (problem, loss_fn, optimizer options, reference Fisher)
ROWS = {
    "true-cross-entropy": (classification, nn.CrossEntropyLoss(), dict(kind="true"), true_fisher_by_definition),
    "empirical-cross-entropy": (classification, nn.CrossEntropyLoss(), dict(kind="empirical"),
                                empirical_fisher_by_definition),
    "true-mse": (regression, nn.MSELoss(), dict(kind="true"), gaussian_fisher),
    "true-mse-by-definition": (regression, nn.MSELoss(), dict(kind="true"), true_fisher_by_definition),
    "empirical-mse-cg": (regression, nn.MSELoss(), dict(kind="empirical", solver="cg", cg_rtol=1e-13),
                         empirical_fisher_by_definition),
    "true-cross-entropy-cg": (classification, nn.CrossEntropyLoss(), dict(solver="cg", cg_rtol=1e-13),
                              true_fisher_by_definition),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_one_step_equals_the_dense_reference(name):
    problem, loss_fn, options, fisher = ROWS[name]
    model, x, y = problem()
    F, g = fisher(model, loss_fn, x, y), dense_gradient(model, loss_fn, x, y)
    expected = -0.5 * torch.linalg.solve(F + 0.1 * torch.eye(len(g), dtype=DT), g)
    opt = NaturalGradient(model.parameters(), lr=0.5, damping=0.1, model=model, loss_fn=loss_fn, **options)
    assert opt.needs == "model"
    torch.testing.assert_close(take_step(opt, model, loss_fn, x, y), expected, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in model.parameters()]), g)


def test_dense_fisher_helpers_are_the_operator():
    model, x, y = classification(3)
    ce = nn.CrossEntropyLoss()
    torch.testing.assert_close(true_fisher(model, ce, (x, y)), true_fisher_by_definition(model, ce, x, y))
    torch.testing.assert_close(empirical_fisher(model, ce, (x, y)), empirical_fisher_by_definition(model, ce, x, y))
    torch.testing.assert_close(empirical_fisher(model, ce, (x, y)),
                               FisherOperator(model, ce, (x, y), kind="empirical").to_dense())


def test_param_groups_state_dict_and_joint_options():
    model, x, y = classification(4)
    ce = nn.CrossEntropyLoss()
    first, rest = list(model[0].parameters()), list(model[2].parameters())
    n1, n2 = sum(p.numel() for p in first), sum(p.numel() for p in rest)
    F, g = true_fisher_by_definition(model, ce, x, y), dense_gradient(model, ce, x, y)
    lam = torch.cat([torch.full((n1,), 0.3, dtype=DT), torch.full((n2,), 0.1, dtype=DT)])
    lr = torch.cat([torch.zeros(n1, dtype=DT), torch.ones(n2, dtype=DT)])
    opt = NaturalGradient([{"params": first, "lr": 0.0, "damping": 0.3}, {"params": rest}], damping=0.1,
                          model=model, loss_fn=ce)
    torch.testing.assert_close(take_step(opt, model, ce, x, y), -lr * torch.linalg.solve(F + torch.diag(lam), g))
    twin, _, _ = classification(5)
    twin.load_state_dict(model.state_dict())
    opt_b = NaturalGradient([{"params": twin[0].parameters(), "lr": 0.0, "damping": 0.3},
                             {"params": twin[2].parameters()}], damping=0.1, model=twin, loss_fn=ce)
    opt_b.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt_b.state[twin[0].weight]["step"] == 1
    opt.step(closure_for(opt, model, ce, x, y))
    opt_b.step(closure_for(opt_b, twin, ce, x, y))
    torch.testing.assert_close(flat(twin), flat(model), rtol=1e-12, atol=1e-12)
    opt.param_groups[1]["kind"] = "empirical"
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['kind'\]='empirical'; expected 'true'"):
        opt.step(closure_for(opt, model, ce, x, y))


class FixedLastLogit(nn.Module):
    """Softmax regression with the last logit fixed at 0 (so that F is invertible: a full softmax is
    unchanged by adding one vector to every row of W, which makes F singular)."""

    def __init__(self, W):
        super().__init__()
        self.W = nn.Parameter(W.clone())

    def forward(self, x):
        return torch.cat([x @ self.W.T, torch.zeros(len(x), 1, dtype=x.dtype)], 1)


def test_natural_gradient_is_invariant_to_rescaling_the_inputs():
    """On X and on X S with W' = W S^-1: the same predictions after a step (plain gradient descent is not)."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(30, 3, generator=g, dtype=DT)
    S = torch.tensor([100.0, 0.01, 3.0], dtype=DT)
    y = torch.randint(0, 3, (30,), generator=g)
    W = torch.randn(2, 3, generator=g, dtype=DT)
    ce = nn.CrossEntropyLoss()
    a, b = FixedLastLogit(W), FixedLastLogit(W / S)
    for model, Xs in ((a, X), (b, X * S)):
        take_step(NaturalGradient(model.parameters(), damping=0.0, model=model, loss_fn=ce), model, ce, Xs, y)
    torch.testing.assert_close(X @ a.W.detach().T, (X * S) @ b.W.detach().T)
    assert not torch.allclose(a.W.detach(), b.W.detach())
    a, b = FixedLastLogit(torch.zeros(2, 3, dtype=DT)), FixedLastLogit(torch.zeros(2, 3, dtype=DT))
    for model, Xs in ((a, X), (b, X * S)):
        take_step(torch.optim.SGD(model.parameters(), lr=1.0), model, ce, Xs, y)
    assert not torch.allclose(X @ a.W.detach().T, (X * S) @ b.W.detach().T)


def test_natural_gradient_trains_badly_scaled_logistic_regression_faster_than_gd():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(100, 2, generator=g, dtype=DT) * torch.tensor([1.0, 0.02], dtype=DT)
    y = (X[:, 0] + 50 * X[:, 1] + 0.3 * torch.randn(100, generator=g, dtype=DT) > 0).long()
    ce = nn.CrossEntropyLoss()

    def run(make, steps=20):
        model = nn.Linear(2, 2, bias=False).double()
        nn.init.zeros_(model.weight)
        opt = make(model)
        for _ in range(steps):
            opt.step(closure_for(opt, model, ce, X, y))
        with torch.no_grad():
            return float(ce(model(X), y))

    ng = run(lambda m: NaturalGradient(m.parameters(), damping=1e-4, model=m, loss_fn=ce))
    gd = min(run(lambda m, lr=lr: torch.optim.SGD(m.parameters(), lr=lr)) for lr in [0.3, 1.0, 3.0, 10.0])
    assert ng < gd - 0.05, (ng, gd)


def test_direction_kernel_and_invalid_arguments():
    F = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=DT)
    torch.testing.assert_close(natural_gradient_direction(torch.tensor([2.0, 1.0], dtype=DT), F),
                               torch.tensor([-1.0, -2.0], dtype=DT))
    model, _, _ = classification()
    ce = nn.CrossEntropyLoss()
    for kwargs, match in [(dict(kind="exact"), "kind='exact'"), (dict(damping=-1.0), "damping=-1.0"),
                          (dict(lr=float("nan")), "lr=nan"), (dict(solver="qr"), "solver='qr'"),
                          (dict(loss_fn=nn.CrossEntropyLoss(reduction="sum")), "reduction='sum'; expected 'mean'")]:
        with pytest.raises(ValueError, match=match):
            NaturalGradient(model.parameters(), **{"model": model, "loss_fn": ce, **kwargs})
    with pytest.raises(TypeError, match="no likelihood known for loss_fn=L1Loss"):
        NaturalGradient(model.parameters(), model=model, loss_fn=nn.L1Loss())
    NaturalGradient(model.parameters(), model=model, loss_fn=nn.L1Loss(), kind="empirical")  # any mean loss
    with pytest.raises(TypeError, match="unexpected keyword argument 'likelihood'"):  # one vocabulary: kind=
        NaturalGradient(model.parameters(), model=model, loss_fn=ce, likelihood="categorical")
    with pytest.raises(TypeError, match="torch's closure"):
        NaturalGradient(model.parameters(), model=model, loss_fn=ce).step()
