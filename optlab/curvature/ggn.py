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

(with the slides' :math:`\tfrac12\|\cdot\|^2` loss, :math:`H_\ell = I` and :math:`G = J^\top J`). Nothing
dense is built for a product; each factor is one pass:

- :math:`Jv`, the change of the outputs along :math:`v`: the forward R-pass of
  :mod:`optlab.curvature.rop` (:math:`\mathcal{R}z_l = W_l\,\mathcal{R}a_{l-1} + V_l a_{l-1} + v_{b,l}`,
  :math:`\mathcal{R}a_l = f'(z_l)\odot\mathcal{R}z_l`);
- :math:`H_\ell u`: a Hessian-vector product of the loss in output space (autograd, on the outputs only);
- :math:`J^\top w`: ordinary backpropagation of :math:`w` through the same linearization
  (:math:`\delta_{z_l} = f'(z_l)\odot\delta_{a_l}`, :math:`\delta_{a_{l-1}} = W_l^\top\delta_{z_l}`,
  :math:`(J^\top w)_{W_l} = \delta_{z_l} a_{l-1}^\top`).

For ``nn.Sequential`` stacks the R-pass's :class:`~optlab.curvature.rop.Linearization` (layer inputs and
:math:`f'`) is computed once per batch and every product reuses it. Other models get :math:`Jv` by the
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
from torch import Tensor, nn

from ._data import Batches, flatten, num_params, preserved_buffers, resolve_params, scalar_loss, unflatten
from ._operator import CurvatureOperator
from .rop import Linearization, _accumulate, _input_rgrad, _layer_rop, _weight_rgrad, rop_layers

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


# ---------------------------------------------------------------- J v and J^T w from the R-pass
def rpass_jvp(lin: Linearization, vs: dict[int, Tensor]) -> Tensor | None:
    r""":math:`Jv`: the forward R-pass through the stored linearization (``None`` when :math:`v` is zero
    on every layer); ``vs`` maps ``id(param)`` to that parameter's part of :math:`v`.

    .. math:: \mathcal{R}z_l = W_l\,\mathcal{R}a_{l-1} + V_l a_{l-1} + v_{b,l},\qquad
              \mathcal{R}a_l = f'(z_l)\odot\mathcal{R}z_l
    """
    Ra = None
    for m, a, f1 in zip(lin.layers, lin.inputs, lin.f1):
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            Ra = _layer_rop(m, a, Ra, vs.get(id(m.weight)), vs.get(id(m.bias)) if m.bias is not None else None)
        elif Ra is not None:
            Ra = m(Ra) if isinstance(m, nn.Flatten) else f1 * Ra
    return Ra


def rpass_vjp(lin: Linearization, w: Tensor) -> dict[int, Tensor]:
    r""":math:`J^\top w`: backpropagation of the output-space vector ``w`` through the stored
    linearization; returns ``{id(param): part}``.

    .. math:: \delta_{z_l} = f'(z_l)\odot\delta_{a_l},\quad
              (J^\top w)_{W_l} = \delta_{z_l}\, a_{l-1}^\top,\quad (J^\top w)_{b_l} = \textstyle\sum_n \delta_{z_l},\quad
              \delta_{a_{l-1}} = W_l^\top \delta_{z_l}
    """
    out: dict[int, Tensor] = {}
    first = next(j for j, m in enumerate(lin.layers) if isinstance(m, (nn.Linear, nn.Conv2d)))
    d = w
    for j in range(len(lin.layers) - 1, first - 1, -1):
        m, a = lin.layers[j], lin.inputs[j]
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            _accumulate(out, m, *_weight_rgrad(m, a, None, None, d))
            if j > first:
                d = _input_rgrad(m, a, d, None, None)
        elif isinstance(m, nn.Flatten):
            d = d.reshape(a.shape)
        else:
            d = lin.f1[j] * d
    return out


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
            activations, ``ValueError`` for other models); ``"double-backprop"``: autograd (any model);
            ``"exact"`` (default): the R-pass where it applies (the faster, measured in
            ``benchmarks/bench_second_order.py``), autograd otherwise. The attribute ``method`` tells
            which one is used.
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

    def _output_product(self, outputs: Tensor, targets: Tensor) -> Callable[[Tensor], Tensor]:
        r"""The middle matrix of :math:`J^\top M J` as a function :math:`u \mapsto Mu`: here the loss
        Hessian :math:`H_\ell` (the Fisher operator puts the output distribution's Fisher here)."""
        return loss_hessian_product(self.loss_fn, outputs, targets)

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
        """What every product on this batch reuses: the linearization and :math:`u \\mapsto Mu`."""
        if self.method == "r-op":
            lin = Linearization(self._layers, self.loss_fn, x, y)
            return _RPassState(lin, self._output_product(lin.out.detach(), y))
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
    """One batch's linearization and output-space product: :math:`J^\\top M J v` by two passes."""

    def __init__(self, lin: Linearization, output_product):
        self.lin, self.output_product = lin, output_product

    @torch.no_grad()
    def products(self, params, V: Tensor) -> Tensor:
        cols = []
        for j in range(V.shape[1]):
            Jv = rpass_jvp(self.lin, {id(p): vp for p, vp in zip(params, unflatten(V[:, j], params))})
            if Jv is None:
                cols.append(torch.zeros_like(V[:, j]))
                continue
            parts = rpass_vjp(self.lin, self.output_product(Jv))
            cols.append(flatten([parts.get(id(p)) for p in params], params))
        return torch.stack(cols, dim=1)


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
                JTw = torch.autograd.grad(self.out, params, grad_outputs=self.output_product(Jv), retain_graph=True,
                                          allow_unused=True)
            cols.append(flatten(JTw, params))
        return torch.stack(cols, dim=1)


def _unflatten_columns(V: Tensor, params) -> list[Tensor]:
    """Split the ``(P, k)`` matrix ``V`` into ``k``-batched tensors shaped ``(k, *p.shape)`` (the Hessian
    operator's batched double backprop uses it)."""
    out, i = [], 0
    for p in params:
        out.append(V[i:i + p.numel()].T.reshape(V.shape[1], *p.shape))
        i += p.numel()
    return out
