r"""Backpropagating the diagonal Hessian (Becker & LeCun 1988), the slides' "Computing the Diagonal Hessian
in Complicated Structures".

For a block :math:`Y = F(\omega, \chi)` the chain rule for second derivatives is

.. math::

    \frac{\partial^2 E}{\partial\omega^2} = \frac{\partial Y}{\partial\omega}^\top
        \frac{\partial^2 E}{\partial Y^2}\frac{\partial Y}{\partial\omega}
      + \frac{\partial E}{\partial Y}\frac{\partial^2 Y}{\partial\omega^2}

and keeping only diagonal terms gives one backward-like pass, at the cost of ordinary backprop
(per sample, then averaged over the data):

* weighted sums :math:`Y_k = \sum_i \omega_{ki}\chi_i`:
  :math:`\partial^2E/\partial\omega_{ki}^2 = \partial^2E/\partial Y_k^2\,\chi_i^2`,
  :math:`\partial^2E/\partial\chi_i^2 = \sum_k \partial^2E/\partial Y_k^2\,\omega_{ki}^2`
  (convolutions: the same, summed over the positions sharing a weight);
* element-wise :math:`Z_k = f(Y_k)`:
  :math:`\partial^2E/\partial Y_k^2 = \partial^2E/\partial Z_k^2\, f'(Y_k)^2 + \partial E/\partial Z_k\, f''(Y_k)`;
* RBF units :math:`Y_k = \sum_i(\chi_i - \omega_{ki})^2`:
  :math:`\partial^2E/\partial\omega_{ki}^2 = 4\,\partial^2E/\partial Y_k^2(\chi_i - \omega_{ki})^2 + 2\,\partial E/\partial Y_k`,
  and the same for :math:`\chi_i` summed over :math:`k`.

``keep_f2=False`` drops the second-derivative terms (:math:`f''` of the non-linearities and the
constant :math:`\partial^2 Y/\partial\omega^2 = 2` of the RBF units), the slides' "ignore this!": the
estimate is then non-negative (Gauss-Newton-like) and needs no first derivatives.

Where the slide differs: its non-linearity rule shows only the :math:`f'(Y)^2` term (the published
rule has the :math:`f''` term too; it is the ``keep_f2`` option), and its RBF rule omits the factor 4
of :math:`(\partial Y_k/\partial\omega_{ki})^2 = 4(\chi_i - \omega_{ki})^2`; this module implements
the chain rule exactly.

The result is exact for the last layer's weights (nothing is dropped there) and for networks one unit
wide; elsewhere it ignores the off-diagonal terms between units of a layer and is an approximation:
measure its error against :func:`~optlab.curvature.diagonal.exact.exact_diagonal`.

References:
    Becker, S., LeCun, Y. (1988). Improving the convergence of back-propagation learning with second
    order methods. Proceedings of the 1988 Connectionist Models Summer School.
    LeCun, Y., Bottou, L., Orr, G., Müller, K.-R. (1998). Efficient BackProp. Section 7.
"""

from __future__ import annotations

import torch
import torch.nn.grad as nng
from torch import Tensor, nn

from ...errors import boolean, shape_error
from .._data import Batches, preserved_buffers, resolve_params
from .._sequential import activation_derivatives, conv_kwargs, forward_record, sequential_layers
from ..rbf import RBF
from ._layers import collect, output_derivatives


def linear_rule(d2Y: Tensor, chi: Tensor, omega: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Weighted sum: returns :math:`\sum_n \partial^2E/\partial Y_k^2\,\chi_i^2` (weights),
    :math:`\sum_n \partial^2E/\partial Y_k^2` (biases) and :math:`\partial^2E/\partial\chi_i^2 = \sum_k \partial^2E/\partial Y_k^2\,\omega_{ki}^2`."""
    return d2Y.T @ (chi * chi), d2Y.sum(0), d2Y @ (omega * omega)


def nonlinearity_rule(d2Z: Tensor, dZ: Tensor | None, f1: Tensor, f2: Tensor | None) -> Tensor:
    r""":math:`\partial^2E/\partial Y^2 = \partial^2E/\partial Z^2 f'(Y)^2 \;[+\; \partial E/\partial Z\, f''(Y)]`."""
    d2Y = d2Z * f1 * f1
    return d2Y if dZ is None else d2Y + dZ * f2


def rbf_rule(d2Y: Tensor, dY: Tensor | None, chi: Tensor, omega: Tensor) -> tuple[Tensor, Tensor]:
    r"""RBF units: :math:`\partial^2E/\partial\omega_{ki}^2 = \sum_n 4\,\partial^2E/\partial Y_k^2(\chi_i-\omega_{ki})^2 \,[+\, 2\,\partial E/\partial Y_k]`
    and :math:`\partial^2E/\partial\chi_i^2 = \sum_k (\ldots)`."""
    diff2 = (chi[:, None, :] - omega[None, :, :]) ** 2  # (N, K, I)
    term = 4 * d2Y[:, :, None] * diff2
    if dY is not None:
        term = term + 2 * dY[:, :, None]
    return term.sum(0), term.sum(1)


def becker_lecun_diagonal(model: nn.Sequential, loss_fn, data, *, params=None, keep_f2: bool = True) -> Tensor:
    r"""Diagonal of the Hessian backpropagated as in Becker & LeCun (1988) (see the module docstring).

    .. math::

        \frac{\partial^2 E}{\partial\omega_{ki}^2} = \frac{\partial^2 E}{\partial Y_k^2}\chi_i^2,\quad
        \frac{\partial^2 E}{\partial\chi_i^2} = \sum_k \frac{\partial^2 E}{\partial Y_k^2}\omega_{ki}^2,\quad
        \frac{\partial^2 E}{\partial Y_k^2} = \frac{\partial^2 E}{\partial Z_k^2} f'(Y_k)^2
            + \frac{\partial E}{\partial Z_k} f''(Y_k)

    Args:
        model: an ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``Flatten``, :class:`~optlab.curvature.RBF`
            and element-wise activations.
        loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`.
        keep_f2: keep the :math:`\partial E/\partial Z\, f''` terms (default); ``False`` drops them
            (non-negative, Gauss-Newton-like estimate, as for stochastic diagonal Levenberg-Marquardt).

    Returns:
        The flat diagonal estimate (same layout as the parameters).

    Reference: Becker, S., LeCun, Y. (1988). Improving the convergence of back-propagation learning with
    second order methods. Proceedings of the 1988 Connectionist Models Summer School.
    """
    owner = "becker_lecun_diagonal"
    boolean(owner, "keep_f2", keep_f2)
    layers = sequential_layers(model, owner=owner)
    batches = Batches(data, owner)
    params = resolve_params(model, params, owner)
    diag_of = {id(p): torch.zeros_like(p) for m in layers for p in m.parameters(recurse=False)}
    with torch.no_grad(), preserved_buffers(model):
        for x, y, w in batches:
            backpropagate_diagonal(layers, loss_fn, x, y, w, keep_f2, diag_of, owner)
    return collect(params, diag_of, owner)


def backpropagate_diagonal(layers, loss_fn, x: Tensor, y: Tensor, weight: float, keep_f2: bool, diag_of: dict,
                           owner: str) -> None:
    r"""One batch (of weight ``weight`` in the data average): forward through ``layers``, then
    :math:`\partial E/\partial Z` and :math:`\partial^2 E/\partial Z^2` from the output back to the first
    layer, one rule per layer, adding each parametric layer's diagonal to ``diag_of``."""
    inputs, out = forward_record(layers, x)
    dZ, d2Z = output_derivatives(loss_fn, out, y, weight, first=keep_f2)
    for j in range(len(layers) - 1, -1, -1):
        m, chi, need_input = layers[j], inputs[j], j > 0
        if isinstance(m, nn.Linear):
            if chi.dim() != 2:
                raise shape_error(owner, f"inputs of layer {j} (Linear)", chi.shape, "(N, features)")
            dZ, d2Z = _weighted_sum_step(m, chi, dZ, d2Z, diag_of, need_input)
        elif isinstance(m, nn.Conv2d):
            dZ, d2Z = _convolution_step(m, chi, dZ, d2Z, diag_of, need_input)
        elif isinstance(m, RBF):
            dZ, d2Z = _rbf_step(m, chi, dZ, d2Z, diag_of)
        elif isinstance(m, nn.Flatten):
            dZ, d2Z = (dZ.reshape(chi.shape) if dZ is not None else None), d2Z.reshape(chi.shape)
        else:  # element-wise non-linearity: chi is Y, the layer's output is Z
            f1, f2 = activation_derivatives(m, chi, inputs[j + 1] if j + 1 < len(layers) else out, second=keep_f2)
            dZ, d2Z = (dZ * f1 if dZ is not None else None), nonlinearity_rule(d2Z, dZ, f1, f2)


def _weighted_sum_step(m: nn.Linear, chi: Tensor, dZ, d2Z: Tensor, diag_of: dict, need_input: bool):
    """:func:`linear_rule` for a ``Linear`` layer; returns the derivatives at its input (``None`` for the
    first layer)."""
    if not need_input:
        diag_of[id(m.weight)] += d2Z.T @ (chi * chi)
        if m.bias is not None:
            diag_of[id(m.bias)] += d2Z.sum(0)
        return None, None
    dW2, db2, d2chi = linear_rule(d2Z, chi, m.weight)
    diag_of[id(m.weight)] += dW2
    if m.bias is not None:
        diag_of[id(m.bias)] += db2
    return (dZ @ m.weight if dZ is not None else None), d2chi


def _convolution_step(m: nn.Conv2d, chi: Tensor, dZ, d2Z: Tensor, diag_of: dict, need_input: bool):
    """The weighted-sum rule summed over the positions sharing a weight (``torch.nn.grad`` does the sums)."""
    kw = conv_kwargs(m)
    diag_of[id(m.weight)] += nng.conv2d_weight(chi * chi, m.weight.shape, d2Z, **kw)
    if m.bias is not None:
        diag_of[id(m.bias)] += d2Z.sum((0, 2, 3))
    if not need_input:
        return None, None
    d2chi = nng.conv2d_input(chi.shape, m.weight * m.weight, d2Z, **kw)
    return (nng.conv2d_input(chi.shape, m.weight, dZ, **kw) if dZ is not None else None), d2chi


def _rbf_step(m: RBF, chi: Tensor, dZ, d2Z: Tensor, diag_of: dict):
    """:func:`rbf_rule` for a layer of RBF units; returns the derivatives at its input."""
    dW2, d2chi = rbf_rule(d2Z, dZ, chi, m.weight)
    diag_of[id(m.weight)] += dW2
    dchi = (2 * dZ[:, :, None] * (chi[:, None, :] - m.weight[None])).sum(1) if dZ is not None else None
    return dchi, d2chi
