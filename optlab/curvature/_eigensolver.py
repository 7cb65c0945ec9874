"""What the eigensolvers share (power method, Lanczos, the stochastic power method): the records they
return, their random start vector and the checks of their arguments.

A leaf module: the operators (:mod:`._operator`) and every solver import from here, never the other way.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import non_negative, non_negative_int, one_of, positive_int

#: which eigenvalue a top-eigenvalue solver looks for: largest :math:`|\lambda|` or largest :math:`\lambda`
WHICH = ("magnitude", "algebraic")


class Eigenpair(NamedTuple):
    """Result of :func:`~optlab.curvature.top_eigenvalue`: the eigenvalue, its unit eigenvector, and the
    iterations used (matrix-vector products)."""

    value: float
    vector: Tensor
    iterations: int


class Eigenpairs(NamedTuple):
    """Result of :func:`~optlab.curvature.top_eigenvalues`: ``values`` (k,), ``vectors`` (n, k) and the
    iterations used for each pair."""

    values: Tensor
    vectors: Tensor
    iterations: list


def check_iteration_args(owner: str, max_iter, tol) -> None:
    """The iteration cap ``max_iter`` is a positive integer, the tolerance ``tol`` a finite number >= 0."""
    positive_int(owner, "max_iter", max_iter)
    non_negative(owner, "tol", tol)


def check_which(owner: str, which, choices=WHICH) -> None:
    one_of(owner, "which", which, choices)


def check_seed(owner: str, seed) -> None:
    non_negative_int(owner, "seed", seed)


def random_unit_vector(n: int, dtype: torch.dtype, device, seed: int) -> Tensor:
    """A unit vector of ``n`` entries, uniform on the sphere (a normalized Gaussian), from ``seed``.

    Drawn in float64 on the CPU, so the same seed gives the same direction whatever the dtype and device.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(n, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    return v / v.norm()
