r"""The linear conjugate gradient method: solve :math:`A x = b` for a symmetric positive-definite :math:`A`.

Starting from :math:`x_0` with residual :math:`r_0 = b - A x_0` and direction :math:`p_0 = r_0`:

.. math::
    \alpha_k = \frac{r_k^\top r_k}{p_k^\top A p_k},\qquad
    x_{k+1} = x_k + \alpha_k p_k,\qquad
    r_{k+1} = r_k - \alpha_k A p_k,\qquad
    \beta_k = \frac{r_{k+1}^\top r_{k+1}}{r_k^\top r_k},\qquad
    p_{k+1} = r_{k+1} + \beta_k p_k .

The directions are A-conjugate (:math:`p_i^\top A p_j = 0`), so in exact arithmetic the method ends in at
most n iterations (in floating point, ill-conditioned systems may need more); it only needs products :math:`A p`, which is why Hessian-free optimization runs it on
Hessian- or Gauss-Newton-vector products. It also minimizes the quadratic
:math:`q(x) = \tfrac12 x^\top A x - b^\top x`, which decreases at every iteration.

References:
    M. R. Hestenes, E. Stiefel (1952). Methods of Conjugate Gradients for Solving Linear Systems.
    J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., Algorithm 5.2.
    J. Martens (2010). Deep learning via Hessian-free optimization. ICML.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor


class CGResult(NamedTuple):
    """What :func:`cg` returns: the solution, the number of iterations, the final residual norm, whether
    the tolerance was met, and why it stopped (``"converged"``, ``"max_iter"``, ``"callback"`` or
    ``"negative curvature"``)."""

    x: Tensor
    iterations: int
    residual_norm: float
    converged: bool
    reason: str = "converged"


NEGATIVE_CURVATURE = ("raise", "stop")


def quadratic_value(x: Tensor, b: Tensor, r: Tensor) -> float:
    r"""The CG objective :math:`q(x) = \tfrac12 x^\top A x - b^\top x` from the residual :math:`r = b - Ax`,
    without another product: :math:`q(x) = -\tfrac12 x^\top (b + r)`.

    Example:
        >>> A = torch.eye(2); b = torch.tensor([1.0, 1.0]); x = torch.tensor([1.0, 0.0])
        >>> quadratic_value(x, b, b - A @ x)
        -0.5
    """
    return float(-0.5 * (x @ (b + r)))


def cg(A, b: Tensor, x0: Tensor | None = None, *, rtol: float = 1e-10, atol: float = 0.0,
       max_iter: int | None = None, callback: Callable[[int, Tensor, Tensor], bool | None] | None = None,
       negative_curvature: str = "raise") -> CGResult:
    r"""Solve :math:`A x = b` by conjugate gradients; ``A`` is a matrix, anything with ``@``, or a callable.

    .. math:: \alpha_k = \frac{r_k^\top r_k}{p_k^\top A p_k},\;
              x_{k+1} = x_k + \alpha_k p_k,\; r_{k+1} = r_k - \alpha_k A p_k,\;
              p_{k+1} = r_{k+1} + \frac{r_{k+1}^\top r_{k+1}}{r_k^\top r_k} p_k

    Args:
        A: a symmetric positive-definite operator: a square tensor, any object with ``A @ v`` (e.g. a
            :class:`~optlab.curvature.CurvatureOperator`), or a function ``v -> A v``.
        b: the right-hand side, a 1-D tensor.
        x0: the starting point (default zeros); Hessian-free warm-starts from the previous solution.
        rtol, atol: stop when :math:`\|r_k\| \le \max(\text{rtol}\,\|b\|, \text{atol})`.
        max_iter: the most iterations (default ``10 * len(b)``, as scipy: n is enough in exact
            arithmetic, but rounding errors break the conjugacy when A is ill-conditioned).
        callback: called as ``callback(k, x_k, r_k)`` after each iteration, with the residual
            :math:`r_k = b - A x_k`; returning ``True`` stops the iteration (e.g. Martens' relative
            progress rule on :func:`quadratic_value`).
        negative_curvature: what a direction with :math:`p^\top A p \le 0` does: ``"raise"`` a
            ``ValueError`` (A is not positive definite), or ``"stop"`` and return the current iterate
            with ``reason="negative curvature"`` (Hessian-free on an indefinite Hessian).

    Returns:
        a :class:`CGResult` ``(x, iterations, residual_norm, converged, reason)``.

    Reference: Hestenes & Stiefel (1952); Nocedal & Wright (2006), Algorithm 5.2.

    Example:
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> cg(A, torch.tensor([1.0, 2.0], dtype=torch.float64)).x
        tensor([0.0909, 0.6364], dtype=torch.float64)
    """
    if not isinstance(b, Tensor) or b.dim() != 1:
        raise ValueError(f"cg: invalid b={b!r}; expected a 1-D tensor")
    n = b.numel()
    if max_iter is None:
        max_iter = 10 * n
    if not (isinstance(max_iter, int) and not isinstance(max_iter, bool) and max_iter >= 0):
        raise ValueError(f"cg: invalid max_iter={max_iter!r}; expected an integer >= 0")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
            raise ValueError(f"cg: invalid {name}={v!r}; expected a finite number >= 0")
    if negative_curvature not in NEGATIVE_CURVATURE:
        raise ValueError(f"cg: invalid negative_curvature={negative_curvature!r}; expected one of {NEGATIVE_CURVATURE}")
    matvec = A if callable(A) and not hasattr(A, "__matmul__") else (lambda v: A @ v)
    if isinstance(A, Tensor) and A.shape != (n, n):
        raise ValueError(f"cg: invalid A of shape {tuple(A.shape)}; expected ({n}, {n}) to match b")

    x = torch.zeros_like(b) if x0 is None else x0.clone()
    if x.shape != b.shape:
        raise ValueError(f"cg: invalid x0 of shape {tuple(x.shape)}; expected {tuple(b.shape)}")
    r = b - matvec(x) if x0 is not None else b.clone()
    p = r.clone()
    rr = r @ r
    threshold = max(rtol * float(torch.linalg.vector_norm(b)), atol)
    k, reason = 0, "max_iter"
    while k < max_iter:
        if math.sqrt(float(rr)) <= threshold:
            reason = "converged"
            break
        Ap = matvec(p)
        pAp = p @ Ap
        if pAp <= 0:
            if negative_curvature == "stop":
                reason = "negative curvature"
                break
            raise ValueError(f"cg: found p^T A p = {float(pAp):.3e} <= 0 at iteration {k}; expected a "
                             f"positive-definite A")
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_next = r @ r
        p = r + (rr_next / rr) * p
        rr = rr_next
        k += 1
        if callback is not None and callback(k, x, r):
            reason = "callback"
            break
    res = math.sqrt(float(rr))
    if reason == "max_iter" and res <= threshold:
        reason = "converged"
    return CGResult(x, k, res, res <= threshold, reason)
