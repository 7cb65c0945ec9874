r"""Directional curvature and the optimal gradient step (Goodfellow 2015, "How much does a gradient step improve?").

With :math:`H = Q\Lambda Q^\top`, the second derivative along a unit direction :math:`d` is

.. math::

    d^\top H d = \sum_i \lambda_i \cos^2\angle(v_i, d)

and the second-order Taylor series predicts, for a step :math:`\epsilon` along :math:`-g`,

.. math::

    J(\theta - \epsilon g) \approx J(\theta) - \epsilon g^\top g + \tfrac12 \epsilon^2 g^\top H g

an improvement :math:`\epsilon g^\top g - \tfrac12\epsilon^2 g^\top H g`, largest at
:math:`\epsilon^* = g^\top g / g^\top H g` when :math:`g^\top H g > 0` (when :math:`g^\top H g \le 0`
the series predicts that every step improves, and :math:`\epsilon^* = \infty`).

Reference: Goodfellow, I. (2015). Tutorial on neural network optimization problems. Deep Learning
Summer School, Montreal.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import check_data, finite
from ._data import check_vector
from ._operator import as_operator


def _operator_and_vector(owner: str, x, v, name: str):
    """``x`` as an operator and ``v`` as a flat vector of its size and dtype."""
    op = as_operator(x, "x", owner)
    like = torch.empty(0, dtype=op.dtype, device=op.device)
    return op, check_vector(v, op.shape[0], like, name, owner)


def directional_curvature(x, d) -> float:
    r"""Second derivative along the direction ``d``: :math:`d^\top H d / d^\top d` (:math:`= d^\top H d` for unit ``d``).

    Args:
        x: the Hessian (matrix or curvature operator).
        d: a non-zero direction (normalized here).

    Reference: Goodfellow, I. (2015). Tutorial on neural network optimization problems.
    """
    op, d = _operator_and_vector("directional_curvature", x, d, "d")
    dd = float(d @ d)
    check_data("directional_curvature", "d", dd != 0, "it is the zero vector", "a non-zero direction")
    with torch.no_grad():
        return float(d @ (op @ d)) / dd


class TaylorStep(NamedTuple):
    """``epsilon_star`` (the optimal step, ``inf`` if :math:`g^\\top Hg \\le 0`), ``gHg``, ``gg``, and the
    predicted ``improvement`` at ``epsilon_star`` (``inf`` when unbounded)."""

    epsilon_star: float
    gHg: float
    gg: float
    improvement: float


def taylor_improvement(x, g, epsilon: float) -> float:
    r"""Predicted decrease :math:`J(\theta) - J(\theta-\epsilon g) \approx \epsilon g^\top g - \tfrac12\epsilon^2 g^\top H g`.

    Reference: Goodfellow, I. (2015). Tutorial on neural network optimization problems.
    """
    finite("taylor_improvement", "epsilon", epsilon)
    op, g = _operator_and_vector("taylor_improvement", x, g, "g")
    with torch.no_grad():
        return float(epsilon * (g @ g) - 0.5 * epsilon ** 2 * (g @ (op @ g)))


def optimal_step(x, g) -> TaylorStep:
    r"""Goodfellow's optimal step along :math:`-g`: :math:`\epsilon^* = g^\top g / g^\top H g`, with its predicted improvement
    :math:`\tfrac12 (g^\top g)^2 / g^\top H g`.

    Example:
        >>> optimal_step(torch.diag(torch.tensor([2.0, 1.0])), torch.tensor([1.0, 0.0])).epsilon_star
        0.5

    Reference: Goodfellow, I. (2015). Tutorial on neural network optimization problems.
    """
    op, g = _operator_and_vector("optimal_step", x, g, "g")
    with torch.no_grad():
        gg, gHg = float(g @ g), float(g @ (op @ g))
    check_data("optimal_step", "g", gg != 0, "it is the zero vector (a critical point: no gradient step exists)",
               "a non-zero gradient")
    if gHg <= 0:
        return TaylorStep(float("inf"), gHg, gg, float("inf"))
    eps = gg / gHg
    return TaylorStep(eps, gHg, gg, eps * gg - 0.5 * eps ** 2 * gHg)
