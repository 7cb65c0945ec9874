"""Flat parameter vectors and rows of them, as the landscape tools take them: checked, never reshaped.

A flat vector is a tensor, array or list of shape ``(n,)``; a trajectory is a ``(steps, n)`` array of
them. Both come back in float64 (torch for points the loss is evaluated at, numpy for coordinates).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check_data, check_shape, type_error


def as_vector(owner: str, name: str, theta, n: int | None = None) -> torch.Tensor:
    """``theta`` as a float64 tensor of shape ``(n,)`` (any ``n > 0`` if ``n`` is None)."""
    if isinstance(theta, torch.Tensor):
        theta = theta.detach().cpu()
    try:
        t = torch.as_tensor(np.asarray(theta, dtype=float))
    except (TypeError, ValueError):
        raise type_error(owner, name, theta, "a flat vector (tensor, array or list of numbers)") from None
    expected = f"({n},), a flat vector of {n} entries" if n is not None else "(n,), a non-empty flat vector"
    check_shape(owner, name, t.shape, t.dim() == 1 and t.numel() > 0 and (n is None or t.numel() == n), expected)
    return t


def as_rows(owner: str, name: str, thetas, n: int | None = None) -> np.ndarray:
    """``thetas`` as a float64 array of shape ``(steps, n)`` with at least one row."""
    T = np.asarray(thetas, dtype=float)
    check_shape(owner, name, T.shape, T.ndim == 2 and T.shape[0] > 0 and (n is None or T.shape[1] == n),
                f"(steps, {n if n is not None else 'n'}) with at least one row")
    check_data(owner, name, bool(np.all(np.isfinite(T))), "it has non-finite entries", "finite numbers")
    return T
