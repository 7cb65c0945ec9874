"""Curvature matrices as linear operators: ``op @ v``, ``.shape``, ``.to_dense()``, ``.to_scipy()``.

An operator only knows how to multiply a vector; nothing dense is built unless ``to_dense()`` is
asked for. Every estimator in :mod:`optlab.curvature` goes through :func:`as_operator`, so it works
the same on a network's Hessian and on a plain 3x3 matrix a student typed in.
"""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import torch
from torch import Tensor

from ..errors import check_data, check_shape, shape_error, type_error
from ._eigensolver import random_unit_vector


class CurvatureOperator:
    """Base class: a symmetric ``n x n`` matrix known only through matrix-vector products.

    Subclasses implement ``_matvec(v)`` for a flat vector ``v`` of length ``n``.
    """

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device | str = "cpu"):
        self._n, self.dtype, self.device = int(n), dtype, torch.device(device)

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n, self._n)

    def _matvec(self, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _matmat(self, V: Tensor) -> Tensor:
        return torch.stack([self._matvec(V[:, j]) for j in range(V.shape[1])], dim=1)

    def __matmul__(self, v) -> Tensor:
        """``op @ v`` for a flat vector (length ``n``) or a matrix of column vectors (``n x k``)."""
        if isinstance(v, np.ndarray):
            return (self @ torch.as_tensor(v)).numpy()
        owner = f"{type(self).__name__} @ v"
        if not isinstance(v, Tensor):
            raise type_error(owner, "v", v, "a tensor (or a numpy array)")
        if v.dim() not in (1, 2) or v.shape[0] != self._n:
            raise shape_error(owner, "v", v.shape, f"({self._n},) or ({self._n}, k)")
        v = v.to(dtype=self.dtype, device=self.device)
        if v.dim() == 1:
            return self._matvec(v)
        return self._matmat(v)

    def start_vector(self, seed: int) -> Tensor:
        """The unit vector the top-eigenvalue solvers start from: random (seeded) unless the operator
        knows a direction rich in its top eigenvectors (:meth:`HessianOperator.start_vector
        <optlab.curvature.HessianOperator.start_vector>`)."""
        return random_unit_vector(self._n, self.dtype, self.device, seed)

    @contextlib.contextmanager
    def many_products(self):
        """Context for a solver about to multiply by this operator many times (power method, Lanczos).

        Operators that can share work between products do so inside the ``with`` block and free it on
        exit (:class:`~optlab.curvature.HessianOperator` keeps one gradient graph for all products);
        the default does nothing.
        """
        yield self

    def to_dense(self) -> Tensor:
        """The dense ``n x n`` matrix, one product per column (only for small ``n``)."""
        return self @ torch.eye(self._n, dtype=self.dtype, device=self.device)

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` (float64 numpy in and out), so ``eigsh`` and ``cg`` work."""
        from scipy.sparse.linalg import LinearOperator  # on use: importing scipy.sparse.linalg takes half a second
        def mv(x):
            x = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(-1), dtype=self.dtype, device=self.device)
            return self._matvec(x).detach().cpu().double().numpy()

        def mm(X):
            X = torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=self.dtype, device=self.device)
            return self._matmat(X).detach().cpu().double().numpy()

        return LinearOperator(self.shape, matvec=mv, rmatvec=mv, matmat=mm, dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class MatrixOperator(CurvatureOperator):
    """A plain symmetric matrix seen as an operator (so estimators can be checked on a 3x3).

    Args:
        A: a square, symmetric, finite matrix (tensor, array or nested list; checked as in :func:`as_matrix`).
    """

    def __init__(self, A):
        A = as_matrix(A, "A", "MatrixOperator")
        check_symmetric(A, "A", "MatrixOperator")
        super().__init__(A.shape[0], A.dtype, A.device)
        self.A = A

    def _matvec(self, v: Tensor) -> Tensor:
        return self.A @ v

    def _matmat(self, V: Tensor) -> Tensor:
        return self.A @ V

    def to_dense(self) -> Tensor:
        return self.A.clone()


class _ScipyOperator(CurvatureOperator):
    """A scipy ``LinearOperator`` seen as an operator (float64)."""

    def __init__(self, L):
        super().__init__(L.shape[0], torch.float64)
        self.L = L

    def _matvec(self, v: Tensor) -> Tensor:
        return torch.as_tensor(np.asarray(self.L.matvec(v.numpy())).reshape(-1), dtype=torch.float64)


def as_matrix(x, name: str = "x", owner: str = "as_matrix") -> Tensor:
    """``x`` (tensor, array or nested list) as a square, finite, floating tensor, or an error naming ``owner``."""
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as e:
            raise type_error(owner, name, x, "a square matrix (tensor, array or nested list) or a curvature "
                             "operator") from e
    check_shape(owner, name, x.shape, x.dim() == 2 and x.shape[0] == x.shape[1] and x.shape[0] > 0,
                "(n, n), a non-empty square matrix")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    check_data(owner, name, bool(torch.isfinite(x).all()), "it has non-finite entries (nan or inf)", "finite entries")
    return x


def check_symmetric(A: Tensor, name: str = "x", owner: str = "check_symmetric") -> None:
    """Raise ``ValueError`` if ``A`` is not symmetric (to a tolerance fitting its dtype)."""
    tol = 100 * torch.finfo(A.dtype).eps * max(1.0, float(A.abs().max()))
    gap = float((A - A.T).abs().max())
    check_data(owner, name, gap <= tol, f"it is not symmetric (max |A - A^T| = {gap:.3g} > {tol:.3g})",
               "a symmetric matrix, as curvature matrices are (symmetrize it with (A + A.T) / 2)")


def as_operator(x, name: str = "x", owner: str = "as_operator") -> CurvatureOperator:
    """``x`` as a :class:`CurvatureOperator`: operators pass through; matrices are checked (square,
    symmetric) and wrapped; a scipy ``LinearOperator`` is wrapped. Errors name ``owner``."""
    if isinstance(x, CurvatureOperator):
        return x
    scipy_linalg = sys.modules.get("scipy.sparse.linalg")  # a LinearOperator exists only once scipy is imported
    if scipy_linalg is not None and isinstance(x, scipy_linalg.LinearOperator):
        check_shape(owner, name, x.shape, x.shape[0] == x.shape[1], "(n, n), a square operator")
        return _ScipyOperator(x)
    A = as_matrix(x, name, owner)
    check_symmetric(A, name, owner)
    return MatrixOperator(A)
