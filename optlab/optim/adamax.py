r"""AdaMax: Adam with the infinity norm in place of the root-mean-square.

With gradient :math:`g_t`, learning rate :math:`\alpha`, decay rates :math:`\beta_1, \beta_2` and step
count :math:`t`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
    \theta_{t+1} &= \theta_t - \frac{\alpha}{1 - \beta_1^t}\, \frac{m_t}{u_t}

Misra's slide writes :math:`r_t, p_t` for :math:`m_t, u_t` and its bias correction
:math:`1 - (1-\gamma_1)^t` is a typo for the published :math:`1 - \beta_1^t`. The :math:`\epsilon`
inside the max is torch's guard against :math:`u_t = 0` (the paper has none); ``weight_decay`` adds
:math:`\lambda\theta` to :math:`g_t`, as in ``torch.optim.Adamax``.

Reference:
    Kingma, D. P., Ba, J. (2015). Adam: A method for stochastic optimization (section 7.1). ICLR.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import fma, fused_kernel, lerp, lerp_weight, prange, run, scalars
from ..errors import check, in_unit_interval, non_negative


def adamax_update(
    theta: Tensor,
    g: Tensor,
    m: Tensor,
    u: Tensor,
    *,
    t: int,
    alpha: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One AdaMax step on plain tensors; returns ``(theta, m, u)``, changing nothing in place.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad u \leftarrow \max(\beta_2 u, |g| + \epsilon),\quad
        \theta \leftarrow \theta - \frac{\alpha}{1-\beta_1^t} \frac{m}{u}

    Args:
        theta, g: parameters and gradient; m, u: first moment and infinity norm (zeros before step 1).
        t: the step count including this step (1 on the first step).
        alpha, beta1, beta2, eps, weight_decay, maximize: as in ``torch.optim.Adamax``.

    Reference: Kingma & Ba (2015), Adam, section 7.1 (AdaMax).

    Example:
        >>> theta, m, u = adamax_update(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1),
        ...                             torch.zeros(1), t=1, alpha=0.1, eps=0.0)
        >>> theta
        tensor([0.9000])
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    m = m.lerp(g, 1 - beta1)  # beta1 m + (1 - beta1) g
    u = torch.maximum(u * beta2, torch.abs(g) + eps)
    return theta.addcdiv(m, u, value=-(alpha / (1 - beta1**t))), m, u


def adamax_update_(theta: Tensor, g: Tensor, m: Tensor, u: Tensor, *, t: int, alpha: float, beta1: float,
                   beta2: float, eps: float, weight_decay: float, maximize: bool, work: Tensor,
                   work2: Tensor) -> None:
    """:func:`adamax_update` in place (``work``, ``work2``: scratch shaped like ``theta``)."""
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work2)
    m.lerp_(g, 1 - beta1)
    torch.maximum(u.mul_(beta2), torch.abs(g, out=work).add_(eps), out=u)
    theta.addcdiv_(m, u, value=-(alpha / (1 - beta1**t)))


def adamax_fused(theta: Tensor, g: Tensor, m: Tensor, u: Tensor, *, t: int, alpha: float, beta1: float,
                 beta2: float, eps: float, weight_decay: float, maximize: bool, loop=None, batch=None) -> None:
    """:func:`adamax_update` in place in one pass over memory (:func:`_adamax_loop`).

    ``loop``: :func:`adamax_loop` of these scalars, when the caller has bound it already. ``batch``: a
    :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loop = loop or adamax_loop(theta, t=t, alpha=alpha, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                               maximize=maximize)
    run(loop, theta, g, m, u, batch=batch)


def adamax_loop(like: Tensor, *, t: int, alpha: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                maximize: bool):
    """:func:`_adamax_loop` bound to its scalars (in ``like``'s dtype)."""
    return _adamax_loop.bind(4, **scalars(like, wd=weight_decay, beta2=beta2, eps=eps,
                                          minus_step=-(alpha / (1 - beta1**t))),
                             **lerp_weight(like, 1 - beta1), maximize=maximize, l2=weight_decay != 0)


@fused_kernel
def _adamax_loop(theta, g, m, u, wd, beta2, eps, minus_step, w, w_minus_1, maximize, l2):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)  # g + lambda theta
        mi = lerp(m[i], gi, w, w_minus_1)  # beta1 m + (1 - beta1) g
        ui = max(u[i] * beta2, abs(gi) + eps)
        m[i] = mi
        u[i] = ui
        theta[i] = th + (minus_step * mi) / ui  # theta - alpha / (1 - beta1^t) m / u


class Adamax(KernelOptimizer):
    r"""AdaMax; the same constructor, state and trajectories as ``torch.optim.Adamax``.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\ u \leftarrow \max(\beta_2 u, |g| + \epsilon),\
        \theta \leftarrow \theta - \frac{\alpha}{1-\beta_1^t}\frac{m}{u}

    Reference: Kingma & Ba (2015), Adam, section 7.1.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate alpha (>= 0).
        betas: (beta1, beta2), each in [0, 1).
        eps: guard added to |g| (>= 0).
        weight_decay: L2 penalty lambda (>= 0).
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        differentiable, capturable: must be False (raise ``ValueError`` otherwise).
        kernel: ``"fused"`` (:func:`adamax_fused`), ``"inplace"`` (:func:`adamax_update_`) or
            ``"reference"`` (:func:`adamax_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    State names follow torch: ``exp_avg`` is m, ``exp_inf`` is u.
    The math is :func:`adamax_update`; see the module docstring for the equations and reference.

    Example:
        >>> opt = Adamax(torch.nn.Linear(3, 1).parameters(), lr=2e-3)
    """

    elementwise_state = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False, kernel="fused"):
        non_negative("Adamax", "lr", lr)
        check("Adamax", "betas", betas, isinstance(betas, (tuple, list)) and len(betas) == 2, "a pair (beta1, beta2)")
        in_unit_interval("Adamax", "betas[0]", betas[0])
        in_unit_interval("Adamax", "betas[1]", betas[1])
        non_negative("Adamax", "eps", eps)
        non_negative("Adamax", "weight_decay", weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_inf"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        beta1, beta2 = group["betas"]
        hyper = dict(t=state["step"].item(), alpha=value(group["lr"]), beta1=beta1, beta2=beta2, eps=group["eps"],
                     weight_decay=group["weight_decay"], maximize=group["maximize"])
        m, u = state["exp_avg"], state["exp_inf"]
        if kernel == "reference":
            theta, m_new, u_new = adamax_update(p, g, m, u, **hyper)
            p.copy_(theta)
            m.copy_(m_new)
            u.copy_(u_new)
        elif kernel == "fused":
            loop = self._once_per_group_step(("adamax", p.dtype, hyper["t"]), lambda: adamax_loop(p, **hyper))
            adamax_fused(p, g, m, u, **hyper, loop=loop, batch=self._batch())
        else:
            adamax_update_(p, g, m, u, **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1))
