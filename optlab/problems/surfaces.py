r"""Classic 2-D test surfaces, a saddle, a monkey saddle and a saddle with a floor (landscape features: Zemel lecture 4; Goodfellow 2015).

Each surface is a plain function of ``theta`` with shape ``(..., 2)`` written with arithmetic only, so it
evaluates numpy grids (contours, widgets) and torch tensors (autograd gradient/Hessian). The builders
return a :class:`~optlab.problems.base.Surface` with a starting point, the known minimisers and a plot
window. :data:`SURFACES` lists them by name.

References:
    H. H. Rosenbrock (1960), "An automatic method for finding the greatest or least value of a function".
    E. M. L. Beale (1958), "On an iterative method for finding a local minimum of a function of more than
    one variable". D. M. Himmelblau (1972), "Applied Nonlinear Programming".
"""

from __future__ import annotations

import numpy as np

from ..errors import positive
from .base import Surface


def _xy(theta):
    return theta[..., 0], theta[..., 1]


def _check_positive(owner: str, **kw) -> None:
    for name, value in kw.items():
        positive(owner, name, value)


def rosenbrock(theta, a: float = 1.0, b: float = 100.0):
    r"""Rosenbrock's banana valley :math:`f(x, y) = (a - x)^2 + b\,(y - x^2)^2`; minimum 0 at :math:`(a, a^2)`."""
    x, y = _xy(theta)
    return (a - x) ** 2 + b * (y - x ** 2) ** 2


def beale(theta):
    r"""Beale's function :math:`(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2`; minimum 0 at
    :math:`(3, 0.5)`."""
    x, y = _xy(theta)
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


def himmelblau(theta):
    r"""Himmelblau's function :math:`(x^2 + y - 11)^2 + (x + y^2 - 7)^2`: four minima of value 0 (one at
    :math:`(3, 2)`)."""
    x, y = _xy(theta)
    return (x ** 2 + y - 11) ** 2 + (x + y ** 2 - 7) ** 2


def saddle(theta, a: float = 1.0, b: float = 1.0):
    r"""The 2-D saddle :math:`f(x, y) = \tfrac12(a x^2 - b y^2)`: Hessian :math:`\mathrm{diag}(a, -b)` everywhere."""
    x, y = _xy(theta)
    return 0.5 * (a * x ** 2 - b * y ** 2)


def monkey_saddle(theta):
    r"""The monkey saddle :math:`f(x, y) = x^3 - 3xy^2`: gradient and Hessian both vanish at the origin
    (a degenerate critical point no second-order test classifies)."""
    x, y = _xy(theta)
    return x ** 3 - 3 * x * y ** 2


def quartic_saddle(theta):
    r"""The saddle with a floor :math:`f(x, y) = \tfrac12 x^2 - \tfrac12 y^2 + \tfrac14 y^4`: a saddle at the origin
    (Hessian :math:`\mathrm{diag}(1, -1)`) between the two minima :math:`(0, \pm1)` of value :math:`-\tfrac14`."""
    x, y = _xy(theta)
    return 0.5 * x ** 2 - 0.5 * y ** 2 + 0.25 * y ** 4


#: The four minimisers of Himmelblau's function (the first exact, the others to 6 decimals).
HIMMELBLAU_MINIMA = np.array([[3.0, 2.0], [-2.805118, 3.131312], [-3.779310, -3.283186], [3.584428, -1.848126]])


def rosenbrock_surface(a: float = 1.0, b: float = 100.0) -> Surface:
    """Rosenbrock's valley as a :class:`Surface`, started at the classic (-1.2, 1).

    Slide: Zemel lecture 4, "narrow ravines" (a curved ravine; not on the slides' data).
    """
    _check_positive("rosenbrock_surface", a=a, b=b)
    return Surface("rosenbrock", lambda t: rosenbrock(t, a, b), 2, theta0=[-1.2, 1.0], minima=[[a, a * a]],
                   bounds=((-2.0, 2.0), (-1.0, 3.0)), source="Zemel lecture 4: narrow ravines (classic test function)")


def beale_surface() -> Surface:
    """Beale's function as a :class:`Surface` (flat plateaux and sharp ridges). Slide: Zemel lecture 4, "plateaux"."""
    return Surface("beale", beale, 2, theta0=[1.0, 1.5], minima=[[3.0, 0.5]], bounds=((-4.5, 4.5), (-4.5, 4.5)),
                   source="Zemel lecture 4: plateaux (classic test function)")


def himmelblau_surface() -> Surface:
    """Himmelblau's function as a :class:`Surface` (four equal minima). Slide: Zemel lecture 4, "local minima"."""
    return Surface("himmelblau", himmelblau, 2, theta0=[0.0, 0.0], minima=HIMMELBLAU_MINIMA,
                   bounds=((-5.0, 5.0), (-5.0, 5.0)), source="Zemel lecture 4: local minima (classic test function)")


def saddle_surface(a: float = 1.0, b: float = 1.0) -> Surface:
    r"""The saddle :math:`\tfrac12(ax^2 - by^2)` started just off its stable manifold, at (1, 1e-3).

    Slides: Zemel lecture 4 "saddle points"; Goodfellow 2015 "Gradient descent flees saddle points",
    "Newton's method's failure mode".
    """
    _check_positive("saddle_surface", a=a, b=b)
    return Surface("saddle", lambda t: saddle(t, a, b), 2, theta0=[1.0, 1e-3], minima=np.zeros((0, 2)),
                   bounds=((-1.5, 1.5), (-1.5, 1.5)), source="Zemel lecture 4 / Goodfellow 2015: saddle points")


def monkey_saddle_surface() -> Surface:
    """The monkey saddle :math:`x^3 - 3xy^2` as a :class:`Surface` (no minimum). Slide: Goodfellow 2015,
    "Some functions lack critical points" / degenerate critical points."""
    return Surface("monkey saddle", monkey_saddle, 2, theta0=[0.5, 0.1], minima=np.zeros((0, 2)),
                   bounds=((-1.5, 1.5), (-1.5, 1.5)), source="Goodfellow 2015: critical points")


def quartic_saddle_surface() -> Surface:
    r"""The saddle with a floor :math:`\tfrac12 x^2 - \tfrac12 y^2 + \tfrac14 y^4`, started just off its stable
    manifold at (1, 1e-3): gradient descent leaves the saddle and settles in a minimum (0, +-1).

    Slide: Goodfellow 2015, "Gradient descent flees saddle points" (a saddle whose escape ends in a minimum).
    """
    return Surface("quartic saddle", quartic_saddle, 2, theta0=[1.0, 1e-3], minima=[[0.0, 1.0], [0.0, -1.0]],
                   bounds=((-1.5, 1.5), (-1.5, 1.5)), source="Goodfellow 2015: gradient descent flees saddle points")


#: name -> builder of each classic surface
SURFACES = {
    "rosenbrock": rosenbrock_surface,
    "beale": beale_surface,
    "himmelblau": himmelblau_surface,
    "saddle": saddle_surface,
    "monkey_saddle": monkey_saddle_surface,
    "quartic_saddle": quartic_saddle_surface,
}
