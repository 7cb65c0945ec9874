"""The shared step of every normalization layer: centre and scale ``x`` over some of its axes."""

from __future__ import annotations

import torch
from torch import Tensor


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


def check_eps(owner: str, eps) -> None:
    ok = isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps >= 0 and eps == eps and eps != float("inf")
    if not ok:
        raise ValueError(f"{owner}: invalid eps={eps!r}; expected a finite number >= 0")


def check_positive_int(owner: str, name: str, value) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected a positive integer")


def check_input(owner: str, x, ndims: tuple[int, ...], channels: int | None = None) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: expected a torch.Tensor input, got {type(x).__name__}")
    if x.dim() not in ndims:
        raise ValueError(f"{owner}: expected an input with {' or '.join(map(str, ndims))} dimensions, "
                         f"got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{owner}: expected {channels} channels on axis 1, got shape {tuple(x.shape)}")
