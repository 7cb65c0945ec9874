"""Hessian operator, exact and finite-difference HVPs against ``torch.func.hessian`` (float64)."""

import copy

import pytest
import torch

import optlab.curvature as oc
from test_curvature_cases import CASES, case, dense_hessian, flat_params, functional_loss

RTOL = 1e-8


@pytest.mark.parametrize("method", ["r-op", "double-backprop"])
@pytest.mark.parametrize("name", list(CASES))
def test_hessian_operator_matches_dense_reference(name, method):
    model, loss_fn, data = case(name)
    H_ref = dense_hessian(model, loss_fn, data)
    op = oc.HessianOperator(model, loss_fn, data, method=method)
    assert op.method == method
    assert op.shape == H_ref.shape
    torch.testing.assert_close(op.to_dense(), H_ref, rtol=RTOL, atol=RTOL * H_ref.abs().max())
    torch.testing.assert_close(oc.hessian(model, loss_fn, data), H_ref, rtol=RTOL, atol=RTOL * H_ref.abs().max())
    g = torch.Generator().manual_seed(1)
    V = torch.randn(op.shape[0], 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op @ V, H_ref @ V, rtol=RTOL, atol=RTOL * (H_ref @ V).abs().max())
    v = V[:, 0]
    for m in (method, "exact"):
        torch.testing.assert_close(oc.hvp(model, loss_fn, data, v, method=m), H_ref @ v, rtol=RTOL,
                                   atol=RTOL * (H_ref @ v).abs().max())
    # scipy view
    np_out = op.to_scipy() @ v.numpy()
    torch.testing.assert_close(torch.as_tensor(np_out), H_ref @ v, rtol=RTOL, atol=RTOL * (H_ref @ v).abs().max())


@pytest.mark.parametrize("name", list(CASES))
def test_loss_hvp_matches_dense_reference(name):
    model, loss_fn, data = case(name)
    x, y = data if isinstance(data, tuple) else data[0]
    H_ref = dense_hessian(model, loss_fn, (x, y))
    params = list(model.parameters())
    v = torch.linspace(-1, 1, H_ref.shape[0], dtype=torch.float64)
    hv = oc.loss_hvp(lambda: loss_fn(model(x), y), params, v)
    torch.testing.assert_close(hv, H_ref @ v, rtol=RTOL, atol=RTOL * (H_ref @ v).abs().max())


def test_loss_hvp_on_a_cubic():
    w = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    hv = oc.loss_hvp(lambda: (w ** 3).sum(), [w], torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(hv, torch.tensor([6.0, 12.0], dtype=torch.float64))


@pytest.mark.parametrize("scheme", ["forward", "central"])
@pytest.mark.parametrize("name", list(CASES))
def test_finite_difference_hvp_close_to_exact(name, scheme):
    model, loss_fn, data = case(name)
    g = torch.Generator().manual_seed(2)
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=g, dtype=torch.float64)
    exact = oc.hvp(model, loss_fn, data, v)
    before = [p.detach().clone() for p in model.parameters()]
    fd = oc.finite_difference_hvp(model, loss_fn, data, v, scheme=scheme)
    rel = float((fd - exact).norm() / exact.norm())
    print(f"{name} {scheme}: relative error of the finite-difference HVP = {rel:.2e}")
    assert rel <= 1e-6
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p.detach(), b)
    if scheme == "forward":
        fd2 = oc.hvp(model, loss_fn, data, v, method="finite-difference")
        torch.testing.assert_close(fd2, fd, rtol=0, atol=0)


def test_finite_difference_hessian_close_to_exact_and_symmetric():
    model, loss_fn, data = case("mlp-tanh-mse")
    H_ref = dense_hessian(model, loss_fn, data)
    H_fd = oc.finite_difference_hessian(model, loss_fn, data)
    assert torch.equal(H_fd, H_fd.T)
    rel = float((H_fd - H_ref).norm() / H_ref.norm())
    print(f"finite-difference Hessian relative error = {rel:.2e}")
    assert rel <= 1e-6
    raw = oc.finite_difference_hessian(model, loss_fn, data, symmetrize=False)
    assert not torch.equal(raw, raw.T)  # rounding makes the raw rows slightly asymmetric, as the slide warns
    torch.testing.assert_close((raw + raw.T) / 2, H_fd)


def test_finite_difference_restores_parameters_when_the_loss_raises():
    model, loss_fn, data = case("mlp-tanh-mse")
    before = [p.detach().clone() for p in model.parameters()]
    calls = {"n": 0}

    def flaky_loss(out, y):
        calls["n"] += 1
        if calls["n"] == 2:  # the gradient at the perturbed parameters
            raise RuntimeError("boom")
        return loss_fn(out, y)

    v = torch.ones(sum(p.numel() for p in model.parameters()), dtype=torch.float64)
    with pytest.raises(RuntimeError, match="boom"):
        oc.finite_difference_hvp(model, flaky_loss, data, v)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p.detach(), b)


def test_default_step_depends_on_dtype():
    assert oc.finite_difference.default_step(torch.float32) > oc.finite_difference.default_step(torch.float64)
    assert oc.finite_difference.default_step(torch.float64, "central") == pytest.approx(
        torch.finfo(torch.float64).eps ** (1 / 3))


def test_float32_finite_difference_is_reasonable():
    model, loss_fn, data = case("mlp-tanh-mse")
    model = model.float()
    x, y = data
    data = (x.float(), y.float())
    v = torch.ones(sum(p.numel() for p in model.parameters()))
    exact = oc.hvp(model, loss_fn, data, v)
    fd = oc.hvp(model, loss_fn, data, v, method="finite-difference")
    assert float((fd - exact).norm() / exact.norm()) < 1e-2


# ----- errors ---------------------------------------------------------------------------------------

def test_errors_are_clear():
    model, loss_fn, data = case("mlp-tanh-mse")
    x, y = data
    P = sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match=r"shape \(27,\); expected \(26,\)"):
        oc.hvp(model, loss_fn, data, torch.ones(P + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="samples"):
        oc.hvp(model, loss_fn, (x, y[:-1]), torch.ones(P, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        oc.HessianOperator(model, loss_fn, [])
    with pytest.raises(ValueError, match="empty"):
        oc.HessianOperator(model, loss_fn, (x[:0], y[:0]))
    with pytest.raises(ValueError, match="scalar"):
        oc.hvp(model, torch.nn.MSELoss(reduction="none"), data, torch.ones(P, dtype=torch.float64))
    with pytest.raises(ValueError, match="method"):
        oc.hvp(model, loss_fn, data, torch.ones(P, dtype=torch.float64), method="magic")
    with pytest.raises(ValueError, match="alpha"):
        oc.finite_difference_hvp(model, loss_fn, data, torch.ones(P, dtype=torch.float64), alpha=-1.0)
    with pytest.raises(ValueError, match="scheme"):
        oc.finite_difference_hvp(model, loss_fn, data, torch.ones(P, dtype=torch.float64), scheme="backward")
    with pytest.raises(TypeError, match="pair"):
        oc.HessianOperator(model, loss_fn, x)
    with pytest.raises(ValueError, match="shape"):
        oc.HessianOperator(model, loss_fn, data) @ torch.ones(3, dtype=torch.float64)
    w = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        oc.loss_hvp(lambda: w * 2, [w], torch.ones(2))


# ----- model modes ----------------------------------------------------------------------------------

def _bn_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Tanh(),
                               torch.nn.Linear(4, 1)).double()


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_model_mode_and_buffers_are_respected(mode):
    model = _bn_model()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, generator=g, dtype=torch.float64), torch.randn(16, 1, generator=g, dtype=torch.float64)
    with torch.no_grad():
        model(x)  # move the running stats away from their initial values
    getattr(model, mode)()
    bufs = [b.clone() for b in model.buffers()]
    H = oc.hessian(model, torch.nn.MSELoss(), (x, y))
    assert model.training == (mode == "train")
    for b, b0 in zip(model.buffers(), bufs):
        assert torch.equal(b, b0)
    ref_model = copy.deepcopy(model)  # same forward, but without running-stat updates (torch.func forbids them)
    for m in ref_model.modules():
        if isinstance(m, torch.nn.BatchNorm1d) and m.training:
            m.track_running_stats, m.running_mean, m.running_var = False, None, None
    # reference: torch.autograd.functional.hessian (torch.func's batch-norm second derivatives disagree
    # with finite differences in train mode in torch 2.13; autograd's agree, see the central-difference check)
    H_ref = torch.autograd.functional.hessian(functional_loss(ref_model, torch.nn.MSELoss(), (x, y)),
                                              flat_params(ref_model))
    H_fd = oc.finite_difference_hessian(model, torch.nn.MSELoss(), (x, y), scheme="central")
    assert float((H_fd - H_ref).norm() / H_ref.norm()) < 1e-6
    torch.testing.assert_close(H, H_ref, rtol=1e-8, atol=1e-10)
    # train-mode BatchNorm couples samples, eval mode does not: the two Hessians differ
    other = _bn_model()
    other.load_state_dict(model.state_dict())
    getattr(other, "eval" if mode == "train" else "train")()
    assert not torch.allclose(oc.hessian(other, torch.nn.MSELoss(), (x, y)), H)


def test_cached_graph_operator_matches_and_follows_parameter_changes():
    model, loss_fn, data = case("mlp-tanh-ce-batches")
    op = oc.HessianOperator(model, loss_fn, data, cache_graph=True)
    v = torch.linspace(-1, 1, op.shape[0], dtype=torch.float64)
    H_ref = dense_hessian(model, loss_fn, data)
    torch.testing.assert_close(op @ v, H_ref @ v, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(op @ v, H_ref @ v, rtol=1e-8, atol=1e-12)  # second product from the cache
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)  # an in-place change invalidates the cache
    H_new = dense_hessian(model, loss_fn, data)
    assert not torch.allclose(H_new @ v, H_ref @ v)
    torch.testing.assert_close(op @ v, H_new @ v, rtol=1e-8, atol=1e-12)


def test_dropout_is_not_switched_off():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(5, 1)).double()
    plain = torch.nn.Sequential(model[0], model[1], model[3])
    g = torch.Generator().manual_seed(3)
    data = (torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 1, generator=g, dtype=torch.float64))
    model.eval()
    torch.testing.assert_close(oc.hessian(model, torch.nn.MSELoss(), data), oc.hessian(plain, torch.nn.MSELoss(), data))
    assert not model.training
    model.train()  # the user's choice: dropout stays active, so the Hessian is that of a random sub-network
    torch.manual_seed(1)
    H_train = oc.hessian(model, torch.nn.MSELoss(), data)
    assert model.training
    assert not torch.allclose(H_train, oc.hessian(plain, torch.nn.MSELoss(), data))


def test_params_subset_and_unused_parameters():
    model, loss_fn, data = case("mlp-tanh-mse")
    last = list(model[2].parameters())
    H_full = dense_hessian(model, loss_fn, data)
    n_last = sum(p.numel() for p in last)
    H_last = oc.hessian(model, loss_fn, data, params=last)
    torch.testing.assert_close(H_last, H_full[-n_last:, -n_last:], rtol=1e-8, atol=1e-12)
    unused = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    w = list(model.parameters())
    v = torch.ones(sum(p.numel() for p in w) + 3, dtype=torch.float64)
    x, y = data
    hv = oc.loss_hvp(lambda: loss_fn(model(x), y), w + [unused], v)
    assert torch.equal(hv[-3:], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(hv[:-3], H_full @ v[:-3], rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="requires grad"):
        oc.hvp(model, loss_fn, data, v[:3], params=[torch.zeros(3)])


def test_double_backprop_multiplies_one_column_at_a_time_where_autograd_cannot_batch_and_says_so(monkeypatch):
    import importlib

    hessian_module = importlib.import_module("optlab.curvature.hessian")  # (the package exports a function hessian)
    model, loss_fn, data = case("mlp-tanh-mse")
    op = oc.HessianOperator(model, loss_fn, data, method="double-backprop")
    V = torch.linspace(-1, 1, 3 * op.shape[0], dtype=torch.float64).reshape(op.shape[0], 3)
    batched = op @ V
    assert op.batched_columns is True

    def no_batching_rule(*args):
        raise RuntimeError("Batching rule not implemented for aten::something")

    monkeypatch.setattr(hessian_module, "_grad_dot_hvp_batched", no_batching_rule)
    with pytest.warns(RuntimeWarning, match=r"one at a time .*batched_columns=False"):
        looped = op @ V
    assert op.batched_columns is False
    torch.testing.assert_close(looped, batched, rtol=1e-10, atol=1e-12)
