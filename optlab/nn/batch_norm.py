r"""Batch normalization (Ioffe & Szegedy, 2015), written as the slide's four lines.

For each channel, over the mini-batch :math:`\mathcal B = \{x_1 \dots x_m\}` (all of N, H, W):

.. math::
    \mu_{\mathcal B} = \frac1m \sum_{i=1}^m x_i,\qquad
    \sigma^2_{\mathcal B} = \frac1m \sum_{i=1}^m (x_i - \mu_{\mathcal B})^2,\qquad
    \hat x_i = \frac{x_i - \mu_{\mathcal B}}{\sqrt{\sigma^2_{\mathcal B} + \epsilon}},\qquad
    y_i = \gamma \hat x_i + \beta

In evaluation mode the batch statistics are replaced by running averages collected in training,
:math:`\hat\mu \leftarrow (1 - m)\hat\mu + m\,\mu_{\mathcal B}` and
:math:`\hat\sigma^2 \leftarrow (1 - m)\hat\sigma^2 + m\,\frac{|\mathcal B|}{|\mathcal B| - 1}\sigma^2_{\mathcal B}`
(momentum :math:`m`; the running variance is the unbiased one, as in the paper's inference step and in
``torch.nn.BatchNorm*``; ``momentum=None`` gives the plain cumulative average).

Reference: S. Ioffe, C. Szegedy (2015). Batch Normalization: Accelerating Deep Network Training by
Reducing Internal Covariate Shift. ICML. Slides: Y. LeCun, "Optimization" (NYU 2020), "Normalization
tricks"; I. Misra, "Optimization for Deep Networks".
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check, check_data, is_number, non_negative, positive_int
from ._moments import channel_view, check_input, normalize


def batch_norm(x: Tensor, gamma: Tensor | None = None, beta: Tensor | None = None, *, eps: float = 1e-5,
               running_mean: Tensor | None = None, running_var: Tensor | None = None,
               training: bool = True, momentum: float | None = 0.1,
               num_batches_tracked: int = 0) -> Tensor:
    r"""Batch-normalize ``x`` of shape ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` channel by channel.

    .. math:: y = \gamma \frac{x - \mu_{\mathcal B}}{\sqrt{\sigma^2_{\mathcal B} + \epsilon}} + \beta

    with the statistics over every axis but the channel axis 1. In training the running statistics
    (if given) are updated *in place*; with ``training=False`` they are used instead of the batch's.

    Args:
        x: the input; axis 1 holds the channels.
        gamma, beta: per-channel scale and shift (``None``: 1 and 0).
        eps: the epsilon added to the variance.
        running_mean, running_var: per-channel running statistics (``None``: not tracked).
        training: use the batch statistics (and update the running ones).
        momentum: the running-average constant m; ``None`` for the cumulative average, which needs
            ``num_batches_tracked`` (the count *including* this batch).

    Reference: Ioffe & Szegedy (2015), Algorithm 1 and 2.
    """
    check_input("batch_norm", x, (2, 3, 4))
    non_negative("batch_norm", "eps", eps)
    dims = (0,) + tuple(range(2, x.dim()))
    if training or running_mean is None:
        m = x.numel() // x.shape[1]
        check_data("batch_norm", "input", not training or m > 1, f"shape {tuple(x.shape)} gives {m} value per channel",
                   "more than 1 value per channel in training")
        x_hat, mu, sigma2 = normalize(x, dims, eps)
        if training and running_mean is not None:
            if momentum is None:
                positive_int("batch_norm", "num_batches_tracked", num_batches_tracked)
            a = 1.0 / num_batches_tracked if momentum is None else momentum
            with torch.no_grad():
                running_mean.mul_(1 - a).add_(a * mu.reshape(-1))
                running_var.mul_(1 - a).add_(a * sigma2.reshape(-1) * m / (m - 1))
    else:
        mu, sigma2 = channel_view(running_mean, x.dim()), channel_view(running_var, x.dim())
        x_hat = (x - mu) / torch.sqrt(sigma2 + eps)
    if gamma is not None:
        x_hat = x_hat * channel_view(gamma, x.dim())
    if beta is not None:
        x_hat = x_hat + channel_view(beta, x.dim())
    return x_hat


class _BatchNorm(nn.Module):
    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        positive_int(name, "num_features", num_features)
        non_negative(name, "eps", eps)
        check(name, "momentum", momentum, momentum is None or (is_number(momentum) and 0 <= momentum <= 1),
              "None or a number in [0, 1]")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        kw = dict(device=device, dtype=dtype)
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kw))  # gamma
            self.bias = nn.Parameter(torch.zeros(num_features, **kw))   # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kw))
            self.register_buffer("running_var", torch.ones(num_features, **kw))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Tensor) -> Tensor:
        check_input(type(self).__name__, x, self._ndims, self.num_features)
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
        return batch_norm(x, self.weight, self.bias, eps=self.eps,
                          running_mean=self.running_mean, running_var=self.running_var,
                          training=self.training or not self.track_running_stats, momentum=self.momentum,
                          num_batches_tracked=int(self.num_batches_tracked) if self.track_running_stats else 0)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization over ``(N, C)`` or ``(N, C, L)`` inputs; same arguments and state as ``torch.nn.BatchNorm1d``.

    The math is :func:`batch_norm`; ``weight`` is gamma and ``bias`` is beta.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance.
        momentum: the running-statistics constant (``None``: cumulative average).
        affine: learn gamma and beta.
        track_running_stats: keep running statistics for evaluation mode.

    Reference: Ioffe & Szegedy (2015). Batch Normalization. ICML.

    Example:
        >>> bn = BatchNorm1d(3)
        >>> y = bn(torch.randn(8, 3))
    """

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization over ``(N, C, H, W)`` inputs; same arguments and state as ``torch.nn.BatchNorm2d``.

    The statistics of channel c are over N, H and W (the slide: "Batch norm: N, H, W"). The math is
    :func:`batch_norm`; see :class:`BatchNorm1d` for the arguments.

    Reference: Ioffe & Szegedy (2015). Batch Normalization. ICML.

    Args:
        num_features, eps, momentum, affine, track_running_stats: as in :class:`BatchNorm1d`.
    """

    _ndims = (4,)
