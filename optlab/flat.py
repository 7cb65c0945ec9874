"""Parameters as one flat vector, and back: the one place optlab flattens and unflattens tensors.

Curvature operators, second-order optimizers, problems and the loss-landscape tools all see a model's
parameters :math:`\\theta` as one vector; these four functions are how they get there and back.

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


def flatten(tensors: Sequence[Tensor | None], like: Sequence[Tensor] | None = None) -> Tensor:
    """Concatenate ``tensors`` into one detached-or-not flat vector (as given).

    ``None`` entries (e.g. the gradient of an unused parameter) become zeros shaped like the matching
    tensor of ``like``.
    """
    like = like if like is not None else tensors
    if len(like) != len(tensors):
        raise ValueError(f"flatten: got {len(tensors)} tensors and {len(like)} shapes in like; expected as many")
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, like)])


def unflatten(v: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split the flat vector ``v`` into views shaped like the tensors of ``like``."""
    n = sum(p.numel() for p in like)
    if v.dim() != 1 or v.numel() != n:
        raise ValueError(f"unflatten: v has shape {tuple(v.shape)}; expected a flat vector of {n} entries")
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
