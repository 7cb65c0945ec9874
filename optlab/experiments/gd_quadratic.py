r"""Lecture 01, gradient descent on a quadratic: what a run looks like in the Hessian's eigenbasis.

The lecture runs real optimizers with :func:`optlab.trajectory.run`; these functions read the recorded
trajectories the way the slides do:

* :func:`eigen_coordinates`: :math:`c_k = Q^\top(\theta_k - \theta^*)`, the error along each eigenvector
  (GD multiplies coordinate :math:`i` by :math:`1 - \alpha\lambda_i` per step: Zemel, lecture 4);
* :func:`zigzag`: the ravine picture -- how often the stiff coordinate changes sign (the bouncing) and
  how much of the flat coordinate is left (the crawl);
* :func:`contour_slope`: the gradient is perpendicular to the contours -- moving a small
  :math:`\varepsilon` along the direction perpendicular to :math:`\nabla f` changes :math:`f` only at
  second order;
* :func:`local_quadratic`: the quadratic model :math:`\tfrac12(\theta-\theta^*)^\top H(\theta-\theta^*)` of a
  surface at a minimum, on which the same analysis describes GD near that minimum.

References:
    R. Zemel, COMS 4995 lecture 4 ("Ill-conditioned curvature", "gradient descent dynamics").
    Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", section 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import check, check_shape
from ..problems.base import Surface
from ..problems.quadratic import Quadratic


def eigen_coordinates(thetas, Q, theta_star) -> np.ndarray:
    r""":math:`c_k = Q^\top(\theta_k - \theta^*)` for every row :math:`\theta_k` of ``thetas`` (shape ``(K, n)``).

    Example:
        >>> eigen_coordinates(np.array([[1.0, 2.0]]), np.eye(2), np.array([1.0, 0.0]))
        array([[0., 2.]])
    """
    thetas, Q = np.atleast_2d(np.asarray(thetas, float)), np.asarray(Q, float)
    check_shape("eigen_coordinates", "thetas", thetas.shape, thetas.shape[1] == Q.shape[0],
                f"(K, {Q.shape[0]}) to match Q")
    return (thetas - np.asarray(theta_star, float)) @ Q


@dataclass(frozen=True)
class Zigzag:
    """GD across a ravine, read in the eigenbasis (stiff = largest eigenvalue, flat = smallest)."""

    coords: np.ndarray  #: eigen coordinates c_k, shape (K + 1, n), columns in the order of the eigenvalues
    sign_changes_stiff: int  #: how many steps flipped the sign of the stiff coordinate
    sign_changes_flat: int  #: the same for the flat coordinate
    stiff_left: float  #: |c_K| / |c_0| along the stiff direction
    flat_left: float  #: |c_K| / |c_0| along the flat direction


def zigzag(quadratic: Quadratic, thetas) -> Zigzag:
    r"""Read a trajectory on ``quadratic`` as the slides' ravine: bounces across, crawls along.

    Example:
        >>> q = Quadratic([1.0, 10.0])
        >>> z = zigzag(q, q.gd_iterates(0.19, 10))   # alpha*lambda = 1.9 and 0.19
        >>> z.sign_changes_stiff, z.sign_changes_flat
        (10, 0)
    """
    check("zigzag", "quadratic", type(quadratic).__name__, isinstance(quadratic, Quadratic), "a Quadratic")
    c = eigen_coordinates(thetas, quadratic.Q, quadratic.theta_star)
    order = np.argsort(quadratic.lambdas)
    flat, stiff = order[0], order[-1]

    def flips(x):
        s = np.sign(x)
        return int(np.sum(s[1:] * s[:-1] < 0))

    def left(x):
        return float(abs(x[-1]) / abs(x[0])) if x[0] != 0 else float("nan")

    return Zigzag(c, flips(c[:, stiff]), flips(c[:, flat]), left(c[:, stiff]), left(c[:, flat]))


def contour_slope(surface: Surface, points, eps: float = 1e-4) -> np.ndarray:
    r"""For each point: :math:`|f(\theta + \varepsilon t) - f(\theta)| / (\varepsilon\|\nabla f(\theta)\|)` with
    :math:`t \perp \nabla f` a unit vector (2-D surfaces).

    Along the gradient this ratio would be about 1; along the contour (:math:`t \perp \nabla f`) it is
    :math:`O(\varepsilon)`: the gradient is perpendicular to the contour line through :math:`\theta`.

    Example:
        >>> q = Quadratic([1.0, 25.0])
        >>> bool(contour_slope(q, [[1.0, 1.0]], eps=1e-5)[0] < 1e-3)
        True
    """
    check("contour_slope", "surface.n", surface.n, surface.n == 2, "a 2-D surface")
    points = np.atleast_2d(np.asarray(points, float))
    out = []
    for p in points:
        g = surface.grad(p)
        t = np.array([-g[1], g[0]]) / np.linalg.norm(g)
        out.append(abs(float(surface(p + eps * t)) - float(surface(p))) / (eps * np.linalg.norm(g)))
    return np.array(out)


def local_quadratic(surface: Surface, theta_star) -> Quadratic:
    r"""The quadratic model :math:`\tfrac12(\theta-\theta^*)^\top H(\theta-\theta^*)` of ``surface`` at the
    minimum ``theta_star`` (:math:`H` its Hessian there), as a :class:`~optlab.problems.Quadratic`.

    Example:
        >>> from optlab.problems import rosenbrock_surface
        >>> q = local_quadratic(rosenbrock_surface(), [1.0, 1.0])
        >>> np.round(q.A)
        array([[ 802., -400.],
               [-400.,  200.]])
    """
    theta_star = np.asarray(theta_star, float)
    H = surface.hessian(theta_star)
    lam, Q = np.linalg.eigh(0.5 * (H + H.T))
    return Quadratic(lam, Q=Q, theta_star=theta_star)
