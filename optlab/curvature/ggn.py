r"""The Jacobian of a network's outputs and the generalized Gauss-Newton matrix ("square of the Jacobian").

The slides (LeCun, "Gauss-Newton Approximation of the Hessian") write, for the squared error
:math:`E(\omega) = \tfrac12 \sum_p \|D_p - N(\omega, \chi_p)\|^2`,

.. math::

    H(\omega) = \sum_p \frac{\partial N}{\partial\omega}^\top \frac{\partial N}{\partial\omega}
      + \sum_p (D_p - N)^\top \frac{\partial^2 N}{\partial\omega\,\partial\omega}

**The slide's sign is wrong:** the gradient is :math:`-\sum_p (D_p - N)^\top \partial N/\partial\omega`, so differentiating
again gives

.. math::

    H(\omega) = \sum_p \frac{\partial N}{\partial\omega}^\top \frac{\partial N}{\partial\omega}
      - \sum_p (D_p - N)^\top \frac{\partial^2 N}{\partial\omega\,\partial\omega}

(lecture 05 checks both signs numerically). Either way one drops the second sum: the Gauss-Newton
matrix :math:`G = \sum_p J_p^\top J_p` is positive semi-definite, and equals the Hessian of the network
linearized in its parameters. For a general loss :math:`\ell(f, y)` the generalized Gauss-Newton
(Schraudolph 2002) keeps the loss curvature in output space, :math:`H_\ell = \partial^2 \ell / \partial f^2`:

.. math::

    G = \sum_b \frac{n_b}{N}\, J_b^\top H_{\ell,b} J_b, \qquad G v = J^\top \big(H_\ell (J v)\big)

(with the slides' :math:`\tfrac12\|\cdot\|^2` loss, :math:`H_\ell = I` and :math:`G = J^\top J`). Nothing
dense is built for a product; each factor is one pass:

- :math:`Jv`, the change of the outputs along :math:`v`: the forward R-pass of
  :mod:`optlab.curvature.rop` (:math:`\mathcal{R}z_l = W_l\,\mathcal{R}a_{l-1} + V_l a_{l-1} + v_{b,l}`,
  :math:`\mathcal{R}a_l = f'(z_l)\odot\mathcal{R}z_l`);
- :math:`H_\ell u`: the loss's Hessian in output space times :math:`u` (closed forms for mean
  cross-entropy, :math:`\frac1N(p\odot u - p\,p^\top u)` per sample, and mean squared error,
  :math:`\frac{2}{\text{numel}}u`; otherwise a Hessian-vector product by autograd on the outputs only);
- :math:`J^\top w`: ordinary backpropagation of :math:`w` through the same linearization
  (:math:`\delta_{z_l} = f'(z_l)\odot\delta_{a_l}`, :math:`\delta_{a_{l-1}} = W_l^\top\delta_{z_l}`,
  :math:`(J^\top w)_{W_l} = \delta_{z_l} a_{l-1}^\top`).

For ``nn.Sequential`` stacks the R-pass's :class:`~optlab.curvature.rop.Linearization` (layer inputs and
:math:`f'`) is computed once per batch and every product reuses it; :func:`jvp` and :func:`vjp` carry
``k`` columns at once (the columns of ``to_dense()`` go through the layers as one batch of ``k``
directions, in chunks that bound the memory). Other models get :math:`Jv` by the
double-vjp trick (differentiate the backward pass :math:`u \mapsto J^\top u` with respect to :math:`u`) and
:math:`J^\top w` by autograd's backward pass.

References:
    Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order gradient
    descent. Neural Computation 14(7).
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
    LeCun, Y., Bottou, L., Orr, G., Müller, K.-R. (1998). Efficient BackProp. Section 6.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torch.nn.grad as nng
from torch import Tensor, nn

from ..flat import flatten, unflatten, unflatten_columns
from ._data import Batches, num_params, preserved_buffers, resolve_params, scalar_loss
from ._operator import CurvatureOperator
from .rop import Linearization, rop_layers

METHODS = ("exact", "r-op", "double-backprop")


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


def loss_hessian_product(loss_fn, outputs: Tensor, targets: Tensor) -> Callable[[Tensor], Tensor]:
    r"""The function :math:`u \mapsto H_\ell u` of the loss Hessian in output space at ``outputs``.

    The loss gradient :math:`\partial\ell/\partial f` is built once with its graph; each product is one
    backward pass through it (on the outputs only, not through the network). A loss linear in the
    outputs has :math:`H_\ell = 0`.

    Example:
        >>> f, y = torch.zeros(1, 2), torch.ones(1, 2)
        >>> loss_hessian_product(torch.nn.MSELoss(reduction="sum"), f, y)(torch.tensor([[1.0, 3.0]]))
        tensor([[2., 6.]])
    """
    f = outputs.detach().requires_grad_(True)
    with torch.enable_grad():
        (gf,) = torch.autograd.grad(scalar_loss(loss_fn(f, targets)), f, create_graph=True)
    if not gf.requires_grad:
        return torch.zeros_like

    def product(u: Tensor) -> Tensor:
        with torch.enable_grad():
            (h,) = torch.autograd.grad(gf, f, grad_outputs=u, retain_graph=True, allow_unused=True)
        return torch.zeros_like(u) if h is None else h

    return product


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


# ---------------------------------------------------------------- J V and J^T U from the R-pass, k columns at once
def jvp(lin: Linearization, vs: dict[int, Tensor], k: int) -> Tensor | None:
    r""":math:`JV` for ``k`` directions at once: the forward R-pass through the stored linearization.

    ``vs`` maps ``id(param)`` to that parameter's part of the ``k`` directions, shaped ``(k, *param.shape)``
    (missing: zero). Returns ``(k, *outputs.shape)``, or ``None`` when every direction is zero on every layer.

    .. math:: \mathcal{R}z_l = W_l\,\mathcal{R}a_{l-1} + V_l a_{l-1} + v_{b,l},\qquad
              \mathcal{R}a_l = f'(z_l)\odot\mathcal{R}z_l
    """
    Ra = None
    for j, (m, a) in enumerate(zip(lin.layers, lin.inputs)):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            Rz = _direction_term(m, a, vs.get(id(m.weight)), vs.get(id(m.bias)) if m.bias is not None else None,
                                 k, _output_shape(lin, j))
            if Ra is not None:
                WRa = _weight_term(m, Ra)
                Rz = WRa if Rz is None else Rz + WRa
            Ra = Rz
        elif Ra is not None:
            Ra = Ra.reshape(k, *_output_shape(lin, j)) if isinstance(m, nn.Flatten) else lin.f1[j] * Ra
    return Ra


def vjp(lin: Linearization, U: Tensor) -> dict[int, Tensor]:
    r""":math:`J^\top U` for ``k`` output-space vectors at once (``U`` shaped ``(k, *outputs.shape)``):
    backpropagation through the stored linearization; returns ``{id(param): (k, *param.shape)}``.

    .. math:: \delta_{z_l} = f'(z_l)\odot\delta_{a_l},\quad
              (J^\top u)_{W_l} = \delta_{z_l}\, a_{l-1}^\top,\quad (J^\top u)_{b_l} = \textstyle\sum_n \delta_{z_l},\quad
              \delta_{a_{l-1}} = W_l^\top \delta_{z_l}
    """
    out: dict[int, Tensor] = {}
    first = next(j for j, m in enumerate(lin.layers) if isinstance(m, (nn.Linear, nn.Conv2d)))
    d, k = U, U.shape[0]
    for j in range(len(lin.layers) - 1, first - 1, -1):
        m, a = lin.layers[j], lin.inputs[j]
        if isinstance(m, nn.Linear):
            d2 = d.reshape(k, -1, m.out_features)
            out[id(m.weight)] = d2.transpose(1, 2) @ a.reshape(-1, m.in_features)
            if m.bias is not None:
                out[id(m.bias)] = d2.sum(1)
            if j > first:
                d = d @ m.weight
        elif isinstance(m, nn.Conv2d):
            kw = _conv_kwargs(m)
            stacked = d.movedim(0, 1).flatten(1, 2)  # (N, k * out, H, W): the k columns as output channels
            out[id(m.weight)] = nng.conv2d_weight(a, (k * m.out_channels, *m.weight.shape[1:]), stacked,
                                                  **kw).unflatten(0, (k, m.out_channels))
            if m.bias is not None:
                out[id(m.bias)] = d.sum((1, 3, 4))
            if j > first:
                d = nng.conv2d_input((k * a.shape[0], *a.shape[1:]), m.weight, d.flatten(0, 1),
                                     **kw).unflatten(0, (k, a.shape[0]))
        elif isinstance(m, nn.Flatten):
            d = d.reshape(k, *a.shape)
        else:
            d = lin.f1[j] * d
    return out


def _output_shape(lin: Linearization, j: int) -> torch.Size:
    return lin.inputs[j + 1].shape if j + 1 < len(lin.layers) else lin.out.shape


def _conv_kwargs(m: nn.Conv2d) -> dict:
    return dict(stride=m.stride, padding=m.padding, dilation=m.dilation)


def _direction_term(m, a: Tensor, V: Tensor | None, Vb: Tensor | None, k: int, shape) -> Tensor | None:
    r""":math:`V a + v_b` of a Linear or Conv2d layer for ``k`` directions, ``(k, *shape)`` (``None``: zero)."""
    if V is None and Vb is None:
        return None
    # the k directions' weights stacked as k times as many output units: one pass for all of them
    if isinstance(m, nn.Linear):
        Rz = None if V is None else F.linear(a, V.reshape(-1, m.in_features)).unflatten(-1, (k, m.out_features))
        Rz = None if Rz is None else Rz.movedim(-2, 0)
        b = None if Vb is None else Vb.reshape(k, *[1] * (len(shape) - 1), m.out_features)
    else:
        Rz = None if V is None else F.conv2d(a, V.flatten(0, 1), None, **_conv_kwargs(m))
        Rz = None if Rz is None else Rz.unflatten(1, (k, m.out_channels)).movedim(1, 0)
        b = None if Vb is None else Vb.reshape(k, 1, m.out_channels, 1, 1)
    if b is None:
        return Rz
    return b.expand(k, *shape) if Rz is None else Rz + b


def _weight_term(m, Ra: Tensor) -> Tensor:
    r""":math:`W\,\mathcal{R}a` of a Linear or Conv2d layer for ``k`` directions (``Ra`` shaped ``(k, N, ...)``)."""
    if isinstance(m, nn.Linear):
        return F.linear(Ra, m.weight)
    return F.conv2d(Ra.flatten(0, 1), m.weight, None, **_conv_kwargs(m)).unflatten(0, Ra.shape[:2])


def _closed_form_loss_hessian(lin: Linearization) -> Callable[[Tensor], Tensor] | None:
    r""":math:`U \mapsto H_\ell U` in closed form where the linearization found one (mean cross-entropy:
    :math:`\frac1N(p\odot u - p\,(p^\top u))` per sample; mean squared error: :math:`\frac{2}{\text{numel}}u`)."""
    if lin.p is not None:
        p, N = lin.p, lin.p.shape[0]
        return lambda U: (p * U - p * (p * U).sum(-1, keepdim=True)) / N
    if lin.mse:
        c = 2.0 / lin.out.numel()
        return lambda U: c * U
    return None


class GGNOperator(CurvatureOperator):
    r"""The generalized Gauss-Newton matrix :math:`G = \sum_b \frac{n_b}{N} J_b^\top H_{\ell,b} J_b` as an operator.

    .. math::

        G v = J^\top \big( H_\ell\, (J v) \big)

    Positive semi-definite whenever the loss is convex in the outputs (MSE, cross-entropy).

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator` (any reduction;
            ``loss_fn`` is any function of ``(outputs, targets)``).
        method: how :math:`Jv` and :math:`J^\top w` are computed, always exactly. ``"r-op"``: the
            R-pass's linearization (``nn.Sequential`` stacks of Linear, Conv2d, Flatten and element-wise
            activations, ``ValueError`` for other models), several columns per pass; ``"double-backprop"``:
            autograd, one column at a time (any model); ``"exact"`` (default): the R-pass where it
            applies (the faster, measured in ``benchmarks/bench_second_order.py``), autograd otherwise.
            The attribute ``method`` tells which one is used.
        cache_graph: as in :class:`~optlab.curvature.HessianOperator`: ``True`` keeps each batch's
            linearization (or autograd graph) until a parameter changes; ``None`` (default) keeps it
            only inside :meth:`many_products` (what CG and the eigensolvers use); ``False`` never.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
        >>> x, y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
        >>> G = GGNOperator(model, torch.nn.MSELoss(), (x, y))
        >>> G.shape, G.method
        ((13, 13), 'r-op')

    Reference: Schraudolph, N. N. (2002). Fast curvature matrix-vector products for second-order
    gradient descent. Neural Computation 14(7).
    """

    #: the most entries of one layer's activations times columns that one R-pass holds (to_dense of a
    #: big batch runs in chunks of columns)
    max_pass_entries = 2 ** 22

    def __init__(self, model: torch.nn.Module, loss_fn, data, params=None, *, method: str = "exact",
                 cache_graph: bool | None = None):
        self.model, self.loss_fn = model, loss_fn
        self.batches = Batches(data)
        self.params = resolve_params(model, params)
        if method not in METHODS:
            raise ValueError(f"{type(self).__name__}: invalid method={method!r}; expected one of {METHODS}")
        if cache_graph not in (None, True, False):
            raise ValueError(f"{type(self).__name__}: invalid cache_graph={cache_graph!r}; expected True, False "
                             f"or None")
        self.cache_graph = cache_graph
        self._states, self._versions = None, None
        self._layers = None  # the R-pass's layers; None: autograd
        if method != "double-backprop":
            try:
                self._layers = rop_layers(model)
            except TypeError as e:
                if method == "r-op":
                    raise ValueError(f"{type(self).__name__}: method='r-op' does not apply to this model: {e}") from None
        self._forced = method == "r-op"
        p0 = self.params[0]
        super().__init__(num_params(self.params), p0.dtype, p0.device)

    @property
    def method(self) -> str:
        """``"r-op"`` or ``"double-backprop"``: how the next product is computed (a forward hook
        registered after construction switches to autograd, which runs it)."""
        return "double-backprop" if self._layers is None or self._rpass_obstacle() else "r-op"

    def _rpass_obstacle(self) -> str:
        """Why the R-pass cannot run the model now (e.g. a forward hook registered since), or ``""``."""
        try:
            rop_layers(self.model)
        except TypeError as e:
            return str(e)
        return ""

    def _output_product(self, outputs: Tensor, targets: Tensor,
                        lin: Linearization | None = None) -> Callable[[Tensor], Tensor]:
        r"""The middle matrix of :math:`J^\top M J` as a function :math:`U \mapsto MU` on ``(k, *outputs.shape)``:
        here the loss Hessian :math:`H_\ell` (the Fisher operator puts the output distribution's Fisher
        here); in closed form where the R-pass's linearization has one, else by autograd."""
        closed = None if lin is None else _closed_form_loss_hessian(lin)
        if closed is not None:
            return closed
        product = loss_hessian_product(self.loss_fn, outputs, targets)
        return lambda U: torch.stack([product(u) for u in U])

    @contextlib.contextmanager
    def many_products(self):
        """With ``cache_graph=None`` (default), products inside the ``with`` block reuse one
        linearization per batch, freed on exit; ``True``/``False`` are kept as set."""
        if self.cache_graph is not None:
            yield self
            return
        self.cache_graph = True
        try:
            yield self
        finally:
            self.cache_graph = None
            self._states, self._versions = None, None

    def _batch_state(self, x: Tensor, y: Tensor):
        """What every product on this batch reuses: the linearization and :math:`U \\mapsto MU`."""
        if self.method == "r-op":
            lin = Linearization(self._layers, self.loss_fn, x, y)
            return _RPassState(lin, self._output_product(lin.out.detach(), y, lin), self.max_pass_entries)
        if self._forced:
            raise ValueError(f"{type(self).__name__}: method='r-op' no longer applies to this model: "
                             f"{self._rpass_obstacle()}")
        return _AutogradState(self.model, x, self.params, self._output_product, y)

    def _states_now(self):
        versions = tuple(p._version for p in self.params)
        if self._states is None or versions != self._versions:
            with _changed_buffers_restored(self.model):
                self._states = [(self._batch_state(x, y), w) for x, y, w in self.batches]
            self._versions = versions
        return self._states

    def _matvec(self, v: Tensor) -> Tensor:
        return self._matmat(v[:, None])[:, 0]

    def _matmat(self, V: Tensor) -> Tensor:
        out = torch.zeros_like(V)
        if self.cache_graph:
            for state, w in self._states_now():
                out += w * state.products(self.params, V)
            return out
        with preserved_buffers(self.model):
            for x, y, w in self.batches:
                out += w * self._batch_state(x, y).products(self.params, V)
        return out


@contextlib.contextmanager
def _changed_buffers_restored(model: torch.nn.Module):
    """Run the block, then put back the buffers it changed (BatchNorm running statistics in train mode).

    Unlike :func:`~optlab.curvature._data.preserved_buffers` it leaves the other buffers untouched: a
    kept autograd graph may have saved them (e.g. a fixed whitening matrix), and writing even their own
    values back would invalidate it.
    """
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in saved:
                if not torch.equal(b, s):
                    b.copy_(s)


class _RPassState:
    """One batch's linearization and output-space product: :math:`J^\\top M J V`, columns in chunks."""

    def __init__(self, lin: Linearization, output_product, max_pass_entries: int):
        self.lin, self.output_product = lin, output_product
        widest = max([a.numel() for a in lin.inputs[1:]] + [lin.out.numel()])  # what k columns multiply
        self.chunk = max(1, max_pass_entries // widest)

    @torch.no_grad()
    def products(self, params, V: Tensor) -> Tensor:
        return torch.cat([self._chunk(params, V[:, i:i + self.chunk]) for i in range(0, V.shape[1], self.chunk)], 1)

    def _chunk(self, params, V: Tensor) -> Tensor:
        k = V.shape[1]
        JV = jvp(self.lin, {id(p): Vp for p, Vp in zip(params, unflatten_columns(V, params))}, k)
        if JV is None:
            return torch.zeros_like(V)
        parts = vjp(self.lin, self.output_product(JV))
        return torch.cat([(parts[id(p)] if id(p) in parts else V.new_zeros(k, *p.shape)).reshape(k, -1)
                          for p in params], dim=1).T


class _AutogradState:
    """One batch's forward graph, with :math:`Jv` by the double-vjp trick and :math:`J^\\top w` by backprop."""

    def __init__(self, model, x: Tensor, params, output_product, y: Tensor):
        with torch.enable_grad():
            self.out = model(x)
            # u -> J^T u is linear in u, so differentiating it with respect to u gives J
            self.u = torch.zeros_like(self.out, requires_grad=True)
            JTu = torch.autograd.grad(self.out, params, grad_outputs=self.u, create_graph=True, allow_unused=True)
        self.used = [i for i, g in enumerate(JTu) if g is not None]
        self.JTu = [JTu[i] for i in self.used]
        self.output_product = output_product(self.out.detach(), y)

    def products(self, params, V: Tensor) -> Tensor:
        cols = []
        for j in range(V.shape[1]):
            if not self.used:
                cols.append(torch.zeros_like(V[:, j]))
                continue
            vs = unflatten(V[:, j], params)
            with torch.enable_grad():
                (Jv,) = torch.autograd.grad(self.JTu, self.u, grad_outputs=[vs[i] for i in self.used],
                                            retain_graph=True)
                JTw = torch.autograd.grad(self.out, params, grad_outputs=self.output_product(Jv[None])[0],
                                          retain_graph=True, allow_unused=True)
            cols.append(flatten(JTw, params))
        return torch.stack(cols, dim=1)
