r"""The exact diagonal of the generalized Gauss-Newton matrix, by backpropagating a factor of the loss Hessian.

Factor each sample's output-space loss Hessian, :math:`H_{\ell,n} = \sum_c s_{nc}\, b_{nc} b_{nc}^\top`
(:math:`s = \pm1`, :math:`C` = number of outputs); then

.. math::

    \operatorname{diag}(G) = \sum_n \sum_c s_{nc}\, \big(J_n^\top b_{nc}\big)^{\odot 2}

so backpropagating the :math:`C` vectors :math:`b_{nc}` of every sample and squaring the per-sample
parameter gradients gives the diagonal exactly (no off-diagonal term is dropped, unlike
Becker-LeCun). For a linear layer :math:`Y = \omega\chi` the per-sample gradient factorizes,
:math:`\sum_c (B_{nck}\chi_{ni})^2 = \chi_{ni}^2\sum_c B_{nck}^2`, so the cost is close to ``C``
cheap backward passes. Models that are not supported stacks take per-sample Jacobians instead (same
result, small models only); :func:`ggn_diagonal_method` says which a model gets.

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
from .._sequential import ELEMENTWISE, activation_derivatives, conv_kwargs, forward_record, sequential_layers
from ..ggn import jacobian
from ._layers import collect, output_hessian_factor

_CHUNK_BYTES = 2 ** 20  # one chunk's widest factor (N_chunk, C, width): about a core's L2 cache
_CHUNK_SAMPLES_MIN = 16  # fewer samples per chunk costs more in per-call overhead than the cache saves


def ggn_diagonal_method(model: nn.Module) -> str:
    """How :func:`ggn_diagonal` computes the diagonal of ``model``: ``"layer-wise"`` (backpropagating the
    output-Hessian factor through an ``nn.Sequential`` of ``Linear`` (2-D weights), ``Conv2d``
    (``groups=1``), ``Flatten`` and element-wise activations, without hooks or an overridden
    ``forward``) or ``"jacobians"`` (per-sample Jacobians: any model, small ones only)."""
    try:
        layers = sequential_layers(model, supported=(nn.Linear, nn.Conv2d, nn.Flatten) + ELEMENTWISE)
    except TypeError:  # what running the layers one by one cannot reproduce: the Jacobians can
        return "jacobians"
    supported = all(m.groups == 1 for m in layers if isinstance(m, nn.Conv2d)) and all(
        m.weight.dim() == 2 for m in layers if isinstance(m, nn.Linear))
    return "layer-wise" if supported else "jacobians"


def ggn_diagonal(model: nn.Module, loss_fn, data, *, params=None) -> Tensor:
    r"""Exact diagonal of the generalized Gauss-Newton matrix :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b`.

    .. math::

        \operatorname{diag}(G) = \sum_n \sum_c s_{nc} \big(J_n^\top b_{nc}\big)^{\odot 2},
        \qquad H_{\ell,n} = \sum_c s_{nc} b_{nc} b_{nc}^\top

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.GGNOperator`. ``nn.Sequential``
            stacks of ``Linear``, ``Conv2d``, ``Flatten`` and element-wise activations take the fast
            layer-wise path; other models use per-sample Jacobians (small models only):
            :func:`ggn_diagonal_method` tells which.

    Returns:
        The flat diagonal (equals ``GGNOperator(...).to_dense().diagonal()``).

    Reference: Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient
    descent. Neural Computation 14(7).
    """
    owner = "ggn_diagonal"
    batches = Batches(data, owner)
    params = resolve_params(model, params, owner)
    if ggn_diagonal_method(model) == "jacobians":
        return _ggn_diagonal_by_jacobians(model, loss_fn, batches, params)
    layers = sequential_layers(model, owner=owner)
    diag_of = {id(p): torch.zeros_like(p) for m in layers for p in m.parameters(recurse=False)}
    with torch.no_grad(), preserved_buffers(model):
        for x, y, w in batches:
            _layer_wise_batch(layers, loss_fn, x, y, w, diag_of)
    return collect(params, diag_of, owner)


def _layer_wise_batch(layers, loss_fn, x: Tensor, y: Tensor, weight: float, diag_of: dict) -> None:
    """One batch's diagonal added to ``diag_of``: factor the output Hessian, backpropagate the factor in
    chunks of samples (a chunk's factors stay in the cache), then square and sum for every ``Linear``."""
    inputs, out = forward_record(layers, x)
    B, s = output_hessian_factor(loss_fn, out, y, weight)  # (N, C, *out) and (N, C)
    s = None if bool((s > 0).all()) else s  # convex losses: skip the signs
    N, C = B.shape[:2]
    S = {j: out.new_empty(N, m.out_features) for j, m in enumerate(layers) if isinstance(m, nn.Linear)}
    k = max(_CHUNK_SAMPLES_MIN, _CHUNK_BYTES // (out.element_size() * max(1, C) * max(
        h[0].numel() for h in inputs + [out])))
    for n in range(0, N, k):  # samples are independent
        backpropagate_factor(layers, [h[n:n + k] for h in inputs], out[n:n + k], B[n:n + k],
                             None if s is None else s[n:n + k], {j: S_j[n:n + k] for j, S_j in S.items()}, diag_of)
    for j, S_j in S.items():  # Linear: the gradient of omega_ki is b_k chi_i, so sum_c s_c (.)^2 = S_k chi_i^2
        m, chi = layers[j], inputs[j]
        diag_of[id(m.weight)] += S_j.T @ (chi * chi)
        if m.bias is not None:
            diag_of[id(m.bias)] += S_j.sum(0)


def sum_c_squares(B: Tensor, s: Tensor | None, out: Tensor | None = None) -> Tensor:
    r""":math:`S_{n\ldots} = \sum_c s_{nc} B_{nc\ldots}^2` (``s = None``: all signs +1), into ``out`` if given."""
    B2 = B.square()
    if s is not None:
        B2 *= s.view(*s.shape, *(1,) * (B.dim() - 2))
    return torch.sum(B2, 1, out=out)


def backpropagate_factor(layers, inputs, out, B: Tensor, s: Tensor | None, S: dict, diag_of: dict) -> None:
    r"""Backpropagate the rows :math:`b_{nc}` of the output-Hessian factor ``B`` (N, C, *out) through ``layers``.

    Writes, for every ``Linear`` layer ``j``, :math:`\sum_c s_{nc}\, (\partial_{y_j} b_{nc})^{\odot 2}` (the squared
    rows at its output :math:`y_j`, N x out) into ``S[j]``; adds the diagonal blocks of ``Conv2d`` layers
    to ``diag_of``.

    An element-wise layer :math:`z = f(y)` multiplies the rows by :math:`f'(y)`. The product is kept
    pending as a per-(sample, unit) scale :math:`d` and applied to ``B`` only when ``B`` is propagated
    through a weight; the first parametric layer scales the sum instead, :math:`d^2 \odot \sum_c s_c B_c^2`.
    """
    N, C = B.shape[:2]
    first = min((j for j, m in enumerate(layers) if isinstance(m, (nn.Linear, nn.Conv2d))), default=len(layers))
    d = None  # pending scale of B's rows, shaped like one row batch (N, *unit)
    for j in range(len(layers) - 1, first - 1, -1):
        m, chi = layers[j], inputs[j]
        if isinstance(m, nn.Flatten):
            B = B.reshape(N, C, *chi.shape[1:])
            d = None if d is None else d.reshape(chi.shape)
            continue
        if not isinstance(m, (nn.Linear, nn.Conv2d)):  # element-wise
            z = inputs[j + 1] if j + 1 < len(layers) else out
            f1, _ = activation_derivatives(m, chi, z, second=False)
            d = f1 if d is None else d * f1
            continue
        if d is not None and (j > first or isinstance(m, nn.Conv2d)):
            B, d = B * d[:, None], None
        if isinstance(m, nn.Linear):
            sum_c_squares(B, s, out=S[j])
            if d is not None:
                S[j] *= d * d
            if j > first:
                B = B @ m.weight
        else:
            Bf = B.reshape(N, C, m.out_channels, -1)  # (N, C, Cout, L)
            unf = F.unfold(chi, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
            gW = torch.einsum("ncol,nkl->ncok", Bf, unf)  # per-sample, per-c weight gradients
            diag_of[id(m.weight)] += sum_c_squares(gW, s).sum(0).view_as(m.weight)
            if m.bias is not None:
                diag_of[id(m.bias)] += sum_c_squares(Bf.sum(-1), s).sum(0)
            if j > first:
                Bi = nng.conv2d_input((N * C, *chi.shape[1:]), m.weight, B.reshape(N * C, *B.shape[2:]),
                                      **conv_kwargs(m))
                B = Bi.reshape(N, C, *chi.shape[1:])


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
        JB = torch.einsum("nop,nco->ncp", Jf, B.reshape(N, C, Jf.shape[1]))
        d = torch.einsum("nc,ncp->p", s, JB * JB)
        total = d if total is None else total + d
    return total
