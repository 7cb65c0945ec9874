r"""Rprop (resilient propagation): per-weight step sizes driven by the sign of the gradient only.

In Misra's notation, with step sizes :math:`\delta` (the slides' :math:`v`), factors
:math:`0 < \eta^- < 1 < \eta^+` and gradient :math:`g_t`:

.. math::

    \delta_t &= \operatorname{clip}\Big(\begin{cases} \eta^+ \delta_{t-1} & g_t g_{t-1} > 0 \\
               \eta^- \delta_{t-1} & g_t g_{t-1} < 0 \\ \delta_{t-1} & \text{otherwise}\end{cases},
               \ \delta_{\min}, \delta_{\max}\Big) \\
    \theta_{t+1} &= \theta_t - \operatorname{sign}(g_t)\, \delta_t

with :math:`\delta_0 = \alpha` (the ``lr``). As in ``torch.optim.Rprop`` (the "Rprop-" variant of
Igel & Hüsken), after a sign change the step is skipped and the stored gradient set to 0, so the next
step neither grows nor shrinks :math:`\delta`. The slides write :math:`\theta_{t+1} = \theta_t - v_t`,
leaving the sign implicit; the published rule moves against the sign of the gradient.

With :math:`\eta^- = \eta^+ = 1` the step sizes never change and the rule is the "Manhattan update
rule" of the slides, :math:`\theta_{t+1} = \theta_t - \alpha\,\operatorname{sign}(g_t)`, taken on every
step (torch requires :math:`\eta^- < 1 < \eta^+`; optlab accepts :math:`0 < \eta^- \le 1 \le \eta^+`).

References:
    Riedmiller, M., Braun, H. (1993). A direct adaptive method for faster backpropagation learning:
    the RPROP algorithm. IEEE ICNN.
    Igel, C., Hüsken, M. (2000). Improving the Rprop learning algorithm. NC 2000.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, scalar_state, value
from ._fused import fused_kernel, prange, run, scalars
from ..errors import check, non_negative


def rprop_update(
    theta: Tensor,
    g: Tensor,
    g_prev: Tensor,
    delta: Tensor,
    *,
    eta_minus: float = 0.5,
    eta_plus: float = 1.2,
    delta_min: float = 1e-6,
    delta_max: float = 50.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One Rprop step on plain tensors; returns ``(theta, g_prev, delta)``, changing nothing in place.

    .. math::
        \delta \leftarrow \operatorname{clip}(\eta\,\delta, \delta_{\min}, \delta_{\max}),\ 
        \eta = \eta^+, \eta^-, 1 \text{ for } g\,g_{prev} >, <, = 0;\quad
        \theta \leftarrow \theta - \operatorname{sign}(g)\,\delta

    Args:
        theta, g: parameters and gradient.
        g_prev: the gradient kept from the last step (zeros before step 1); returned updated.
        delta: the per-weight step sizes (``lr`` everywhere before step 1); returned updated.
        eta_minus, eta_plus: the shrink and growth factors (both 1: the Manhattan rule).
        delta_min, delta_max: bounds of the step sizes.
        maximize: ascend instead of descend.

    Reference: Riedmiller & Braun (1993), RPROP; Igel & Hüsken (2000) for the Rprop- variant.

    Example:
        >>> theta, g_prev, delta = rprop_update(torch.tensor([1.0]), torch.tensor([3.0]),
        ...                                     torch.tensor([2.0]), torch.tensor([0.1]))
        >>> theta, delta  # same sign twice: the step grows by eta_plus and ignores |g|
        (tensor([0.8800]), tensor([0.1200]))
    """
    if maximize:
        g = -g
    s = torch.sign(g * g_prev)
    eta = torch.where(s > 0, eta_plus, torch.where(s < 0, eta_minus, torch.ones_like(delta)))
    delta = torch.clamp(delta * eta, delta_min, delta_max)
    if eta_minus < 1:
        g = torch.where(s < 0, torch.zeros_like(g), g)  # Rprop-: no step right after a sign change
    theta = theta.addcmul(torch.sign(g), delta, value=-1)  # theta - sign(g) delta
    return theta, g, delta


def rprop_update_(
    theta: Tensor,
    g: Tensor,
    g_prev: Tensor,
    delta: Tensor,
    *,
    eta_minus: float,
    eta_plus: float,
    delta_min: float,
    delta_max: float,
    maximize: bool,
    work: Tensor,
) -> None:
    """:func:`rprop_update` in place (``work``: scratch shaped like ``theta``)."""
    if maximize:
        g = torch.neg(g, out=work)
    s = torch.mul(g, g_prev, out=g_prev).sign_()  # g_prev is read here for the last time
    flipped = s < 0
    eta = s.masked_fill_(s > 0, eta_plus).masked_fill_(flipped, eta_minus).masked_fill_(s == 0, 1.0)
    delta.mul_(eta).clamp_(delta_min, delta_max)
    g_prev.copy_(g)
    if eta_minus < 1:
        g_prev.masked_fill_(flipped, 0.0)
    theta.addcmul_(torch.sign(g_prev, out=work), delta, value=-1)


def rprop_fused(theta: Tensor, g: Tensor, g_prev: Tensor, delta: Tensor, *, eta_minus: float, eta_plus: float,
                delta_min: float, delta_max: float, maximize: bool, loop=None, batch=None) -> None:
    """:func:`rprop_update` in place in one pass over memory (:func:`_rprop_loop`).

    ``loop``: :func:`rprop_loop` of these scalars, when the caller has bound it already. ``batch``: a
    :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loop = loop or rprop_loop(theta, eta_minus=eta_minus, eta_plus=eta_plus, delta_min=delta_min,
                              delta_max=delta_max, maximize=maximize)
    run(loop, theta, g, g_prev, delta, batch=batch)


def rprop_loop(like: Tensor, *, eta_minus: float, eta_plus: float, delta_min: float, delta_max: float,
               maximize: bool):
    """:func:`_rprop_loop` bound to its scalars (in ``like``'s dtype)."""
    return _rprop_loop.bind(4, **scalars(like, eta_minus=eta_minus, eta_plus=eta_plus, one=1.0, zero=0.0,
                                         delta_min=delta_min, delta_max=delta_max),
                            maximize=maximize, skip_after_flip=eta_minus < 1)


@fused_kernel
def _rprop_loop(theta, g, g_prev, delta, eta_minus, eta_plus, one, zero, delta_min, delta_max, maximize,
                skip_after_flip):
    for i in prange(theta.shape[0]):
        gi = -g[i] if maximize else g[i]
        s = gi * g_prev[i]
        eta = eta_plus if s > 0 else (eta_minus if s < 0 else one)
        d = min(max(delta[i] * eta, delta_min), delta_max)  # clip(eta delta, delta_min, delta_max)
        delta[i] = d
        if skip_after_flip and s < 0:
            gi = zero  # Rprop-: no step right after a sign change
        g_prev[i] = gi
        if gi > 0:  # theta - sign(g) delta
            theta[i] = theta[i] - d
        elif gi < 0:
            theta[i] = theta[i] + d


class Rprop(KernelOptimizer):
    r"""Rprop; the same constructor, state and trajectories as ``torch.optim.Rprop``.

    .. math::
        \delta \leftarrow \operatorname{clip}(\eta^{\pm}\delta, \delta_{\min}, \delta_{\max}),\qquad
        \theta \leftarrow \theta - \operatorname{sign}(g)\,\delta

    Reference: Riedmiller & Braun (1993), RPROP.

    Args:
        params: parameters or parameter groups to optimize.
        lr: the initial step size delta_0 (>= 0).
        etas: (eta_minus, eta_plus) with 0 < eta_minus <= 1 <= eta_plus; (1, 1) is the Manhattan rule.
        step_sizes: (delta_min, delta_max), 0 <= delta_min <= delta_max.
        capturable, differentiable: must be False (raise ``ValueError`` otherwise).
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        kernel: ``"fused"`` (:func:`rprop_fused`), ``"inplace"`` (:func:`rprop_update_`) or
            ``"reference"`` (:func:`rprop_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    The math is :func:`rprop_update`; see the module docstring for the equations and references.

    Example:
        >>> opt = Rprop(torch.nn.Linear(3, 1).parameters(), lr=0.01, etas=(0.5, 1.2))
    """

    elementwise_state = ("prev", "step_size")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False,
                 foreach=None, maximize=False, differentiable=False, kernel="fused"):
        non_negative("Rprop", "lr", lr)
        check("Rprop", "etas", etas, isinstance(etas, (tuple, list)) and len(etas) == 2
              and all(isinstance(e, (int, float)) for e in etas) and 0 < etas[0] <= 1 <= etas[1],
              "a pair (eta_minus, eta_plus) with 0 < eta_minus <= 1 <= eta_plus")
        check("Rprop", "step_sizes", step_sizes, isinstance(step_sizes, (tuple, list)) and len(step_sizes) == 2
              and all(isinstance(e, (int, float)) for e in step_sizes) and 0 <= step_sizes[0] <= step_sizes[1],
              "a pair (delta_min, delta_max) with 0 <= delta_min <= delta_max")
        defaults = dict(lr=lr, etas=etas, step_sizes=step_sizes, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["prev"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step_size"] = torch.full_like(p, value(group["lr"]))

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        (eta_minus, eta_plus), (delta_min, delta_max) = group["etas"], group["step_sizes"]
        hyper = dict(eta_minus=eta_minus, eta_plus=eta_plus, delta_min=delta_min, delta_max=delta_max,
                     maximize=group["maximize"])
        if kernel == "reference":
            theta, g_prev, delta = rprop_update(p, g, state["prev"], state["step_size"], **hyper)
            p.copy_(theta)
            state["prev"].copy_(g_prev)
            state["step_size"].copy_(delta)
        elif kernel == "fused":
            loop = self._once_per_group_step(("rprop", p.dtype), lambda: rprop_loop(p, **hyper))
            rprop_fused(p, g, state["prev"], state["step_size"], **hyper, loop=loop, batch=self._batch())
        else:
            rprop_update_(p, g, state["prev"], state["step_size"], **hyper, work=self._workspace(p))
