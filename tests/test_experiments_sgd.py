"""optlab.experiments.sgd_tricks: the sample stream and the measurements on it."""

import numpy as np
import pytest
import torch

from optlab.experiments.sgd_tricks import (averaged_loss, lr_sweep, outlier_displacement, steps_to_reach,
                                           stream_objective)
from optlab.optim import SGD, AveragedSGD
from optlab.trajectory import run


def data():
    X = torch.arange(1.0, 7.0, dtype=torch.float64)[:, None]
    return X, torch.zeros(6, 1, dtype=torch.float64)


def model():
    m = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        m.weight.fill_(1.0)
    return m


def seen(obj, calls):
    """The sample each call presents: with weight 1 and target 0, the loss of sample x is x^2."""
    return [int(round(float(obj.loss().detach()) ** 0.5)) - 1 for _ in range(calls)]


def test_ordered_stream_repeats_the_data_set_order():
    X, y = data()
    obj = stream_objective(model(), torch.nn.functional.mse_loss, X, y, order="ordered")
    assert seen(obj, 8) == [0, 1, 2, 3, 4, 5, 0, 1]


def test_shuffled_stream_is_a_new_permutation_each_epoch_and_seeded():
    X, y = data()
    a = seen(stream_objective(model(), torch.nn.functional.mse_loss, X, y, seed=3), 12)
    b = seen(stream_objective(model(), torch.nn.functional.mse_loss, X, y, seed=3), 12)
    assert a == b and sorted(a[:6]) == list(range(6)) and sorted(a[6:]) == list(range(6)) and a[:6] != a[6:]


def test_explicit_order_and_batches():
    X, y = data()
    obj = stream_objective(model(), torch.nn.functional.mse_loss, X, y, order=[5, 0, 2])
    assert seen(obj, 4) == [5, 0, 2, 5]
    obj = stream_objective(model(), torch.nn.functional.mse_loss, X, y, batch_size=2, order="ordered")
    assert [float(obj.loss().detach()) for _ in range(3)] == [(1 + 4) / 2, (9 + 16) / 2, (25 + 36) / 2]
    with pytest.raises(ValueError, match="order"):
        stream_objective(model(), torch.nn.functional.mse_loss, X, y, order=[7])
    with pytest.raises(ValueError, match="batch_size"):
        stream_objective(model(), torch.nn.functional.mse_loss, X, y, batch_size=0)


def test_run_on_a_stream_is_per_sample_sgd():
    # per-sample SGD on 1/2 (w x)^2 by hand: w <- w - lr * x^2 w
    X, y = data()
    t = run(stream_objective(model(), lambda o, t: 0.5 * ((o - t) ** 2).mean(), X, y, order="ordered"),
            lambda p: SGD(p, lr=0.01), 4)
    w = 1.0
    for x in [1.0, 2.0, 3.0, 4.0]:
        w -= 0.01 * x * x * w
    assert t.final_theta[0] == pytest.approx(w, rel=1e-14)


def test_steps_to_reach():
    assert steps_to_reach([3.0, 2.0, 1.0, 0.5], 1.0) == 2
    assert steps_to_reach([3.0, 2.0], 1.0) is None


def test_averaged_loss_reads_the_averaged_weights():
    X, y = data()
    loss_at = lambda w: float(w[0])            # report the averaged weight itself
    t = run(stream_objective(model(), lambda o, t: 0.5 * ((o - t) ** 2).mean(), X, y, order="ordered"),
            lambda p: AveragedSGD(p, lr=0.01, lambd=0.0, average_start=0), 3,
            diagnostics={"bar": averaged_loss(loss_at)})
    assert t.diagnostics["bar"][-1] == pytest.approx(t.thetas[1:, 0].mean(), rel=1e-12)
    with pytest.raises(ValueError, match="averaged_params"):
        run(stream_objective(model(), torch.nn.functional.mse_loss, X, y), lambda p: SGD(p, lr=0.01), 1,
            diagnostics={"bar": averaged_loss(loss_at)})


def test_outlier_displacement_is_zero_without_an_outlier_and_positive_with_one():
    X = torch.cat([data()[0], torch.tensor([[10.0]], dtype=torch.float64)])
    y = torch.cat([data()[1], torch.tensor([[5.0]], dtype=torch.float64)])
    make = lambda idx: stream_objective(model(), torch.nn.functional.mse_loss, X, y, order=np.asarray(idx))
    order = list(range(6)) * 3
    assert outlier_displacement(make, lambda p: SGD(p, lr=0.001), order, outlier=order[4], at=4, steps=10) == 0.0
    assert outlier_displacement(make, lambda p: SGD(p, lr=0.001), order, outlier=6, at=4, steps=10) > 0.0


def test_lr_sweep_marks_divergence():
    X, y = data()
    losses = lr_sweep(model, torch.nn.functional.mse_loss, X, y + 1.0, [0.001, 100.0], epochs=3, batch_size=2)
    assert np.isfinite(losses[0]) and losses[1] == np.inf
