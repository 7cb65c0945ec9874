r"""The Hessian of a loss closure, as a linear operator: what a second-order optimizer multiplies by.

:class:`~optlab.curvature.HessianOperator` is built from a model, a loss function and data; an optimizer
stepped with torch's closure has only the closure. :class:`LossHessianOperator` runs the closure once,
keeps the gradient :math:`g = \nabla_\theta E(\theta)` with its autograd graph, and multiplies by
differentiating :math:`g^\top v` once more (Pearlmutter's exact product):

.. math::

    H v = \nabla_\theta \big( g^\top v \big), \qquad g = \nabla_\theta E(\theta)

It is the Hessian at the parameters' values when the operator was built: moving a parameter in place
afterwards makes every product raise (build a new operator at the new point).

Example:
    >>> w = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> H = LossHessianOperator(lambda: (w ** 3).sum(), [w])   # H = diag(6 w)
    >>> H.to_dense()
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    >>> H.gradient, H.loss
    (tensor([ 3., 12.]), tensor(9.))

Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..flat import flatten
from ._operator import CurvatureOperator


class LossHessianOperator(CurvatureOperator):
    r"""The Hessian :math:`H = \nabla^2_\theta E` of the scalar ``loss_closure()`` with respect to ``params``.

    Args:
        loss_closure: zero-argument callable returning the scalar loss :math:`E` with its autograd graph
            (called once, here, with gradients enabled).
        params: the tensors :math:`\theta` (``requires_grad=True``).

    Attributes:
        loss: :math:`E(\theta)` (detached).
        gradient: the flat gradient :math:`g` (detached; zeros for parameters the loss does not use).
        params: the parameters, in the order of the flat vectors.

    ``H @ v`` takes a flat vector or an ``(n, k)`` matrix of columns (all columns in one batched backward
    pass); ``H.to_dense()`` builds the matrix (small models only). Every product reuses the one gradient
    graph, so the closure's forward pass is paid once.

    Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
    """

    def __init__(self, loss_closure: Callable[[], Tensor], params: Sequence[Tensor]):
        params = list(params)
        if not params:
            raise ValueError("LossHessianOperator: invalid params=[]; expected at least one tensor")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise ValueError(f"LossHessianOperator: invalid params[{i}]={p!r:.60}; expected a tensor with "
                                 f"requires_grad=True")
        with torch.enable_grad():
            loss = loss_closure()
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise TypeError(f"LossHessianOperator: loss_closure returned {loss!r:.80}; expected a scalar tensor")
            loss = loss.reshape(())
            if not loss.requires_grad:
                raise ValueError("LossHessianOperator: the loss does not depend on params (requires_grad=False)")
            g = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        self.params = params
        self.loss = loss.detach()
        self.gradient = flatten([None if gi is None else gi.detach() for gi in g], params)
        # the gradient parts that depend on params again (None: that part of H is zero)
        self._graph = [gi if gi is not None and gi.requires_grad else None for gi in g]
        self._versions = [p._version for p in params]
        super().__init__(self.gradient.numel(), self.gradient.dtype, self.gradient.device)

    def _check_unchanged(self) -> None:
        moved = [i for i, p in enumerate(self.params) if p._version != self._versions[i]]
        if moved:
            raise RuntimeError(f"LossHessianOperator: params{moved} changed in place since the operator was built; "
                               f"expected the point it was built at (build a new operator there)")

    def _matvec(self, v: Tensor) -> Tensor:
        return self._matmat(v[:, None])[:, 0]

    def _matmat(self, V: Tensor) -> Tensor:
        """:math:`HV` column by column in one batched backward pass through the kept gradient graph."""
        self._check_unchanged()
        k = V.shape[1]
        blocks = V.split([p.numel() for p in self.params])  # block i: the rows of V for params[i]
        pairs = [(gi, b.T.reshape(k, *gi.shape)) for gi, b in zip(self._graph, blocks) if gi is not None]
        if not pairs:  # the loss is (at most) linear in params: H = 0
            return torch.zeros_like(V)
        with torch.enable_grad():
            rows = torch.autograd.grad([gi for gi, _ in pairs], self.params, grad_outputs=[c for _, c in pairs],
                                       retain_graph=True, allow_unused=True, is_grads_batched=True)
        return torch.cat([(torch.zeros(k, p.numel(), dtype=V.dtype, device=V.device) if r is None
                           else r.reshape(k, -1)) for r, p in zip(rows, self.params)], dim=1).T
