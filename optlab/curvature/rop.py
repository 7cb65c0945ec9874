r"""Pearlmutter's R-operator: exact Hessian-vector products by one forward and one backward "R-pass".

For a direction :math:`v` in weight space, :math:`\mathcal{R}\{\cdot\} = \frac{\partial}{\partial r}(\cdot)(\omega + r v)|_{r=0}`
is applied to every equation of backpropagation; :math:`\mathcal{R}\{\nabla_\omega E\} = Hv`. For a layer
stack :math:`z_l = W_l a_{l-1} + b_l`, :math:`a_l = f(z_l)` with loss :math:`E(a_L)` and back-propagated
gradients :math:`\delta` (:math:`V_l, v_{b,l}` are the parts of :math:`v` for :math:`W_l, b_l`):

.. math::

    \text{forward:}\quad & \mathcal{R}z_l = W_l\,\mathcal{R}a_{l-1} + V_l a_{l-1} + v_{b,l}, \qquad
                           \mathcal{R}a_l = f'(z_l) \odot \mathcal{R}z_l \\
    \text{output:}\quad  & \mathcal{R}\delta_{a_L} = \nabla^2_{a_L} E \; \mathcal{R}a_L \\
    \text{backward:}\quad & \mathcal{R}\delta_{z_l} = f'(z_l) \odot \mathcal{R}\delta_{a_l}
                            + f''(z_l) \odot \mathcal{R}z_l \odot \delta_{a_l}, \\
                         & \mathcal{R}\delta_{a_{l-1}} = W_l^\top \mathcal{R}\delta_{z_l} + V_l^\top \delta_{z_l} \\
    \text{result:}\quad  & (Hv)_{W_l} = \mathcal{R}\delta_{z_l}\, a_{l-1}^\top + \delta_{z_l}\, (\mathcal{R}a_{l-1})^\top,
                           \qquad (Hv)_{b_l} = \textstyle\sum_n \mathcal{R}\delta_{z_l}

(convolutions likewise, with the convolution and its transpose in place of :math:`W` and :math:`W^\top`).
The first-order quantities (:math:`a_l`, :math:`f'`, :math:`f''`, :math:`\delta`) do not depend on
:math:`v`: :class:`Linearization` computes them once per batch, and each product then costs only the
R-pass. One product with a fresh linearization costs about two gradients; autograd's double backprop
(:mod:`optlab.curvature.hessian`) also records a graph and differentiates the weight gradients,
which the R-pass never forms.

Supported: ``nn.Sequential`` stacks (nested ones flattened, no hooks, ``Sequential.forward`` not
overridden) of ``Linear``, ``Conv2d`` (``groups=1``, numeric zero padding), ``Flatten`` and element-wise
activations, with any loss (closed forms for mean cross-entropy and mean squared error; the
derivatives with respect to the network output are taken by autograd for any other loss).
:func:`rop_layers` says whether a model qualifies (and why not); the Hessian operator falls back to double
backprop otherwise.

References:
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1), 147-160.
    Møller, M. (1993). Exact calculation of the product of the Hessian matrix of feed-forward network
    error functions and a vector in O(N) time. DAIMI PB-432.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.nn.grad as nng
from torch import Tensor, nn

from ..errors import data_error
from ._data import scalar_loss
from ._sequential import (ELEMENTWISE, activation_derivatives, conv_kwargs, mean_squared_error, plain_cross_entropy,
                          sequential_layers)

# f'' = 0 almost everywhere: the f'' term of the backward R-pass is skipped.
PIECEWISE_LINEAR = (nn.ReLU, nn.Identity, nn.LeakyReLU, nn.Hardtanh)


def rop_layers(model: nn.Module, owner: str = "rop_layers") -> list[nn.Module]:
    """The layers of ``model`` if the R-pass handles it exactly; a ``TypeError`` naming ``owner`` says why not."""
    layers = sequential_layers(model, supported=(nn.Linear, nn.Conv2d, nn.Flatten) + ELEMENTWISE, owner=owner)
    grouped = [m for m in layers if isinstance(m, nn.Conv2d) and m.groups != 1]
    if grouped:
        raise data_error(owner, "model", f"unsupported layer {grouped[0]!r}", "convolutions with groups=1", TypeError)
    return layers


class Linearization:
    r"""Everything about one batch that a Hessian-vector product reuses: layer inputs :math:`a_{l-1}`,
    activation derivatives :math:`f', f''`, back-propagated gradients :math:`\delta`, and what the
    output-Hessian product :math:`\nabla^2_{a_L}E\,\mathcal{R}a_L` needs (softmax probabilities for
    mean cross-entropy; for losses without a closed form, the loss gradient with its autograd graph).

    Args:
        layers: from :func:`rop_layers`.
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar.
        x, y: the batch.
        owner: the public name errors are reported under (a loss that is not a scalar).

    :meth:`hvp` maps ``{id(param): V}`` (missing or ``None``: zero) to ``{id(param): (Hv) part}``.

    Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
    """

    def __init__(self, layers: list[nn.Module], loss_fn, x: Tensor, y: Tensor, owner: str = "Linearization"):
        self.layers = layers
        second = self._forward(x)
        g = self._output_gradient(loss_fn, y, owner)
        self._backward_deltas(g, second)

    def _forward(self, x: Tensor) -> list:
        """Stage 1: the input :math:`a_{l-1}` of every layer, the output, :math:`f'` of every activation;
        returns :math:`f''` (``None`` where it vanishes: piecewise-linear activations and other layers)."""
        n = len(self.layers)
        self.inputs, self.f1, self.f2d = [None] * n, [None] * n, [None] * n
        second = [None] * n
        with torch.no_grad():
            a = x
            for j, m in enumerate(self.layers):
                self.inputs[j] = a
                z = m(a)
                if isinstance(m, ELEMENTWISE):
                    self.f1[j], second[j] = activation_derivatives(
                        m, a, z, second=not isinstance(m, PIECEWISE_LINEAR))
                a = z
        self._a_out = a
        return second

    def _output_gradient(self, loss_fn, y: Tensor, owner: str) -> Tensor:
        """Stage 2: :math:`\\partial E/\\partial a_L`, in closed form for mean cross-entropy (softmax ``p``)
        and mean squared error; otherwise by autograd, keeping the gradient's graph (``g_out``) for the
        output products."""
        a = self._a_out
        self.p = torch.softmax(a, dim=1) if plain_cross_entropy(loss_fn, a, y) else None
        self.mse = mean_squared_error(loss_fn, a, y)
        closed = self.p is not None or self.mse
        with torch.set_grad_enabled(not closed):
            self.out = a.detach().requires_grad_(not closed)
            loss = scalar_loss(loss_fn(self.out, y), owner=owner)  # also checks the targets
            if self.p is not None:  # dE/da = (p - onehot(y)) / N
                g = self.p.clone().scatter_add_(1, y[:, None], a.new_full((a.shape[0], 1), -1.0)).div_(a.shape[0])
            elif self.mse:  # dE/da = 2 (a - y) / numel
                g = torch.sub(a, y).mul_(2.0 / a.numel())
            else:
                (g,) = torch.autograd.grad(loss, self.out, create_graph=True)
        self.g_out = None if closed else g
        del self._a_out
        return g

    def _backward_deltas(self, g: Tensor, second: list) -> None:
        """Stage 3: :math:`\\delta` at the output of every Linear/Conv2d layer, and ``f2d`` :math:`= f'' \\delta_a`
        at every activation (the :math:`v`-independent factor of the :math:`f''` term);
        :math:`\\delta_z = f' \\delta_a` is formed in place where the tensor is this method's own."""
        self.deltas = [None] * len(self.layers)
        with torch.no_grad():
            d, owned = g.detach(), self.g_out is None
            for j in range(len(self.layers) - 1, -1, -1):
                if isinstance(self.layers[j], (nn.Linear, nn.Conv2d)):
                    self.deltas[j] = d
                if second[j] is not None:
                    self.f2d[j] = second[j].mul_(d)
                if j > 0 and self._needs_input_delta(j):
                    if self.f1[j] is not None and owned:
                        d = d.mul_(self.f1[j])
                    else:
                        d, owned = self._backward(j, d), owned or not isinstance(self.layers[j], nn.Flatten)

    def _needs_input_delta(self, j: int) -> bool:
        return any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in self.layers[:j])

    def _backward(self, j: int, d: Tensor) -> Tensor:
        """:math:`\\delta` at the input of layer ``j`` from :math:`\\delta` at its output."""
        m, a = self.layers[j], self.inputs[j]
        if isinstance(m, nn.Linear):
            return d @ m.weight
        if isinstance(m, nn.Conv2d):
            return nng.conv2d_input(a.shape, m.weight, d, **conv_kwargs(m))
        if isinstance(m, nn.Flatten):
            return d.reshape(a.shape)
        return self.f1[j] * d

    def _output_rdelta(self, Rout: Tensor) -> Tensor:
        r""":math:`\mathcal{R}\delta_{a_L} = \nabla^2_{a_L}E\;\mathcal{R}a_L` (zero if the loss is linear in the output).

        Mean cross-entropy: :math:`\frac1N(p \odot R - p\,(p^\top R))` per sample; mean squared error:
        :math:`\frac{2}{\text{numel}} R`.
        """
        if self.p is not None:
            pR = self.p * Rout
            return torch.addcmul(pR, self.p, pR.sum(1, keepdim=True), value=-1).div_(Rout.shape[0])
        if self.mse:
            return Rout * (2.0 / Rout.numel())
        if not self.g_out.requires_grad:
            return torch.zeros_like(Rout)
        with torch.enable_grad():
            (h,) = torch.autograd.grad(self.g_out, self.out, grad_outputs=Rout, retain_graph=True, allow_unused=True)
        return torch.zeros_like(Rout) if h is None else h

    @torch.no_grad()
    def gradient(self) -> dict[int, Tensor]:
        r"""The loss gradient from the stored :math:`\delta` and layer inputs: :math:`\nabla_W E = \delta\, a^\top`,
        :math:`\nabla_b E = \sum_n \delta` (``{id(param): tensor}``)."""
        out: dict[int, Tensor] = {}
        for m, a, d in zip(self.layers, self.inputs, self.deltas):
            if isinstance(m, nn.Linear):
                gW = d.reshape(-1, d.shape[-1]).T @ a.reshape(-1, a.shape[-1])
                _accumulate(out, m, gW, d.reshape(-1, d.shape[-1]).sum(0) if m.bias is not None else None)
            elif isinstance(m, nn.Conv2d):
                gW = nng.conv2d_weight(a, m.weight.shape, d, **conv_kwargs(m))
                _accumulate(out, m, gW, d.sum((0, 2, 3)) if m.bias is not None else None)
        return out

    @torch.no_grad()
    def hvp(self, vs: dict[int, Tensor]) -> dict[int, Tensor]:
        """The R-pass for direction ``vs`` (``{id(param): tensor}``); returns ``{id(param): (Hv) part}``."""
        layers, n = self.layers, len(self.layers)
        # forward R-pass: R at the input of every layer (None = zero)
        R_in, Ra = [None] * n, None
        for j, m in enumerate(layers):
            R_in[j] = Ra
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                Ra = _layer_rop(m, self.inputs[j], Ra, vs.get(id(m.weight)),
                                vs.get(id(m.bias)) if m.bias is not None else None)
            elif Ra is not None:
                Ra = m(Ra) if isinstance(m, nn.Flatten) else self.f1[j] * Ra
        if Ra is None:  # v is zero on every layer
            return {}
        # backward R-pass (in place on tensors it owns)
        out: dict[int, Tensor] = {}
        Rd = self._output_rdelta(Ra)
        for j in range(n - 1, -1, -1):
            m, a, Rz, d = layers[j], self.inputs[j], R_in[j], self.deltas[j]
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                _accumulate(out, m, *_weight_rgrad(m, a, Rz, d, Rd))
                if j == 0 or not self._needs_input_delta(j):
                    break
                Rd = _input_rgrad(m, a, Rd, d, vs.get(id(m.weight)))
            elif isinstance(m, nn.Flatten):
                Rd = Rd.reshape(a.shape)
            else:  # R delta_z = f' R delta_a + f'' Rz delta_a
                Rd = Rd.mul_(self.f1[j])
                if self.f2d[j] is not None and Rz is not None:
                    Rd.addcmul_(self.f2d[j], Rz)
        return out


def _layer_rop(m, a: Tensor, Ra: Tensor | None, V: Tensor | None, Vb: Tensor | None) -> Tensor | None:
    r""":math:`\mathcal{R}z = W\,\mathcal{R}a + V a + v_b` of a Linear or Conv2d layer (``None`` when all three are zero)."""
    if isinstance(m, nn.Linear):
        if V is not None:
            Rz = F.linear(a, V, Vb)
        elif Vb is not None:
            Rz = Vb.expand(*a.shape[:-1], Vb.shape[0]).clone()
        else:
            Rz = None
        if Ra is None:
            return Rz
        if Rz is None:
            return F.linear(Ra, m.weight)
        Rz2, Ra2 = Rz.view(-1, Rz.shape[-1]), Ra.reshape(-1, Ra.shape[-1])
        Rz2.addmm_(Ra2, m.weight.T)
        return Rz
    kw = conv_kwargs(m)
    Rz = F.conv2d(a, V, Vb, **kw) if V is not None else None
    if Ra is not None:
        WRa = F.conv2d(Ra, m.weight, None, **kw)
        Rz = WRa if Rz is None else Rz.add_(WRa)
    if Vb is not None and V is None:
        Rz = (Rz if Rz is not None else F.conv2d(a, torch.zeros_like(m.weight), None, **kw)).add_(Vb.view(1, -1, 1, 1))
    return Rz


def _weight_rgrad(m, a: Tensor, Ra: Tensor | None, d: Tensor, Rd: Tensor):
    r""":math:`(Hv)_W = \mathcal{R}\delta\,a^\top + \delta\,(\mathcal{R}a)^\top` and :math:`(Hv)_b = \sum \mathcal{R}\delta`."""
    if isinstance(m, nn.Linear):
        a2, Rd2 = a.reshape(-1, a.shape[-1]), Rd.reshape(-1, Rd.shape[-1])
        hW = Rd2.T @ a2
        if Ra is not None:
            hW.addmm_(d.reshape(-1, d.shape[-1]).T, Ra.reshape(-1, Ra.shape[-1]))
        hb = Rd2.sum(0) if m.bias is not None else None
        return hW, hb
    kw = conv_kwargs(m)
    hW = nng.conv2d_weight(a, m.weight.shape, Rd, **kw)
    if Ra is not None:
        hW += nng.conv2d_weight(Ra, m.weight.shape, d, **kw)
    hb = Rd.sum((0, 2, 3)) if m.bias is not None else None
    return hW, hb


def _input_rgrad(m, a: Tensor, Rd: Tensor, d: Tensor, V: Tensor | None) -> Tensor:
    r""":math:`\mathcal{R}\delta_{a} = W^\top \mathcal{R}\delta_z + V^\top \delta_z`."""
    if isinstance(m, nn.Linear):
        out = Rd @ m.weight
        if V is not None:
            out.view(-1, out.shape[-1]).addmm_(d.reshape(-1, d.shape[-1]), V)
        return out
    kw = conv_kwargs(m)
    out = nng.conv2d_input(a.shape, m.weight, Rd, **kw)
    return out if V is None else out.add_(nng.conv2d_input(a.shape, V, d, **kw))


def _accumulate(out: dict, m: nn.Module, hW: Tensor, hb: Tensor | None) -> None:
    for p, h in ((m.weight, hW), (m.bias, hb)):
        if h is not None:
            out[id(p)] = out[id(p)] + h if id(p) in out else h
