r"""Goodfellow's 1-D linear path between two parameter vectors (e.g. initialization -> solution).

.. math::

    \theta(\alpha) = (1 - \alpha)\,\theta_0 + \alpha\,\theta_1, \qquad J(\alpha) = J(\theta(\alpha)),

evaluated for :math:`\alpha` beyond :math:`[0, 1]` too (default :math:`[-0.5, 1.5]`), so the plot shows the
barrier-free (or not) descent from the start to the solution and what lies past both ends.

Slide: I. Goodfellow, deck 004, "A special 1-D subspace" and "Maxout / MNIST experiment".
Reference: I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015), "Qualitatively characterizing neural network
optimization problems", ICLR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import check, check_shape
from ._vector import as_vector


@dataclass(frozen=True)
class LinePath:
    """``losses[i]`` is :math:`J((1-\\alpha_i)\\theta_0 + \\alpha_i\\theta_1)`."""

    alphas: np.ndarray
    losses: np.ndarray


def linear_path(loss_at: Callable, theta0, theta1, alphas=None) -> LinePath:
    r"""The loss along :math:`\theta(\alpha) = (1-\alpha)\theta_0 + \alpha\theta_1`.

    Args:
        loss_at: ``theta -> float`` (e.g. :func:`~optlab.landscape.model_loss_function`, or a surface).
        theta0, theta1: the end points (flat vectors of equal length).
        alphas: the path coordinates; default 51 points on :math:`[-0.5, 1.5]`.
    """
    a = as_vector("linear_path", "theta0", theta0)
    b = as_vector("linear_path", "theta1", theta1, a.numel())
    alphas = np.linspace(-0.5, 1.5, 51) if alphas is None else _coordinates("linear_path", "alphas", alphas)
    losses = np.array([float(loss_at((1 - al) * a + al * b)) for al in alphas])
    return LinePath(alphas, losses)


def _coordinates(owner: str, name: str, values) -> np.ndarray:
    """A non-empty 1-D array of finite path or grid coordinates."""
    v = np.asarray(values, dtype=float)
    check_shape(owner, name, v.shape, v.ndim == 1 and v.size > 0, "(points,), a non-empty 1-D list")
    check(owner, name, v.tolist(), bool(np.all(np.isfinite(v))), "finite numbers")
    return v
