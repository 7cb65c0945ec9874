r"""Saddle-free Newton (Dauphin et al., 2014): Newton's step with the Hessian's eigenvalues made positive.

Newton's step :math:`-H^{-1} g` divides the gradient's component along each eigenvector :math:`q_i` of H
by :math:`\lambda_i`; along a direction of negative curvature it therefore points *uphill*, and solving
:math:`g = 0` is as happy with a saddle as with a minimum (Goodfellow, "Newton's method's failure mode").
Saddle-free Newton rescales by :math:`|\lambda_i|` instead:

.. math::
    |H| = Q\,|\Lambda|\,Q^\top \quad (H = Q \Lambda Q^\top),\qquad
    \theta_{t+1} = \theta_t - \alpha\,(|H| + \mu I)^{-1} g ,

so it keeps Newton's step lengths but always moves downhill, and escapes a saddle along its negative
curvature. Dauphin et al. derive it as the minimizer of a first-order model inside a trust region
measured by :math:`|H|`. Here :math:`|H|` is computed by a dense eigendecomposition of
:class:`optlab.curvature.LossHessianOperator`'s matrix (small models only; the paper uses a Krylov
subspace for large ones), with a damping :math:`\mu` for near-zero eigenvalues.

Reference: Y. Dauphin, R. Pascanu, C. Gulcehre, K. Cho, S. Ganguli, Y. Bengio (2014). Identifying and
attacking the saddle point problem in high-dimensional non-convex optimization. NIPS.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..curvature import LossHessianOperator
from ..errors import non_negative
from .newton import hessian_step


def abs_hessian(H: Tensor) -> Tensor:
    r""":math:`|H| = Q |\Lambda| Q^\top`, the matrix with H's eigenvectors and the absolute values of its eigenvalues.

    Args:
        H: a symmetric matrix.

    Reference: Dauphin et al. (2014). Identifying and attacking the saddle point problem.
    """
    lam, Q = torch.linalg.eigh(H)
    return Q @ torch.diag(lam.abs()) @ Q.T


def saddle_free_direction(g: Tensor, H: Tensor, mu: Tensor | float = 0.0) -> Tensor:
    r"""The saddle-free Newton direction :math:`d = -(|H| + \mu I)^{-1} g`, via the eigendecomposition of H.

    Example:
        >>> H = torch.diag(torch.tensor([2.0, -2.0])); g = torch.tensor([2.0, -0.2])
        >>> saddle_free_direction(g, H)   # Newton would give (-1, -0.1): towards the saddle in y
        tensor([-1.0000,  0.1000])

    Args:
        g: the gradient; H: the (symmetric) Hessian.
        mu: the damping, a number or one value per coordinate.

    Reference: Dauphin et al. (2014). Identifying and attacking the saddle point problem.
    """
    lam, Q = torch.linalg.eigh(H)
    mu = torch.as_tensor(mu, dtype=H.dtype, device=H.device)
    if mu.dim() == 0:  # a scalar damping stays diagonal in the eigenbasis
        return -Q @ ((Q.T @ g) / (lam.abs() + mu))
    return -torch.linalg.solve(Q @ torch.diag(lam.abs()) @ Q.T + torch.diag(mu), g)


class SaddleFreeNewton(torch.optim.Optimizer):
    r"""Saddle-free Newton: :math:`\theta \leftarrow \theta - \alpha (|H| + \mu I)^{-1} g` with the dense Hessian.

    Args:
        params: parameters or parameter groups (each group's ``lr`` scales its part of the step and its
            ``damping`` is added to its part of the diagonal).
        lr: the step size alpha.
        damping: mu >= 0 added to :math:`|H|` (guards against near-zero eigenvalues).

    ``needs = "closure"``: ``step(closure)`` takes torch's closure and runs it once, keeping the loss's
    graph for the Hessian (:mod:`optlab.optim.closure`); ``p.grad`` is then the gradient at the start.

    Reference: Dauphin et al. (2014). Identifying and attacking the saddle point problem in
    high-dimensional non-convex optimization. NIPS.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 0.1], dtype=torch.float64))
        >>> opt = SaddleFreeNewton([w])
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = w[0] ** 2 - w[1] ** 2
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)   # x -> 0, y doubles: away from the saddle
        >>> w.data
        tensor([0.0000, 0.2000], dtype=torch.float64)
    """

    needs = "closure"

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0):
        non_negative(type(self).__name__, "lr", lr)
        non_negative(type(self).__name__, "damping", damping)
        super().__init__(params, dict(lr=lr, damping=damping))

    def _direction(self, H: LossHessianOperator, mu: Tensor) -> Tensor:
        if len(self.param_groups) == 1:  # one damping for all: it stays diagonal in H's eigenbasis
            mu = mu[0]
        return saddle_free_direction(H.gradient, H.to_dense(), mu)

    def step(self, closure=None):
        """One saddle-free Newton step with torch's closure; returns the loss at the starting point."""
        return hessian_step(self, closure, self._direction)
