"""Newton is attracted to saddles; saddle-free Newton escapes them (Goodfellow 2015; Dauphin et al. 2014)."""

import pytest
import torch

from optlab.optim.newton import Newton
from optlab.problems import TanhIdentity
from optlab.optim.saddle_free_newton import SaddleFreeNewton, abs_hessian, saddle_free_direction

DT = torch.float64


def saddle_2d(start):
    w = torch.nn.Parameter(torch.tensor(start, dtype=DT))
    return w, (lambda: w[0] ** 2 - w[1] ** 2)


def one_one_one_tanh(start):
    """LeCun's 1-1-1 net y = tanh(W1 tanh(W0 x)) mapping 0.5 -> 0.5 and -0.5 -> -0.5, mean squared loss
    (optlab.problems.TanhIdentity). The origin is a saddle: zero gradient, Hessian eigenvalues of both signs."""
    obj = TanhIdentity().objective(start)
    (w,) = obj.params
    return w, obj.loss


def test_origin_is_a_saddle_of_both_problems():
    x = torch.tensor([0.5, -0.5], dtype=DT)
    # the 1-1-1 loss written out here as a check of the problem module's one
    for f in (lambda v: v[0] ** 2 - v[1] ** 2, lambda v: ((x - torch.tanh(v[1] * torch.tanh(v[0] * x))) ** 2).mean()):
        zero = torch.zeros(2, dtype=DT, requires_grad=True)
        assert torch.autograd.grad(f(zero), zero)[0].abs().max() == 0
        lam = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, zero.detach()))
        assert lam[0] < -0.1 and lam[1] > 0.1


@pytest.mark.parametrize("make, start", [(saddle_2d, [1.0, 0.1]), (one_one_one_tanh, [0.1, 0.05])])
def test_newton_converges_to_the_saddle_and_saddle_free_newton_escapes(make, start):
    w, f = make(start)
    opt = Newton([w])
    for _ in range(20):
        opt.step(f)
    assert w.detach().abs().max() < 1e-10  # Newton lands on the saddle (0, 0) ...
    saddle_loss = float(f().detach())

    w, f = make(start)
    loss0 = float(f().detach())
    opt = SaddleFreeNewton([w])
    losses = [float(opt.step(f)) for _ in range(20)]
    assert w.detach().abs().max() > 0.5       # ... saddle-free Newton leaves it
    assert float(f().detach()) < min(loss0, saddle_loss) - 0.1
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))


def test_problem_module_loss_is_the_slide_loss():
    x = torch.tensor([0.5, -0.5], dtype=DT)
    w, f = one_one_one_tanh([0.3, -0.7])
    torch.testing.assert_close(f().detach(), ((x - torch.tanh(-0.7 * torch.tanh(0.3 * x))) ** 2).mean())


def test_saddle_free_newton_solves_the_1_1_1_identity_task():
    w, f = one_one_one_tanh([0.1, 0.05])
    opt = SaddleFreeNewton([w])
    for _ in range(30):
        opt.step(f)
    assert float(f().detach()) < 1e-12


def test_saddle_free_direction_equals_newton_on_a_convex_quadratic():
    g = torch.Generator().manual_seed(0)
    B = torch.randn(4, 4, generator=g, dtype=DT)
    H = B @ B.T + 0.1 * torch.eye(4, dtype=DT)
    v = torch.randn(4, generator=g, dtype=DT)
    torch.testing.assert_close(saddle_free_direction(v, H, 0.3), -torch.linalg.solve(H + 0.3 * torch.eye(4, dtype=DT), v))
    torch.testing.assert_close(abs_hessian(H), H)


def test_abs_hessian_against_its_definition():
    g = torch.Generator().manual_seed(1)
    B = torch.randn(5, 5, generator=g, dtype=DT)
    H = B + B.T
    A = abs_hessian(H)
    torch.testing.assert_close(A @ A, H @ H)  # |H| is the PSD square root of H^2
    assert torch.linalg.eigvalsh(A).min() >= -1e-12
    v = torch.randn(5, generator=g, dtype=DT)
    torch.testing.assert_close(saddle_free_direction(v, H, torch.full((5,), 0.2, dtype=DT)),
                               -torch.linalg.solve(A + 0.2 * torch.eye(5, dtype=DT), v))
