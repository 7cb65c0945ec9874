r"""A layer of radial-basis-function units, as in the output layer of LeNet-5.

.. math::

    Y_k = \sum_i (\chi_i - \omega_{ki})^2

Each unit's parameters :math:`\omega_k` are a centre (a prototype); the output is the squared
Euclidean distance of the input to it. The slides' rules for backpropagating the diagonal Hessian
through RBF units are in :mod:`optlab.curvature.diagonal.becker_lecun`.

Reference: LeCun, Y., Bottou, L., Bengio, Y., Haffner, P. (1998). Gradient-based learning applied to
document recognition. Proceedings of the IEEE 86(11).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import check_shape, positive_int


def rbf(chi: Tensor, omega: Tensor) -> Tensor:
    r""":math:`Y_{nk} = \sum_i (\chi_{ni} - \omega_{ki})^2` for inputs ``chi`` (N, I) and centres ``omega`` (K, I)."""
    return ((chi[:, None, :] - omega[None, :, :]) ** 2).sum(-1)


class RBF(nn.Module):
    r"""``out_features`` Euclidean RBF units on ``in_features`` inputs: :math:`Y_k = \sum_i (\chi_i - \omega_{ki})^2`.

    Args:
        in_features: size of each input sample.
        out_features: number of units (centres).

    Reference: LeCun, Y., Bottou, L., Bengio, Y., Haffner, P. (1998). Gradient-based learning applied to
    document recognition. Proceedings of the IEEE 86(11).
    """

    def __init__(self, in_features: int, out_features: int, *, dtype=None):
        super().__init__()
        positive_int("RBF", "in_features", in_features)
        positive_int("RBF", "out_features", out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features, dtype=dtype))

    def forward(self, chi: Tensor) -> Tensor:
        check_shape("RBF", "input", chi.shape, chi.dim() == 2 and chi.shape[1] == self.in_features,
                    f"(N, {self.in_features})")
        return rbf(chi, self.weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
