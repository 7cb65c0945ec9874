r"""2-D slices of the loss: the plane through three points, or along two directions.

.. math::

    J(x, y) = J(\theta_c + x\,d_1 + y\,d_2)

:func:`plane_through` builds an orthonormal frame from three points (e.g. initialization, solution
and a point of the trajectory, or three solutions): :math:`d_1 \propto \theta_1 - \theta_0`,
:math:`d_2` the Gram-Schmidt remainder of :math:`\theta_2 - \theta_0`, with the three points' coordinates
so they can be marked on the contour plot. :func:`plane_grid` evaluates the loss on a grid of any plane
(for random filter-normalized or Hessian directions see :mod:`optlab.landscape.directions`).

Slide: I. Goodfellow, deck 004, "2D Subspace Visualization".
References: I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015), "Qualitatively characterizing neural network
optimization problems", ICLR; H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein (2018), "Visualizing the
loss landscape of neural nets", NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import check_data, check_type
from ._vector import as_vector
from .linear_path import _coordinates


@dataclass(frozen=True)
class Plane:
    """A plane :math:`\\theta_c + x d_1 + y d_2` and the coordinates ``points`` (k, 2) of the points that defined it."""

    origin: torch.Tensor
    d1: torch.Tensor
    d2: torch.Tensor
    points: np.ndarray


@dataclass(frozen=True)
class PlaneSlice:
    """``Z[j, i] = J(origin + xs[i] d1 + ys[j] d2)`` (the layout of ``contour(xs, ys, Z)``)."""

    xs: np.ndarray
    ys: np.ndarray
    Z: np.ndarray
    plane: Plane


def plane_through(theta0, theta1, theta2) -> Plane:
    r"""The plane through three points, origin :math:`\theta_0`, orthonormal :math:`d_1, d_2` (Gram-Schmidt).

    Raises:
        ValueError: the three points are (nearly) collinear.
    """
    a = as_vector("plane_through", "theta0", theta0)
    b, c = (as_vector("plane_through", name, t, a.numel()) for name, t in (("theta1", theta1), ("theta2", theta2)))
    u, v = b - a, c - a
    check_data("plane_through", "theta1", float(u.norm()) > 0, "it coincides with theta0 (no direction d1)",
               "three distinct points")
    d1 = u / u.norm()
    w = v - (d1 @ v) * d1
    check_data("plane_through", "theta2", float(w.norm()) > 1e-10 * max(float(v.norm()), 1e-300),
               "the three points are collinear (they do not define a plane)", "three points not on one line")
    d2 = w / w.norm()
    pts = np.array([[0.0, 0.0], [float(d1 @ u), 0.0], [float(d1 @ v), float(d2 @ v)]])
    return Plane(a, d1, d2, pts)


def plane_along(origin, d1, d2) -> Plane:
    """The plane through ``origin`` along the directions ``d1``, ``d2`` as given (not orthonormalised:
    filter-normalized directions keep their per-filter scale)."""
    o = as_vector("plane_along", "origin", origin)
    u, v = (as_vector("plane_along", name, d, o.numel()) for name, d in (("d1", d1), ("d2", d2)))
    return Plane(o, u, v, np.zeros((1, 2)))


def plane_grid(loss_at: Callable, plane: Plane, xs=None, ys=None) -> PlaneSlice:
    r"""The loss on the grid :math:`\theta_c + x_i d_1 + y_j d_2` (default 21 x 21 over the points' extent, padded)."""
    check_type("plane_grid", "plane", plane, isinstance(plane, Plane), "a Plane (from plane_through or plane_along)")
    pts = plane.points
    lo, hi = pts.min(0), pts.max(0)
    pad = np.maximum(0.25 * (hi - lo), 0.5)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], 21) if xs is None else _coordinates("plane_grid", "xs", xs)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], 21) if ys is None else _coordinates("plane_grid", "ys", ys)
    Z = np.array([[float(loss_at(plane.origin + x * plane.d1 + y * plane.d2)) for x in xs] for y in ys])
    return PlaneSlice(xs, ys, Z, plane)
