r"""Critical points: minimum, maximum, saddle or degenerate, from the signs of the Hessian's eigenvalues.

At a critical point (:math:`g = 0`) the second-order Taylor series is
:math:`J(\theta) \approx J(\theta_0) + \tfrac12 (\theta-\theta_0)^\top H (\theta-\theta_0)`, so (Goodfellow
2015, "Critical points"; Zemel lecture 4):

============================  ==========================
eigenvalues of :math:`H`       critical point
============================  ==========================
all :math:`> \text{tol}`       (local) minimum
all :math:`< -\text{tol}`      (local) maximum
some of each sign              saddle point
otherwise (some :math:`|\lambda| \le \text{tol}`, no two signs)  degenerate: second order cannot tell
============================  ==========================

References:
    Goodfellow, I. (2015). Tutorial on neural network optimization problems. Deep Learning Summer School.
    Dauphin, Y., Pascanu, R., Gulcehre, C., Cho, K., Ganguli, S., Bengio, Y. (2014). Identifying and
    attacking the saddle point problem in high-dimensional non-convex optimization. NIPS.
"""

from __future__ import annotations

import torch

from ..errors import check_data, non_negative
from ._operator import MatrixOperator, as_operator

MINIMUM, MAXIMUM, SADDLE, DEGENERATE = "minimum", "maximum", "saddle", "degenerate"


def classify_eigenvalues(eigenvalues, *, tol: float = 1e-8) -> str:
    r"""``"minimum"``, ``"maximum"``, ``"saddle"`` or ``"degenerate"`` from eigenvalue signs (``|λ| <= tol`` counts as zero)."""
    owner = "classify_eigenvalues"
    non_negative(owner, "tol", tol)
    ev = torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
    check_data(owner, "eigenvalues", ev.numel() > 0 and bool(torch.isfinite(ev).all()), f"{ev.tolist()}",
               "a non-empty list of finite numbers")
    pos, neg = bool((ev > tol).any()), bool((ev < -tol).any())
    if pos and neg:
        return SADDLE
    if bool((ev.abs() <= tol).any()):
        return DEGENERATE
    return MINIMUM if pos else MAXIMUM


def classify_critical_point(x, *, tol: float = 1e-8, gradient=None, gradient_tol: float | None = None) -> str:
    r"""Classify a critical point from its Hessian ``x`` (matrix or operator, e.g. ``HessianOperator``).

    Args:
        x: the Hessian at the point: a symmetric matrix or a curvature operator (``to_dense`` is used,
            so operators must be small).
        tol: eigenvalues with :math:`|\lambda| \le` ``tol`` count as zero.
        gradient: optionally the gradient at the point; if its norm exceeds ``gradient_tol`` (default
            ``sqrt(tol)``) a ``ValueError`` says the point is not critical.

    Returns:
        ``"minimum"``, ``"maximum"``, ``"saddle"`` or ``"degenerate"``.

    Example:
        >>> classify_critical_point([[2.0, 0.0], [0.0, -1.0]])
        'saddle'

    Reference: Goodfellow, I. (2015). Tutorial on neural network optimization problems.
    """
    owner = "classify_critical_point"
    non_negative(owner, "tol", tol)
    if gradient_tol is not None:
        non_negative(owner, "gradient_tol", gradient_tol)
    if gradient is not None:
        gnorm = float(torch.as_tensor(gradient, dtype=torch.float64).norm())
        gtol = tol ** 0.5 if gradient_tol is None else gradient_tol
        check_data(owner, "gradient", gnorm <= gtol, f"its norm {gnorm:.3g} > gradient_tol={gtol:.3g}",
                   "a critical point (a gradient of norm <= gradient_tol)")
    op = as_operator(x, "x", owner)
    A = op.A if isinstance(op, MatrixOperator) else op.to_dense()
    A = (A + A.T) / 2
    return classify_eigenvalues(torch.linalg.eigvalsh(A.double()), tol=tol)
