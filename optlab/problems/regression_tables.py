r"""Zemel's badly scaled and non-centered regression tables (lecture 4, "Ill-conditioned curvature: normalization").

Linear regression :math:`\hat t = w^\top x` (plus a bias :math:`b` when ``bias=True``) with

.. math::

    L(w) = \frac{1}{2N}\sum_{i=1}^N (w^\top x^i - t^i)^2, \qquad
    H = \frac1N\sum_i x^i x^{i\top}, \qquad \kappa = \lambda_{\max}(H)/\lambda_{\min}(H).

* :func:`badly_scaled_table`: :math:`x_1` in the hundreds, :math:`x_2` in the thousandths (scales
  :math:`10^5` apart): :math:`H` is nearly diagonal with entries about :math:`10^{10}` apart, a ravine
  along :math:`w_2`.
* :func:`non_centered_table`: both inputs near 1000 and strongly correlated: one huge eigenvalue along
  :math:`(1, 1)` (deck 000: "non-zero mean inputs create large eigenvalues").

The first three rows of each table are the slide's; the others are drawn (seeded) from the same ranges,
with targets :math:`t = w_{\rm true}^\top x + b_{\rm true} + \text{noise}` (the slide does not give its rule;
these weights are this module's choice). :meth:`RegressionTable.transformed` applies a transform of
:mod:`optlab.problems.transforms` and returns the better-conditioned problem.

Slide: R. Zemel, COMS 4995 lecture 4, "Ill-conditioned curvature: normalization" (two tables).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check_shape, int_in_range
from .base import Surface

#: the slide's rows (x1, x2, t)
BADLY_SCALED_ROWS = np.array([[114.8, 0.00323, 5.1], [338.1, 0.00183, 3.2], [98.8, 0.00279, 4.1]])
NON_CENTERED_ROWS = np.array([[1003.2, 1005.1, 3.3], [1001.1, 1008.2, 4.8], [998.3, 1003.4, 2.9]])


def _check_n(owner: str, n) -> None:
    int_in_range(owner, "n", n, 4)  # the slide's 3 rows and at least one drawn


def badly_scaled_table(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, t)``: :math:`x_1 \\sim U(90, 350)`, :math:`x_2 \\sim U(0.0015, 0.0035)`,
    :math:`t = 0.004x_1 + 800x_2 + 1 + \\mathcal N(0, 0.3^2)`."""
    _check_n("badly_scaled_table", n)
    rng = np.random.default_rng(seed)
    m = n - 3
    X = np.column_stack([rng.uniform(90, 350, m), rng.uniform(0.0015, 0.0035, m)])
    t = 0.004 * X[:, 0] + 800 * X[:, 1] + 1.0 + 0.3 * rng.standard_normal(m)
    return np.vstack([BADLY_SCALED_ROWS[:, :2], X]), np.concatenate([BADLY_SCALED_ROWS[:, 2], t])


def non_centered_table(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(X, t)``: :math:`x_1 = 1000 + 2z_1`, :math:`x_2 = 1005 + 2z_1 + 1.5z_2`,
    :math:`t = 4 + 0.3(x_1 - 1000) + 0.2(x_2 - 1005) + \\mathcal N(0, 0.3^2)`."""
    _check_n("non_centered_table", n)
    rng = np.random.default_rng(seed)
    m = n - 3
    z1, z2 = rng.standard_normal(m), rng.standard_normal(m)
    X = np.column_stack([1000 + 2 * z1, 1005 + 2 * z1 + 1.5 * z2])
    t = 4 + 0.3 * (X[:, 0] - 1000) + 0.2 * (X[:, 1] - 1005) + 0.3 * rng.standard_normal(m)
    return np.vstack([NON_CENTERED_ROWS[:, :2], X]), np.concatenate([NON_CENTERED_ROWS[:, 2], t])


def regression_loss(w, X, t):
    r""":math:`L(w) = \frac1{2N}\sum_i (w^\top x^i - t^i)^2` for ``w`` of shape ``(..., d)`` (numpy or torch)."""
    if isinstance(w, torch.Tensor):
        X, t = torch.as_tensor(X, dtype=w.dtype), torch.as_tensor(t, dtype=w.dtype)
    r = (w[..., None, :] * X).sum(-1) - t
    return 0.5 * (r ** 2).mean(-1)


class RegressionTable:
    r"""Linear least squares on a table ``(X, t)``: closed-form Hessian, solution, condition number.

    Slide: Zemel lecture 4, "Ill-conditioned curvature: normalization".

    Args:
        X: inputs, shape ``(N, d)``. t: targets, shape ``(N,)``.
        bias: add a constant-1 input (the bias :math:`b` becomes the last weight).
        name: a label.

    Attributes:
        H: :math:`\frac1N\tilde X^\top\tilde X`; eigenvalues (ascending); w_star: the least-squares
        solution; surface: the loss as a :class:`Surface` of the weights.
    """

    source = "Zemel lecture 4: 'Ill-conditioned curvature: normalization' (regression tables)"

    def __init__(self, X, t, bias: bool = False, name: str = "regression table"):
        X, t = np.asarray(X, dtype=float), np.asarray(t, dtype=float).reshape(-1)
        check_shape("RegressionTable", "X", X.shape, X.ndim == 2 and X.shape[0] == t.size,
                    f"(N, d) with N = len(t) = {t.size}")
        self.X_raw, self.t, self.bias, self.name = X, t, bias, name
        self.X = np.column_stack([X, np.ones(len(X))]) if bias else X
        self.H = self.X.T @ self.X / len(self.X)
        self.eigenvalues = np.linalg.eigvalsh(self.H)
        self.w_star = np.linalg.lstsq(self.X, t, rcond=None)[0]
        Xd = self.X
        r = 1.5 * float(np.abs(self.w_star).max()) + 1.0
        self.surface = Surface(name, lambda w: regression_loss(w, Xd, t), Xd.shape[1], theta0=np.zeros(Xd.shape[1]),
                               minima=self.w_star[None, :], bounds=((-r, r), (-r, r)), source=self.source)

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues[-1])

    @property
    def condition_number(self) -> float:
        r""":math:`\kappa = \lambda_{\max}/\lambda_{\min}` of :attr:`H`."""
        return float(self.eigenvalues[-1] / self.eigenvalues[0])

    def transformed(self, transform, **kwargs) -> RegressionTable:
        """The same regression on ``transform(X)`` (a function of :mod:`~optlab.problems.transforms`), e.g.
        ``standardize``.

        The returned problem has ``.input_transform`` set to the fitted :class:`AffineTransform`.
        """
        Z, T = transform(self.X_raw, **kwargs)
        out = RegressionTable(Z, self.t, bias=self.bias, name=f"{self.name} / {T.name}")
        out.input_transform = T
        return out


def badly_scaled(n: int = 50, seed: int = 0, bias: bool = False) -> RegressionTable:
    """Zemel's first table (:func:`badly_scaled_table`) as a :class:`RegressionTable`."""
    return RegressionTable(*badly_scaled_table(n, seed), bias=bias, name="badly scaled")


def non_centered(n: int = 50, seed: int = 0, bias: bool = False) -> RegressionTable:
    """Zemel's second table (:func:`non_centered_table`) as a :class:`RegressionTable`."""
    return RegressionTable(*non_centered_table(n, seed), bias=bias, name="non-centered")
