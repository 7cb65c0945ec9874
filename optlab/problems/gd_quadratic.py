r"""Gradient descent on a convex quadratic, in closed form (Zemel, COMS 4995 lecture 4).

For :math:`J(\theta) = \tfrac12 \theta^\top A \theta` with :math:`A = Q \Lambda Q^\top`, gradient descent
:math:`\theta_{k+1} = (I - \alpha A)\theta_k` gives :math:`\theta_k = Q (I - \alpha\Lambda)^k Q^\top \theta_0`:
in the eigenbasis each coordinate is multiplied by :math:`(1 - \alpha\lambda_i)^k`. The regimes:

==========================  =============================  ==================================
:math:`\alpha\lambda_i`      factor :math:`1-\alpha\lambda_i`  behaviour
==========================  =============================  ==================================
:math:`< 0` (negative curv.)  :math:`> 1`                     growth (moves away, no oscillation)
:math:`= 0`                   :math:`1`                       flat: no change
:math:`(0, 1)`                :math:`(0, 1)`                  monotone decay
:math:`= 1`                   :math:`0`                       one-step convergence
:math:`(1, 2)`                :math:`(-1, 0)`                 oscillating decay
:math:`= 2`                   :math:`-1`                      oscillation without decay
:math:`> 2`                   :math:`< -1`                    divergence (oscillating)
==========================  =============================  ==================================

Hence :math:`\alpha < 2/\lambda_{\max}` is needed for stability; the slowest direction then decays at
rate :math:`|1 - \alpha\lambda_{\min}|`, and the best constant step
:math:`\alpha^* = 2/(\lambda_{\min} + \lambda_{\max})` gives the rate :math:`(\kappa - 1)/(\kappa + 1)` with the
condition number :math:`\kappa = \lambda_{\max}/\lambda_{\min}`.

The slide lists the boundaries as :math:`0 < \alpha\lambda \le 1` (decay) and :math:`1 < \alpha\lambda \le 2`
(oscillation); here the two boundary points get their own labels since their behaviour differs
(exact convergence in one step; a constant-amplitude oscillation).

Reference: R. Zemel, COMS 4995 lecture 4, "Ill-conditioned curvature: gradient descent dynamics";
Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", section 5.
"""

from __future__ import annotations

import numpy as np

from ..errors import check, check_data, check_shape, non_negative, non_negative_int, value_error

GROWTH = "growth (negative curvature)"
FLAT = "flat: no change"
MONOTONE = "monotone decay"
ONE_STEP = "one-step convergence"
OSCILLATING = "oscillating decay"
NO_DECAY = "oscillation without decay"
DIVERGENCE = "divergence"

#: every regime label :func:`gd_regime` can return, in order of growing alpha * lambda
REGIMES = (GROWTH, FLAT, MONOTONE, ONE_STEP, OSCILLATING, NO_DECAY, DIVERGENCE)


def as_lambdas(lambdas, owner: str = "as_lambdas") -> np.ndarray:
    """``lambdas`` as a non-empty 1-D float array of finite eigenvalues (a scalar is one eigenvalue)."""
    try:
        lam = np.atleast_1d(np.asarray(lambdas, dtype=float))
    except (TypeError, ValueError):
        raise value_error(owner, "lambdas", lambdas, "a non-empty list of finite eigenvalues") from None
    check_shape(owner, "lambdas", lam.shape, lam.ndim == 1 and lam.size > 0, "(n,), a non-empty list of eigenvalues")
    check(owner, "lambdas", lam.tolist(), bool(np.all(np.isfinite(lam))), "finite eigenvalues")
    return lam


def as_alpha(alpha, owner: str = "as_alpha", name: str = "alpha") -> float:
    """The learning rate ``alpha`` as a float, checked to be a finite number >= 0."""
    non_negative(owner, name, alpha)
    return float(alpha)


def gd_factors(lambdas, alpha: float, k: int) -> np.ndarray:
    r"""The factors :math:`(1 - \alpha\lambda_i)^j` for :math:`j = 0..k`, shape ``(len(lambdas), k + 1)``.

    Row ``i`` is how gradient descent scales the ``i``-th eigen-coordinate of :math:`\theta_0 - \theta^*`.

    Example:
        >>> gd_factors([1.0, 3.0], alpha=0.5, k=2)
        array([[ 1.  ,  0.5 ,  0.25],
               [ 1.  , -0.5 ,  0.25]])
    """
    lam = as_lambdas(lambdas, "gd_factors")
    alpha = as_alpha(alpha, "gd_factors")
    non_negative_int("gd_factors", "k", k)
    return (1.0 - alpha * lam)[:, None] ** np.arange(k + 1)[None, :]


def gd_regime(alpha: float, lam: float, *, rtol: float = 1e-9) -> str:
    r"""The regime of one eigen-direction under gradient descent: one of :data:`REGIMES`.

    ``alpha * lam`` is compared with 0, 1 and 2 up to the relative tolerance ``rtol`` (so a slider set to
    ``1/lam`` up to rounding still reads "one-step convergence").
    """
    alpha = as_alpha(alpha, "gd_regime")
    lam = float(as_lambdas([lam], "gd_regime")[0])
    non_negative("gd_regime", "rtol", rtol)
    x = alpha * lam
    if np.isclose(x, 0.0, rtol=0.0, atol=rtol):
        return FLAT
    if x < 0:
        return GROWTH
    if np.isclose(x, 1.0, rtol=rtol, atol=0.0):
        return ONE_STEP
    if np.isclose(x, 2.0, rtol=rtol, atol=0.0):
        return NO_DECAY
    if x < 1:
        return MONOTONE
    return OSCILLATING if x < 2 else DIVERGENCE


def gd_regimes(lambdas, alpha: float) -> list[str]:
    """:func:`gd_regime` for each eigenvalue in ``lambdas``."""
    return [gd_regime(alpha, lam) for lam in as_lambdas(lambdas, "gd_regimes")]


def gd_rate(lambdas, alpha: float) -> float:
    r"""The worst-direction contraction :math:`\max_i |1 - \alpha\lambda_i|` (< 1 iff GD converges)."""
    return float(np.max(np.abs(1.0 - as_alpha(alpha, "gd_rate") * as_lambdas(lambdas, "gd_rate"))))


def best_alpha(lambdas) -> float:
    r"""The constant step minimising :func:`gd_rate`: :math:`2/(\lambda_{\min} + \lambda_{\max})` (needs all > 0)."""
    lam = as_lambdas(lambdas, "best_alpha")
    check_data("best_alpha", "lambdas", bool(np.all(lam > 0)), f"{lam.tolist()} are not all > 0",
               "positive eigenvalues (a convex quadratic)")
    return float(2.0 / (lam.min() + lam.max()))


def condition_number_of(lambdas) -> float | None:
    r""":math:`\kappa = \lambda_{\max}/\lambda_{\min}` of a convex quadratic; ``None`` unless every eigenvalue is > 0.

    Example:
        >>> condition_number_of([0.5, 2.0]), condition_number_of([0.0, 2.0])
        (4.0, None)
    """
    lam = as_lambdas(lambdas, "condition_number_of")
    return float(lam.max() / lam.min()) if lam.min() > 0 else None


def predicted_steps(rate: float, factor: float = 1e-6) -> int | None:
    r"""Steps until the worst direction has shrunk by ``factor``: the first :math:`k` with
    :math:`\rho^k \le` ``factor``, i.e. :math:`\lceil \ln(\text{factor}) / \ln\rho \rceil`; ``None`` if
    :math:`\rho \ge 1` (never), 1 if :math:`\rho = 0`.

    Example:
        >>> predicted_steps(0.5, 1e-3), predicted_steps(0.0), predicted_steps(1.0)
        (10, 1, None)
    """
    non_negative("predicted_steps", "rate", rate)
    check("predicted_steps", "factor", factor, 0 < factor < 1, "a number in (0, 1)")
    if rate >= 1:
        return None
    if rate == 0:
        return 1
    return max(1, int(np.ceil(np.log(factor) / np.log(rate) - 1e-12)))


def measured_steps(lambdas, alpha: float, factor: float = 1e-6, coords0=None, max_steps: int = 10**9) -> int | None:
    r"""The first step :math:`k` at which gradient descent's error has shrunk by ``factor``:
    :math:`\lVert\theta_k - \theta^*\rVert \le \text{factor}\,\lVert\theta_0 - \theta^*\rVert`.

    The run starts from ``coords0`` (the error's coordinates in the eigenbasis; default 1 in every
    direction) and its iterates are the factors :math:`(1-\alpha\lambda_i)^k` times ``coords0`` -- the GD
    trajectory itself, found by bisection over ``k`` (so a million steps cost nothing). ``None`` when the
    error never shrinks that much (a direction with :math:`|1-\alpha\lambda_i| \ge 1`) or not within
    ``max_steps``. Unlike :func:`predicted_steps` it counts every direction, not just the slowest.

    Example:
        >>> measured_steps([1.0, 3.0], alpha=0.5, factor=1e-3)
        10
    """
    lam = as_lambdas(lambdas, "measured_steps")
    alpha = as_alpha(alpha, "measured_steps")
    check("measured_steps", "factor", factor, 0 < factor < 1, "a number in (0, 1)")
    c2 = np.ones_like(lam) if coords0 is None else np.asarray(coords0, dtype=float) ** 2
    check_shape("measured_steps", "coords0", c2.shape, c2.shape == lam.shape, f"{lam.shape}, one per eigenvalue")
    r2 = (1.0 - alpha * lam) ** 2
    target = factor ** 2 * c2.sum()

    def error2(k: int) -> float:
        with np.errstate(all="ignore"):
            return float((c2 * r2 ** k).sum())

    if np.any((r2 >= 1) & (c2 > 0)) or not np.isfinite(target):
        return None
    hi = 1
    while error2(hi) > target:
        hi *= 2
        if hi > 2 * max_steps:
            return None
    lo = hi // 2  # error2(lo) > target (or lo == 0), error2(hi) <= target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if error2(mid) > target else (lo, mid)
    return hi if hi <= max_steps else None
