r"""Layer normalization (Ba, Kiros & Hinton, 2016): the statistics of each sample over its features.

For each sample, over the last axes given by ``normalized_shape`` (the slide: "Layer norm: C, H, W"):

.. math::
    \mu = \frac1m \sum_{j} x_j,\qquad \sigma^2 = \frac1m \sum_j (x_j - \mu)^2,\qquad
    y_j = \gamma_j \frac{x_j - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_j

with an elementwise :math:`\gamma, \beta` of shape ``normalized_shape``. The same computation in
training and evaluation (no running statistics).

Reference: J. L. Ba, J. R. Kiros, G. E. Hinton (2016). Layer Normalization. arXiv:1607.06450.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check, check_shape, check_type, is_integer, non_negative
from ._moments import normalize


def layer_norm(x: Tensor, normalized_shape: tuple[int, ...], gamma: Tensor | None = None,
               beta: Tensor | None = None, *, eps: float = 1e-5) -> Tensor:
    r"""Normalize every sample of ``x`` over its last ``len(normalized_shape)`` axes.

    .. math:: y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    Reference: Ba, Kiros & Hinton (2016). Layer Normalization.

    Args:
        x: the input, ending in ``normalized_shape``.
        normalized_shape: the trailing axes normalized over.
        gamma, beta: elementwise scale and shift of shape ``normalized_shape`` (``None``: 1 and 0).
        eps: added to the variance.
    """
    check_type("layer_norm", "input", x, isinstance(x, Tensor), "a torch.Tensor")
    non_negative("layer_norm", "eps", eps)
    k = len(normalized_shape)
    ok = x.dim() >= k and tuple(x.shape[x.dim() - k:]) == tuple(normalized_shape)
    check_shape("layer_norm", "input", x.shape, ok, f"a shape ending in {tuple(normalized_shape)}")
    x_hat, _, _ = normalize(x, tuple(range(x.dim() - k, x.dim())), eps)
    if gamma is not None:
        x_hat = x_hat * gamma
    if beta is not None:
        x_hat = x_hat + beta
    return x_hat


class LayerNorm(nn.Module):
    """Layer normalization; same arguments and parameters as ``torch.nn.LayerNorm``.

    Args:
        normalized_shape: the trailing shape normalized over (an int or a tuple).
        eps: added to the variance.
        elementwise_affine: learn gamma (``weight``) and beta (``bias``), of shape ``normalized_shape``.
        bias: learn beta (only with ``elementwise_affine``).

    The math is :func:`layer_norm`. Reference: Ba, Kiros & Hinton (2016). Layer Normalization.

    Example:
        >>> ln = LayerNorm(5)
        >>> y = ln(torch.randn(4, 5))
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        if is_integer(normalized_shape):
            shape = (normalized_shape,)
        else:
            shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list, torch.Size)) else ()
        check("LayerNorm", "normalized_shape", normalized_shape, len(shape) > 0
              and all(is_integer(s) and s > 0 for s in shape), "a positive integer or a non-empty tuple of them")
        non_negative("LayerNorm", "eps", eps)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        kw = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.ones(shape, **kw)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(shape, **kw)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        check_type("LayerNorm", "input", x, isinstance(x, Tensor), "a torch.Tensor")
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
