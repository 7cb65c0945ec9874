"""Transitional: the old names that ``gauss_newton``, ``hessian_free`` and ``natural_gradient`` still import,
each a one-line call of :mod:`optlab.flat` (the one place optlab flattens tensors). No other module uses
this file; delete it once those three modules import :mod:`optlab.flat` themselves.
"""

from __future__ import annotations

from torch import Tensor

from .. import flat


def flat_params(params: list[Tensor]) -> Tensor:
    return flat.flatten([p.detach() for p in params])


def set_flat(params: list[Tensor], theta: Tensor) -> None:
    flat.assign(params, theta)


def add_flat(params: list[Tensor], d: Tensor, scale: float = 1.0) -> None:
    flat.add_(params, d, alpha=scale)


def unflatten(params: list[Tensor], v: Tensor) -> list[Tensor]:
    return flat.unflatten(v, params)


def store_grad(params: list[Tensor], g: Tensor) -> None:
    for p, gi in zip(params, flat.unflatten(g.detach(), params)):
        p.grad = gi.clone()
