r"""The Jacobian of a network's outputs and the generalized Gauss-Newton matrix ("square of the Jacobian").

The slides (LeCun, "Gauss-Newton Approximation of the Hessian") write, for the squared error
:math:`E(\omega) = \tfrac12 \sum_p \|D_p - N(\omega, \chi_p)\|^2`,

.. math::

    H(\omega) = \sum_p \frac{\partial N}{\partial\omega}^\top \frac{\partial N}{\partial\omega}
      + \sum_p (D_p - N)^\top \frac{\partial^2 N}{\partial\omega\,\partial\omega}

and drop the second sum: the Gauss-Newton matrix :math:`G = \sum_p J_p^\top J_p` is positive
semi-definite, and equals the Hessian of the network linearized in its parameters. For a general loss
:math:`\ell(f, y)` the generalized Gauss-Newton (Schraudolph 2002) keeps the loss curvature in output
space, :math:`H_\ell = \partial^2 \ell / \partial f^2`:

.. math::

    G = \sum_b \frac{n_b}{N}\, J_b^\top H_{\ell,b} J_b, \qquad G v = J^\top \big(H_\ell (J v)\big)

(with the slides' :math:`\tfrac12\|\cdot\|^2` loss, :math:`H_\ell = I` and :math:`G = J^\top J`).
:math:`Jv` is computed by the double-vjp trick (a backward pass differentiated once more),
:math:`H_\ell u` by a Hessian-vector product of the loss in output space, :math:`J^\top w` by an
ordinary backward pass: nothing dense is built.

References:
    Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient
    descent. Neural Computation 14(7).
    LeCun, Y., Bottou, L., Orr, G., Müller, K.-R. (1998). Efficient BackProp. Section 6.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._data import Batches, flatten, num_params, preserved_buffers, resolve_params, scalar_loss, unflatten
from ._operator import CurvatureOperator


def jacobian(model: torch.nn.Module, inputs: Tensor, *, params=None) -> Tensor:
    r"""Jacobian :math:`J = \partial N(\omega, \chi) / \partial \omega` of the network outputs.

    The slides' recipe: for each output unit, set its output gradient to 1 and the others to 0, and
    back-propagate; here every output entry of every sample gets its own row.

    Args:
        model: the network (its train/eval mode is used as it is).
        inputs: a batch of inputs.
        params: tensors to differentiate (default: every parameter with ``requires_grad``).

    Returns:
        Tensor of shape ``(*outputs.shape, P)``: ``J[n, k, :]`` is the gradient of output ``k`` of
        sample ``n``.

    Reference: LeCun, Y., Bottou, L., Orr, G., Müller, K.-R. (1998). Efficient BackProp.
    """
    params = resolve_params(model, params)
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a tensor, got {type(inputs).__name__}")
    with torch.enable_grad(), preserved_buffers(model):
        out = model(inputs)
        eye = torch.eye(out.numel(), dtype=out.dtype, device=out.device).view(out.numel(), *out.shape)
        rows = torch.autograd.grad(out, params, grad_outputs=eye, is_grads_batched=True, allow_unused=True)
    J = torch.cat([(r if r is not None else torch.zeros(out.numel(), *p.shape, dtype=out.dtype))
                   .reshape(out.numel(), -1) for r, p in zip(rows, params)], dim=1)
    return J.reshape(*out.shape, -1)


def output_hessian(loss_fn, outputs: Tensor, targets: Tensor) -> Tensor:
    r"""The dense loss Hessian in output space :math:`H_\ell = \partial^2 \ell / \partial f^2`, shape ``(numel, numel)``."""
    f = outputs.detach().reshape(-1).requires_grad_(True)
    with torch.enable_grad():
        loss = scalar_loss(loss_fn(f.view_as(outputs), targets))
        (g,) = torch.autograd.grad(loss, f, create_graph=True)
        eye = torch.eye(f.numel(), dtype=f.dtype, device=f.device)
        (H,) = torch.autograd.grad(g, f, grad_outputs=eye, is_grads_batched=True)
    return H


def gauss_newton_matrix(model: torch.nn.Module, loss_fn, data, *, params=None) -> Tensor:
    r"""The dense generalized Gauss-Newton matrix :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b`.

    Built from :func:`jacobian` and :func:`output_hessian` (small models only); for the slides'
    :math:`\tfrac12\|D - N\|^2` loss it is the "square of the Jacobian" :math:`J^\top J`.

    Reference: Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order
    gradient descent. Neural Computation 14(7).
    """
    batches = Batches(data)
    params = resolve_params(model, params)
    G = None
    for x, y, w in batches:
        J = jacobian(model, x, params=params)
        with torch.no_grad(), preserved_buffers(model):
            out = model(x)
        J = J.reshape(out.numel(), -1)
        Gb = w * (J.T @ output_hessian(loss_fn, out, y) @ J)
        G = Gb if G is None else G + Gb
    return G


class GGNOperator(CurvatureOperator):
    r"""The generalized Gauss-Newton matrix :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b` as an operator.

    .. math::

        G v = J^\top \big( H_\ell\, (J v) \big)

    Positive semi-definite whenever the loss is convex in the outputs (MSE, cross-entropy).

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`.

    Reference: Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order
    gradient descent. Neural Computation 14(7).
    """

    def __init__(self, model: torch.nn.Module, loss_fn, data, params=None):
        self.model, self.loss_fn = model, loss_fn
        self.batches = Batches(data)
        self.params = resolve_params(model, params)
        p0 = self.params[0]
        super().__init__(num_params(self.params), p0.dtype, p0.device)

    def _matvec(self, v: Tensor) -> Tensor:
        return self._matmat(v[:, None])[:, 0]

    def _matmat(self, V: Tensor) -> Tensor:
        out_cols = torch.zeros_like(V)
        with torch.enable_grad(), preserved_buffers(self.model):
            for x, y, w in self.batches:
                out_cols += w * ggn_batch_matmat(self.model, self.loss_fn, x, y, self.params, V)
        return out_cols


def ggn_batch_matmat(model, loss_fn, x, y, params, V: Tensor, output_matvec=None) -> Tensor:
    """:math:`J^\\top H_\\ell J V` on one batch (columns of ``V``), sharing one forward pass.

    ``output_matvec(f, u)``, if given, replaces the loss Hessian :math:`H_\\ell u` in output space (the
    Fisher operator passes its output-space Fisher).
    """
    out = model(x)
    # J v by the double-vjp trick: u -> J^T u is linear, so differentiating it w.r.t. u gives J.
    u = torch.zeros_like(out, requires_grad=True)
    JTu = torch.autograd.grad(out, params, grad_outputs=u, create_graph=True, allow_unused=True)
    used = [(g, p) for g, p in zip(JTu, params) if g is not None]
    f = out.detach().requires_grad_(True)
    if output_matvec is None:
        loss = scalar_loss(loss_fn(f, y))
        (gf,) = torch.autograd.grad(loss, f, create_graph=True)
    if V.shape[1] > 1:
        try:  # all columns at once (autograd's vmap over the backward passes)
            return _ggn_columns_batched(out, u, used, JTu, f, gf if output_matvec is None else None, params, V,
                                        output_matvec)
        except RuntimeError:  # an operation without a batching rule: one column at a time
            pass
    cols = []
    for j in range(V.shape[1]):
        vs = [vi for g, vi in zip(JTu, unflatten(V[:, j], params)) if g is not None]
        (Jv,) = torch.autograd.grad([g for g, _ in used], u, grad_outputs=vs, retain_graph=True)
        if output_matvec is None:
            (HJv,) = torch.autograd.grad(gf, f, grad_outputs=Jv, retain_graph=True)
        else:
            HJv = output_matvec(f.detach(), Jv)
        cols.append(flatten(torch.autograd.grad(out, params, grad_outputs=HJv, retain_graph=True,
                                                allow_unused=True), params))
    return torch.stack(cols, dim=1)


def _ggn_columns_batched(out, u, used, JTu, f, gf, params, V, output_matvec):
    k = V.shape[1]
    Vs = [Vi for g, Vi in zip(JTu, _unflatten_columns(V, params)) if g is not None]
    (JV,) = torch.autograd.grad([g for g, _ in used], u, grad_outputs=Vs, retain_graph=True, is_grads_batched=True)
    if output_matvec is None:
        (HJV,) = torch.autograd.grad(gf, f, grad_outputs=JV, retain_graph=True, is_grads_batched=True)
    else:
        HJV = torch.stack([output_matvec(f.detach(), JV[i]) for i in range(k)])
    rows = torch.autograd.grad(out, params, grad_outputs=HJV, retain_graph=True, allow_unused=True,
                               is_grads_batched=True)
    return torch.cat([(r if r is not None else torch.zeros(k, *p.shape, dtype=V.dtype, device=V.device)).reshape(k, -1)
                      for r, p in zip(rows, params)], dim=1).T


def _unflatten_columns(V: Tensor, params) -> list[Tensor]:
    """Split the ``(P, k)`` matrix ``V`` into ``k``-batched tensors shaped ``(k, *p.shape)``."""
    out, i = [], 0
    for p in params:
        out.append(V[i:i + p.numel()].T.reshape(V.shape[1], *p.shape))
        i += p.numel()
    return out
