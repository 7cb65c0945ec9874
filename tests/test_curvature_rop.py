"""Pearlmutter's R-pass (``optlab.curvature.rop``) against double backprop, and which one the operator picks."""

import pytest
import torch
from torch import nn

import optlab.curvature as oc
from test_curvature_cases import dense_hessian

DT = torch.float64


def _data(n, shape, seed, classes=None, out=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=DT)
    y = torch.randint(0, classes, (n,), generator=g) if classes else torch.randn(n, *out, generator=g, dtype=DT)
    return x, y


def _seeded(seed, *layers):
    torch.manual_seed(seed)
    return nn.Sequential(*layers).to(DT)


# name -> (model factory, loss, data): stacks the R-pass must handle exactly
STACKS = {
    "deep-nested-softplus-sum-ce": (
        lambda: _seeded(0, nn.Linear(4, 6), nn.Softplus(), nn.Sequential(nn.Linear(6, 5), nn.Sigmoid()),
                        nn.Linear(5, 3)),
        nn.CrossEntropyLoss(reduction="sum"), lambda: _data(11, (4,), 1, classes=3)),
    "no-bias-elu-gelu-huber": (
        lambda: _seeded(1, nn.Linear(3, 5, bias=False), nn.ELU(), nn.Linear(5, 4), nn.GELU(), nn.Linear(4, 2)),
        nn.HuberLoss(delta=0.5), lambda: _data(9, (3,), 2, out=(2,))),
    "linear-on-sequences-relu": (
        lambda: _seeded(2, nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
        nn.MSELoss(), lambda: _data(6, (5, 3), 3, out=(5, 2))),
    "sigmoid-output-bce": (  # last layer an activation, loss without a closed form
        lambda: _seeded(4, nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid()),
        nn.BCELoss(), lambda: (_data(8, (3,), 5, out=(2,))[0], torch.rand(8, 2, dtype=DT,
                                                                            generator=torch.Generator().manual_seed(0)))),
    "tanh-output-mse": (  # last layer an activation, closed-form loss
        lambda: _seeded(5, nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2), nn.Tanh()),
        nn.MSELoss(), lambda: _data(8, (3,), 6, out=(2,))),
    "cnn-stride-padding-dilation": (
        lambda: _seeded(3, nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Tanh(), nn.Conv2d(3, 2, 2, dilation=2),
                        nn.Sigmoid(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3)),
        nn.CrossEntropyLoss(), lambda: _data(5, (2, 7, 7), 4, classes=3)),
}


@pytest.mark.parametrize("name", list(STACKS))
def test_r_pass_equals_dense_hessian(name):
    make, loss_fn, make_data = STACKS[name]
    model, data = make(), make_data()
    op = oc.HessianOperator(model, loss_fn, data)
    assert op.method == "r-op"
    H_ref = dense_hessian(model, loss_fn, data)
    torch.testing.assert_close(op.to_dense(), H_ref, rtol=1e-8, atol=1e-8 * H_ref.abs().max())
    v = torch.linspace(-1, 1, op.shape[0], dtype=DT)
    torch.testing.assert_close(op @ v, oc.hvp(model, loss_fn, data, v, method="double-backprop"),
                               rtol=1e-10, atol=1e-12)


def test_r_pass_with_frozen_and_selected_parameters():
    make, loss_fn, make_data = STACKS["deep-nested-softplus-sum-ce"]
    model, data = make(), make_data()
    model[0].weight.requires_grad_(False)
    params = [model[2][0].bias, model[0].bias, model[3].weight]  # any order, any subset
    v = torch.linspace(-2, 1, sum(p.numel() for p in params), dtype=DT)
    r = oc.hvp(model, loss_fn, data, v, params=params, method="r-op")
    d = oc.hvp(model, loss_fn, data, v, params=params, method="double-backprop")
    torch.testing.assert_close(r, d, rtol=1e-10, atol=1e-12)
    assert oc.HessianOperator(model, loss_fn, data).shape[0] == sum(
        p.numel() for p in model.parameters() if p.requires_grad)


class _Residual(nn.Sequential):
    def forward(self, x):  # not the layers' composition: the R-pass must not be used
        return super().forward(x) + x


def test_models_the_r_pass_does_not_cover_fall_back_to_double_backprop():
    x, y = _data(8, (3,), 5, out=(3,))
    torch.manual_seed(0)
    hooked = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).to(DT)
    hooked[1].register_forward_hook(lambda m, i, o: 2 * o)
    models = {
        "batchnorm": nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 3)).to(DT).eval(),
        "forward-overridden": _Residual(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).to(DT),
        "forward-hook": hooked,
        "not-sequential": _TwoInputs(nn.Bilinear(3, 3, 3).to(DT)),
    }
    for name, model in models.items():
        op = oc.HessianOperator(model, nn.MSELoss(), (x, y))
        assert op.method == "double-backprop", name
        torch.testing.assert_close(op.to_dense(), dense_hessian(model, nn.MSELoss(), (x, y)), rtol=1e-8, atol=1e-10)
        with pytest.raises(ValueError, match=r"invalid method='r-op'.*the R-pass does not apply"):
            oc.HessianOperator(model, nn.MSELoss(), (x, y), method="r-op")


class _TwoInputs(nn.Module):
    def __init__(self, bilinear):
        super().__init__()
        self.bilinear = bilinear

    def forward(self, x):
        return torch.tanh(self.bilinear(x, x))


def test_r_op_error_names_the_unsupported_layer_and_bad_method():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 1)).to(DT)
    data = _data(4, (3,), 6, out=(1,))
    with pytest.raises(ValueError, match="Dropout"):
        oc.HessianOperator(model, nn.MSELoss(), data, method="r-op")
    with pytest.raises(ValueError, match="method='newton'; expected one of"):
        oc.HessianOperator(model, nn.MSELoss(), data, method="newton")


def test_cached_r_pass_follows_parameter_changes_and_batches_are_weighted():
    make, loss_fn, _ = STACKS["no-bias-elu-gelu-huber"]
    model = make()
    data = [_data(5, (3,), 7, out=(2,)), _data(9, (3,), 8, out=(2,))]
    op = oc.HessianOperator(model, loss_fn, data, cache_graph=True)
    v = torch.linspace(-1, 1, op.shape[0], dtype=DT)
    first = op @ v
    torch.testing.assert_close(first, dense_hessian(model, loss_fn, data) @ v, rtol=1e-8, atol=1e-12)
    with torch.no_grad():
        model[2].weight.mul_(-0.5)
    torch.testing.assert_close(op @ v, dense_hessian(model, loss_fn, data) @ v, rtol=1e-8, atol=1e-12)
    assert not torch.allclose(op @ v, first)


def test_a_hook_registered_after_construction_is_not_bypassed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    data = _data(7, (3,), 9, out=(2,))
    auto = oc.HessianOperator(model, nn.MSELoss(), data)
    forced = oc.HessianOperator(model, nn.MSELoss(), data, method="r-op")
    assert auto.method == forced.method == "r-op"
    handle = model[1].register_forward_hook(lambda m, i, o: o * o)
    assert auto.method == "double-backprop"
    torch.testing.assert_close(auto.to_dense(), dense_hessian(model, nn.MSELoss(), data), rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="forward hook"):
        forced @ torch.ones(forced.shape[0], dtype=DT)
    handle.remove()
    assert auto.method == "r-op"


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_broadcast_mse_targets_take_the_general_path():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).to(DT)
    x, y = _data(6, (3,), 10, out=(1,))
    y = y[:, 0]  # (N,) against outputs (N, 1): MSELoss broadcasts to (N, N)
    op = oc.HessianOperator(model, nn.MSELoss(), (x, y))
    assert op.method == "r-op"
    torch.testing.assert_close(op.to_dense(), dense_hessian(model, nn.MSELoss(), (x, y)), rtol=1e-8, atol=1e-10)
