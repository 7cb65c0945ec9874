"""SDLM: the slide's equations step by step, and faster than tuned SGD where the curvature differs per weight."""

import pytest
import torch

from optlab.optim.sdlm import SDLM, running_diagonal, sdlm_rates, sdlm_update

DT = torch.float64


def test_one_step_equals_the_slide_equation():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0], dtype=DT))
    h = torch.tensor([0.0, 4.0, 100.0], dtype=DT)
    opt = SDLM([w], lr=0.3, mu=0.5, diagonal_fn=lambda: [h])
    w.grad = torch.tensor([1.0, 1.0, -2.0], dtype=DT)
    opt.step()
    expected = torch.tensor([1.0, -2.0, 3.0], dtype=DT) - 0.3 / (h + 0.5) * torch.tensor([1.0, 1.0, -2.0], dtype=DT)
    torch.testing.assert_close(w.detach(), expected)
    torch.testing.assert_close(sdlm_rates(h, eps=0.3, mu=0.5), 0.3 / (h + 0.5))
    torch.testing.assert_close(sdlm_update(torch.zeros(3, dtype=DT), torch.ones(3, dtype=DT), h, eps=1.0, mu=1.0),
                               -1 / (h + 1))


def test_running_average_of_the_diagonal():
    h1, h2 = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 0.0])
    torch.testing.assert_close(running_diagonal(None, h1, gamma=0.1), h1)
    torch.testing.assert_close(running_diagonal(h1, h2, gamma=0.25), 0.75 * h1 + 0.25 * h2)
    w = torch.nn.Parameter(torch.zeros(2))
    opt = SDLM([w], gamma=0.25)
    opt.update_diagonal([h1])
    opt.update_diagonal([h2])
    torch.testing.assert_close(opt.state[w]["h"], 0.75 * h1 + 0.25 * h2)


def test_re_estimation_schedule():
    calls = []
    w = torch.nn.Parameter(torch.zeros(2))
    opt = SDLM([w], diagonal_fn=lambda: calls.append(1) or [torch.ones(2)], estimate_every=5, estimate_batches=3)
    for _ in range(12):
        w.grad = torch.ones(2)
        opt.step()
    assert len(calls) == 3 * 3  # at steps 0, 5 and 10, three batches each
    opt_once = SDLM([w], diagonal_fn=lambda: calls.append(1) or [torch.ones(2)])
    calls.clear()
    for _ in range(7):
        opt_once.step()
    assert len(calls) == 1


def badly_scaled_regression(seed=0):
    """Linear least squares whose inputs have scales 1, 10 and 0.1: Hessian diagonal spread 10^4."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(256, 3, generator=g, dtype=DT) * torch.tensor([1.0, 10.0, 0.1], dtype=DT)
    w_true = torch.tensor([1.0, -0.5, 20.0], dtype=DT)
    y = X @ w_true + 0.01 * torch.randn(256, generator=g, dtype=DT)
    return X, y


def steps_to_target(make_opt, X, y, target, max_steps=400, batch=32):
    w = torch.nn.Parameter(torch.zeros(3, dtype=DT))
    opt = make_opt(w)
    g = torch.Generator().manual_seed(1)
    for k in range(1, max_steps + 1):
        idx = torch.randint(0, len(y), (batch,), generator=g)
        opt.zero_grad()
        loss = ((X[idx] @ w - y[idx]) ** 2).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            full = float(((X @ w - y) ** 2).mean())
        if not full < 1e12:
            return max_steps + 1
        if full < target:
            return k
    return max_steps + 1


def test_sdlm_beats_the_best_sgd_of_a_sweep_on_badly_scaled_inputs():
    X, y = badly_scaled_regression()

    def gn_diagonal():  # exact Gauss-Newton diagonal of mean (x.w - y)^2 on a random mini-batch
        idx = torch.randint(0, len(y), (32,), generator=gen)
        return [2 * (X[idx] ** 2).mean(0)]

    gen = torch.Generator().manual_seed(2)
    target = 0.01
    sgd = min(steps_to_target(lambda w, lr=lr: torch.optim.SGD([w], lr=lr), X, y, target)
              for lr in [1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    sdlm = steps_to_target(lambda w: SDLM([w], lr=0.3, mu=1e-3, gamma=0.1, diagonal_fn=gn_diagonal,
                                          estimate_every=50, estimate_batches=5), X, y, target)
    assert sdlm * 3 <= sgd, (sdlm, sgd)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-1.0), "lr=-1.0"), (dict(mu=0.0), "mu=0.0"), (dict(gamma=0.0), "gamma=0.0"),
    (dict(gamma=1.5), "gamma=1.5"), (dict(estimate_every=0), "estimate_every=0"),
    (dict(estimate_batches=0), "estimate_batches=0"), (dict(diagonal_fn=3), "diagonal_fn=3"),
])
def test_invalid_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SDLM([torch.nn.Parameter(torch.zeros(1))], **kwargs)


def test_bad_diagonals_and_missing_estimates_raise():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = SDLM([w])
    w.grad = torch.ones(2)
    with pytest.raises(RuntimeError, match="diagonal"):
        opt.step()
    with pytest.raises(ValueError, match="shape"):
        opt.update_diagonal([torch.ones(3)])
    with pytest.raises(ValueError, match="negative"):
        opt.update_diagonal([torch.tensor([1.0, -1.0])])
    with pytest.raises(ValueError, match="expected 1"):
        opt.update_diagonal([torch.ones(2), torch.ones(2)])


def test_sdlm_on_the_digits_mlp_needs_fewer_epochs_than_the_best_sgd_of_a_sweep():
    """The slides' claim, qualitatively, on a small fast setting (600 digits, a 64-16-16-10 sigmoid MLP, target
    training loss 0.1): SDLM with the Gauss-Newton diagonal of optlab.curvature beats the best of an SGD sweep
    by a margin (measured: SGD 18.2 epochs at lr=3, SDLM 11.2 at eps=0.01, mu=0.001). The full-size
    comparison and its ratio are in benchmarks/bench_sdlm.py."""
    import importlib.util
    from pathlib import Path

    from optlab.problems import load_digits_data, mlp

    spec = importlib.util.spec_from_file_location(
        "bench_sdlm", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sdlm.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # the benchmark's own measuring functions: one definition of "epochs"
    epochs_to_target, sdlm_factory = bench.epochs_to_target, bench.sdlm_factory

    d = load_digits_data(n=600)
    X, y = d.X_train, d.y_train
    kw = dict(target=0.1, epochs=30, batch=16)
    net = lambda: mlp((64, 16, 16, 10), "sigmoid", seed=0)  # noqa: E731
    sgd = min(epochs_to_target(lambda m, lr=lr: torch.optim.SGD(m.parameters(), lr=lr), net(), X, y, **kw)
              for lr in (1.0, 2.0, 3.0, 5.0))
    sdlm = min(epochs_to_target(sdlm_factory(X, y, lr=lr, mu=1e-3, gamma=0.2, n_estimate=200,
                                             estimate_every=len(X) // 16), net(), X, y, **kw)
               for lr in (0.01, 0.02))
    assert sdlm * 1.25 <= sgd, (sdlm, sgd)
