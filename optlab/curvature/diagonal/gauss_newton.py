r"""The exact diagonal of the generalized Gauss-Newton matrix, by backpropagating a factor of the loss Hessian.

Factor each sample's output-space loss Hessian, :math:`H_{\ell,n} = \sum_c s_{nc}\, b_{nc} b_{nc}^\top`
(:math:`s = \pm1`, :math:`C` = number of outputs); then

.. math::

    \operatorname{diag}(G) = \sum_n \sum_c s_{nc}\, \big(J_n^\top b_{nc}\big)^{\odot 2}

so backpropagating the :math:`C` vectors :math:`b_{nc}` of every sample and squaring the per-sample
parameter gradients gives the diagonal exactly (no off-diagonal term is dropped, unlike
Becker-LeCun). For a linear layer :math:`Y = \omega\chi` the per-sample gradient factorizes,
:math:`\sum_c (B_{nck}\chi_{ni})^2 = \chi_{ni}^2\sum_c B_{nck}^2`, so the cost is close to ``C``
cheap backward passes. Models that are not supported stacks fall back to per-sample Jacobians.

References:
    Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient
    descent. Neural Computation 14(7).
    Dangel, F., Kunstner, F., Hennig, P. (2020). BackPACK: Packing more into backprop. ICLR.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.nn.grad as nng
from torch import Tensor, nn

from .._data import Batches, preserved_buffers, resolve_params
from ..ggn import jacobian
from ._layers import (ELEMENTWISE, activation_derivatives, collect, conv_kwargs, forward_record,
                      output_hessian_factor, sequential_layers)


def _supported(model) -> bool:
    try:
        layers = sequential_layers(model, supported=(nn.Linear, nn.Conv2d, nn.Flatten) + ELEMENTWISE)
    except TypeError:
        return False
    return all(m.groups == 1 for m in layers if isinstance(m, nn.Conv2d)) and all(
        m.weight.dim() == 2 for m in layers if isinstance(m, nn.Linear))


def ggn_diagonal(model: nn.Module, loss_fn, data, *, params=None) -> Tensor:
    r"""Exact diagonal of the generalized Gauss-Newton matrix :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b`.

    .. math::

        \operatorname{diag}(G) = \sum_n \sum_c s_{nc} \big(J_n^\top b_{nc}\big)^{\odot 2},
        \qquad H_{\ell,n} = \sum_c s_{nc} b_{nc} b_{nc}^\top

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.GGNOperator`. ``nn.Sequential``
            stacks of ``Linear``, ``Conv2d``, ``Flatten`` and element-wise activations take the fast
            layer-wise path; other models use per-sample Jacobians (small models only).

    Returns:
        The flat diagonal (equals ``GGNOperator(...).to_dense().diagonal()``).

    Reference: Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient
    descent. Neural Computation 14(7).
    """
    batches = Batches(data)
    params = resolve_params(model, params)
    if not _supported(model):
        return _ggn_diagonal_by_jacobians(model, loss_fn, batches, params)
    layers = sequential_layers(model)
    diag_of = {id(p): torch.zeros_like(p) for m in layers for p in m.parameters(recurse=False)}
    with torch.no_grad(), preserved_buffers(model):
        for x, y, w in batches:
            inputs, out = forward_record(layers, x)
            B, s = output_hessian_factor(loss_fn, out, y, w)  # (N, C, *out) and (N, C)
            N, C = s.shape
            positive = bool((s > 0).all())  # convex losses: skip the signs
            for j in range(len(layers) - 1, -1, -1):
                m, chi = layers[j], inputs[j]
                if isinstance(m, nn.Linear):
                    S = (B * B).sum(1) if positive else torch.einsum("nc,nck->nk", s, B * B)
                    diag_of[id(m.weight)] += S.T @ (chi * chi)
                    if m.bias is not None:
                        diag_of[id(m.bias)] += S.sum(0)
                    if j > 0:
                        B = B @ m.weight
                elif isinstance(m, nn.Conv2d):
                    kw = conv_kwargs(m)
                    Bf = B.reshape(N, C, m.out_channels, -1)  # (N, C, Cout, L)
                    unf = F.unfold(chi, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
                    gW = torch.einsum("ncol,nkl->ncok", Bf, unf)  # per-sample, per-c weight gradients
                    diag_of[id(m.weight)] += torch.einsum("nc,ncok->ok", s, gW * gW).view_as(m.weight)
                    if m.bias is not None:
                        gb = Bf.sum(-1)
                        diag_of[id(m.bias)] += torch.einsum("nc,nco->o", s, gb * gb)
                    if j > 0:
                        Bi = nng.conv2d_input((N * C, *chi.shape[1:]), m.weight,
                                              B.reshape(N * C, *B.shape[2:]), **kw)
                        B = Bi.reshape(N, C, *chi.shape[1:])
                elif isinstance(m, nn.Flatten):
                    B = B.reshape(N, C, *chi.shape[1:])
                else:
                    z = inputs[j + 1] if j + 1 < len(layers) else out
                    f1, _ = activation_derivatives(m, chi, z, second=False)
                    B = B * f1[:, None]
    return collect(model, params, diag_of)


def _ggn_diagonal_by_jacobians(model, loss_fn, batches, params) -> Tensor:
    """Fallback: :math:`\\sum_n \\sum_{c,d} J_{ncp} H_{ncd} J_{ndp}` from the full Jacobian (any model)."""
    total = None
    for x, y, w in batches:
        J = jacobian(model, x, params=params)  # (N, *out, P)
        with torch.no_grad(), preserved_buffers(model):
            out = model(x)
        B, s = output_hessian_factor(loss_fn, out, y, w)
        N, C = s.shape
        Jf = J.reshape(N, -1, J.shape[-1])  # (N, O, P)
        JB = torch.einsum("nop,nco->ncp", Jf, B.reshape(N, C, -1))
        d = torch.einsum("nc,ncp->p", s, JB * JB)
        total = d if total is None else total + d
    return total
