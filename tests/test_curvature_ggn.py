"""Jacobian, generalized Gauss-Newton (R-pass and autograd) and Fisher (true and empirical) against
``torch.func`` references and per-sample gradients by a python loop (float64)."""

import pytest
import torch
from torch import nn

import optlab.curvature as oc
from test_curvature_cases import CASES, case, dense_ggn, flat_params, outputs_fn

RTOL = 1e-8


@pytest.mark.parametrize("name", list(CASES))
def test_ggn_operator_matches_dense_reference(name):
    model, loss_fn, data = case(name)
    G_ref = dense_ggn(model, loss_fn, data)
    op = oc.GGNOperator(model, loss_fn, data)
    atol = RTOL * G_ref.abs().max()
    torch.testing.assert_close(op.to_dense(), G_ref, rtol=RTOL, atol=atol)
    torch.testing.assert_close(oc.gauss_newton_matrix(model, loss_fn, data), G_ref, rtol=RTOL, atol=atol)
    v = torch.linspace(-1, 2, op.shape[0], dtype=torch.float64)
    torch.testing.assert_close(op @ v, G_ref @ v, rtol=RTOL, atol=RTOL * (G_ref @ v).abs().max())
    assert torch.linalg.eigvalsh(G_ref).min() > -1e-12  # convex losses: positive semi-definite


@pytest.mark.parametrize("name", ["mlp-tanh-mse", "cnn-tanh-ce"])
def test_jacobian_matches_jacrev(name):
    model, _, data = case(name)
    x = data[0] if isinstance(data, tuple) else data[0][0]
    J_ref = torch.func.jacrev(outputs_fn(model, x))(flat_params(model))
    torch.testing.assert_close(oc.jacobian(model, x), J_ref, rtol=RTOL, atol=1e-12)


def test_gauss_newton_is_square_of_the_jacobian_for_half_squared_error():
    # the slides' E = 1/2 sum_p ||D_p - N(w, x_p)||^2 : G = J'J
    model, _, (x, y) = case("mlp-tanh-mse")
    J = oc.jacobian(model, x).reshape(-1, sum(p.numel() for p in model.parameters()))
    G = oc.gauss_newton_matrix(model, lambda out, t: 0.5 * ((t - out) ** 2).sum(), (x, y))
    torch.testing.assert_close(G, J.T @ J, rtol=RTOL, atol=1e-12)


def test_ggn_equals_hessian_for_a_linear_model():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(10, 2, generator=g, dtype=torch.float64)
    torch.testing.assert_close(oc.GGNOperator(model, torch.nn.MSELoss(), (x, y)).to_dense(),
                               oc.hessian(model, torch.nn.MSELoss(), (x, y)), rtol=RTOL, atol=1e-12)


# ----- the R-pass products against the dense reference and against autograd ---------------------------

def _data(n, shape, seed, classes=None, out=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g) if classes else torch.randn(n, *out, generator=g, dtype=torch.float64)
    return x, y


def _seeded(seed, *layers):
    torch.manual_seed(seed)
    return torch.nn.Sequential(*layers).double()


# name -> (model factory, loss, data): stacks the R-pass's J v / J^T w must handle exactly
STACKS = {
    "nested-softplus-sum-ce": (
        lambda: _seeded(0, nn.Linear(4, 6), nn.Softplus(), nn.Sequential(nn.Linear(6, 5), nn.Sigmoid()), nn.Linear(5, 3)),
        nn.CrossEntropyLoss(reduction="sum"), lambda: _data(11, (4,), 1, classes=3)),
    "no-bias-elu-huber": (
        lambda: _seeded(1, nn.Linear(3, 5, bias=False), nn.ELU(), nn.Linear(5, 4), nn.GELU(), nn.Linear(4, 2)),
        nn.HuberLoss(delta=0.5), lambda: _data(9, (3,), 2, out=(2,))),
    "linear-on-sequences-relu-mse": (
        lambda: _seeded(2, nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
        nn.MSELoss(), lambda: _data(6, (5, 3), 3, out=(5, 2))),
    "sigmoid-output-bce": (
        lambda: _seeded(4, nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid()),
        nn.BCELoss(), lambda: (_data(8, (3,), 5, out=(2,))[0],
                               torch.rand(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))),
    "cnn-stride-padding-dilation": (
        lambda: _seeded(3, nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Tanh(), nn.Conv2d(3, 2, 2, dilation=2),
                        nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)),
        nn.CrossEntropyLoss(), lambda: _data(5, (2, 7, 7), 4, classes=3)),
}


@pytest.mark.parametrize("name", list(STACKS))
def test_r_pass_ggn_equals_dense_reference_and_autograd(name):
    make, loss_fn, make_data = STACKS[name]
    model, data = make(), make_data()
    op = oc.GGNOperator(model, loss_fn, data)
    auto = oc.GGNOperator(model, loss_fn, data, method="double-backprop")
    assert (op.method, auto.method) == ("r-op", "double-backprop")
    G_ref = dense_ggn(model, loss_fn, data)
    atol = RTOL * G_ref.abs().max()
    torch.testing.assert_close(op.to_dense(), G_ref, rtol=RTOL, atol=atol)
    torch.testing.assert_close(auto.to_dense(), G_ref, rtol=RTOL, atol=atol)
    v = torch.linspace(-1, 2, op.shape[0], dtype=torch.float64)
    assert not (op @ v).requires_grad  # products build no autograd graph through the parameters
    torch.testing.assert_close(op @ v, auto @ v, rtol=1e-10, atol=1e-12)


def test_r_pass_ggn_with_frozen_and_selected_parameters():
    make, loss_fn, make_data = STACKS["nested-softplus-sum-ce"]
    model, data = make(), make_data()
    model[0].weight.requires_grad_(False)
    params = [model[2][0].bias, model[0].bias, model[3].weight]  # any order, any subset
    v = torch.linspace(-2, 1, sum(p.numel() for p in params), dtype=torch.float64)
    r = oc.GGNOperator(model, loss_fn, data, params=params, method="r-op") @ v
    d = oc.GGNOperator(model, loss_fn, data, params=params, method="double-backprop") @ v
    torch.testing.assert_close(r, d, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["cnn-stride-padding-dilation", "linear-on-sequences-relu-mse"])
def test_r_pass_columns_in_chunks_and_bias_only_directions(name):
    make, loss_fn, make_data = STACKS[name]
    model, data = make(), make_data()
    op = oc.GGNOperator(model, loss_fn, data)
    op.max_pass_entries = 100  # a few columns per pass
    G_ref = dense_ggn(model, loss_fn, data)
    torch.testing.assert_close(op.to_dense(), G_ref, rtol=RTOL, atol=RTOL * G_ref.abs().max())
    biases = [m.bias for m in model if getattr(m, "bias", None) is not None]
    v = torch.linspace(-1, 1, sum(b.numel() for b in biases), dtype=torch.float64)
    torch.testing.assert_close(oc.GGNOperator(model, loss_fn, data, params=biases) @ v,
                               oc.GGNOperator(model, loss_fn, data, params=biases, method="double-backprop") @ v,
                               rtol=1e-10, atol=1e-12)


def test_ggn_cache_follows_parameter_changes_and_batches_are_weighted():
    make, loss_fn, _ = STACKS["no-bias-elu-huber"]
    model = make()
    data = [_data(5, (3,), 7, out=(2,)), _data(9, (3,), 8, out=(2,))]
    op = oc.GGNOperator(model, loss_fn, data, cache_graph=True)
    v = torch.linspace(-1, 1, op.shape[0], dtype=torch.float64)
    first = op @ v
    torch.testing.assert_close(first, dense_ggn(model, loss_fn, data) @ v, rtol=1e-8, atol=1e-12)
    with torch.no_grad():
        model[2].weight.mul_(-0.5)
    torch.testing.assert_close(op @ v, dense_ggn(model, loss_fn, data) @ v, rtol=1e-8, atol=1e-12)
    with op.many_products():  # an operator without a cache shares one linearization inside the block
        plain = oc.GGNOperator(model, loss_fn, data)
        with plain.many_products():
            torch.testing.assert_close(plain @ v, op @ v, rtol=1e-12, atol=1e-14)
        assert plain._states is None  # freed on exit


def test_ggn_models_the_r_pass_does_not_cover_use_autograd_and_hooks_are_not_bypassed():
    torch.manual_seed(0)
    x, y = _data(7, (3,), 9, out=(2,))
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2)).double().eval()
    op = oc.GGNOperator(bn, nn.MSELoss(), (x, y))
    assert op.method == "double-backprop"
    torch.testing.assert_close(op.to_dense(), dense_ggn(bn, nn.MSELoss(), (x, y)), rtol=RTOL, atol=1e-12)
    with pytest.raises(ValueError, match="method='r-op' does not apply"):
        oc.GGNOperator(bn, nn.MSELoss(), (x, y), method="r-op")
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    auto, forced = oc.GGNOperator(model, nn.MSELoss(), (x, y)), oc.GGNOperator(model, nn.MSELoss(), (x, y), method="r-op")
    handle = model[1].register_forward_hook(lambda m, i, o: o * o)
    assert auto.method == "double-backprop"
    torch.testing.assert_close(auto.to_dense(), dense_ggn(model, nn.MSELoss(), (x, y)), rtol=RTOL, atol=1e-12)
    with pytest.raises(ValueError, match="forward hook"):
        forced @ torch.ones(forced.shape[0], dtype=torch.float64)
    handle.remove()
    with pytest.raises(ValueError, match="method='newton'; expected one of"):
        oc.GGNOperator(model, nn.MSELoss(), (x, y), method="newton")


# ----- the Fisher: one scaling, true = GGN, both against per-sample gradients by a python loop --------

def per_sample_gradient(model, loss_fn, x, y):
    model.zero_grad()
    loss_fn(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def true_fisher_by_definition(model, loss_fn, x, y):
    r"""(1/N) sum_n E_{y ~ p(.|f_n)}[grad l_n(y) grad l_n(y)^T], the expectation written as a finite sum
    over labels: every class (categorical), both outcomes (Bernoulli), and for the Gaussian N(f, O/2 I)
    the 2 O points f +- sqrt(O/2 * O) e_o (weights 1/(2O)), exact because the score is linear in y."""
    F = 0
    for n in range(x.shape[0]):
        xn = x[n:n + 1]
        with torch.no_grad():
            f = model(xn)
        if isinstance(loss_fn, nn.CrossEntropyLoss):
            p = torch.softmax(f, 1)[0]
            draws = [(float(p[c]), torch.tensor([c])) for c in range(f.shape[1])]
        elif isinstance(loss_fn, nn.BCEWithLogitsLoss):
            s = float(torch.sigmoid(f).reshape(()))
            draws = [(s, torch.ones_like(f)), (1 - s, torch.zeros_like(f))]
        else:
            O = f.numel()
            step = (O / 2 * O) ** 0.5
            draws = [(1 / (2 * O), f + sign * step * torch.eye(O, dtype=f.dtype)[o].view_as(f))
                     for o in range(O) for sign in (1, -1)]
        for weight, label in draws:
            g = per_sample_gradient(model, loss_fn, xn, label)
            F = F + weight * torch.outer(g, g)
    return F / x.shape[0]


FISHER_CASES = {
    "ce": ("mlp-sigmoid-ce", None),
    "cnn-ce": ("cnn-tanh-ce", None),
    "mse-two-outputs": ("mlp-tanh-mse", None),
    "bce-one-output": (None, lambda: (_seeded(7, nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)), nn.BCEWithLogitsLoss(),
                                      (_data(9, (3,), 11, out=(1,))[0], torch.randint(0, 2, (9, 1)).double()))),
}


def _fisher_case(name):
    registered, make = FISHER_CASES[name]
    return case(registered) if registered else make()


@pytest.mark.parametrize("name", list(FISHER_CASES))
def test_true_fisher_is_its_definition_and_equals_the_ggn(name):
    model, loss_fn, (x, y) = _fisher_case(name)
    F = oc.FisherOperator(model, loss_fn, (x, y), kind="true")
    F_ref = true_fisher_by_definition(model, loss_fn, x, y)
    atol = 1e-10 * float(F_ref.abs().max())
    torch.testing.assert_close(F.to_dense(), F_ref, rtol=1e-8, atol=atol)
    torch.testing.assert_close(F_ref, dense_ggn(model, loss_fn, (x, y)), rtol=1e-8, atol=atol)  # the one scaling
    auto = oc.FisherOperator(model, loss_fn, (x, y), kind="true", method="double-backprop")
    torch.testing.assert_close(auto.to_dense(), F_ref, rtol=1e-8, atol=atol)


EMPIRICAL_CASES = {**{name: "per-sample" if name.startswith("bce") else "r-op" for name in FISHER_CASES},
                   "sequences-mse": "r-op", "huber": "per-sample"}


def _empirical_case(name):
    if name in FISHER_CASES:
        return _fisher_case(name)
    make, loss_fn, make_data = STACKS["linear-on-sequences-relu-mse" if name == "sequences-mse" else "no-bias-elu-huber"]
    return make(), loss_fn, make_data()


@pytest.mark.parametrize("name", list(EMPIRICAL_CASES))
def test_empirical_fisher_is_the_mean_outer_product_of_per_sample_gradients(name):
    model, loss_fn, (x, y) = _empirical_case(name)
    Gs = torch.stack([per_sample_gradient(model, loss_fn, x[n:n + 1], y[n:n + 1]) for n in range(x.shape[0])])
    F = oc.FisherOperator(model, loss_fn, (x, y), kind="empirical")
    torch.testing.assert_close(F.to_dense(), Gs.T @ Gs / x.shape[0], rtol=1e-10, atol=1e-14)
    assert F.sample_gradients_method == EMPIRICAL_CASES[name]  # from the linearization where it can
    with torch.no_grad():  # recomputed after the parameters move
        next(model.parameters()).mul_(0.5)
    Gs = torch.stack([per_sample_gradient(model, loss_fn, x[n:n + 1], y[n:n + 1]) for n in range(x.shape[0])])
    torch.testing.assert_close(F.to_dense(), Gs.T @ Gs / x.shape[0], rtol=1e-10, atol=1e-14)


def test_fisher_refuses_losses_that_are_not_a_likelihood():
    model, _, (x, y) = case("mlp-sigmoid-ce")
    with pytest.raises(ValueError, match=r"invalid loss_fn.weight=.*expected the default"):
        oc.FisherOperator(model, nn.CrossEntropyLoss(weight=torch.ones(3, dtype=torch.float64)), (x, y))
    with pytest.raises(ValueError, match=r"invalid loss_fn.label_smoothing=0.1"):
        oc.FisherOperator(model, nn.CrossEntropyLoss(label_smoothing=0.1), (x, y))
    oc.FisherOperator(model, nn.CrossEntropyLoss(label_smoothing=0.1), (x, y), kind="empirical")  # any loss
    with pytest.raises(ValueError, match="reduction='sum'; expected 'mean'"):
        oc.FisherOperator(model, nn.CrossEntropyLoss(reduction="sum"), (x, y), kind="empirical")
    with pytest.raises(ValueError, match="kind='observed'; expected one of"):
        oc.FisherOperator(model, nn.CrossEntropyLoss(), (x, y), kind="observed")
    with pytest.raises(TypeError, match="no likelihood known for loss_fn=L1Loss"):
        oc.FisherOperator(model, nn.L1Loss(), (x, y))
    two = _seeded(0, nn.Linear(3, 2))
    F = oc.FisherOperator(two, nn.BCEWithLogitsLoss(), (x, torch.ones(x.shape[0], 2, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"outputs of shape \(10, 2\); expected one output per sample"):
        F @ torch.ones(F.shape[0], dtype=torch.float64)
    with pytest.raises(ValueError, match="class indices"):
        F = oc.FisherOperator(model, nn.CrossEntropyLoss(), (x, torch.softmax(torch.randn(10, 3, dtype=torch.float64), 1)))
        F @ torch.ones(F.shape[0], dtype=torch.float64)


class _Whitened(nn.Module):
    """A linear layer reading a fixed buffer in its forward pass (as PRONG's whitened layers do)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.register_buffer("U", torch.eye(3, dtype=torch.float64) * 2)

    def forward(self, x):
        return self.lin(x @ self.U)


def test_a_kept_graph_survives_buffers_the_forward_pass_reads():
    torch.manual_seed(0)
    model = _Whitened()
    x, y = _data(6, (3,), 12, out=(2,))
    op = oc.GGNOperator(model, nn.MSELoss(), (x, y))
    with op.many_products():
        torch.testing.assert_close(op.to_dense(), dense_ggn(model, nn.MSELoss(), (x, y)), rtol=RTOL, atol=1e-12)
