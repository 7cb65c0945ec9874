r"""Group normalization (Wu & He, 2018): each sample, over a group of channels and the spatial axes.

The C channels are split into G groups of C/G consecutive channels; for sample n and group g
(the slide: "Group norm: N, C subset" -- each sample on its own, over a subset of the channels):

.. math::
    \mu_{ng} = \frac1m \sum_{c \in g,\,h,\,w} x_{nchw},\qquad
    \sigma^2_{ng} = \frac1m \sum_{c \in g,\,h,\,w} (x_{nchw} - \mu_{ng})^2,\qquad
    y_{nchw} = \gamma_c \frac{x_{nchw} - \mu_{ng}}{\sqrt{\sigma^2_{ng} + \epsilon}} + \beta_c

G = 1 is layer normalization over (C, H, W) with per-channel affine; G = C is instance normalization.

Reference: Y. Wu, K. He (2018). Group Normalization. ECCV.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check, check_shape, check_type, non_negative, positive_int
from ._moments import channel_view, normalize


def group_norm(x: Tensor, num_groups: int, gamma: Tensor | None = None, beta: Tensor | None = None, *,
               eps: float = 1e-5) -> Tensor:
    r"""Normalize ``x`` of shape ``(N, C, *spatial)`` over groups of ``C // num_groups`` channels.

    .. math:: y_{nc} = \gamma_c \frac{x_{nc} - \mu_{n,g(c)}}{\sqrt{\sigma^2_{n,g(c)} + \epsilon}} + \beta_c

    Reference: Wu & He (2018). Group Normalization.

    Args:
        x: the input (N, C, *spatial).
        num_groups: G, a divisor of C.
        gamma, beta: per-channel scale and shift (``None``: 1 and 0).
        eps: added to the variance.
    """
    positive_int("group_norm", "num_groups", num_groups)
    non_negative("group_norm", "eps", eps)
    check_type("group_norm", "input", x, isinstance(x, Tensor), "a torch.Tensor")
    check_shape("group_norm", "input", x.shape, x.dim() >= 2, "(N, C, *spatial)")
    check("group_norm", "num_groups", num_groups, x.shape[1] % num_groups == 0,
          f"a divisor of the {x.shape[1]} channels of the input")
    n, c = x.shape[:2]
    xg = x.reshape(n, num_groups, -1)
    x_hat, _, _ = normalize(xg, (2,), eps)
    x_hat = x_hat.reshape(x.shape)
    if gamma is not None:
        x_hat = x_hat * channel_view(gamma, x.dim())
    if beta is not None:
        x_hat = x_hat + channel_view(beta, x.dim())
    return x_hat


class GroupNorm(nn.Module):
    """Group normalization; same arguments and parameters as ``torch.nn.GroupNorm``.

    Args:
        num_groups: G, which must divide ``num_channels``.
        num_channels: C.
        eps: added to the variance.
        affine: learn per-channel gamma (``weight``) and beta (``bias``).

    The math is :func:`group_norm`. Reference: Wu & He (2018). Group Normalization. ECCV.

    Example:
        >>> gn = GroupNorm(2, 4)
        >>> y = gn(torch.randn(3, 4, 5, 5))
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 device=None, dtype=None):
        super().__init__()
        positive_int("GroupNorm", "num_groups", num_groups)
        positive_int("GroupNorm", "num_channels", num_channels)
        check("GroupNorm", "num_groups", num_groups, num_channels % num_groups == 0,
              f"a divisor of num_channels={num_channels}")
        non_negative("GroupNorm", "eps", eps)
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        kw = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.ones(num_channels, **kw)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels, **kw)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        check_type("GroupNorm", "input", x, isinstance(x, Tensor), "a torch.Tensor")
        check_shape("GroupNorm", "input", x.shape, x.dim() >= 2 and x.shape[1] == self.num_channels,
                    f"(N, {self.num_channels}, *spatial)")
        return group_norm(x, self.num_groups, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
