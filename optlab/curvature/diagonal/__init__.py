r"""Diagonals of curvature matrices: exact, exact Gauss-Newton, Becker-LeCun backpropagation, Hutchinson."""

from __future__ import annotations

from torch import Tensor

from ...errors import one_of
from ..hessian import HessianOperator
from .becker_lecun import becker_lecun_diagonal
from .exact import exact_diagonal
from .gauss_newton import ggn_diagonal, ggn_diagonal_method
from .hutchinson import hutchinson_diagonal

METHODS = ("exact", "gauss-newton", "becker-lecun", "hutchinson")


def diagonal_hessian(model, loss_fn, data, method: str = "exact", *, params=None, keep_f2: bool = True,
                     num_samples: int = 100, seed: int = 0) -> Tensor:
    r"""The diagonal of the Hessian :math:`\partial^2 E/\partial\omega_i^2` of the data-averaged loss, four ways.

    ============== ========================================================================
    method          what it computes
    ============== ========================================================================
    ``exact``       :math:`\phi_i^\top H\phi_i`, one Hessian-vector product per parameter (small models)
    ``gauss-newton`` the exact diagonal of the Gauss-Newton matrix :math:`J^\top H_\ell J`
    ``becker-lecun`` the slides' backpropagation of the diagonal Hessian (``keep_f2`` keeps the
                    :math:`f''` terms), one backward-like pass
    ``hutchinson``  :math:`\frac1S\sum_s v_s\odot Hv_s` with ``num_samples`` Rademacher probes, ``seed``
    ============== ========================================================================

    Returns the flat diagonal, in the order of ``params`` (default: the model's parameters).

    References:
        Becker, S., LeCun, Y. (1988). Improving the convergence of back-propagation learning with second
        order methods. Proceedings of the 1988 Connectionist Models Summer School.
        Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient descent.
        Bekas, C., Kokiopoulou, E., Saad, Y. (2007). An estimator for the diagonal of a matrix.
    """
    one_of("diagonal_hessian", "method", method, METHODS)
    if method == "gauss-newton":
        return ggn_diagonal(model, loss_fn, data, params=params)
    if method == "becker-lecun":
        return becker_lecun_diagonal(model, loss_fn, data, params=params, keep_f2=keep_f2)
    H = HessianOperator(model, loss_fn, data, params)
    return exact_diagonal(H) if method == "exact" else hutchinson_diagonal(H, num_samples=num_samples, seed=seed)


__all__ = ["METHODS", "becker_lecun_diagonal", "diagonal_hessian", "exact_diagonal", "ggn_diagonal",
           "ggn_diagonal_method", "hutchinson_diagonal"]
