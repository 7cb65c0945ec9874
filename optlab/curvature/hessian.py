r"""The Hessian of a network's loss, as Hessian-vector products (Pearlmutter 1994).

For the data-averaged loss :math:`E(\omega)` the Hessian-vector product is the directional derivative
of the gradient, computed exactly by differentiating :math:`\nabla E(\omega)^\top v` once more
("double backprop", same order of cost as one gradient):

.. math::

    H v = \nabla_\omega \big( \nabla_\omega E(\omega)^\top v \big)

For ``nn.Sequential`` stacks the same product is computed by Pearlmutter's R-pass
(:mod:`optlab.curvature.rop`), which propagates :math:`\mathcal{R}\{\cdot\}` through the layers
instead of differentiating autograd's graph; :class:`HessianOperator` picks it where it applies.

The slides (LeCun, "Computing the product of the Hessian by a Vector") give the finite-difference
version :math:`H\Psi \approx (\nabla E(\omega + \alpha\Psi) - \nabla E(\omega))/\alpha` and note that
"a more accurate method which does not use finite differences (and has the same complexity) has been
proposed [Pearlmutter 93]": that is this module; the finite-difference recipe is in
:mod:`optlab.curvature.finite_difference`.

References:
    Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
    LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by on-line
    estimation of the Hessian's eigenvectors. NIPS 5.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import data_error, one_of, value_error
from ..flat import flatten, unflatten, unflatten_columns
from ._data import (Batches, batch_loss, check_vector, gradient, num_params, preserved_buffers, resolve_params,
                    scalar_loss)
from ._operator import CurvatureOperator
from ._sequential import hooked_module
from .finite_difference import finite_difference_hvp
from .rop import Linearization, rop_layers

#: exact ways of computing :math:`Hv` (:class:`HessianOperator`)
METHODS = ("exact", "r-op", "double-backprop")
#: ways :func:`hvp` computes :math:`Hv`: the exact ones and the slides' finite difference
HVP_METHODS = METHODS + ("finite-difference",)


def loss_hvp(loss_closure: Callable[[], Tensor], params: Sequence[Tensor], v: Tensor) -> Tensor:
    r"""Exact Hessian-vector product :math:`Hv = \nabla(\nabla E^\top v)` of the scalar ``loss_closure()``.

    Args:
        loss_closure: zero-argument callable returning the scalar loss :math:`E` (it is called once,
            with gradients enabled).
        params: the list of tensors :math:`\omega` to differentiate with respect to.
        v: flat vector with as many entries as ``params`` have in total.

    Returns:
        The flat tensor :math:`Hv` (parameters the loss does not use contribute zeros).

    Example:
        >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> loss_hvp(lambda: (w ** 3).sum(), [w], torch.tensor([1.0, 0.0]))   # H = diag(6 w)
        tensor([6., 0.])

    Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
    """
    params = list(params)
    if not params:
        raise data_error("loss_hvp", "params", "it is empty", "at least one tensor to differentiate")
    v = check_vector(v, num_params(params), params[0], owner="loss_hvp")
    with torch.enable_grad():
        loss = scalar_loss(loss_closure(), "loss_closure", owner="loss_hvp")
        g = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        return _grad_dot_hvp(g, params, unflatten(v, params))


def _grad_dot_hvp_batched(g, params, V: Tensor) -> Tensor:
    """All columns of ``V`` in one backward pass batched by autograd's vmap (``RuntimeError`` for a model
    with an operation that has no batching rule)."""
    pairs = [(gi, Vi) for gi, Vi in zip(g, unflatten_columns(V, params)) if gi is not None and gi.requires_grad]
    if not pairs:
        return torch.zeros_like(V)
    rows = torch.autograd.grad([gi for gi, _ in pairs], params, grad_outputs=[Vi for _, Vi in pairs],
                               retain_graph=True, allow_unused=True, is_grads_batched=True)
    k = V.shape[1]
    return torch.cat([(r if r is not None else torch.zeros(k, *p.shape, dtype=V.dtype, device=V.device))
                      .reshape(k, -1) for r, p in zip(rows, params)], dim=1).T


def _grad_dot_hvp_looped(g, params, V: Tensor, retain_graph: bool) -> Tensor:
    """The columns of ``V`` one backward pass each."""
    return torch.stack([_grad_dot_hvp(g, params, unflatten(V[:, j], params),
                                      retain_graph=retain_graph or j < V.shape[1] - 1)
                        for j in range(V.shape[1])], dim=1)


def _grad_dot_hvp(g, params, vs, retain_graph=False) -> Tensor:
    """Given the gradient ``g`` built with a graph, return :math:`\\nabla(g^\\top v)` flat."""
    pairs = [(gi, p, vi) for gi, p, vi in zip(g, params, vs) if gi is not None and gi.requires_grad]
    if not pairs:  # the loss is (at most) linear in params: the Hessian is zero
        return torch.zeros(num_params(params), dtype=params[0].dtype, device=params[0].device)
    hv = torch.autograd.grad([gi for gi, _, _ in pairs], params, grad_outputs=[vi for _, _, vi in pairs],
                             retain_graph=retain_graph, allow_unused=True)
    return flatten(hv, params)


class HessianOperator(CurvatureOperator):
    r"""The Hessian :math:`H = \nabla^2_\omega E(\omega)` of the data-averaged loss, as a linear operator.

    .. math::

        E(\omega) = \sum_b \frac{n_b}{N} \, \ell\big(f(x_b; \omega), y_b\big), \qquad
        H v = \sum_b \frac{n_b}{N} \nabla_\omega\big(\nabla_\omega E_b^\top v\big)

    Args:
        model: a ``torch.nn.Module`` (its train/eval mode is used as it is).
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar (e.g. ``torch.nn.MSELoss()``).
        data: one ``(inputs, targets)`` batch or an iterable of batches.
        params: tensors to differentiate (default: every parameter with ``requires_grad``).
        cache_graph: ``True``: keep what every product on a batch shares (the R-pass's
            :class:`~optlab.curvature.rop.Linearization`, or the gradient with its autograd graph), so
            that a product costs only the part that depends on :math:`v` (memory: the activations of
            every batch stay alive); the cache is rebuilt when a parameter is changed in place
            (tracked by its version counter). ``None`` (default): cache only for the duration of an
            eigensolver call (:func:`~optlab.curvature.top_eigenvalue`,
            :func:`~optlab.curvature.lanczos`, ..., through :meth:`many_products`), then free.
            ``False``: never cache (least memory, for data whose activations do not fit at once).
        method: how :math:`Hv` is computed, always exactly. ``"r-op"``: Pearlmutter's R-pass
            (:mod:`optlab.curvature.rop`; ``nn.Sequential`` stacks of Linear, Conv2d, Flatten and
            element-wise activations, ``ValueError`` for other models); ``"double-backprop"``:
            :math:`\nabla(\nabla E^\top v)` by autograd (any model); ``"exact"`` (default): the R-pass
            where it applies (it is the faster: measured in ``benchmarks/bench_curvature.py``), double
            backprop otherwise. The attribute ``method`` tells which one is used.

    Attributes:
        method: ``"r-op"`` or ``"double-backprop"``, how the next product is computed.
        batched_columns: with double backprop, ``op @ V`` multiplies all the columns of ``V`` in one
            backward pass batched by autograd's vmap (``True``). A model with an operation that has no
            batching rule makes that pass raise; the operator then multiplies one column at a time from
            then on, sets this to ``False`` and warns once (``RuntimeWarning``). Same result, slower.

    ``op @ v`` takes a flat vector or an ``(n, k)`` matrix of columns; ``op.to_dense()`` builds the
    matrix (small models only); ``op.to_scipy()`` gives a scipy ``LinearOperator``.

    Example:
        >>> model = torch.nn.Linear(2, 1).double()
        >>> x, y = torch.randn(8, 2, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
        >>> H = HessianOperator(model, torch.nn.MSELoss(), (x, y))
        >>> H.shape
        (3, 3)

    Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
    """

    def __init__(self, model: torch.nn.Module, loss_fn, data, params=None, *, cache_graph: bool | None = None,
                 method: str = "exact"):
        owner = type(self).__name__
        one_of(owner, "cache_graph", cache_graph, (None, True, False))
        one_of(owner, "method", method, METHODS)
        self.model, self.loss_fn = model, loss_fn
        self.batches = Batches(data, owner)
        self.params = resolve_params(model, params, owner)
        self.cache_graph = cache_graph
        self._graphs, self._versions = None, None
        self._layers = None if method == "double-backprop" else self._rop_layers(method)  # None: double backprop
        self._forced = method == "r-op"
        self.batched_columns = True
        p0 = self.params[0]
        super().__init__(num_params(self.params), p0.dtype, p0.device)

    def _rop_layers(self, method: str):
        """The R-pass's layers, or ``None`` where it does not apply (an error if ``method="r-op"`` forces it)."""
        try:
            return rop_layers(self.model, owner=type(self).__name__)
        except TypeError as e:
            if method == "r-op":
                raise value_error(type(self).__name__, "method", method, "'exact' or 'double-backprop' for this "
                                  f"model: the R-pass does not apply ({e})") from None
            return None

    def _matvec(self, v: Tensor) -> Tensor:
        return self._matmat(v[:, None])[:, 0]

    @contextlib.contextmanager
    def many_products(self):
        """With ``cache_graph=None`` (default), products inside the ``with`` block reuse one gradient
        graph per batch (as with ``cache_graph=True``), freed on exit; ``True``/``False`` are kept as set."""
        if self.cache_graph is not None:
            yield self
            return
        self.cache_graph = True
        try:
            yield self
        finally:
            self.cache_graph = None
            self._graphs, self._versions = None, None

    @property
    def method(self) -> str:
        """``"r-op"`` or ``"double-backprop"``: how the next product is computed (a forward hook
        registered after construction switches to double backprop, which runs it)."""
        if self._layers is None or hooked_module(self.model) is not None:
            return "double-backprop"
        return "r-op"

    def start_vector(self, seed: int) -> Tensor:
        r"""Where the top-eigenvalue solvers start: :math:`q_1 \propto g/\|g\| + r`, the normalized loss
        gradient plus a random unit vector ``r`` (seeded).

        The gradient of a network's loss lies mostly in the span of the Hessian's top eigenvectors
        (Gur-Ari, Roberts & Dyer 2018), so Lanczos and the power method converge in fewer products
        from it (``benchmarks/bench_curvature.py``: a third fewer on the digits MLP); the random part
        keeps every eigen-direction in the start vector. Where the gradient vanishes (a critical
        point) or is not finite, ``r`` alone. Inside :meth:`many_products` the gradient comes from
        the cached per-batch state, without another forward pass.

        Reference: Gur-Ari, G., Roberts, D. A., Dyer, E. (2018). Gradient descent happens in a tiny
        subspace. arXiv:1812.04754.
        """
        r = super().start_vector(seed)
        if self.cache_graph:
            g = torch.zeros_like(r)
            for state, w in self._cached_graphs():
                if isinstance(state, Linearization):
                    parts = state.gradient()
                    g += w * flatten([parts.get(id(p)) for p in self.params], self.params)
                else:
                    g += w * flatten([None if gi is None else gi.detach() for gi in state], self.params)
        else:
            g = gradient(self.model, self.loss_fn, self.batches, self.params, type(self).__name__)
        norm = g.norm()
        if not (torch.isfinite(norm) and norm > 0):
            return r
        q = g / norm + r
        return q / q.norm()

    def _batch_state(self, x, y):
        """What products on this batch reuse: the R-pass's :class:`~optlab.curvature.rop.Linearization`
        for supported stacks, else the gradient with its autograd graph (for double backprop)."""
        if self.method == "r-op":
            return Linearization(self._layers, self.loss_fn, x, y, type(self).__name__)
        if self._forced:
            raise value_error(type(self).__name__, "method", "r-op", "'exact' or 'double-backprop': "
                              f"{type(hooked_module(self.model)).__name__} got a forward hook, which the R-pass "
                              "would bypass")
        with torch.enable_grad():
            loss = batch_loss(self.model, self.loss_fn, x, y, type(self).__name__)
            return torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)

    def _products(self, state, V: Tensor, retain: bool) -> Tensor:
        if isinstance(state, Linearization):
            cols = []
            for j in range(V.shape[1]):
                hv = state.hvp({id(p): vp for p, vp in zip(self.params, unflatten(V[:, j], self.params))})
                cols.append(flatten([hv.get(id(p)) for p in self.params], self.params))
            return torch.stack(cols, dim=1)
        with torch.enable_grad():
            if V.shape[1] > 1 and self.batched_columns:
                try:
                    return _grad_dot_hvp_batched(state, self.params, V)
                except RuntimeError as e:
                    self.batched_columns = False
                    warnings.warn(f"{type(self).__name__}: autograd cannot batch the columns of op @ V for this "
                                  f"model ({str(e)[:200]}); multiplying them one at a time from now on "
                                  "(batched_columns=False)", RuntimeWarning, stacklevel=4)
            return _grad_dot_hvp_looped(state, self.params, V, retain_graph=retain)

    def _cached_graphs(self):
        versions = tuple(p._version for p in self.params)
        if self._graphs is None or versions != self._versions:
            with preserved_buffers(self.model):
                self._graphs = [(self._batch_state(x, y), w) for x, y, w in self.batches]
            self._versions = versions
        return self._graphs

    def _matmat(self, V: Tensor) -> Tensor:
        out = torch.zeros_like(V)
        if self.cache_graph:
            for state, w in self._cached_graphs():
                out += w * self._products(state, V, retain=True)
            return out
        # one linearization (or gradient graph) per batch, reused for every column
        with preserved_buffers(self.model):
            for x, y, w in self.batches:
                out += w * self._products(self._batch_state(x, y), V, retain=False)
        return out


def hvp(model: torch.nn.Module, loss_fn, data, v: Tensor, *, params=None, method: str = "exact") -> Tensor:
    r"""Hessian-vector product :math:`Hv` of the data-averaged loss.

    .. math::

        \text{exact:}\quad Hv = \mathcal{R}\{\nabla E\} = \nabla(\nabla E^\top v) \qquad
        \text{finite difference:}\quad Hv \approx \frac{\nabla E(\omega + \alpha v) - \nabla E(\omega)}{\alpha}

    Args:
        model, loss_fn, data, params: as in :class:`HessianOperator`.
        v: flat vector of length ``P`` (the number of parameters).
        method: ``"exact"`` (the faster exact method for the model: Pearlmutter's R-pass or double
            backprop, see :class:`HessianOperator`), ``"r-op"``, ``"double-backprop"``, or
            ``"finite-difference"`` (the slides' recipe,
            :func:`~optlab.curvature.finite_difference.finite_difference_hvp`, step size chosen for the dtype).

    Returns:
        Flat tensor :math:`Hv` of length ``P``.

    References:
        Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
        LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by on-line
        estimation of the Hessian's eigenvectors. NIPS 5.
    """
    one_of("hvp", "method", method, HVP_METHODS)
    if method == "finite-difference":
        return finite_difference_hvp(model, loss_fn, data, v, params=params)
    op = HessianOperator(model, loss_fn, data, params, method=method)
    return op @ check_vector(v, op.shape[0], op.params[0], owner="hvp")


def hessian(model: torch.nn.Module, loss_fn, data, *, params=None) -> Tensor:
    r"""The dense Hessian :math:`H_{ij} = \partial^2 E / \partial\omega_i \partial\omega_j` (``P x P``).

    Built column by column from exact Hessian-vector products (one gradient graph per batch); only
    for small models. Parameters are flattened in ``model.parameters()`` order.

    Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
    """
    return HessianOperator(model, loss_fn, data, params).to_dense()
