r"""A line search for the strong Wolfe conditions, on a function of one variable.

Along a descent direction :math:`d` from :math:`\theta`, a line search looks at
:math:`\phi(t) = E(\theta + t d)`, with :math:`\phi'(t) = \nabla E(\theta + t d)^\top d` and
:math:`\phi'(0) < 0`, for a step :math:`t > 0` satisfying the strong Wolfe conditions

.. math::
    \phi(t) \le \phi(0) + c_1\, t\, \phi'(0) \quad\text{(sufficient decrease, Armijo)},\qquad
    |\phi'(t)| \le c_2\, |\phi'(0)| \quad\text{(curvature)},

with :math:`0 < c_1 < c_2 < 1`. :func:`strong_wolfe` first grows :math:`t` (doubling) until it brackets
such a step, then shrinks the bracket by cubic interpolation (:func:`zoom`, :func:`cubic_minimizer`).
With a tiny :math:`c_2` the search is (nearly) exact: on a quadratic it finds the minimizer along
:math:`d`.

Example:
    >>> phi = lambda t: ((t - 3.0) ** 2, 2 * (t - 3.0))       # minimum at t = 3
    >>> strong_wolfe(phi, 9.0, -6.0, 1.0, c1=1e-6, c2=1e-3, max_iter=25)   # t = 1, 2, 4, then t = 3
    LineSearchResult(t=3.0, value=0.0, iterations=4, reason='wolfe')

Reference: J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., Algorithms 3.5 and 3.6.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from ..errors import check

Probe = tuple  # (t, phi(t), phi'(t))


class LineSearchResult(NamedTuple):
    """What :func:`strong_wolfe` returns: the step ``t`` (0.0 when no probed step decreased the loss
    enough), ``phi(t)``, the number of evaluations of ``phi``, and why it stopped (``"wolfe"``: both
    conditions hold at ``t``; ``"max_iter"``: out of evaluations, ``t`` is the best sufficient decrease
    seen, possibly 0)."""

    t: float
    value: float
    iterations: int
    reason: str


class _Search:
    """The state of one search: the function, its constants, the evaluations spent and the best
    sufficient-decrease step seen so far."""

    def __init__(self, phi, phi0: float, dphi0: float, c1: float, c2: float, max_iter: int):
        self.phi, self.phi0, self.dphi0 = phi, phi0, dphi0
        self.c1, self.c2, self.max_iter = c1, c2, max_iter
        self.iterations = 0
        self.best = (0.0, phi0)

    def armijo(self, t: float, f: float) -> bool:
        return math.isfinite(f) and f <= self.phi0 + self.c1 * t * self.dphi0

    def curvature(self, dphi: float) -> bool:
        return abs(dphi) <= -self.c2 * self.dphi0

    def left(self) -> bool:
        return self.iterations < self.max_iter

    def probe(self, t: float) -> Probe:
        f, dphi = self.phi(t)
        f, dphi = float(f), float(dphi)
        self.iterations += 1
        if self.armijo(t, f) and f < self.best[1]:
            self.best = (t, f)
        return t, f, dphi

    def result(self, reason: str) -> LineSearchResult:
        return LineSearchResult(self.best[0], self.best[1], self.iterations, reason)


def strong_wolfe(phi: Callable[[float], tuple[float, float]], phi0: float, dphi0: float, t: float, *,
                 c1: float = 1e-4, c2: float = 0.9, max_iter: int = 25) -> LineSearchResult:
    r"""A step :math:`t` satisfying the strong Wolfe conditions for :math:`\phi`, from the trial step ``t``.

    Args:
        phi: ``t -> (phi(t), phi'(t))``.
        phi0, dphi0: :math:`\phi(0)` and :math:`\phi'(0) < 0`.
        t: the first trial step (> 0); it doubles while the loss keeps decreasing steeply.
        c1, c2: the Armijo and curvature constants, :math:`0 < c_1 < c_2 < 1`.
        max_iter: the most evaluations of ``phi``.

    Returns:
        a :class:`LineSearchResult`; its ``t`` is the lowest-loss sufficient-decrease step probed, which
        satisfies both conditions when ``reason == "wolfe"``, and is 0 if no probed step decreased the loss.

    Reference: Nocedal & Wright (2006). Numerical Optimization, Algorithm 3.5.
    """
    check("strong_wolfe", "dphi0", dphi0, math.isfinite(dphi0) and dphi0 < 0, "a number < 0 (a descent direction)")
    check("strong_wolfe", "t", t, math.isfinite(t) and t > 0, "a finite number > 0")
    check("strong_wolfe", "c1", c1, 0 < c1 < 1, "a number in (0, 1)")
    check("strong_wolfe", "c2", c2, c1 < c2 < 1, f"a number in (c1={c1}, 1)")
    check("strong_wolfe", "max_iter", max_iter, isinstance(max_iter, int) and max_iter > 0, "a positive integer")
    search = _Search(phi, phi0, dphi0, c1, c2, max_iter)
    prev = (0.0, phi0, dphi0)
    while search.left():
        cur = search.probe(t)
        if not search.armijo(cur[0], cur[1]) or (prev[0] > 0 and cur[1] >= prev[1]):
            return zoom(search, prev, cur)
        if search.curvature(cur[2]):
            return search.result("wolfe")
        if cur[2] >= 0:
            return zoom(search, cur, prev)
        prev, t = cur, 2.0 * t
    return search.result("max_iter")


def zoom(search: _Search, lo: Probe, hi: Probe) -> LineSearchResult:
    """Shrink the bracket ``[lo, hi]`` (``lo`` satisfies Armijo and has the lower loss) until a probe
    satisfies both conditions (Nocedal & Wright, Algorithm 3.6)."""
    while search.left():
        cur = search.probe(cubic_minimizer(lo, hi))
        if not search.armijo(cur[0], cur[1]) or cur[1] >= lo[1]:
            hi = cur
        else:
            if search.curvature(cur[2]):
                return search.result("wolfe")
            if cur[2] * (hi[0] - lo[0]) >= 0:
                hi = lo
            lo = cur
    return search.result("max_iter")


def cubic_minimizer(a: Probe, b: Probe) -> float:
    """The minimizer of the cubic through (t, f, f') at a and b, kept inside the middle 80% of [a, b].

    Args:
        a, b: ``(t, f(t), f'(t))`` at the two ends of the bracket.

    Example:
        >>> cubic_minimizer((0.0, 0.0, -1.0), (2.0, 0.0, 1.0))   # the parabola t (t - 2) / 2
        1.0

    Reference: Nocedal & Wright (2006). Numerical Optimization, eq. 3.59.
    """
    (ta, fa, da), (tb, fb, db) = a, b
    lo, hi = min(ta, tb), max(ta, tb)
    if not (math.isfinite(fb) and math.isfinite(db)):
        return 0.5 * (ta + tb)
    d1 = da + db - 3 * (fa - fb) / (ta - tb)
    disc = d1 * d1 - da * db
    if disc >= 0:
        d2 = math.copysign(math.sqrt(disc), tb - ta)
        t = tb - (tb - ta) * (db + d2 - d1) / (db - da + 2 * d2) if (db - da + 2 * d2) != 0 else 0.5 * (ta + tb)
    else:
        t = 0.5 * (ta + tb)
    margin = 0.1 * (hi - lo)
    return min(max(t, lo + margin), hi - margin) if math.isfinite(t) else 0.5 * (ta + tb)
