"""Every registered optimizer converges on an ill-conditioned quadratic and on Rosenbrock's function.

The gradients are written out (no autograd) so that thousands of steps stay cheap. The settings
(learning rate, steps) come from the registry; the targets are distances to the known minimizer.
"""

from __future__ import annotations

import pytest
import torch

from optim_registry import REGISTRY

D = torch.float64
A = torch.tensor([[5.0, 2.0], [2.0, 1.0]], dtype=D)  # condition number about 34
B = torch.tensor([1.0, -1.0], dtype=D)


def quadratic_grad(x):
    """Gradient of f(x) = x'Ax/2 - b'x, minimized at A^{-1} b."""
    return A @ x - B


def rosenbrock_grad(x):
    """Gradient of f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimized at (1, 1)."""
    a, c = x[0], x[1]
    return torch.stack([-2 * (1 - a) - 400 * a * (c - a * a), 200 * (c - a * a)])


def descend(name, kwargs, steps, grad, x0):
    entry = REGISTRY[name]
    x = torch.nn.Parameter(x0.clone())
    opt = entry.make([x], **kwargs)
    for _ in range(steps):
        x.grad = grad(x.detach())
        opt.step()
    return x.detach()


@pytest.mark.parametrize("name", list(REGISTRY))
def test_converges_on_quadratic(name):
    kwargs, steps = REGISTRY[name].quadratic
    x = descend(name, kwargs, steps, quadratic_grad, torch.zeros(2, dtype=D))
    x_star = torch.linalg.solve(A, B)
    assert (x - x_star).norm() <= 1e-4, f"{name} ended at {x.tolist()}, minimum {x_star.tolist()}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REGISTRY))
def test_converges_on_rosenbrock(name):
    entry = REGISTRY[name]
    kwargs, steps = entry.rosenbrock
    x0 = torch.tensor([-1.2, 1.0], dtype=D)  # the classic start, across the ridge from (1, 1)
    x = descend(name, kwargs, steps, rosenbrock_grad, x0)
    distance = (x - torch.ones(2, dtype=D)).norm()
    assert distance <= entry.rosenbrock_tol, f"{name} ended at {x.tolist()}"
    assert distance < 0.5 * (x0 - 1).norm()
