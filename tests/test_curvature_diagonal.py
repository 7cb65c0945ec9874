"""Diagonals: exact, exact Gauss-Newton, Becker-LeCun and Hutchinson against dense references (float64)."""

import pytest
import torch
from torch import nn

import optlab.curvature as oc
import optlab.curvature.diagonal.gauss_newton as gauss_newton
from optlab.curvature.diagonal._layers import multinomial_cholesky, output_hessian_factor
from test_curvature_cases import CASES, case, dense_ggn, dense_hessian

RTOL = 1e-8


def _rel(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("name", list(CASES))
def test_exact_and_gauss_newton_diagonals(name):
    model, loss_fn, data = case(name)
    H, G = dense_hessian(model, loss_fn, data), dense_ggn(model, loss_fn, data)
    torch.testing.assert_close(oc.diagonal_hessian(model, loss_fn, data, "exact"), H.diagonal(),
                               rtol=RTOL, atol=RTOL * H.diagonal().abs().max())
    torch.testing.assert_close(oc.diagonal_hessian(model, loss_fn, data, "gauss-newton"), G.diagonal(),
                               rtol=RTOL, atol=RTOL * G.diagonal().abs().max())


def test_gauss_newton_diagonal_fallback_for_other_models():
    # a model that is not a plain stack: per-sample Jacobians
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 2)

        def forward(self, x):
            return self.b(x + torch.tanh(self.a(x)))

    torch.manual_seed(0)
    model = Residual().double()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randint(0, 2, (7,), generator=g)
    G = dense_ggn(model, nn.CrossEntropyLoss(), (x, y))
    torch.testing.assert_close(oc.ggn_diagonal(model, nn.CrossEntropyLoss(), (x, y)), G.diagonal(), rtol=RTOL, atol=1e-14)


def test_gauss_newton_diagonal_for_a_generic_loss():
    # a loss without a closed form goes through its dense output Hessian blocks and eigh
    model, _, data = case("mlp-tanh-mse")
    loss_fn = nn.SmoothL1Loss(beta=5.0)
    G = dense_ggn(model, loss_fn, data)
    torch.testing.assert_close(oc.ggn_diagonal(model, loss_fn, data), G.diagonal(), rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cross_entropy_factor_has_rank_classes_minus_one_and_survives_underflow(dtype):
    # diag(p) - p p^T = L L^T with L of K - 1 columns (closed-form Cholesky), also where probabilities are 0
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20, 6, generator=g, dtype=torch.float64)
    logits[0] = torch.tensor([0.0, -900, 1, -800, 2, -1000])  # three probabilities underflow to 0
    logits[1] = torch.tensor([0.0, -900, -900, -800, -700, -1000])  # one class holds all the mass
    logits[2] = torch.tensor([-900.0, -900, -900, -800, -700, 5])  # ... the last one
    p = torch.softmax(logits, dim=1).to(dtype)
    assert ((p[:3] == 0).sum(1) >= 3).all()  # the underflow this test is about (-700 stays a tiny positive)
    L = multinomial_cholesky(p)
    assert L.shape == (20, 6, 5) and not L.isnan().any()
    assert (L.triu(1) == 0).all()  # lower triangular
    expected = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    tol = dict(rtol=0, atol=1e-15) if dtype == torch.float64 else dict(rtol=0, atol=1e-6)
    torch.testing.assert_close(L @ L.mT, expected, **tol)
    # output_hessian_factor: rows b_c (C = K - 1), signs +1, sum_c b_c b_c^T = the per-sample Hessian of the mean loss
    y = torch.randint(0, 6, (20,), generator=g)
    B, s = output_hessian_factor(nn.CrossEntropyLoss(), logits.to(dtype), y, 0.5)
    assert B.shape == (20, 5, 6) and (s == 1).all()
    torch.testing.assert_close(B.mT @ B, 0.5 / 20 * expected, **tol)


def _deeper_net(kind):
    torch.manual_seed(3)
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 4), nn.Sigmoid(),
                             nn.Linear(4, 3)).double()
    # a leading activation (below the first weight), Linear -> Linear, two activations in a row (one by autograd)
    return nn.Sequential(nn.Tanh(), nn.Linear(4, 6), nn.Tanh(), nn.ELU(), nn.Linear(6, 5), nn.Linear(5, 4),
                         nn.Sigmoid(), nn.Linear(4, 3)).double()


@pytest.mark.parametrize("kind, loss_fn", [("mlp", nn.MSELoss()), ("mlp", nn.CrossEntropyLoss()),
                                           ("mlp", nn.SmoothL1Loss(beta=0.5)), ("cnn", nn.CrossEntropyLoss())])
def test_gauss_newton_diagonal_in_sample_chunks_on_deeper_nets(kind, loss_fn, monkeypatch):
    # the smallest chunks (16 samples): 40 samples take three chunks, the last one shorter
    monkeypatch.setattr(gauss_newton, "_CHUNK_BYTES", 1)
    model = _deeper_net(kind)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(40, *((1, 6, 6) if kind == "cnn" else (4,)), generator=g, dtype=torch.float64)
    y = (torch.randint(0, 3, (40,), generator=g) if isinstance(loss_fn, nn.CrossEntropyLoss)
         else torch.randn(40, 3, generator=g, dtype=torch.float64))
    G = dense_ggn(model, loss_fn, (x, y))
    torch.testing.assert_close(oc.ggn_diagonal(model, loss_fn, (x, y)), G.diagonal(), rtol=RTOL, atol=1e-14)


def _last_layer_slice(model):
    sizes = [p.numel() for p in model.parameters()]
    return slice(sum(sizes[:-2]), sum(sizes))


@pytest.mark.parametrize("name", ["mlp-tanh-mse", "mlp-sigmoid-ce", "mlp-tanh-ce-batches", "cnn-tanh-ce"])
def test_becker_lecun_is_exact_on_the_last_layer_and_reports_its_error(name):
    model, loss_fn, data = case(name)
    H = dense_hessian(model, loss_fn, data)
    bl = oc.diagonal_hessian(model, loss_fn, data, "becker-lecun")
    last = _last_layer_slice(model)
    torch.testing.assert_close(bl[last], H.diagonal()[last], rtol=RTOL, atol=RTOL * H.diagonal().abs().max())
    rel = _rel(bl, H.diagonal())
    print(f"Becker-LeCun diagonal, {name}: relative error vs the exact diagonal = {rel:.3e}")
    assert rel < 0.5  # an approximation, but the right one: not off by orders of magnitude


def test_becker_lecun_error_on_a_deeper_tanh_mlp_is_reported():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(40, 5, generator=g, dtype=torch.float64), torch.randn(40, 3, generator=g, dtype=torch.float64))
    H = dense_hessian(model, nn.MSELoss(), data)
    G = dense_ggn(model, nn.MSELoss(), data)
    bl = oc.diagonal_hessian(model, nn.MSELoss(), data, "becker-lecun")
    bl_gn = oc.diagonal_hessian(model, nn.MSELoss(), data, "becker-lecun", keep_f2=False)
    e_full, e_gn, e_gn_ggn = _rel(bl, H.diagonal()), _rel(bl_gn, H.diagonal()), _rel(bl_gn, G.diagonal())
    print(f"tanh MLP 5-8-6-3, MSE: Becker-LeCun relative error vs exact diagonal {e_full:.3e} (keep f''), "
          f"{e_gn:.3e} (drop f''); drop-f'' vs the exact GGN diagonal {e_gn_ggn:.3e}")
    assert 0 < e_full < 0.5 and 0 < e_gn_ggn < 0.5
    assert (bl_gn >= 0).all()  # dropping the f'' term gives a non-negative estimate
    last = _last_layer_slice(model)
    torch.testing.assert_close(bl[last], H.diagonal()[last], rtol=RTOL, atol=1e-14)


def test_becker_lecun_exact_for_the_slides_one_unit_wide_net():
    # y = tanh(w1 tanh(w0 x + b0) + b1): one unit per layer, no off-diagonal terms to drop
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 1), nn.Tanh(), nn.Linear(1, 1), nn.Tanh()).double()
    x = torch.tensor([[0.5], [-0.5]], dtype=torch.float64)
    data = (x, x.clone())
    H = dense_hessian(model, nn.MSELoss(), data)
    torch.testing.assert_close(oc.becker_lecun_diagonal(model, nn.MSELoss(), data), H.diagonal(),
                               rtol=RTOL, atol=1e-14)


def test_becker_lecun_rbf_units_exact_for_a_single_rbf_layer():
    # one RBF layer feeding the loss: nothing is dropped, the rule (with its factor 4 and the
    # d^2Y/dw^2 = 2 term) must be exact
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), oc.RBF(4, 2, dtype=torch.float64)).double()
    g = torch.Generator().manual_seed(2)
    data = (torch.randn(9, 3, generator=g, dtype=torch.float64), torch.randn(9, 2, generator=g, dtype=torch.float64))
    H = dense_hessian(model, nn.MSELoss(), data)
    bl = oc.becker_lecun_diagonal(model, nn.MSELoss(), data)
    last = slice(sum(p.numel() for p in model[0].parameters()), None)
    torch.testing.assert_close(bl[last], H.diagonal()[last], rtol=RTOL, atol=1e-14)
    print(f"Linear-tanh-RBF net: Becker-LeCun relative error vs exact diagonal = {_rel(bl, H.diagonal()):.3e}")


def test_hutchinson_is_unbiased_and_exact_on_diagonal_matrices():
    D = torch.diag(torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(oc.hutchinson_diagonal(D, num_samples=1), D.diagonal())
    model, loss_fn, data = case("mlp-tanh-mse")
    H = dense_hessian(model, loss_fn, data)
    errs = [_rel(oc.diagonal_hessian(model, loss_fn, data, "hutchinson", num_samples=S, seed=1), H.diagonal())
            for S in (10, 1000)]
    print(f"Hutchinson relative error: {errs[0]:.3f} (10 probes), {errs[1]:.3f} (1000 probes)")
    assert errs[1] < errs[0] and errs[1] < 0.1


def test_diagonal_errors():
    model, loss_fn, data = case("mlp-tanh-mse")
    with pytest.raises(ValueError, match="method"):
        oc.diagonal_hessian(model, loss_fn, data, "diagonal")
    with pytest.raises(TypeError, match="unsupported layer"):
        oc.becker_lecun_diagonal(nn.Sequential(nn.Linear(3, 2), nn.Softmax(dim=1)).double(), loss_fn, data)
    with pytest.raises(TypeError, match="Sequential"):
        oc.becker_lecun_diagonal(nn.Bilinear(3, 3, 2), loss_fn, data)
    with pytest.raises(ValueError, match="num_samples"):
        oc.hutchinson_diagonal(torch.eye(2), num_samples=0)


def test_gauss_newton_diagonal_grouped_convolution_takes_the_fallback():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 2, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (4,), generator=g)
    G = dense_ggn(model, nn.CrossEntropyLoss(), (x, y))
    torch.testing.assert_close(oc.ggn_diagonal(model, nn.CrossEntropyLoss(), (x, y)), G.diagonal(), rtol=RTOL, atol=1e-14)
    # Becker-LeCun handles groups through torch.nn.grad; its last layer is exact
    H = dense_hessian(model, nn.CrossEntropyLoss(), (x, y))
    bl = oc.becker_lecun_diagonal(model, nn.CrossEntropyLoss(), (x, y))
    torch.testing.assert_close(bl[-(2 * 4 * 4 * 3 + 3):], H.diagonal()[-(2 * 4 * 4 * 3 + 3):], rtol=RTOL, atol=1e-14)


class _Residual(nn.Sequential):
    def forward(self, x):  # not the composition of its layers
        return super().forward(x) + x


def test_layer_wise_diagonals_never_bypass_an_overridden_forward_or_a_hook():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randint(0, 3, (8,), generator=g)
    hooked = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    hooked[1].register_forward_hook(lambda m, i, o: o * o)
    for model in (_Residual(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double(), hooked):
        G = dense_ggn(model, nn.CrossEntropyLoss(), (x, y))  # what the model really computes
        torch.testing.assert_close(oc.ggn_diagonal(model, nn.CrossEntropyLoss(), (x, y)), G.diagonal(),
                                   rtol=RTOL, atol=1e-14)
        with pytest.raises(TypeError, match="forward"):
            oc.becker_lecun_diagonal(model, nn.CrossEntropyLoss(), (x, y))
