r"""ASGD: SGD with a decaying step size and Polyak-Juditsky averaging, as ``torch.optim.ASGD`` runs it.

With gradient :math:`g_t`, initial step :math:`\eta_0` (``lr``), decay :math:`\lambda` (``lambd``), power
:math:`a` (torch's ``alpha``, 0.75) and averaging start :math:`t_0`, step :math:`t = 1, 2, \dots` does

.. math::

    \theta_t &= \theta_{t-1}(1 - \lambda\eta_t) - \eta_t g_t \\
    \bar\theta_t &= \bar\theta_{t-1} + \mu_t (\theta_t - \bar\theta_{t-1}) \\
    \eta_{t+1} &= \frac{\eta_0}{(1 + \lambda\eta_0 t)^{a}}, \qquad \mu_{t+1} = \frac{1}{\max(1, t - t_0)}

with :math:`\eta_1 = \eta_0`, :math:`\mu_1 = 1`. This is the schedule of LeCun's slide "Learning rate
schedule + average SGD", :math:`\eta_t = \eta_0 / (1 + \lambda\eta_0 t)^{0.75}` (Xu 2011, Bottou 2012),
with torch's conventions: the same :math:`\lambda` is also the weight decay, and averaging starts
after :math:`t_0` steps (default 1e6, so in a short run :math:`\bar\theta` just tracks
:math:`\theta`). :class:`optlab.optim.AveragedSGD` is the slides' recipe with these separated.
``weight_decay`` adds a further :math:`\lambda'\theta` to :math:`g_t`.

References:
    Polyak, B. T., Juditsky, A. B. (1992). Acceleration of stochastic approximation by averaging.
    SIAM J. Control Optim. 30(4).
    Xu, W. (2011). Towards optimal one pass large scale learning with averaged stochastic gradient
    descent. arXiv:1107.2490.
    Bottou, L. (2012). Stochastic gradient descent tricks. Neural Networks: Tricks of the Trade, LNCS 7700.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import fma, fused_kernel, prange, run, scalars
from ..errors import non_negative


def asgd_eta(t: int, *, eta0: float, lambd: float, a: float = 0.75) -> float:
    r"""The step size after ``t`` steps, :math:`\eta_0 / (1 + \lambda\eta_0 t)^{a}` (Xu 2011; Bottou 2012)."""
    return eta0 / (1 + lambd * eta0 * t) ** a


def asgd_mu(t: int, *, t0: float) -> float:
    r"""The averaging weight after ``t`` steps, :math:`1 / \max(1, t - t_0)` (torch's convention)."""
    return 1 / max(1, t - t0)


def asgd_update(
    theta: Tensor,
    g: Tensor,
    theta_bar: Tensor,
    *,
    eta: float,
    mu: float,
    lambd: float = 1e-4,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""One ASGD step on plain tensors; returns ``(theta, theta_bar)``, changing nothing in place.

    .. math::
        \theta \leftarrow \theta(1 - \lambda\eta) - \eta g,\qquad
        \bar\theta \leftarrow \bar\theta + \mu(\theta - \bar\theta)

    Args:
        theta, g: parameters and gradient; theta_bar: the running average (zeros before step 1).
        eta, mu: this step's step size and averaging weight (see :func:`asgd_eta`, :func:`asgd_mu`).
        lambd: the decay lambda; weight_decay: an extra L2 penalty; maximize: ascend.

    Reference: Polyak & Juditsky (1992); Xu (2011); Bottou (2012).

    Example:
        >>> theta, theta_bar = asgd_update(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1),
        ...                                eta=0.1, mu=1.0, lambd=0.0)
        >>> theta, theta_bar
        (tensor([0.8000]), tensor([0.8000]))
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g.add(theta, alpha=weight_decay)  # g + lambda' theta
    theta = (theta * (1 - lambd * eta)).add(g, alpha=-eta)  # theta (1 - lambda eta) - eta g
    theta_bar = theta.clone() if mu == 1 else theta_bar + (theta - theta_bar) * mu
    return theta, theta_bar


def asgd_update_(theta: Tensor, g: Tensor, theta_bar: Tensor, *, eta: float, mu: float, lambd: float,
                 weight_decay: float, maximize: bool, work: Tensor) -> None:
    """:func:`asgd_update` in place (``work``: scratch shaped like ``theta``)."""
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work)
    theta.mul_(1 - lambd * eta).add_(g, alpha=-eta)
    if mu == 1:
        theta_bar.copy_(theta)
    else:
        theta_bar.add_(torch.sub(theta, theta_bar, out=work).mul_(mu))


def asgd_fused(theta: Tensor, g: Tensor, theta_bar: Tensor, *, eta: float, mu: float, lambd: float,
               weight_decay: float, maximize: bool, loop=None, batch=None) -> None:
    """:func:`asgd_update` in place in one pass over memory (:func:`_asgd_loop`).

    ``loop``: :func:`asgd_loop` of these scalars, when the caller has bound it already. ``batch``: a
    :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loop = loop or asgd_loop(theta, eta=eta, mu=mu, lambd=lambd, weight_decay=weight_decay, maximize=maximize)
    run(loop, theta, g, theta_bar, batch=batch)


def asgd_loop(like: Tensor, *, eta: float, mu: float, lambd: float, weight_decay: float, maximize: bool):
    """:func:`_asgd_loop` bound to its scalars (in ``like``'s dtype)."""
    return _asgd_loop.bind(3, **scalars(like, wd=weight_decay, decay=1 - lambd * eta, minus_eta=-eta, mu=mu),
                           maximize=maximize, l2=weight_decay != 0, restart=mu == 1)


@fused_kernel
def _asgd_loop(theta, g, theta_bar, wd, decay, minus_eta, mu, maximize, l2, restart):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)  # g + lambda' theta
        th = fma(gi, minus_eta, th * decay)  # theta (1 - lambda eta) - eta g
        theta[i] = th
        if restart:
            theta_bar[i] = th
        else:
            bar = theta_bar[i]
            theta_bar[i] = bar + (th - bar) * mu


class ASGD(KernelOptimizer):
    r"""Averaged SGD as torch runs it; the same constructor, state and trajectories as ``torch.optim.ASGD``.

    .. math::
        \theta \leftarrow \theta(1-\lambda\eta_t) - \eta_t g,\
        \bar\theta \leftarrow \bar\theta + \mu_t(\theta - \bar\theta),\
        \eta_t = \frac{\eta_0}{(1+\lambda\eta_0 t)^{a}}

    Reference: Polyak & Juditsky (1992); Xu (2011); Bottou (2012).

    Args:
        params: parameters or parameter groups to optimize.
        lr: eta_0 (>= 0).
        lambd: lambda (>= 0), the schedule's decay and (as in torch) a weight decay.
        alpha: the schedule's power a (>= 0; 0.75 in Xu 2011).
        t0: the step after which averaging starts (>= 0).
        weight_decay: an extra L2 penalty (>= 0).
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        differentiable, capturable: must be False (raise ``ValueError`` otherwise).
        kernel: ``"fused"`` (:func:`asgd_fused`), ``"inplace"`` (:func:`asgd_update_`) or
            ``"reference"`` (:func:`asgd_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    State names follow torch: ``eta``, ``mu`` (scalar tensors, as torch rounds them) and ``ax``, the
    averaged parameters. For the slides' recipe, see :class:`optlab.optim.AveragedSGD`.

    Example:
        >>> opt = ASGD(torch.nn.Linear(3, 1).parameters(), lr=0.01, t0=100)
    """

    elementwise_state = ("ax",)

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False, *, kernel="fused"):
        non_negative("ASGD", "lr", lr)
        non_negative("ASGD", "lambd", lambd)
        non_negative("ASGD", "alpha", alpha)
        non_negative("ASGD", "t0", t0)
        non_negative("ASGD", "weight_decay", weight_decay)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["eta"] = scalar_state(value(group["lr"]))
        state["mu"] = scalar_state(1.0)
        state["ax"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        hyper = dict(eta=state["eta"].item(), mu=state["mu"].item(), lambd=group["lambd"],
                     weight_decay=group["weight_decay"], maximize=group["maximize"])
        if kernel == "reference":
            theta, theta_bar = asgd_update(p, g, state["ax"], **hyper)
            p.copy_(theta)
            state["ax"].copy_(theta_bar)
        elif kernel == "fused":
            loop = self._once_per_group_step(("asgd", p.dtype, hyper["eta"], hyper["mu"]),
                                             lambda: asgd_loop(p, **hyper))
            asgd_fused(p, g, state["ax"], **hyper, loop=loop, batch=self._batch())
        else:
            asgd_update_(p, g, state["ax"], **hyper, work=self._workspace(p))
        t = state["step"].item()
        state["eta"] = as_scalar_state(state["eta"]).fill_(
            asgd_eta(t, eta0=value(group["lr"]), lambd=group["lambd"], a=group["alpha"]))
        state["mu"] = as_scalar_state(state["mu"]).fill_(asgd_mu(t, t0=group["t0"]))
