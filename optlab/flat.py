"""Parameters as one flat vector, and back: the one place optlab flattens and unflattens tensors.

Curvature operators, second-order optimizers, problems and the loss-landscape tools all see a model's
parameters :math:`\\theta` as one vector; these functions are how they get there and back
(:func:`unflatten_columns` for ``k`` vectors at once, as autograd's batched products take them).

Example:
    >>> a, b = torch.zeros(2), torch.zeros(1, 2)
    >>> v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    >>> [t.tolist() for t in unflatten(v, [a, b])]
    [[1.0, 2.0], [[3.0, 4.0]]]
    >>> assign([a, b], v); flatten([a, b])
    tensor([1., 2., 3., 4.])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .errors import data_error, shape_error


def flatten(tensors: Sequence[Tensor | None], like: Sequence[Tensor] | None = None) -> Tensor:
    """Concatenate ``tensors`` into one detached-or-not flat vector (as given).

    ``None`` entries (e.g. the gradient of an unused parameter) become zeros shaped like the matching
    tensor of ``like``.
    """
    like = like if like is not None else tensors
    if len(like) != len(tensors):
        raise data_error("flatten", "like", f"{len(like)} shapes for {len(tensors)} tensors", "one shape per tensor")
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, like)])


def unflatten(v: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split the flat vector ``v`` into views shaped like the tensors of ``like``."""
    n = sum(p.numel() for p in like)
    if v.dim() != 1 or v.numel() != n:
        raise shape_error("unflatten", "v", v.shape, f"({n},), a flat vector of {n} entries")
    out, i = [], 0
    for p in like:
        out.append(v[i:i + p.numel()].view_as(p))
        i += p.numel()
    return out


def assign(params: Sequence[Tensor], theta: Tensor) -> None:
    """Write the flat vector ``theta`` into ``params`` in place (no autograd history)."""
    with torch.no_grad():
        for p, t in zip(params, unflatten(torch.as_tensor(theta, dtype=params[0].dtype), params)):
            p.copy_(t)


def add_(params: Sequence[Tensor], d: Tensor, alpha: float = 1.0) -> None:
    """``params += alpha * d`` in place for a flat direction ``d`` (no autograd history)."""
    with torch.no_grad():
        for p, di in zip(params, unflatten(d, params)):
            p.add_(di, alpha=alpha)


def unflatten_columns(V: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split the ``(n, k)`` matrix ``V`` (``k`` flat vectors as columns) into ``k``-batched tensors shaped
    ``(k, *p.shape)`` like the tensors of ``like``: what autograd's batched products take."""
    n = sum(p.numel() for p in like)
    if V.dim() != 2 or V.shape[0] != n:
        raise shape_error("unflatten_columns", "V", V.shape, f"({n}, k): k flat vectors of {n} entries as columns")
    return [cols.T.reshape(V.shape[1], *p.shape) for cols, p in zip(V.split([p.numel() for p in like]), like)]
