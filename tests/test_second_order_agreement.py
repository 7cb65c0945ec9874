"""The curvature the optimizers use agrees with independent implementations: LossHessianOperator (the Hessian
of a closure, Newton's and saddle-free Newton's) with torch.autograd.functional.hessian and optlab.curvature's
HessianOperator; the registry's dense references (from torch.autograd.functional) with optlab.curvature's
Gauss-Newton matrix and Fisher, which Gauss-Newton, Hessian-free and the natural gradient use; SDLM's
diagonal source with the Gauss-Newton matrix's diagonal."""

import pytest
import torch
from torch.func import functional_call

from optlab.curvature import FisherOperator, LossHessianOperator, diagonal_hessian, gauss_newton_matrix, hessian
from optlab.flat import flatten, unflatten
from second_order_registry import dense, small_problem

DT = torch.float64


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(9, 4, generator=g, dtype=DT)
    y = torch.randint(0, 3, (9,), generator=g)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    return net, X, y


def autograd_hessian(net, loss_fn, X, y):
    """torch.autograd.functional.hessian of the loss as a function of the flat parameters."""
    names, params = zip(*[(n, p.detach()) for n, p in net.named_parameters()])
    return torch.autograd.functional.hessian(
        lambda t: loss_fn(functional_call(net, dict(zip(names, unflatten(t, params))), (X,)), y), flatten(params))


def test_loss_hessian_operator_is_the_autograd_hessian_and_optlab_curvatures():
    net, X, y = problem()
    ce = torch.nn.functional.cross_entropy
    H = LossHessianOperator(lambda: ce(net(X), y), list(net.parameters()))
    reference = autograd_hessian(net, ce, X, y)
    torch.testing.assert_close(H.to_dense(), reference)
    torch.testing.assert_close(H.to_dense(), hessian(net, ce, (X, y)))
    v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(H @ v, reference @ v)  # one column and many columns agree
    torch.testing.assert_close(H.gradient, flatten(torch.autograd.grad(ce(net(X), y), list(net.parameters()))))


def test_loss_hessian_operator_edge_cases():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=DT))
    unused = torch.nn.Parameter(torch.zeros(3, dtype=DT))
    H = LossHessianOperator(lambda: (w ** 3).sum() + 0 * unused.sum(), [w, unused])  # linear in `unused`
    torch.testing.assert_close(H.to_dense(), torch.diag(torch.tensor([6.0, 12.0, 0, 0, 0], dtype=DT)))
    torch.testing.assert_close(LossHessianOperator(lambda: (2 * w).sum(), [w]).to_dense(), torch.zeros(2, 2, dtype=DT))
    with torch.no_grad():
        w.add_(1.0)  # the operator is the Hessian where it was built: a moved parameter is refused
    with pytest.raises(RuntimeError, match=r"params\[0\] changed in place"):
        H @ torch.ones(5, dtype=DT)
    with pytest.raises(ValueError, match="invalid params=\\[\\]"):
        LossHessianOperator(lambda: w.sum(), [])
    with pytest.raises(TypeError, match="expected a scalar tensor"):
        LossHessianOperator(lambda: w, [w])


def test_registry_references_use_optlab_curvatures_gauss_newton_matrix_and_fisher():
    """The dense matrices the registry's reference column is computed from, against a second implementation."""
    p = small_problem()
    d = dense(p)
    data = (p.inputs, p.targets)
    torch.testing.assert_close(d.H, hessian(p.model, p.loss_fn, data))
    torch.testing.assert_close(d.G, gauss_newton_matrix(p.model, p.loss_fn, data))
    torch.testing.assert_close(d.G, FisherOperator(p.model, p.loss_fn, data).to_dense())  # softmax: Fisher = GGN
    torch.testing.assert_close(d.F_emp, FisherOperator(p.model, p.loss_fn, data, kind="empirical").to_dense())


def test_gauss_newton_diagonal_feeding_sdlm_is_the_diagonal_of_the_ggn():
    net, X, y = problem(3)
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(diagonal_hessian(net, ce, (X, y), method="gauss-newton"),
                               torch.diagonal(gauss_newton_matrix(net, ce, (X, y))))
