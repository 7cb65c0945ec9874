"""optlab.experiments.landscape_features: each experiment's mechanism on a case small enough to check by hand."""

import numpy as np
import pytest
import torch

from optlab.experiments.landscape_features import (average_hidden_units, convexity_gap, hidden_unit_spread,
                                                   hinge_vs_ramp, kill_unit, logistic_unit_gradients, path_sum,
                                                   permute_hidden, ramp_loss, relu_net, rescale_unit, seed_sweep,
                                                   tie_hidden_units, unit_gradient_norms, zero_one_loss)
from optlab.problems import mlp


@pytest.fixture
def net():
    return mlp((5, 4, 3), seed=0)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(20, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (20,), generator=g)


def test_convexity_gap_sign():
    assert convexity_gap(lambda t: float((t ** 2).sum()), torch.tensor([1.0, 2.0]), torch.tensor([-1.0, 0.0])) < 0
    # x*y on the hyperbola xy = 1: both ends 0 after (1 - xy)^2, the midpoint is not
    gap = convexity_gap(lambda t: float((1 - t[0] * t[1]) ** 2), torch.tensor([2.0, 0.5]), torch.tensor([0.5, 2.0]))
    assert gap == pytest.approx((1 - 1.25 ** 2) ** 2)


def test_permute_hidden_keeps_the_function_and_moves_the_weights(net, batch):
    twin = permute_hidden(net, [2, 0, 3, 1])
    X, _ = batch
    assert torch.allclose(twin(X), net(X), atol=1e-14)
    assert torch.equal(twin[0].weight[0], net[0].weight[2]) and torch.equal(twin[2].weight[:, 0], net[2].weight[:, 2])
    with pytest.raises(ValueError, match="perm"):
        permute_hidden(net, [0, 0, 1, 2])


def test_average_hidden_units_is_the_mean_of_all_permutations(net):
    import itertools
    avg = average_hidden_units(net)
    perms = [permute_hidden(net, p) for p in itertools.permutations(range(4))]
    brute = torch.stack([p[0].weight for p in perms]).mean(0)
    assert torch.allclose(avg[0].weight, brute, atol=1e-14)
    assert hidden_unit_spread(avg) == 0.0


def test_tied_units_stay_tied_under_gradient_descent_and_perturbation_breaks_it(net, batch):
    X, y = batch
    for eps, tied in [(0.0, True), (1e-3, False)]:
        model = tie_hidden_units(mlp((5, 4, 3), seed=0), perturbation=eps)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        for _ in range(30):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
        # identical in exact arithmetic; the matrix products may round the copies' gradients differently
        assert (hidden_unit_spread(model) < 1e-12) == tied


def test_logistic_unit_gradients_match_the_formulas():
    for z in [-3.0, 0.5, 4.0]:
        s = 1 / (1 + np.exp(-z))
        se, ce = logistic_unit_gradients(z, 1.0)
        assert se == pytest.approx((s - 1) * s * (1 - s)) and ce == pytest.approx(s - 1)


def test_zero_one_loss_counts_errors():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    y = np.array([1.0, 1.0, 1.0])
    assert zero_one_loss(np.array([1.0, 1.0]), X, y) == pytest.approx(1 / 3)
    assert zero_one_loss(np.array([[1.0, 1.0], [-1.0, -1.0]]), X, y).tolist() == pytest.approx([1 / 3, 2 / 3])


def test_dead_unit_has_exactly_zero_gradient(batch):
    X, y = batch
    model = mlp((5, 4, 3), activation="relu", seed=0)
    alive = unit_gradient_norms(model, torch.nn.functional.cross_entropy, X, y)
    assert alive[0] > 0
    norms = unit_gradient_norms(kill_unit(model, 0), torch.nn.functional.cross_entropy, X, y)
    assert norms[0] == 0.0
    with pytest.raises(ValueError, match="unit"):
        kill_unit(model, 4)


def test_path_sum_equals_the_forward_pass():
    net = relu_net((3, 4, 4, 2), seed=0)
    for seed in range(5):
        x = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        paths = path_sum(net, x)
        assert np.allclose(paths.output, net(x).detach().numpy(), atol=1e-12)
        assert paths.paths == 3 * 4 * 4 * 2
    with pytest.raises(ValueError, match="bias-free"):
        path_sum(mlp((3, 2, 1), activation="relu"), [1.0, 2.0, 3.0])


def test_rescale_unit_keeps_the_function():
    net = relu_net((3, 4, 2), seed=1)
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    twin = rescale_unit(net, 0, 1, 5.0)
    assert torch.allclose(twin(x), net(x), atol=1e-12)
    assert not torch.equal(twin[0].weight, net[0].weight)
    with pytest.raises(ValueError, match="c"):
        rescale_unit(net, 0, 1, -1.0)


def test_ramp_loss_is_the_capped_hinge():
    m = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0])
    assert ramp_loss(m).tolist() == [2.0, 2.0, 1.0, 0.5, 0.0]


def test_hinge_vs_ramp_returns_counts_and_errors_in_range():
    r = hinge_vs_ramp(1, 7, noise=0.2, steps=50)
    assert 0 < r.flipped < r.n_train and 0 <= r.hinge_error <= 1 and 0 <= r.ramp_error <= 1
    assert 0 <= r.ramp_support <= r.n_train and 0 <= r.hinge_support <= r.n_train
    with pytest.raises(ValueError, match="noise"):
        hinge_vs_ramp(noise=0.7)


def test_seed_sweep_shapes_and_errors():
    sweep = seed_sweep([(8,)], seeds=(0, 1), n=100, steps=5)
    assert sweep.losses.shape == (1, 2) and sweep.success_rate(0.0).tolist() == [1.0]
    assert sweep.spread().shape == (1,)
    with pytest.raises(ValueError, match="shapes"):
        seed_sweep([8])
