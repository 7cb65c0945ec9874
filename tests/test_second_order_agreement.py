"""The optimizers' own curvature products agree with optlab.curvature's operators (a second, independent
implementation): the Hessian Newton solves with, Hessian-free's Gauss-Newton product, the natural
gradient's Fisher (= the Gauss-Newton matrix for a softmax), SDLM's diagonal source."""

import torch

from optlab.curvature import GGNOperator, diagonal_hessian, gauss_newton_matrix, hessian
from optlab.optim._flat import dense_hessian, loss_and_grad
from optlab.optim.hessian_free import ggn_product
from optlab.optim.natural_gradient import output_fisher, output_jacobian, true_fisher

DT = torch.float64


def problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(9, 4, generator=g, dtype=DT)
    y = torch.randint(0, 3, (9,), generator=g)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    return net, X, y


def test_dense_hessian_matches_optlab_curvature_hessian():
    net, X, y = problem()
    ce = torch.nn.functional.cross_entropy
    params = list(net.parameters())
    _, g = loss_and_grad("test", lambda: ce(net(X), y), params, create_graph=True)
    torch.testing.assert_close(dense_hessian(g, params), hessian(net, ce, (X, y)))


def test_ggn_product_matches_optlab_curvature_ggn_operator():
    net, X, y = problem(1)
    ce = torch.nn.functional.cross_entropy
    z = net(X)
    Gv = ggn_product(z, ce(z, y), list(net.parameters()))
    op = GGNOperator(net, ce, (X, y))
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(2), dtype=DT)
    torch.testing.assert_close(Gv(v), op @ v)


def test_true_fisher_of_a_softmax_is_the_gauss_newton_matrix():
    net, X, y = problem(2)
    z = net(X)
    F = true_fisher(output_jacobian(z, list(net.parameters())), output_fisher(z.detach(), "categorical"))
    torch.testing.assert_close(F, gauss_newton_matrix(net, torch.nn.functional.cross_entropy, (X, y)))


def test_gauss_newton_diagonal_feeding_sdlm_is_the_diagonal_of_the_ggn():
    net, X, y = problem(3)
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(diagonal_hessian(net, ce, (X, y), method="gauss-newton"),
                               torch.diagonal(gauss_newton_matrix(net, ce, (X, y))))
