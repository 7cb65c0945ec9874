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

The system is solved with the dense Hessian (``solver="dense"``, n Hessian-vector products) or
matrix-free by linear conjugate gradient on Hessian-vector products (``solver="cg"``, which needs
:math:`H + \mu I` positive definite).

References:
    Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (slides).
    I. Goodfellow (2015), "Tutorial on Neural Network Optimization Problems" (slides).
    J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., chapter 3.3 and 7.1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._flat import add_flat, dense_hessian, hvp, loss_and_grad, store_grad
from ._validate import check, non_negative, positive_int_or_none
from ..curvature.cg import cg

SOLVERS = ("dense", "cg")


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


def _group_vector(param_groups, key: str, like: Tensor) -> Tensor:
    """A flat vector holding each group's ``key`` for every coordinate of its parameters."""
    return torch.cat([torch.full((p.numel(),), float(group[key]), dtype=like.dtype, device=like.device)
                      for group in param_groups for p in group["params"]])


def _all_params(param_groups) -> list[Tensor]:
    return [p for group in param_groups for p in group["params"]]


def check_solver_args(name: str, lr, damping, solver, cg_maxiter, cg_rtol) -> None:
    """The hyper-parameters shared by the Newton family (Newton, Gauss-Newton, Levenberg-Marquardt)."""
    non_negative(name, "lr", lr)
    non_negative(name, "damping", damping)
    check(name, "solver", solver, solver in SOLVERS, f"one of {SOLVERS}")
    positive_int_or_none(name, "cg_maxiter", cg_maxiter)
    non_negative(name, "cg_rtol", cg_rtol)


class Newton(torch.optim.Optimizer):
    r"""Newton's method (damped with ``damping > 0``) over all the parameters jointly.

    Each step: :math:`\theta \leftarrow \theta - \alpha (H + \mu I)^{-1} g`. With several parameter groups,
    each group's ``lr`` (alpha) scales its part of the step and its ``damping`` (mu) is added to its part
    of the diagonal.

    Args:
        params: parameters or parameter groups.
        lr: the step size alpha (1 is the pure Newton step).
        damping: mu >= 0 added to the Hessian's diagonal.
        solver: ``"dense"`` (build H, solve) or ``"cg"`` (conjugate gradient on Hessian-vector products).
        cg_maxiter: CG iterations at most (default: 10 times the number of parameters).
        cg_rtol: CG's relative residual tolerance.

    ``step(closure)`` needs a closure that recomputes the loss and returns it *without* calling
    ``backward`` (the Hessian is taken from its graph); after the step ``p.grad`` holds the gradient at
    the point where the step started.

    Reference: Nocedal & Wright (2006), Numerical Optimization, section 3.3; the module docstring.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -1.0], dtype=torch.float64))
        >>> opt = Newton([w])
        >>> _ = opt.step(lambda: (w[0] - 1) ** 2 + 10 * (w[1] + 2) ** 2)
        >>> w.data
        tensor([ 1., -2.], dtype=torch.float64)
    """

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0, *, solver: str = "dense",
                 cg_maxiter: int | None = None, cg_rtol: float = 1e-10):
        check_solver_args(type(self).__name__, lr, damping, solver, cg_maxiter, cg_rtol)
        super().__init__(params, dict(lr=lr, damping=damping))
        self.solver, self.cg_maxiter, self.cg_rtol = solver, cg_maxiter, cg_rtol

    def _direction(self, g: Tensor, params: list[Tensor], mu: Tensor) -> Tensor:
        if self.solver == "dense":
            return newton_direction(g.detach(), dense_hessian(g, params), mu)
        return cg(lambda v: hvp(g, params, v) + mu * v, -g.detach(), rtol=self.cg_rtol, max_iter=self.cg_maxiter).x

    def step(self, closure=None):
        """Take one Newton step; ``closure`` returns the loss (no ``backward`` inside). Returns that loss."""
        params = _all_params(self.param_groups)
        loss, g = loss_and_grad(type(self).__name__, closure, params, create_graph=True)
        mu = _group_vector(self.param_groups, "damping", g)
        d = self._direction(g, params, mu)
        add_flat(params, _group_vector(self.param_groups, "lr", g) * d)
        store_grad(params, g)
        state = self.state[params[0]]
        state["step"] = state.get("step", 0) + 1
        return loss.detach()
