"""PRONG: each reparametrization keeps the network's function (<= 1e-10, float64) and whitens the layer
inputs; on a digits autoencoder it trains at least as fast per update as SGD."""

import pytest
import torch
from sklearn.datasets import load_digits

from optlab.optim.prong import PRONG, WhitenedLinear, canonical, reparametrize, whiten_sequential, whitening

DT = torch.float64


def digits():
    return torch.tensor(load_digits().data / 16.0, dtype=DT)


def autoencoder(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 64)).double()


def reconstruction_loss(net, x):
    return torch.nn.functional.binary_cross_entropy_with_logits(net(x), x, reduction="sum") / len(x)


def whitened_layers(net):
    return [m for m in net if isinstance(m, WhitenedLinear)]


def test_whitened_copy_computes_the_same_function():
    X = digits()[:50]
    net = autoencoder()
    wnet = whiten_sequential(net)
    assert (net(X) - wnet(X)).abs().max() <= 1e-12
    for lin, w in zip([m for m in net if isinstance(m, torch.nn.Linear)], whitened_layers(wnet)):
        W, b = w.canonical()
        torch.testing.assert_close(W, lin.weight.detach())
        torch.testing.assert_close(b, lin.bias.detach())


def test_every_reparametrization_keeps_the_function():
    X = digits()
    net = whiten_sequential(autoencoder())
    opt = PRONG(net.parameters(), whitened_layers(net), lambda: net(X[:300]), lr=0.03, reparam_every=10 ** 6, eps=0.1)
    g = torch.Generator().manual_seed(0)
    X_test = X[1000:1200]
    for _ in range(6):
        for _ in range(20):  # some SGD updates move the parameters away from the last whitening
            idx = torch.randint(0, len(X), (32,), generator=g)
            opt.zero_grad()
            reconstruction_loss(net, X[idx]).backward()
            opt.step()
        with torch.no_grad():
            before = net(X_test)
            opt.reparametrize()
            after = net(X_test)
        assert (before - after).abs().max() <= 1e-10


def test_scheduled_reparametrizations_with_zero_learning_rate_change_nothing():
    X = digits()[:400]
    net = whiten_sequential(autoencoder(1))
    with torch.no_grad():
        reference = net(X).clone()
    calls = []
    opt = PRONG(net.parameters(), whitened_layers(net), lambda: calls.append(1) or net(X[:200]), lr=0.0,
                reparam_every=2)
    for _ in range(6):
        opt.zero_grad()
        reconstruction_loss(net, X[:32]).backward()
        opt.step()
    assert len(calls) == 1 + 3  # at construction (t = 0) and after updates 2, 4, 6
    with torch.no_grad():
        assert (net(X) - reference).abs().max() <= 1e-10


def test_whitening_makes_the_layer_inputs_white():
    X = digits()
    net = whiten_sequential(autoencoder(2))
    eps = 1e-2
    PRONG(net.parameters(), whitened_layers(net), lambda: net(X[:500]), eps=eps)
    seen = {}
    hook = net[2].register_forward_pre_hook(lambda m, a: seen.setdefault("h", a[0].detach()))
    with torch.no_grad():
        net(X[:500])
    hook.remove()
    h = seen["h"]
    z = (h - net[2].c) @ net[2].U.T
    cov = (z - z.mean(0)).T @ (z - z.mean(0)) / len(z)
    lam = torch.linalg.eigvalsh((h - h.mean(0)).T @ (h - h.mean(0)) / len(h))
    torch.testing.assert_close(z.mean(0), torch.zeros(32, dtype=DT), atol=1e-10, rtol=0)
    # in the eigenbasis the covariance is diag(lambda / (lambda + eps)): the identity up to the regularizer
    torch.testing.assert_close(torch.linalg.eigvalsh(cov), torch.sort(lam / (lam + eps)).values, atol=1e-10, rtol=1e-8)


def test_the_projections_are_inverse_of_each_other():
    g = torch.Generator().manual_seed(3)
    V, d = torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, generator=g, dtype=DT)
    c, U = whitening(torch.randn(50, 3, generator=g, dtype=DT) * torch.tensor([1.0, 5.0, 0.2], dtype=DT), 1e-3)
    W, b = canonical(V, d, U, c)
    V2, d2 = reparametrize(W, b, U, c)
    torch.testing.assert_close(V2, V)
    torch.testing.assert_close(d2, d)


def _train(net, opt, X, steps, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(X), (32,), generator=g)
        opt.zero_grad()
        reconstruction_loss(net, X[idx]).backward()
        opt.step()
    with torch.no_grad():
        return float(reconstruction_loss(net, X))


def test_prong_trains_the_digits_autoencoder_at_least_as_fast_per_update_as_sgd():
    """Same initial function and mini-batches; the best of an SGD sweep vs PRONG after 250 updates (the
    full comparison, with the updates-to-target ratio, is benchmarks/bench_prong.py)."""
    X = digits()
    steps = 250
    sgd = min(_train(net, torch.optim.SGD(net.parameters(), lr=lr), X, steps)
              for lr in (0.1, 0.2, 0.3) for net in [autoencoder()])
    net = whiten_sequential(autoencoder())
    prong = _train(net, PRONG(net.parameters(), whitened_layers(net), lambda: net(X[:500]), lr=0.05,
                              reparam_every=100, eps=0.1), X, steps)
    assert prong <= sgd, (prong, sgd)


def test_invalid_hyper_parameters():
    net = whiten_sequential(autoencoder())
    layers = whitened_layers(net)
    X = digits()[:50]
    for kwargs, match in [(dict(lr=-1.0), "lr=-1.0"), (dict(reparam_every=0), "reparam_every=0"),
                          (dict(eps=0.0), "eps=0.0")]:
        with pytest.raises(ValueError, match=match):
            PRONG(net.parameters(), layers, lambda: net(X), **kwargs)
    with pytest.raises(ValueError, match="layers"):
        PRONG(net.parameters(), [net[0], torch.nn.Linear(2, 2)], lambda: net(X))
    with pytest.raises(ValueError, match="sample_fn"):
        PRONG(net.parameters(), layers, None)
    with pytest.raises(ValueError, match="in_features=0"):
        WhitenedLinear(0, 3)
