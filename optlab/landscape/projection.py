r"""Where a trajectory goes: Goodfellow's projection / residual view and coordinates in a plane.

For the line from :math:`\theta_0` (initialization) to :math:`\theta_1` (solution), with
:math:`u = (\theta_1 - \theta_0)/\|\theta_1 - \theta_0\|`, each point :math:`\theta_k` of a trajectory splits into

.. math::

    p_k = u^\top(\theta_k - \theta_0) \quad\text{(projection)}, \qquad
    r_k = \|\theta_k - \theta_0 - p_k u\| \quad\text{(residual)},

so a 3-D plot of :math:`(p_k, r_k, J(\theta_k))` shows how far SGD strays from the straight path.

Slide: I. Goodfellow, deck 004, "3-D Visualization" (axes "Projection" and "Residual").
Reference: I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015), "Qualitatively characterizing neural network
optimization problems", ICLR.
"""

from __future__ import annotations

import numpy as np

from ..errors import check_data, check_type
from ._vector import as_rows, as_vector
from .plane import Plane


def projection_residual(thetas, theta0, theta1) -> tuple[np.ndarray, np.ndarray]:
    r"""``(p, r)``: projection on the line :math:`\theta_0 \to \theta_1` (in parameter units, from :math:`\theta_0`)
    and residual norm."""
    T = as_rows("projection_residual", "thetas", thetas)
    a = as_vector("projection_residual", "theta0", theta0, T.shape[1]).numpy()
    b = as_vector("projection_residual", "theta1", theta1, T.shape[1]).numpy()
    u = b - a
    check_data("projection_residual", "theta1", np.linalg.norm(u) > 0, "it coincides with theta0 (no line to "
               "project on)", "two distinct points")
    u = u / np.linalg.norm(u)
    D = T - a
    p = D @ u
    r = np.linalg.norm(D - p[:, None] * u[None, :], axis=1)
    return p, r


def project_to_plane(thetas, plane: Plane) -> tuple[np.ndarray, np.ndarray]:
    r"""``(xy, residual)``: least-squares coordinates of each :math:`\theta_k` in ``plane`` (shape ``(k, 2)``) and
    the distance :math:`\|\theta_k - \theta_c - x d_1 - y d_2\|` to the plane."""
    check_type("project_to_plane", "plane", plane, isinstance(plane, Plane),
               "a Plane (from plane_through or plane_along)")
    B = np.stack([plane.d1.numpy(), plane.d2.numpy()], axis=1)
    o = plane.origin.numpy()
    T = as_rows("project_to_plane", "thetas", thetas, B.shape[0])
    D = T - o
    xy = np.linalg.lstsq(B, D.T, rcond=None)[0].T
    return xy, np.linalg.norm(D - xy @ B.T, axis=1)
