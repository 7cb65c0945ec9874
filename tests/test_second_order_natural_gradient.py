"""Natural gradient: the Fisher against its definition, the gradient against autograd, invariance."""

import pytest
import torch

from optlab.optim.natural_gradient import (NaturalGradient, empirical_fisher, natural_gradient_direction,
                                           output_fisher, output_jacobian, true_fisher)

DT = torch.float64


def small_classifier(seed=0, n=12, d=3, c=3):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=DT)
    y = torch.randint(0, c, (n,), generator=g)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(d, 4), torch.nn.Tanh(), torch.nn.Linear(4, c)).double()
    return net, X, y


def per_sample_grads(net, X, y, label_fn):
    rows = []
    for n in range(len(X)):
        loss = torch.nn.functional.cross_entropy(net(X[n:n + 1]), label_fn(n))
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(net.parameters()))]))
    return torch.stack(rows)


def test_true_fisher_is_the_expectation_over_the_models_own_labels():
    net, X, y = small_classifier()
    params = list(net.parameters())
    out = net(X)
    F = true_fisher(output_jacobian(out, params), output_fisher(out.detach(), "categorical"))
    # definition: E_n E_{k ~ p(.|x_n)} [grad log p(k|x_n) grad log p(k|x_n)^T], enumerating the classes
    p = torch.softmax(out.detach(), 1)
    ref = 0
    for k in range(3):
        G = per_sample_grads(net, X, y, lambda n: torch.tensor([k]))
        ref = ref + (G * p[:, k:k + 1]).T @ G
    torch.testing.assert_close(F, ref / len(X))


def test_empirical_fisher_is_the_mean_outer_product_of_per_sample_gradients():
    net, X, y = small_classifier(1)
    G = per_sample_grads(net, X, y, lambda n: y[n:n + 1])
    torch.testing.assert_close(empirical_fisher(G), G.T @ G / len(X))
    # and the optimizer's per-sample gradients are these ones: its step with fisher="empirical" is
    w0 = [p.detach().clone() for p in net.parameters()]
    opt = NaturalGradient(net.parameters(), lr=0.5, damping=0.1, fisher="empirical")
    opt.step(lambda: (net(X), y))
    step = torch.cat([(p.detach() - q).reshape(-1) for p, q in zip(net.parameters(), w0)])
    F = G.T @ G / len(X)
    torch.testing.assert_close(step, -0.5 * torch.linalg.solve(F + 0.1 * torch.eye(len(F), dtype=DT), G.mean(0)))


def test_gaussian_fisher_is_the_gauss_newton_matrix():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    X = torch.randn(7, 2, dtype=DT)
    out = net(X)
    J = output_jacobian(out, list(net.parameters()))
    Jf = J.reshape(-1, J.shape[-1])
    torch.testing.assert_close(true_fisher(J, output_fisher(out.detach(), "gaussian")), Jf.T @ Jf / 7)


def test_natural_gradient_is_invariant_to_rescaling_the_inputs():
    """Softmax regression on X and on X S with w' = S^-1 w: same predictions after a step.

    The last logit is fixed at 0 so that F is invertible (a full softmax is unchanged by adding one vector
    to every row of W, which makes F singular)."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(30, 3, generator=g, dtype=DT)
    y = (X[:, 0] - X[:, 1] > 0).long()
    S = torch.tensor([100.0, 0.01, 3.0], dtype=DT)
    y = torch.randint(0, 3, (30,), generator=g)
    logits = lambda Xs, P: torch.cat([Xs @ P.T, torch.zeros(len(Xs), 1, dtype=DT)], 1)  # noqa: E731
    W = torch.nn.Parameter(torch.randn(2, 3, generator=g, dtype=DT))
    W2 = torch.nn.Parameter(W.detach() / S)
    for P, Xs in ((W, X), (W2, X * S)):
        NaturalGradient([P], lr=1.0, damping=0.0).step(lambda P=P, Xs=Xs: (logits(Xs, P), y))
    torch.testing.assert_close(X @ W.detach().T, (X * S) @ W2.detach().T)
    assert not torch.allclose(W.detach(), W2.detach())
    # plain gradient descent is not invariant
    V = torch.nn.Parameter(torch.zeros(2, 3, dtype=DT)); V2 = torch.nn.Parameter(torch.zeros(2, 3, dtype=DT))
    for P, Xs in ((V, X), (V2, X * S)):
        torch.optim.SGD([P], lr=1.0).zero_grad()
        torch.nn.functional.cross_entropy(logits(Xs, P), y).backward()
        torch.optim.SGD([P], lr=1.0).step()
    assert not torch.allclose(X @ V.detach().T, (X * S) @ V2.detach().T)


def test_natural_gradient_trains_badly_scaled_logistic_regression_faster_than_gd():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(100, 2, generator=g, dtype=DT) * torch.tensor([1.0, 0.02], dtype=DT)
    y = (X[:, 0] + 50 * X[:, 1] + 0.3 * torch.randn(100, generator=g, dtype=DT) > 0).long()

    def run(make, steps=20):
        W = torch.nn.Parameter(torch.zeros(2, 2, dtype=DT))
        opt = make(W)
        for _ in range(steps):
            if isinstance(opt, NaturalGradient):
                opt.step(lambda: (X @ W.T, y))
            else:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(X @ W.T, y).backward()
                opt.step()
        return float(torch.nn.functional.cross_entropy(X @ W.detach().T, y))

    ng = run(lambda W: NaturalGradient([W], lr=1.0, damping=1e-4))
    gd = min(run(lambda W, lr=lr: torch.optim.SGD([W], lr=lr)) for lr in [0.3, 1.0, 3.0, 10.0])
    assert ng < gd - 0.05, (ng, gd)


def test_direction_kernel_and_invalid_arguments():
    F = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=DT)
    torch.testing.assert_close(natural_gradient_direction(torch.tensor([2.0, 1.0], dtype=DT), F),
                               torch.tensor([-1.0, -2.0], dtype=DT))
    w = [torch.nn.Parameter(torch.zeros(1))]
    for kwargs, match in [(dict(fisher="exact"), "fisher='exact'"), (dict(likelihood="poisson"), "likelihood"),
                          (dict(damping=-1.0), "damping=-1.0"), (dict(lr=float("nan")), "lr=nan")]:
        with pytest.raises(ValueError, match=match):
            NaturalGradient(w, **kwargs)
    with pytest.raises(TypeError, match="outputs"):
        NaturalGradient(w).step(lambda: w[0].sum())
