r"""Input transforms for the normalization story: center, standardize, decorrelate (Karhunen-Loève), whiten.

Each function fits an affine map :math:`\tilde x = (x - \mu)\,T` on the rows of ``X`` and returns the
transformed data **and** the fitted :class:`AffineTransform`, so the same map can be applied to new data
(a test set, a grid):

=================  ====================================================================================
:func:`center`      :math:`\tilde x = x - \mu`
:func:`standardize` :math:`\tilde x_j = (x_j - \mu_j)/\sigma_j` (Zemel's slide)
:func:`decorrelate` :math:`\tilde x = (x - \mu)\,Q` with :math:`C = Q\Lambda Q^\top` the covariance
                    (Karhunen-Loève / PCA rotation: the new covariance is :math:`\Lambda`, diagonal)
:func:`whiten`      :math:`\tilde x = (x - \mu)\,Q\Lambda^{-1/2}` (PCA whitening, covariance :math:`I`);
                    ``kind="zca"`` rotates back, :math:`(x-\mu)\,Q\Lambda^{-1/2}Q^\top`
=================  ====================================================================================

Statistics use :math:`\frac1N` (population) moments. A constant column or a singular covariance raises a
``ValueError`` (nothing is silently clipped); pass ``eps > 0`` to regularise
(:math:`\sigma^2 + \epsilon`, :math:`\Lambda + \epsilon I`) on purpose.

Slides: Y. LeCun, deck 000, "Making the Hessian better conditioned" (center, decorrelate with a
Karhunen-Loève transform, normalize the variances); deck 002, "normalize the inputs"; R. Zemel,
lecture 4, "Ill-conditioned curvature: normalization".
Reference: Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", section 4.3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import check_data, check_shape, non_negative, one_of


@dataclass(frozen=True)
class AffineTransform:
    r"""The map :math:`x \mapsto (x - \text{shift})\,\text{matrix}` on rows of ``X``."""

    shift: np.ndarray
    matrix: np.ndarray
    name: str = "affine"

    def __call__(self, X) -> np.ndarray:
        X = _check_X(X, f"AffineTransform({self.name!r})", self.shift.size)
        return (X - self.shift) @ self.matrix

    def inverse(self, Z) -> np.ndarray:
        """The original rows from transformed ones (needs an invertible ``matrix``)."""
        Z = _check_X(Z, f"AffineTransform({self.name!r}).inverse", self.matrix.shape[1])
        return np.linalg.solve(self.matrix.T, Z.T).T + self.shift


def _check_X(X, owner: str, d: int | None = None) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if d is None:
        check_shape(owner, "X", X.shape, X.ndim == 2 and X.shape[0] >= 2, "(samples, features) with >= 2 samples")
    else:
        check_shape(owner, "X", X.shape, X.ndim == 2 and X.shape[1] == d,
                    f"(samples, {d}): the {d} features this transform was fitted on")
    check_data(owner, "X", bool(np.all(np.isfinite(X))), "it contains NaN or infinite values", "finite numbers")
    return X


def _check_eps(owner: str, eps) -> float:
    non_negative(owner, "eps", eps)
    return float(eps)


def center(X) -> tuple[np.ndarray, AffineTransform]:
    r"""Subtract the mean: :math:`\tilde x = x - \mu`. Returns ``(X_centered, transform)``."""
    X = _check_X(X, "center")
    T = AffineTransform(X.mean(0), np.eye(X.shape[1]), "center")
    return T(X), T


def standardize(X, eps: float = 0.0) -> tuple[np.ndarray, AffineTransform]:
    r"""Zero mean, unit variance per feature: :math:`\tilde x_j = (x_j - \mu_j)/\sqrt{\sigma_j^2 + \epsilon}`."""
    X, eps = _check_X(X, "standardize"), _check_eps("standardize", eps)
    var = X.var(0) + eps
    check_data("standardize", "X", bool(np.all(var > 0)), f"features {np.flatnonzero(var <= 0).tolist()} are "
               "constant (variance 0)", "features that vary (drop the constant ones), or eps > 0")
    T = AffineTransform(X.mean(0), np.diag(var ** -0.5), "standardize")
    return T(X), T


def _eig_cov(X):
    Xc = X - X.mean(0)
    lam, Q = np.linalg.eigh(Xc.T @ Xc / X.shape[0])
    order = np.argsort(lam)[::-1]  # principal components first
    Q = Q[:, order] * np.where(Q[:, order].sum(0) < 0, -1.0, 1.0)  # a deterministic sign
    return lam[order], Q


def decorrelate(X) -> tuple[np.ndarray, AffineTransform]:
    r"""Karhunen-Loève / PCA rotation: :math:`\tilde x = (x-\mu)Q`, covariance becomes
    :math:`\mathrm{diag}(\lambda)` (largest first)."""
    X = _check_X(X, "decorrelate")
    _, Q = _eig_cov(X)
    T = AffineTransform(X.mean(0), Q, "decorrelate")
    return T(X), T


def whiten(X, kind: str = "pca", eps: float = 0.0) -> tuple[np.ndarray, AffineTransform]:
    r"""Whitening: :math:`\tilde x = (x-\mu)Q(\Lambda+\epsilon I)^{-1/2}` (``"pca"``), times :math:`Q^\top` for
    ``"zca"``."""
    X, eps = _check_X(X, "whiten"), _check_eps("whiten", eps)
    one_of("whiten", "kind", kind, ("pca", "zca"))
    lam, Q = _eig_cov(X)
    lam = lam + eps
    check_data("whiten", "X", lam.min() > 1e-12 * max(lam.max(), 1e-300), f"its covariance is singular "
               f"(eigenvalues {lam.tolist()})", "independent features (remove the dependent ones), or eps > 0")
    W = Q @ np.diag(lam ** -0.5)
    if kind == "zca":
        W = W @ Q.T
    T = AffineTransform(X.mean(0), W, f"whiten ({kind})")
    return T(X), T


#: name -> transform function, in the order of the normalization story
TRANSFORMS = {"center": center, "standardize": standardize, "decorrelate": decorrelate, "whiten": whiten}
