"""Hessian-free: the Gauss-Newton product against a dense reference; the loss of a digits autoencoder falls."""

import pytest
import torch
from sklearn.datasets import load_digits

from optlab.optim.hessian_free import HessianFree, ggn_product, hf_cg

DT = torch.float64


def test_ggn_product_equals_dense_J_T_H_L_J():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    X = torch.randn(5, 3, dtype=DT)
    y = torch.tensor([0, 1, 1, 0, 1])
    params = list(net.parameters())
    out = net(X)
    loss = torch.nn.functional.cross_entropy(out, y)
    Gv = ggn_product(out, loss, params)

    theta = torch.cat([p.detach().reshape(-1) for p in params])
    shapes = [p.shape for p in params]

    def f(th):
        ws, i = [], 0
        for s in shapes:
            n = torch.Size(s).numel()
            ws.append(th[i:i + n].reshape(s))
            i += n
        return torch.func.functional_call(net, dict(zip([n for n, _ in net.named_parameters()], ws)), (X,))

    J = torch.autograd.functional.jacobian(f, theta).reshape(-1, theta.numel())        # (5*2, n)
    H_L = torch.autograd.functional.hessian(lambda z: torch.nn.functional.cross_entropy(z.reshape(5, 2), y),
                                            out.detach().reshape(-1))
    G = J.T @ H_L @ J
    v = torch.randn(theta.numel(), dtype=DT)
    torch.testing.assert_close(Gv(v), G @ v)
    assert torch.linalg.eigvalsh(G).min() > -1e-12  # positive semi-definite, unlike the Hessian


def test_hf_cg_minimizes_the_quadratic_model():
    g = torch.Generator().manual_seed(0)
    B = torch.randn(6, 6, generator=g, dtype=DT)
    B = B @ B.T + torch.eye(6, dtype=DT)
    grad = torch.randn(6, generator=g, dtype=DT)
    x, saved, iterations = hf_cg(lambda v: B @ v, grad, torch.zeros(6, dtype=DT), maxiter=60)
    torch.testing.assert_close(x, -torch.linalg.solve(B, grad), rtol=1e-6, atol=1e-8)
    qs = [q for _, q in saved]
    for xi, qi in saved:  # the q reported for each saved iterate is the quadratic model's value
        assert qi == pytest.approx(float(grad @ xi + 0.5 * xi @ B @ xi), rel=1e-9, abs=1e-12)
    assert all(b <= a + 1e-12 for a, b in zip(qs, qs[1:]))


def digits_autoencoder(n=100, hidden=8, seed=0):
    X = torch.tensor(load_digits().data[:n] / 16.0, dtype=DT)
    torch.manual_seed(seed)
    enc = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 64)).double()

    def closure():  # the logits are the outputs the Gauss-Newton product linearizes
        z = enc(X)
        return z, ((torch.sigmoid(z) - X) ** 2).sum(1).mean()

    return enc, closure


def test_hessian_free_decreases_the_loss_of_a_digits_autoencoder():
    enc, closure = digits_autoencoder()
    opt = HessianFree(enc.parameters(), damping=1.0, cg_maxiter=50)
    losses = [float(opt.step(closure)) for _ in range(6)]
    losses.append(float(closure()[1].detach()))
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.4 * losses[0]
    state = opt.state[next(enc.parameters())]
    assert state["lambda"] < 1.0  # good reduction ratios lowered the damping
    assert 0 < state["cg_iterations"] <= 50


def test_hessian_free_with_exact_hessian_on_a_convex_problem():
    """With curvature="hessian", on logistic regression HF takes Newton-like steps to the optimum."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 3, generator=g, dtype=DT)
    y = (X @ torch.tensor([1.0, -2.0, 0.5], dtype=DT) + 0.5 * torch.randn(40, generator=g, dtype=DT) > 0).to(DT)
    w = torch.nn.Parameter(torch.zeros(3, dtype=DT))
    loss = lambda: torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y) + 0.01 * w @ w  # noqa: E731
    opt = HessianFree([w], damping=1e-3, curvature="hessian")
    for _ in range(15):
        opt.step(loss)
    grad = torch.autograd.grad(loss(), w)[0]
    assert grad.norm() < 1e-8
