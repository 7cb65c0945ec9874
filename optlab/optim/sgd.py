r"""Stochastic gradient descent with momentum and Nesterov momentum.

The update, in the slides' symbols (Zemel, lecture 4; Misra, "Optimization for Deep Networks"),
with learning rate :math:`\alpha`, momentum :math:`\mu` and gradient :math:`g_t = \nabla J(\theta_t)`:

.. math::

    \text{plain SGD:}\quad & \theta_{t+1} = \theta_t - \alpha g_t \\
    \text{momentum:}\quad  & b_{t+1} = \mu b_t + (1 - \tau) g_t, \qquad \theta_{t+1} = \theta_t - \alpha b_{t+1} \\
    \text{Nesterov:}\quad  & \theta_{t+1} = \theta_t - \alpha (g_t + \mu b_{t+1})

with dampening :math:`\tau` and the first buffer :math:`b_1 = g_0` (no dampening on the first step),
as in ``torch.optim.SGD``. The slides write momentum as a velocity, :math:`p \leftarrow \mu p - \alpha g`,
:math:`\theta \leftarrow \theta + p`: for a constant :math:`\alpha` this is the same trajectory with
:math:`p = -\alpha b`. Nesterov's look-ahead gradient is written here in the form of Sutskever et al.
(2013) that evaluates the gradient at the current parameters, again as torch does.

References:
    Polyak, B. T. (1964). Some methods of speeding up the convergence of iteration methods.
    Nesterov, Y. (1983). A method for unconstrained convex minimization problem with the rate of
    convergence O(1/k^2).
    Sutskever, I., Martens, J., Dahl, G., Hinton, G. (2013). On the importance of initialization and
    momentum in deep learning. ICML.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, effective_grad, value
from . import _fused
from ._fused import fma, fused_kernel, prange, run, scalars
from ..errors import check, non_negative


def sgd_update(
    theta: Tensor,
    g: Tensor,
    b: Tensor | None = None,
    *,
    alpha: float,
    mu: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor | None]:
    r"""One SGD step on a plain tensor; returns ``(theta_next, b_next)`` and changes nothing in place.

    ``b`` is the momentum buffer (``None`` before the first step, and always ``None`` when ``mu == 0``).

    .. math::
        g \leftarrow \pm g + \lambda\theta,\quad
        b \leftarrow \mu b + (1-\tau) g \;(b_1 = g),\quad
        \theta \leftarrow \theta - \alpha\,(g + \mu b \text{ if Nesterov else } b)

    Each line rounds as torch.optim.SGD's: ``x.add(y, alpha=c)`` is :math:`x + c y` with one rounding.
    Sparse gradients (``torch.sparse_coo``) pass through unchanged, as in ``torch.optim.SGD``.

    Reference: Polyak (1964); Sutskever et al. (2013) for the Nesterov form.

    Example:
        >>> theta, b = sgd_update(torch.tensor([1.0]), torch.tensor([2.0]), alpha=0.1, mu=0.9)
        >>> theta, b
        (tensor([0.8000]), tensor([2.]))
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    if mu != 0:
        b = g.clone() if b is None else (b * mu).add(g, alpha=1 - dampening)  # mu b + (1 - tau) g
        d = g.add(b, alpha=mu) if nesterov else b  # g + mu b
    else:
        b, d = None, g
    return theta.add(d, alpha=-alpha), b  # theta - alpha d


def sgd_update_(
    theta: Tensor,
    g: Tensor,
    b: Tensor | None,
    *,
    alpha: float,
    mu: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
    maximize: bool,
    work: Tensor,
    work2: Tensor,
) -> Tensor | None:
    """:func:`sgd_update` in place on dense tensors (``work``, ``work2``: scratch like ``theta``); returns the buffer.

    The buffer ``b`` is updated in place, or created (as a copy of the gradient) when ``None``.
    """
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work)
    if mu == 0:
        theta.add_(g, alpha=-alpha)
        return None
    if b is None:
        b = g.clone()
    else:
        b.mul_(mu).add_(g, alpha=1 - dampening)
    theta.add_(torch.add(g, b, alpha=mu, out=work2) if nesterov else b, alpha=-alpha)
    return b


def sgd_fused(theta: Tensor, g: Tensor, b: Tensor | None, *, alpha: float, mu: float, dampening: float,
              nesterov: bool, weight_decay: float, maximize: bool, loop=None, batch=None) -> Tensor | None:
    r""":func:`sgd_update` in place in one pass over memory (:func:`_sgd_loop`; tensors that
    :func:`~optlab.optim._fused.unavailable_reason` accepts); returns the buffer (created, as a copy of
    :math:`g`, when ``None`` and :math:`\mu \ne 0`).

    ``loop``: :func:`_sgd_loop` bound to these scalars (:func:`sgd_loop_scalars`, ``first`` when the
    buffer is ``None``), when the caller has bound it already. ``batch``: a
    :class:`~optlab.optim._fused.Batch` to add the step to (it runs later, with the group's other
    tensors), instead of running it now.
    """
    first = mu != 0 and b is None
    if first:
        b = torch.empty_like(theta)
    if loop is None:
        loop = _sgd_loop.bind(3, **sgd_loop_scalars(theta, alpha=alpha, mu=mu, dampening=dampening, nesterov=nesterov,
                                                    weight_decay=weight_decay, maximize=maximize, first=first))
    run(loop, theta, g, b, batch=batch)
    return b


def sgd_loop_scalars(like: Tensor, *, alpha: float, mu: float, dampening: float, nesterov: bool,
                     weight_decay: float, maximize: bool, first: bool) -> dict:
    """The scalars and switches of :func:`_sgd_loop` (numbers in ``like``'s dtype); ``first``: the buffer is new."""
    return dict(scalars(like, wd=weight_decay, mu=mu, one_minus_tau=1 - dampening, minus_alpha=-alpha),
                maximize=maximize, l2=weight_decay != 0, momentum=mu != 0, first=first, nesterov=nesterov)


@fused_kernel
def _sgd_loop(theta, g, b, wd, mu, one_minus_tau, minus_alpha, maximize, l2, momentum, first, nesterov):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)  # g + lambda theta
        d = gi
        if momentum:
            bi = gi if first else fma(gi, one_minus_tau, b[i] * mu)  # mu b + (1 - tau) g
            b[i] = bi
            d = fma(bi, mu, gi) if nesterov else bi  # g + mu b
        theta[i] = fma(d, minus_alpha, th)  # theta - alpha d


class SGD(KernelOptimizer):
    r"""SGD with momentum and Nesterov momentum; the same constructor and trajectories as ``torch.optim.SGD``.

    .. math::
        b \leftarrow \mu b + (1-\tau) g,\qquad
        \theta \leftarrow \theta - \alpha\,(g + \mu b \text{ if Nesterov else } b)

    Reference: Polyak (1964); Sutskever, Martens, Dahl & Hinton (2013).

    Args:
        params: parameters or parameter groups to optimize.
        lr: the learning rate alpha (>= 0).
        momentum: the momentum mu (>= 0).
        dampening: tau, the share of the gradient held back from the buffer (needs ``nesterov=False``).
        weight_decay: L2 penalty lambda added to the gradient (>= 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend instead of descend.
        foreach: accepted for compatibility; ignored.
        differentiable, fused: must be False/None (raise ``ValueError`` otherwise).
        kernel: ``"fused"`` (:func:`sgd_fused`), ``"inplace"`` (:func:`sgd_update_`) or ``"reference"``
            (:func:`sgd_update`); all give torch's bits (see :class:`~optlab.optim._base.KernelOptimizer`).
            Plain SGD (no momentum, weight decay or maximize) under ``"fused"`` is one
            ``torch._foreach_add_`` over the group: one pass per tensor, without a call per tensor.

    Sparse gradients are accepted, as by ``torch.optim.SGD``; only the readable kernel takes them, so
    they step with ``kernel="reference"`` whatever was asked (and say so, see ``kernel_used``).
    The math is :func:`sgd_update`; see the module docstring for the equations and references.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    """

    supports_sparse = True
    elementwise_state = ("momentum_buffer",)

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None, kernel: str = "fused"):
        non_negative("SGD", "lr", lr)
        non_negative("SGD", "momentum", momentum)
        non_negative("SGD", "dampening", dampening)
        non_negative("SGD", "weight_decay", weight_decay)
        if nesterov:
            check("SGD", "nesterov", nesterov, momentum > 0 and dampening == 0,
                  f"nesterov=True only with momentum > 0 and dampening == 0 (got momentum={momentum!r}, "
                  f"dampening={dampening!r})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        pass  # torch keeps no state until the momentum buffer exists

    def _step_group(self, group, params):
        plain = group["momentum"] == 0 and group["weight_decay"] == 0 and not group["maximize"]
        if plain and group["kernel"] == "fused" and not any(p.grad.is_sparse for p in params):
            # theta <- theta - alpha g for every tensor of the group in one call, each a fused
            # multiply-add as torch's add_(g, alpha=-lr) (measured faster in benchmarks/bench_optim.py)
            torch._foreach_add_(params, [p.grad for p in params], alpha=-value(group["lr"]))
            self.kernel_used.update(dict.fromkeys(params, "fused"))
            return
        sets = self._steady_sets(group, params)
        if sets is None:
            super()._step_group(group, params)
        else:  # the loop of the generic path, without its per-tensor bookkeeping
            loop = _sgd_loop.bind(3, **sgd_loop_scalars(params[0], **self._hyper(group), first=False))
            loop.over(sets)
            self.kernel_used.update(dict.fromkeys(params, "fused"))

    def _steady_sets(self, group, params):
        """``(theta, g, b)`` of every tensor when the group is in SGD's steady state under ``kernel="fused"``:
        momentum, every buffer made, one dtype, every tensor one the fused loop takes. ``None`` otherwise, and
        the generic step (which also warns of a fallback) takes the group."""
        if group["kernel"] != "fused" or group["momentum"] == 0:
            return None
        sets, dtype, state = [], params[0].dtype, self.state
        for p in params:
            g, b = p.grad, state[p].get("momentum_buffer")
            if b is None or p.dtype is not dtype or _fused.unavailable_reason(p, g, b) is not None:
                return None
            sets.append((p, g, b))
        return sets

    @staticmethod
    def _hyper(group) -> dict:
        return dict(alpha=value(group["lr"]), mu=group["momentum"], dampening=group["dampening"],
                    nesterov=group["nesterov"], weight_decay=value(group["weight_decay"]), maximize=group["maximize"])

    def _update(self, p, g, state, group, kernel):
        hyper = self._once_per_group_step("hyper", lambda: self._hyper(group))
        b = state.get("momentum_buffer")
        if kernel == "reference":
            theta, b_new = sgd_update(p, g, b, **hyper)
            p.copy_(theta)
        elif kernel == "fused":
            first = hyper["mu"] != 0 and b is None
            loop = self._once_per_group_step(("sgd", p.dtype, first), lambda: _sgd_loop.bind(
                3, **sgd_loop_scalars(p, **hyper, first=first)))
            b_new = sgd_fused(p, g, b, **hyper, loop=loop, batch=self._batch())
        else:
            b_new = sgd_update_(p, g, b, **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1))
        if b_new is not None:
            state["momentum_buffer"] = b_new
