r"""Learning rates from the largest eigenvalue of the Hessian (LeCun et al. 1993; Zemel lecture 4).

On a quadratic, gradient descent multiplies the component along eigenvector :math:`i` by
:math:`(1-\alpha\lambda_i)` each step, so it converges iff :math:`\alpha < 2/\lambda_{\max}`; the
step :math:`1/\lambda_{\max}` kills the stiffest direction in one step:

.. math::

    \eta_{\max} = \frac{2}{\lambda_{\max}}, \qquad \eta_{\text{opt}} = \frac{1}{\lambda_{\max}}

(the slides' two-Gaussian least-squares example: :math:`\lambda_{\max} = 0.84`, divergence for
:math:`\eta \ge 2.38`). The slides' recipe "to compute the maximum learning rate for SGD" ends with
"the optimal learning rate is :math:`1/\|\Psi\|`", :math:`\|\Psi\|` being the power method's estimate
of :math:`\lambda_{\max}`.

References:
    LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by on-line
    estimation of the Hessian's eigenvectors. NIPS 5.
    LeCun, Y., Bottou, L., Orr, G., Müller, K.-R. (1998). Efficient BackProp. Section 5.
"""

from __future__ import annotations

import math

import torch

from ..errors import check, is_number, value_error
from .power import top_eigenvalue


def lambda_max(x, **power_kwargs) -> float:
    r"""The largest (algebraic) eigenvalue :math:`\lambda_{\max}` of ``x``.

    ``x`` is a number (taken as :math:`\lambda_{\max}` itself), a symmetric matrix, or a curvature
    operator; for the last two :func:`~optlab.curvature.top_eigenvalue` runs with ``which="algebraic"``
    and ``power_kwargs`` (``max_iter``, ``tol``, ``seed``, ``method``: by default the power method on a
    matrix, Lanczos on an operator).
    """
    return _lambda_max("lambda_max", x, power_kwargs)


def _lambda_max(owner: str, x, power_kwargs) -> float:
    if is_number(x) or (isinstance(x, torch.Tensor) and x.dim() == 0):
        if power_kwargs:
            raise value_error(owner, "power_kwargs", power_kwargs, "none when lambda_max is given as a number")
        lam = float(x)
    else:
        lam = top_eigenvalue(x, which="algebraic", **power_kwargs).value
    check(owner, "lambda_max", lam, math.isfinite(lam), "a finite number")
    return lam


def _positive_lambda_max(owner: str, x, power_kwargs) -> float:
    lam = _lambda_max(owner, x, power_kwargs)
    check(owner, "lambda_max", lam, lam > 0, "a positive largest eigenvalue (without positive curvature "
          "gradient descent is not stable for any learning rate > 0 along the non-positive directions, and "
          "no 2/lambda_max bound exists)")
    return lam


def max_learning_rate(x, **power_kwargs) -> float:
    r"""The largest stable gradient-descent learning rate :math:`\eta_{\max} = 2/\lambda_{\max}`.

    Args:
        x: :math:`\lambda_{\max}` as a number, a symmetric matrix, or a curvature operator.
        **power_kwargs: ``max_iter``, ``tol``, ``seed``, ``method`` for
            :func:`~optlab.curvature.top_eigenvalue` (none when ``x`` is a number).

    Example:
        >>> max_learning_rate(0.84)   # the slides' two-Gaussian example
        2.380952380952381

    Reference: LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
    on-line estimation of the Hessian's eigenvectors. NIPS 5.
    """
    return 2.0 / _positive_lambda_max("max_learning_rate", x, power_kwargs)


def optimal_learning_rate(x, **power_kwargs) -> float:
    r"""The learning rate :math:`\eta_{\text{opt}} = 1/\lambda_{\max}` (one-step convergence along the top eigenvector).

    Args and reference as :func:`max_learning_rate`.

    Example:
        >>> optimal_learning_rate(torch.diag(torch.tensor([4.0, 1.0])))
        0.25
    """
    return 1.0 / _positive_lambda_max("optimal_learning_rate", x, power_kwargs)
