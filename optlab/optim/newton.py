r"""Newton's method, plain or damped, for small models: a gradient step in a warped space.

From the first-order Taylor expansion of the gradient, :math:`g + H(\theta - \theta_0) = 0`
(Goodfellow, "Newton's method"), the step with damping :math:`\mu \ge 0` (Levenberg's) and step size
:math:`\alpha` is

.. math::
    \theta_{t+1} = \theta_t - \alpha\,(H + \mu I)^{-1} g,\qquad g = \nabla E(\theta_t),\; H = \nabla^2 E(\theta_t).

With :math:`H = \Theta' \Lambda \Theta` this is gradient descent in the coordinates
:math:`U = \Lambda^{1/2}\Theta\,W` where the loss is isotropic (LeCun, "Newton's algorithm as a warping of
the space"): :math:`\delta W = H^{-1} \partial L/\partial W`. On a quadratic with :math:`\alpha = 1, \mu = 0`
it lands on the minimum in one step; when H has eigenvalues of both signs it is attracted to saddle
points as much as to minima (see :mod:`optlab.optim.saddle_free_newton`).

The Hessian is :class:`optlab.curvature.LossHessianOperator` of the closure's loss (one forward pass,
exact Hessian-vector products). The system is solved with its dense matrix (``solver="dense"``, from
``H.to_dense()``) or matrix-free by :func:`optlab.curvature.cg` on Hessian-vector products
(``solver="cg"``, which needs :math:`H + \mu I` positive definite).

References:
    Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (slides).
    I. Goodfellow (2015), "Tutorial on Neural Network Optimization Problems" (slides).
    J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., chapter 3.3 and 7.1.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..curvature import LossHessianOperator, cg
from ..flat import add_, unflatten
from ..errors import non_negative
from .gauss_newton import check_solver_options
from .param_groups import all_params, joint_option, per_coordinate
from .closure import evaluate, leave_gradient


def newton_direction(g: Tensor, H: Tensor, mu: Tensor | float = 0.0) -> Tensor:
    r"""The (damped) Newton direction :math:`d = -(H + \mu I)^{-1} g`; ``mu`` may be a vector (a diagonal damping).

    Example:
        >>> H = torch.tensor([[2.0, 0.0], [0.0, 4.0]]); g = torch.tensor([2.0, 4.0])
        >>> newton_direction(g, H)
        tensor([-1., -1.])

    Args:
        g: the gradient (flat).
        H: the Hessian (n x n).
        mu: the damping, a number or one value per coordinate.

    Reference: Nocedal & Wright (2006). Numerical Optimization, section 3.3.
    """
    mu = torch.as_tensor(mu, dtype=H.dtype, device=H.device)
    A = H + torch.diag(mu.expand(g.shape))
    return -torch.linalg.solve(A, g)


def newton_update(theta: Tensor, g: Tensor, H: Tensor, *, alpha: Tensor | float = 1.0,
                  mu: Tensor | float = 0.0) -> Tensor:
    r"""One Newton step on a flat parameter vector: :math:`\theta - \alpha (H + \mu I)^{-1} g`.

    Args:
        theta, g, H: flat parameters, gradient and Hessian.
        alpha: the step size; mu: the damping.

    Reference: Nocedal & Wright (2006). Numerical Optimization, section 3.3.
    """
    return theta + alpha * newton_direction(g, H, mu)


def hessian_step(optimizer: torch.optim.Optimizer, closure,
                 direction: Callable[[LossHessianOperator, Tensor], Tensor]) -> Tensor:
    r"""The step of the Hessian-driven optimizers: :math:`\theta \leftarrow \theta + \alpha \odot d`.

    Runs torch's ``closure`` once through :func:`~optlab.optim.closure.evaluate`, builds the Hessian
    operator of its loss, asks ``direction(H, mu)`` for :math:`d` (``mu``: each group's ``damping`` per
    coordinate), moves each group's part by its ``lr``, leaves the gradient at the starting point in
    ``p.grad`` and counts the step in ``state[first param]["step"]``. Returns the loss at the start.
    """
    params = all_params(optimizer.param_groups)
    H = LossHessianOperator(lambda: evaluate(type(optimizer).__name__, closure).loss, params)
    d = direction(H, per_coordinate(optimizer.param_groups, "damping", H.gradient))
    add_(params, per_coordinate(optimizer.param_groups, "lr", d) * d)
    leave_gradient(params, unflatten(H.gradient, params))
    state = optimizer.state[params[0]]
    state["step"] = state.get("step", 0) + 1
    return H.loss


class Newton(torch.optim.Optimizer):
    r"""Newton's method (damped with ``damping > 0``) over all the parameters jointly.

    Each step: :math:`\theta \leftarrow \theta - \alpha (H + \mu I)^{-1} g`. With several parameter groups,
    each group's ``lr`` (alpha) scales its part of the step and its ``damping`` (mu) is added to its part
    of the diagonal; ``solver``, ``cg_max_iter`` and ``cg_rtol`` are shared by all groups.

    Args:
        params: parameters or parameter groups.
        lr: the step size alpha (1 is the pure Newton step).
        damping: mu >= 0 added to the Hessian's diagonal.
        solver: ``"dense"`` (build H, solve) or ``"cg"`` (conjugate gradient on Hessian-vector products).
        cg_max_iter: CG iterations at most (default: 10 times the number of parameters).
        cg_rtol: CG's relative residual tolerance.

    ``needs = "closure"``: ``step(closure)`` takes torch's closure (``zero_grad``, loss, ``backward()``,
    return the loss) and runs it once, keeping the loss's graph for the Hessian
    (:mod:`optlab.optim.closure`). After the step ``p.grad`` holds the gradient at the starting point;
    with ``solver="cg"``, ``state[first param]`` holds CG's ``cg_iterations`` and ``cg_converged``.

    Reference: Nocedal & Wright (2006), Numerical Optimization, section 3.3; the module docstring.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -1.0], dtype=torch.float64))
        >>> opt = Newton([w])
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = (w[0] - 1) ** 2 + 10 * (w[1] + 2) ** 2
        ...     loss.backward()
        ...     return loss
        >>> opt.step(closure)
        tensor(14., dtype=torch.float64)
        >>> w.data
        tensor([ 1., -2.], dtype=torch.float64)
    """

    needs = "closure"

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0, *, solver: str = "dense",
                 cg_max_iter: int | None = None, cg_rtol: float = 1e-10):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        non_negative(name, "damping", damping)
        check_solver_options(name, solver, cg_max_iter, cg_rtol)
        super().__init__(params, dict(lr=lr, damping=damping, solver=solver, cg_max_iter=cg_max_iter, cg_rtol=cg_rtol))

    def _direction(self, H: LossHessianOperator, mu: Tensor) -> Tensor:
        name, groups = type(self).__name__, self.param_groups
        if joint_option(name, groups, "solver") == "dense":
            return newton_direction(H.gradient, H.to_dense(), mu)
        result = cg(lambda v: H @ v + mu * v, -H.gradient, rtol=joint_option(name, groups, "cg_rtol"),
                    max_iter=joint_option(name, groups, "cg_max_iter"))
        self.state[H.params[0]].update(cg_iterations=result.iterations, cg_converged=result.converged)
        return result.x

    def step(self, closure=None):
        """Take one Newton step with torch's closure; returns the loss at the starting point."""
        return hessian_step(self, closure, self._direction)
