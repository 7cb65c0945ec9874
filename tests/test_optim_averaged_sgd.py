"""AveragedSGD: the slides' schedule + Polyak-Juditsky averaging, and the ways to use the average."""

from __future__ import annotations

import copy

import torch

from optlab.optim import AveragedSGD, bottou_eta

D = torch.float64


def noisy_least_squares(seed=0, n=200, d=5):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=D)
    w_true = torch.randn(d, generator=g, dtype=D)
    y = X @ w_true + 0.5 * torch.randn(n, generator=g, dtype=D)
    w_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)
    return X, y, w_star, g


def sgd_epochs(opt, w, X, y, g, epochs, batch=1, record=None):
    n = len(X)
    for _ in range(epochs):
        for i in torch.randperm(n, generator=g).split(batch):
            opt.zero_grad()
            ((X[i] @ w - y[i]) ** 2).mean().backward()
            opt.step()
            if record is not None:
                record.append(w.detach().clone())


def test_average_is_the_mean_of_the_iterates_after_the_start():
    X, y, _, g = noisy_least_squares()
    w = torch.nn.Parameter(torch.zeros(5, dtype=D))
    opt = AveragedSGD([w], lr=0.05, lambd=0.1, average_start=37)
    iterates = []
    sgd_epochs(opt, w, X[:60], y[:60], g, epochs=2, record=iterates)  # 120 steps
    expected = torch.stack(iterates[37:]).mean(0)
    torch.testing.assert_close(opt.averaged_params()[0], expected, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(expected, w.detach())


def test_averaging_starts_at_the_end_of_the_first_epoch_by_default():
    X, y, _, g = noisy_least_squares()
    w = torch.nn.Parameter(torch.zeros(5, dtype=D))
    opt = AveragedSGD([w], lr=0.05, steps_per_epoch=50)
    assert opt.param_groups[0]["average_start"] == 50
    iterates = []
    sgd_epochs(opt, w, X[:50], y[:50], g, epochs=3, record=iterates)
    torch.testing.assert_close(opt.averaged_params()[0], torch.stack(iterates[50:]).mean(0), rtol=1e-12, atol=1e-14)


def test_schedule_is_separate_from_weight_decay():
    """With a zero gradient, lambd alone changes nothing; weight_decay alone shrinks by eta_t each step."""
    for lambd, wd in [(0.5, 0.0), (0.0, 0.5), (0.5, 0.5)]:
        w = torch.nn.Parameter(torch.ones(2, dtype=D))
        opt = AveragedSGD([w], lr=0.1, lambd=lambd, weight_decay=wd, average_start=0)
        expected = 1.0
        for t in range(5):
            w.grad = torch.zeros(2, dtype=D)
            opt.step()
            expected *= 1 - bottou_eta(t, eta0=0.1, lambd=lambd) * wd
        torch.testing.assert_close(w.detach(), torch.full((2,), expected, dtype=D), rtol=1e-14, atol=0)


def test_context_manager_swaps_in_the_average_and_restores():
    X, y, _, g = noisy_least_squares()
    model = torch.nn.Linear(5, 1).double()
    opt = AveragedSGD(model.parameters(), lr=0.05, average_start=10)
    for k in range(40):
        opt.zero_grad()
        ((model(X[k:k + 4]).squeeze(1) - y[k:k + 4]) ** 2).mean().backward()
        opt.step()
    current = [p.detach().clone() for p in model.parameters()]
    averages = [a.clone() for a in opt.averaged_params()]
    with opt.averaged():
        for p, a in zip(model.parameters(), averages):
            assert torch.equal(p, a)
    for p, c in zip(model.parameters(), current):
        assert torch.equal(p, c)
    assert all(torch.equal(a, b) for a, b in zip(opt.averaged_params(), averages))
    opt.copy_averaged_to_params()
    for p, a in zip(model.parameters(), averages):
        assert torch.equal(p, a)


def test_average_beats_the_last_iterate_on_a_noisy_problem():
    """Polyak-Juditsky: with single-sample gradients, the average lands much closer to the optimum."""
    X, y, w_star, g = noisy_least_squares()
    w = torch.nn.Parameter(torch.zeros(5, dtype=D))
    opt = AveragedSGD([w], lr=0.05, lambd=0.01, steps_per_epoch=len(X))
    sgd_epochs(opt, w, X, y, g, epochs=6)
    last = (w.detach() - w_star).norm()
    averaged = (opt.averaged_params()[0] - w_star).norm()
    assert averaged < 0.5 * last, (averaged.item(), last.item())


def test_bottou_recipe_reproduces_torch_asgd():
    """lambd == weight_decay and average_start = t0 + 1 give torch.optim.ASGD's run (float64 scalars)."""
    X, y, _, g = noisy_least_squares()
    torch.set_default_dtype(D)  # torch rounds its eta and mu to the default dtype
    try:
        w = torch.nn.Parameter(torch.zeros(5, dtype=D))
        w2 = copy.deepcopy(w)
        ours = AveragedSGD([w], lr=0.05, lambd=0.1, weight_decay=0.1, average_start=21)
        theirs = torch.optim.ASGD([w2], lr=0.05, lambd=0.1, alpha=0.75, t0=20)
        for k in range(80):
            for p, opt in ((w, ours), (w2, theirs)):
                opt.zero_grad()
                ((X[k:k + 2] @ p - y[k:k + 2]) ** 2).mean().backward()
                opt.step()
    finally:
        torch.set_default_dtype(torch.float32)
    torch.testing.assert_close(w.detach(), w2.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(ours.averaged_params()[0], theirs.state[w2]["ax"], rtol=1e-12, atol=1e-14)
