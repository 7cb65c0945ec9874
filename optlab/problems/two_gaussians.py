r"""The two-Gaussian least-squares problem of LeCun's decks (000 "Example", 002 "a single linear unit").

Two classes drawn from unit-covariance Gaussians with means :math:`[-0.4, -0.8]` (target :math:`-1`) and
:math:`[0.4, 0.8]` (target :math:`+1`), 100 samples (50 each), fitted by a single linear unit without
bias, :math:`\hat y = W^\top X`, with the least-squares loss of deck 000

.. math::

    L(W) = \frac{1}{P}\sum_{i=1}^{P} \tfrac12 \big(y^i - W^\top X^i\big)^2
    \quad\Rightarrow\quad
    \nabla L = -\frac1P\sum_i (y^i - W^\top X^i) X^i, \qquad
    H = \frac{1}{P}\sum_{i=1}^{P} X^i X^{i\top},

so the Hessian is the (uncentred) covariance matrix of the inputs, the same at every :math:`W`
(deck 002: "Hessian is covariance matrix of input vectors, :math:`H = 1/p \sum X_p X_p^T`"), and batch
gradient descent diverges above :math:`\eta_{\max} = 2/\lambda_{\max}`.

**Why the numbers differ from the slides' 0.84 / 2.38.** The decks print three conventions: deck 000's
loss :math:`\frac1P\sum\frac12\|y - W'X\|^2` (used here, :math:`H = \frac1P\sum XX^\top`), deck 002's
:math:`\frac1p\sum (Y - W\cdot X)^2` (whose Hessian is twice that, although the slide writes
:math:`H = 1/p\sum XX^\top`) and deck 000's "Making the Hessian better conditioned"
:math:`H = \frac{1}{2P}\sum XX^\top`. For this distribution :math:`E[XX^\top] = I + mm^\top` with
:math:`m = [0.4, 0.8]`, whose eigenvalues are 1.8 and 1: with the loss used here
:math:`\lambda_{\max}\approx 1.8` (the seeded sample gives about 1.65, so :math:`\eta_{\max}\approx 1.2`).
The slides' :math:`\lambda_{\max} = 0.84` matches the :math:`\frac{1}{2P}` convention (half of ours; the
seeded sample gives about 0.82 with it), and their learning rates 1.5 (converges) and 2.5 (diverges)
correspond to 0.75 and 1.25 here. ``c=0.25`` reproduces that convention exactly
(:math:`L = \frac{c}{P}\sum (y - W^\top X)^2`, :math:`H = \frac{2c}{P}\sum XX^\top`). The remaining few
percent are sampling noise: the slides' own sample is not available.

Slides: Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (deck 000),
"Example" and "Making the Hessian better conditioned"; Y. LeCun, "Optimization", NYU 2020 (deck 002),
"Let's look at a single linear unit".
Reference: Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", sections 4-5.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check, is_integer, positive
from .base import Objective, Surface

#: the class means of the slides
MEANS = np.array([[-0.4, -0.8], [0.4, 0.8]])


def two_gaussians_data(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples (``n // 2`` per class, class 1 first) and their targets -1/+1, as float64 numpy arrays.

    Class 1: :math:`\\mathcal N([-0.4, -0.8], I)`, target -1; class 2: :math:`\\mathcal N([0.4, 0.8], I)`, target +1.
    """
    check("two_gaussians_data", "n", n, is_integer(n) and n >= 2 and n % 2 == 0,
          "an even integer >= 2 (half the samples per class)")
    rng = np.random.default_rng(seed)
    half = n // 2
    X = np.concatenate([rng.standard_normal((half, 2)) + MEANS[0], rng.standard_normal((half, 2)) + MEANS[1]])
    y = np.concatenate([-np.ones(half), np.ones(half)])
    return X, y


def least_squares_loss(W, X, y, c: float = 0.5):
    r""":math:`L(W) = \frac{c}{P}\sum_i (y^i - W^\top X^i)^2` for ``W`` of shape ``(..., d)`` (numpy or torch)."""
    if isinstance(W, torch.Tensor):
        X, y = torch.as_tensor(X, dtype=W.dtype), torch.as_tensor(y, dtype=W.dtype)
    r = y - (W[..., None, :] * X).sum(-1)  # residuals, shape (..., P)
    return c * (r ** 2).mean(-1)


def input_covariance(X, c: float = 0.5) -> np.ndarray:
    r"""The Hessian of :func:`least_squares_loss`: :math:`H = \frac{2c}{P}\sum_i X^i X^{i\top}` (``c = 1/2``: the
    input covariance)."""
    X = np.asarray(X, dtype=float)
    return 2 * c * X.T @ X / X.shape[0]


class TwoGaussians:
    r"""The seeded two-Gaussian least-squares problem (see the module docstring for the slides' numbers).

    Args:
        n: number of samples (even; half per class). Slides: 100.
        seed: the data's random seed.
        c: the loss constant in :math:`L = \frac cP\sum(y - W^\top X)^2`; 1/2 is deck 000's formula, 1/4
            reproduces the slides' :math:`\lambda_{\max} = 0.84` convention.

    Attributes:
        X, y: the data (numpy float64). H: the closed-form Hessian. W_star: the least-squares solution.
        surface: the loss as a 2-D :class:`Surface` of :math:`W` (contours, trajectories).

    Example:
        >>> p = TwoGaussians()
        >>> bool(np.isclose(p.eta_max, 2 / p.lambda_max))
        True
    """

    source = "LeCun deck 000 'Example' (two Gaussians, least squares); deck 002 'a single linear unit'"

    def __init__(self, n: int = 100, seed: int = 0, c: float = 0.5):
        positive("TwoGaussians", "c", c)
        self.n, self.seed, self.c = n, seed, float(c)
        self.X, self.y = two_gaussians_data(n, seed)
        self.H = input_covariance(self.X, self.c)
        self.eigenvalues, self.eigenvectors = np.linalg.eigh(self.H)
        self.W_star = np.linalg.solve(self.X.T @ self.X, self.X.T @ self.y)
        X, y, cc = self.X, self.y, self.c
        r = 1.5 + float(np.abs(self.W_star).max())
        self.surface = Surface("two gaussians", lambda W: least_squares_loss(W, X, y, cc), 2, theta0=[-1.0, -1.0],
                               minima=self.W_star[None, :], bounds=((-r, r), (-r, r)), source=self.source)

    @property
    def lambda_max(self) -> float:
        """The largest eigenvalue of :attr:`H` (closed form)."""
        return float(self.eigenvalues[-1])

    @property
    def eta_max(self) -> float:
        r""":math:`\eta_{\max} = 2/\lambda_{\max}`: batch GD diverges above it."""
        return 2.0 / self.lambda_max

    @property
    def eta_opt(self) -> float:
        r""":math:`1/\lambda_{\max}`: the optimal rate along the top eigen-direction (deck 002)."""
        return 1.0 / self.lambda_max

    def tensors(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` as torch tensors; ``y`` has shape ``(P, 1)`` to match :meth:`model`'s output."""
        return torch.tensor(self.X, dtype=dtype), torch.tensor(self.y, dtype=dtype)[:, None]

    def model(self, W0=(-1.0, -1.0), dtype: torch.dtype = torch.float64) -> torch.nn.Linear:
        """The single linear unit :math:`W^\\top X` (no bias) as ``nn.Linear(2, 1, bias=False)`` with weights ``W0``."""
        m = torch.nn.Linear(2, 1, bias=False).to(dtype)
        with torch.no_grad():
            m.weight.copy_(torch.as_tensor(np.asarray(W0, dtype=float).reshape(1, 2), dtype=dtype))
        return m

    def loss_fn(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:math:`\\frac{c}{P}\\sum (y - \\hat y)^2` on a batch: ``c * mse``."""
        return self.c * torch.nn.functional.mse_loss(output, target)

    def objective(self, W0=None, dtype: torch.dtype = torch.float64) -> Objective:
        """The loss of :math:`W` started at ``W0`` (default (-1, -1)), for the trajectory runner."""
        return self.surface.objective(W0, dtype=dtype)
