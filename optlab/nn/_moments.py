"""The shared step of every normalization layer: centre and scale ``x`` over some of its axes."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import check_shape, check_type


def normalize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""Return ``(x_hat, mu, sigma2)`` with the mean and the *biased* variance taken over ``dims``.

    .. math::
        \mu = \frac1m \sum_i x_i,\qquad \sigma^2 = \frac1m \sum_i (x_i - \mu)^2,\qquad
        \hat x_i = \frac{x_i - \mu}{\sqrt{\sigma^2 + \epsilon}}

    ``mu`` and ``sigma2`` keep the reduced axes (size 1) so that they broadcast against ``x``.
    """
    mu = x.mean(dim=dims, keepdim=True)
    sigma2 = ((x - mu) ** 2).mean(dim=dims, keepdim=True)
    x_hat = (x - mu) / torch.sqrt(sigma2 + eps)
    return x_hat, mu, sigma2


def channel_view(v: Tensor, ndim: int) -> Tensor:
    """Reshape a per-channel vector ``(C,)`` to broadcast along axis 1 of an ``ndim``-d tensor."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def check_input(owner: str, x, ndims: tuple[int, ...], channels: int | None = None) -> None:
    """``x`` is a tensor with one of ``ndims`` dimensions (and ``channels`` on axis 1 if given)."""
    check_type(owner, "input", x, isinstance(x, Tensor), "a torch.Tensor")
    expected = " or ".join(f"{n} dimensions" for n in ndims) + (f" with {channels} channels on axis 1"
                                                               if channels is not None else "")
    check_shape(owner, "input", x.shape, x.dim() in ndims and (channels is None or x.shape[1] == channels), expected)
