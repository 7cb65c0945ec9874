r"""Quadratics with chosen eigenvalues and rotation: ravines of any condition number (Zemel, lecture 4).

.. math::

    f(\theta) = \tfrac12 (\theta - \theta^*)^\top A (\theta - \theta^*), \qquad A = Q\,\mathrm{diag}(\lambda)\,Q^\top,
    \qquad \nabla f = A(\theta - \theta^*), \qquad \nabla^2 f = A.

Gradient descent :math:`\theta_{k+1} = \theta_k - \alpha\nabla f(\theta_k)` has the closed form

.. math::

    \theta_k = \theta^* + Q\,\mathrm{diag}\big((1 - \alpha\lambda_i)^k\big)\,Q^\top(\theta_0 - \theta^*),

whose factors come from :func:`optlab.problems.gd_quadratic.gd_factors`. The condition number is
:math:`\kappa = \lambda_{\max}/\lambda_{\min}`: a long narrow ravine when it is large.

Slide: R. Zemel, COMS 4995 lecture 4, "Ill-conditioned curvature: gradient descent dynamics"
(:math:`\mathcal{J}(\theta) = \tfrac12\theta^\top A\theta`, "invariant to translation").
Reference: Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", section 5.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check, check_data, check_shape, finite, is_integer, is_number, positive
from .base import Surface, _check_theta
from .gd_quadratic import as_lambdas, gd_factors


def rotation_2d(angle: float) -> np.ndarray:
    r"""The 2-D rotation :math:`Q = \begin{pmatrix}\cos\phi & -\sin\phi\\ \sin\phi & \cos\phi\end{pmatrix}` (angle
    in radians)."""
    finite("rotation_2d", "angle", angle)
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def random_rotation(n: int, seed: int = 0) -> np.ndarray:
    """A random orthogonal ``n x n`` matrix (QR of a seeded Gaussian matrix, signs fixed; Haar distributed).

    Reference: F. Mezzadri (2007), "How to generate random matrices from the classical compact groups".
    """
    check("random_rotation", "n", n, is_integer(n) and n > 0, "a positive integer")
    Z = np.random.default_rng(seed).standard_normal((n, n))
    Q, R = np.linalg.qr(Z)
    return Q * np.sign(np.diag(R))[None, :]


def quadratic_matrix(lambdas, Q=None) -> np.ndarray:
    r""":math:`A = Q\,\mathrm{diag}(\lambda)\,Q^\top` (``Q`` orthogonal, default the identity)."""
    lam = as_lambdas(lambdas, "quadratic_matrix")
    Q = np.eye(lam.size) if Q is None else _check_orthogonal(Q, lam.size, "quadratic_matrix")
    return (Q * lam[None, :]) @ Q.T


def _check_orthogonal(Q, n: int, owner: str) -> np.ndarray:
    Q = np.asarray(Q, dtype=float)
    check_shape(owner, "Q", Q.shape, Q.shape == (n, n), f"({n}, {n}) to match the {n} eigenvalues")
    check_data(owner, "Q", bool(np.allclose(Q.T @ Q, np.eye(n), atol=1e-8)), "Q'Q is not the identity",
               "an orthogonal matrix, whose columns are the eigenvectors of A")
    return Q


def _point(owner: str, name: str, theta, n: int) -> np.ndarray:
    """``theta`` as a float array of shape ``(n,)`` (not reshaped from anything else)."""
    t = np.asarray(theta, dtype=float)
    check_shape(owner, name, t.shape, t.shape == (n,), f"({n},)")
    return t


def _like(a: np.ndarray, theta):
    return torch.as_tensor(a, dtype=theta.dtype) if isinstance(theta, torch.Tensor) else a


def quadratic_loss(theta, A, theta_star):
    r""":math:`f(\theta) = \tfrac12 (\theta-\theta^*)^\top A (\theta-\theta^*)` for ``theta`` of shape ``(..., n)``
    (numpy or torch)."""
    d = theta - _like(np.asarray(theta_star, dtype=float), theta)
    return 0.5 * ((d @ _like(np.asarray(A, dtype=float), theta)) * d).sum(-1)


def quadratic_grad(theta, A, theta_star):
    r""":math:`\nabla f(\theta) = A(\theta - \theta^*)` (``A`` symmetric), shape ``(..., n)``."""
    d = theta - _like(np.asarray(theta_star, dtype=float), theta)
    return d @ _like(np.asarray(A, dtype=float), theta)


def gd_iterates(theta0, lambdas, Q, theta_star, alpha: float, k: int) -> np.ndarray:
    r"""The gradient-descent iterates :math:`\theta_0..\theta_k` in closed form, shape ``(k + 1, n)``.

    .. math:: \theta_j = \theta^* + Q\,\mathrm{diag}\big((1-\alpha\lambda_i)^j\big)\,Q^\top(\theta_0-\theta^*)

    The factors are :func:`optlab.problems.gd_quadratic.gd_factors`.
    """
    lam = as_lambdas(lambdas, "gd_iterates")
    Q = _check_orthogonal(Q, lam.size, "gd_iterates")
    theta0 = _point("gd_iterates", "theta0", theta0, lam.size)
    theta_star = _point("gd_iterates", "theta_star", theta_star, lam.size)
    c0 = Q.T @ (theta0 - theta_star)  # eigen-coordinates of the initial error
    F = gd_factors(lam, alpha, k)  # (n, k+1)
    return theta_star[None, :] + (F * c0[:, None]).T @ Q.T


class Quadratic(Surface):
    r"""The quadratic :math:`\tfrac12(\theta-\theta^*)^\top Q\,\mathrm{diag}(\lambda)\,Q^\top(\theta-\theta^*)`.

    Slide: Zemel, COMS 4995 lecture 4 (spectral analysis of GD; narrow ravines); LeCun deck 002
    ("Convergence is slow when Hessian has different eigenvalues").

    Args:
        lambdas: the eigenvalues :math:`\lambda_i` (any sign: negative ones make a saddle).
        Q: orthogonal matrix of eigenvectors (columns); default: the identity, or the 2-D rotation by
            ``angle`` when given.
        angle: for ``n = 2``, rotate the axes by this angle (radians).
        theta_star: the centre :math:`\theta^*` (default 0).
        theta0: default starting point (default: ``theta_star + 1`` in every coordinate).

    Example:
        >>> q = Quadratic([1.0, 10.0], angle=np.pi / 6)
        >>> round(q.condition_number, 6)
        10.0
    """

    def __init__(self, lambdas, Q=None, *, angle: float | None = None, theta_star=None, theta0=None):
        lam = as_lambdas(lambdas, "Quadratic")
        n = lam.size
        if angle is not None:
            check("Quadratic", "angle", angle, Q is None and n == 2,
                  f"None: angle rotates a 2-D quadratic given without Q (here n={n}, Q given: {Q is not None})")
            Q = rotation_2d(angle)
        self.lambdas = lam
        self.Q = np.eye(n) if Q is None else _check_orthogonal(Q, n, "Quadratic")
        self.A = quadratic_matrix(lam, self.Q)
        self.theta_star = np.zeros(n) if theta_star is None else _point("Quadratic", "theta_star", theta_star, n)
        start = self.theta_star + 1.0 if theta0 is None else theta0
        A, ts = self.A, self.theta_star
        r = 1.2 * max(1.0, float(np.max(np.abs(np.asarray(start, float) - ts))))
        super().__init__(name=f"quadratic lambda={lam.tolist()}", f=lambda t: quadratic_loss(t, A, ts), n=n,
                         theta0=start, minima=ts[None, :] if np.all(lam > 0) else np.zeros((0, n)),
                         bounds=tuple((c - r, c + r) for c in ts[:2]),
                         source="Zemel, COMS 4995 lecture 4: ill-conditioned curvature")

    @classmethod
    def ravine(cls, kappa: float, angle: float = np.pi / 6, lambda_min: float = 1.0, **kwargs) -> Quadratic:
        r"""A 2-D ravine of condition number ``kappa``: eigenvalues :math:`(\lambda_{\min}, \kappa\lambda_{\min})`,
        axes rotated by ``angle``."""
        check("Quadratic.ravine", "kappa", kappa, is_number(kappa) and np.isfinite(kappa) and kappa >= 1,
              "a finite number >= 1 (a condition number)")
        positive("Quadratic.ravine", "lambda_min", lambda_min)
        return cls([lambda_min, kappa * lambda_min], angle=angle, **kwargs)

    @property
    def lambda_max(self) -> float:
        return float(self.lambdas.max())

    @property
    def lambda_min(self) -> float:
        return float(self.lambdas.min())

    @property
    def condition_number(self) -> float:
        r""":math:`\kappa = \lambda_{\max}/\lambda_{\min}` (needs all eigenvalues > 0)."""
        check_data("Quadratic.condition_number", "lambdas", self.lambda_min > 0,
                   f"{self.lambdas.tolist()} are not all > 0", "positive eigenvalues (a condition number needs them)")
        return self.lambda_max / self.lambda_min

    def grad(self, theta) -> np.ndarray:
        """:math:`A(\\theta - \\theta^*)`, in closed form."""
        return quadratic_grad(np.asarray(_check_theta(theta, self.n), dtype=float), self.A, self.theta_star)

    def hessian(self, theta=None) -> np.ndarray:
        """:math:`A` (the same everywhere)."""
        return self.A.copy()

    def gd_iterates(self, alpha: float, k: int, theta0=None) -> np.ndarray:
        """Closed-form GD iterates from ``theta0`` (default :attr:`theta0`), shape ``(k + 1, n)``; see
        :func:`gd_iterates`."""
        start = self.theta0 if theta0 is None else theta0
        return gd_iterates(start, self.lambdas, self.Q, self.theta_star, alpha, k)
