"""Jacobian and generalized Gauss-Newton against ``torch.func`` references (float64)."""

import pytest
import torch

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
