r"""Instance normalization (Ulyanov, Vedaldi & Lempitsky, 2016): each sample and channel on its own.

For sample n and channel c, over the spatial axes only (the slide: "Instance norm: H, W"):

.. math::
    \mu_{nc} = \frac1{HW} \sum_{h,w} x_{nchw},\qquad
    \sigma^2_{nc} = \frac1{HW} \sum_{h,w} (x_{nchw} - \mu_{nc})^2,\qquad
    y_{nchw} = \gamma_c \frac{x_{nchw} - \mu_{nc}}{\sqrt{\sigma^2_{nc} + \epsilon}} + \beta_c

As torch's default, no running statistics: training and evaluation compute the same thing.

Reference: D. Ulyanov, A. Vedaldi, V. Lempitsky (2016). Instance Normalization: The Missing Ingredient
for Fast Stylization. arXiv:1607.08022.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check_shape, check_type, non_negative, positive_int
from ._moments import channel_view, check_input, normalize


def instance_norm(x: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None, *,
                  eps: float = 1e-5) -> Tensor:
    r"""Normalize each ``x[n, c]`` of an ``(N, C, *spatial)`` input over its spatial axes.

    .. math:: y_{nc} = \gamma_c \frac{x_{nc} - \mu_{nc}}{\sqrt{\sigma^2_{nc} + \epsilon}} + \beta_c

    Reference: Ulyanov, Vedaldi & Lempitsky (2016). Instance Normalization.

    Args:
        x: the input (N, C, *spatial).
        gamma, beta: per-channel scale and shift (``None``: 1 and 0).
        eps: added to the variance.
    """
    check_type("instance_norm", "input", x, isinstance(x, Tensor), "a torch.Tensor")
    check_shape("instance_norm", "input", x.shape, x.dim() >= 3, "(N, C, *spatial) with at least one spatial axis")
    non_negative("instance_norm", "eps", eps)
    x_hat, _, _ = normalize(x, tuple(range(2, x.dim())), eps)
    if gamma is not None:
        x_hat = x_hat * channel_view(gamma, x.dim())
    if beta is not None:
        x_hat = x_hat + channel_view(beta, x.dim())
    return x_hat


class _InstanceNorm(nn.Module):
    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        positive_int(name, "num_features", num_features)
        non_negative(name, "eps", eps)
        self.num_features, self.eps, self.affine = num_features, eps, affine
        kw = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.ones(num_features, **kw)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features, **kw)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        check_input(type(self).__name__, x, self._ndims, self.num_features)
        return instance_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` inputs; as ``torch.nn.InstanceNorm1d`` without running statistics.

    Args:
        num_features: C.
        eps: added to the variance.
        affine: learn per-channel gamma (``weight``) and beta (``bias``); off by default as in torch.

    The math is :func:`instance_norm`. Reference: Ulyanov, Vedaldi & Lempitsky (2016).
    """

    _ndims = (3,)


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)`` inputs; as ``torch.nn.InstanceNorm2d`` without running statistics.

    See :class:`InstanceNorm1d` for the arguments; the math is :func:`instance_norm`.
    Reference: Ulyanov, Vedaldi & Lempitsky (2016).

    Args:
        num_features, eps, affine: as in :class:`InstanceNorm1d`.
    """

    _ndims = (4,)
