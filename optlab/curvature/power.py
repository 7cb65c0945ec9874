r"""The power method for the largest eigenvalue of a curvature matrix (LeCun, Simard & Pearlmutter 1993).

The slides' recipe ("Using the Power Method to Compute the Largest Eigenvalue"):

.. math::

    \Psi \leftarrow H \frac{\Psi}{\|\Psi\|}

starting from a random :math:`\Psi`; :math:`\Psi` converges to the principal eigenvector and
:math:`\|\Psi\|` to the eigenvalue of largest magnitude. Here the reported value is the Rayleigh
quotient :math:`u^\top H u` with :math:`u = \Psi/\|\Psi\|`, which has the eigenvalue's sign (the
slide's :math:`\|\Psi\|` is its absolute value) and converges twice as fast. Iteration stops when
the value changes by less than ``tol`` relative to itself.

``which="algebraic"`` gives the largest eigenvalue itself (not the largest in magnitude): if the
top-magnitude eigenvalue :math:`\lambda_1` is negative, the power method is run again on the shifted
matrix :math:`H - \lambda_1 I`, whose eigenvalues :math:`\lambda_i - \lambda_1 \ge 0` put the largest
:math:`\lambda_i` on top.

On a curvature operator (not a plain matrix) :func:`top_eigenvalue` uses Lanczos by default
(:func:`~optlab.curvature.lanczos.lanczos_top_eigenpair`: far fewer products, stopped by the Ritz
residual bound on the error); ``method="power"`` runs the slides' method on anything.

:func:`top_eigenvalues` finds the top ``k`` by deflation:
:math:`H_j = H - \sum_{i<j} \lambda_i u_i u_i^\top`.

References:
    LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by on-line
    estimation of the Hessian's eigenvectors. NIPS 5.
    Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 8.2.1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import int_in_range, one_of
from ._eigensolver import (Eigenpair, Eigenpairs, check_iteration_args, check_seed, check_which,
                           random_unit_vector)
from ._operator import MatrixOperator, as_operator
from .lanczos import lanczos_top_eigenpair

#: how :func:`top_eigenvalue` iterates (``None``: by the kind of operator, :func:`default_method`)
METHODS = ("power", "lanczos", None)

def power_iteration(matvec, v0: Tensor, *, max_iter: int, tol: float) -> Eigenpair:
    r"""The bare power method on ``matvec``: :math:`\Psi \leftarrow H\Psi/\|\Psi\|`, value :math:`u^\top H u`.

    Stops when the value changes by at most ``tol * |value|`` between iterations, or after ``max_iter``
    products; a vector in the null space (:math:`Hu = 0`) gives the value 0 at once.
    """
    u = v0 / v0.norm()
    value = None
    for it in range(1, max_iter + 1):
        psi = matvec(u)
        new_value = float(u @ psi)
        norm = float(psi.norm())
        if norm == 0.0:  # u lies in the null space: H u = 0
            return Eigenpair(0.0, u, it)
        u = psi / norm
        settled = value is not None and abs(new_value - value) <= tol * abs(new_value)
        value = new_value
        if settled:
            break
    return Eigenpair(value, u, it)


def default_method(op) -> str:
    """``"power"`` for a plain matrix (the slides' method, cheap at that size), ``"lanczos"`` for any
    other operator (a network's Hessian: far fewer products, see :func:`top_eigenvalue`)."""
    return "power" if isinstance(op, MatrixOperator) else "lanczos"


def top_eigenvalue(op_or_tensor, *, which: str = "magnitude", max_iter: int = 1000, tol: float = 1e-8,
                   seed: int = 0, method: str | None = None) -> Eigenpair:
    r"""Largest eigenvalue and eigenvector of a symmetric matrix or curvature operator.

    The power method (the slides' recipe) and, for operators by default, Lanczos:

    .. math::

        \text{power:}\quad \Psi \leftarrow H \frac{\Psi}{\|\Psi\|}, \qquad \lambda \approx u^\top H u,\;
        u = \Psi/\|\Psi\| \qquad\qquad
        \text{Lanczos:}\quad \lambda \approx \theta_{\max}(T_m),\; T_m = Q_m^\top H Q_m

    Args:
        op_or_tensor: a :class:`~optlab.curvature.HessianOperator` (or any curvature operator), or a
            plain symmetric matrix (tensor, array, nested list).
        which: ``"magnitude"`` (largest :math:`|\lambda|`, what the slides' power method finds) or
            ``"algebraic"`` (largest :math:`\lambda`; the power method gets it via a shift when the
            former is negative).
        max_iter: maximum number of matrix-vector products (per power run; for Lanczos in all).
        tol: ``"power"``: stop when the value changes by at most ``tol * |value|`` between iterations;
            ``"lanczos"``: stop when the Ritz residual bound
            (:func:`~optlab.curvature.lanczos.ritz_error_bound`) on the distance to the nearest eigenvalue
            is at most ``tol * |value|`` (see the limits in
            :func:`~optlab.curvature.lanczos.lanczos_top_eigenpair`).
        seed: seed of the random start vector (for a :class:`~optlab.curvature.HessianOperator`, of
            its random part: it starts from the gradient direction plus a random vector,
            :meth:`~optlab.curvature.HessianOperator.start_vector`).
        method: ``"power"``, ``"lanczos"`` (:func:`~optlab.curvature.lanczos.lanczos_top_eigenpair`), or
            ``None`` (default): ``"power"`` for a plain matrix, ``"lanczos"`` for any other operator.

    Returns:
        ``Eigenpair(value, vector, iterations)`` (iterations = matrix-vector products; ``iterations ==
        max_iter`` means the tolerance was not reached). A :class:`~optlab.curvature.HessianOperator`
        keeps one gradient graph for all the products of the call
        (:meth:`~optlab.curvature.HessianOperator.many_products`), then frees it.

    Example:
        >>> round(top_eigenvalue(torch.diag(torch.tensor([1.0, -3.0, 2.0]))).value, 4)
        -3.0

    References:
        LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
        on-line estimation of the Hessian's eigenvectors. NIPS 5.
        Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., sections 8.2.1 and 10.1.
    """
    owner = "top_eigenvalue"
    check_which(owner, which)
    one_of(owner, "method", method, METHODS)
    check_iteration_args(owner, max_iter, tol)
    check_seed(owner, seed)
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    if (default_method(op) if method is None else method) == "lanczos":
        return lanczos_top_eigenpair(op, which=which, max_iter=max_iter, tol=tol, seed=seed)
    with torch.no_grad(), op.many_products():  # operators switch gradients on where they need them
        v0 = op.start_vector(seed)
        top = power_iteration(lambda v: op @ v, v0, max_iter=max_iter, tol=tol)
        if which == "magnitude" or top.value >= 0:
            return top
        shift = top.value
        shifted = power_iteration(lambda v: op @ v - shift * v, v0, max_iter=max_iter, tol=tol)
        u = shifted.vector
        return Eigenpair(float(u @ (op @ u)), u, top.iterations + shifted.iterations)


def top_eigenvalues(op_or_tensor, k: int, *, max_iter: int = 1000, tol: float = 1e-8, seed: int = 0) -> Eigenpairs:
    r"""The ``k`` eigenvalues of largest magnitude by the power method with deflation.

    .. math::

        H_1 = H, \qquad H_{j+1} = H_j - \lambda_j u_j u_j^\top

    Each pair is found by :func:`top_eigenvalue` (``which="magnitude"``) on the deflated operator.
    Errors accumulate from pair to pair; prefer :func:`~optlab.curvature.lanczos` for more than a few.

    Returns:
        ``Eigenpairs(values, vectors, iterations)``, values in the order found (decreasing magnitude).

    Reference: Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 8.2.
    """
    owner = "top_eigenvalues"
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    n = op.shape[0]
    int_in_range(owner, "k", k, 1, n)
    check_iteration_args(owner, max_iter, tol)
    check_seed(owner, seed)
    values, vectors, iters = [], [], []

    def deflated(v):
        out = op @ v
        for lam, u in zip(values, vectors):
            out = out - lam * (u @ v) * u
        return out

    with torch.no_grad(), op.many_products():
        for j in range(k):
            v0 = random_unit_vector(n, op.dtype, op.device, seed + j)
            for u in vectors:  # start orthogonal to what is already found
                v0 = v0 - (u @ v0) * u
            pair = power_iteration(deflated, v0, max_iter=max_iter, tol=tol)
            values.append(pair.value)
            vectors.append(pair.vector)
            iters.append(pair.iterations)
    return Eigenpairs(torch.tensor(values, dtype=op.dtype), torch.stack(vectors, dim=1), iters)
