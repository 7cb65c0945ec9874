r"""Averaged SGD, the slides' recipe: Xu/Bottou step-size schedule plus Polyak-Juditsky averaging.

LeCun's slide "Learning rate schedule + average SGD" (after Xu and Bottou): run SGD with

.. math::

    \eta_t = \frac{\eta_0}{(1 + \lambda \eta_0 t)^{0.75}}, \qquad
    \theta_{t+1} = \theta_t - \eta_t g_t \quad (t = 0, 1, \dots)

and report the time average of the iterates from a chosen step :math:`s` on (Polyak & Juditsky 1992),
kept as a running mean:

.. math::

    \bar\theta_{t+1} = \bar\theta_t + \frac{1}{n_{t+1}} (\theta_{t+1} - \bar\theta_t), \qquad
    n_{t+1} = \max(1, t + 1 - s)

so that after step :math:`T > s`, :math:`\bar\theta = \frac{1}{T - s}\sum_{k=s+1}^{T} \theta_k`
(before :math:`s`, :math:`\bar\theta` tracks :math:`\theta`). Bottou (2012) starts averaging after the
first epoch; so does :class:`AveragedSGD` by default. Unlike ``torch.optim.ASGD``, the schedule's
:math:`\lambda` is not also a weight decay (``weight_decay`` is separate, :math:`g \leftarrow g + \lambda'\theta`),
and averaging starts early enough to matter in a short run (torch's default ``t0=1e6`` never starts).
In Bottou's setting :math:`\lambda` is the L2 strength, so ``lambd == weight_decay`` is his recipe
(and reproduces ``torch.optim.ASGD`` with ``t0 = s - 1``).

References:
    Polyak, B. T., Juditsky, A. B. (1992). Acceleration of stochastic approximation by averaging.
    SIAM J. Control Optim. 30(4).
    Xu, W. (2011). Towards optimal one pass large scale learning with averaged stochastic gradient
    descent. arXiv:1107.2490.
    Bottou, L. (2012). Stochastic gradient descent tricks. Neural Networks: Tricks of the Trade, LNCS 7700.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from ._base import KernelOptimizer, effective_grad, value
from ._fused import fma, fused_kernel, prange, run, scalars
from .asgd import asgd_eta
from ..errors import check, non_negative


def bottou_eta(t: int, *, eta0: float, lambd: float, power: float = 0.75) -> float:
    r"""The step size of step ``t`` (0 on the first step): :math:`\eta_0 / (1 + \lambda\eta_0 t)^{0.75}`.

    Reference: Xu (2011); Bottou (2012), Stochastic gradient descent tricks.

    Example:
        >>> bottou_eta(0, eta0=0.1, lambd=1.0), round(bottou_eta(10, eta0=0.1, lambd=1.0), 4)
        (0.1, 0.0595)
    """
    return asgd_eta(t, eta0=eta0, lambd=lambd, a=power)  # the same schedule as torch's ASGD


def averaged_sgd_update(
    theta: Tensor,
    g: Tensor,
    theta_bar: Tensor,
    *,
    eta: float,
    n: int,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""One averaged-SGD step on plain tensors; returns ``(theta, theta_bar)``, changing nothing in place.

    .. math::
        \theta \leftarrow \theta - \eta (g + \lambda'\theta),\qquad
        \bar\theta \leftarrow \bar\theta + \tfrac{1}{n} (\theta - \bar\theta)
        \quad (\bar\theta \leftarrow \theta \text{ if } n \le 1)

    Args:
        theta, g: parameters and gradient; theta_bar: the running average.
        eta: this step's step size (see :func:`bottou_eta`).
        n: how many iterates the average holds after this step (0 or 1: it restarts at ``theta``).
        weight_decay: L2 penalty lambda' added to the gradient; maximize: ascend.

    Reference: Polyak & Juditsky (1992); Bottou (2012).

    Example:
        >>> theta, theta_bar = averaged_sgd_update(torch.tensor([1.0]), torch.tensor([2.0]),
        ...                                        torch.tensor([3.0]), eta=0.1, n=2)
        >>> theta, theta_bar  # the mean of the old average 3.0 and the new iterate 0.8
        (tensor([0.8000]), tensor([1.9000]))
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g.add(theta, alpha=weight_decay)  # g + lambda' theta
    theta = theta.add(g, alpha=-eta)  # theta - eta g
    theta_bar = theta.clone() if n <= 1 else theta_bar + (theta - theta_bar) / n
    return theta, theta_bar


def averaged_sgd_update_(theta: Tensor, g: Tensor, theta_bar: Tensor, *, eta: float, n: int, weight_decay: float,
                         maximize: bool, work: Tensor) -> None:
    """:func:`averaged_sgd_update` in place (``work``: scratch shaped like ``theta``)."""
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work)
    theta.add_(g, alpha=-eta)
    if n <= 1:
        theta_bar.copy_(theta)
    else:
        theta_bar.add_(torch.sub(theta, theta_bar, out=work).div_(n))


def averaged_sgd_fused(theta: Tensor, g: Tensor, theta_bar: Tensor, *, eta: float, n: int, weight_decay: float,
                       maximize: bool, loop=None, batch=None) -> None:
    """:func:`averaged_sgd_update` in place in one pass over memory (:func:`_averaged_sgd_loop`).

    ``loop``: :func:`averaged_sgd_loop` of these scalars, when the caller has bound it already. ``batch``:
    a :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loop = loop or averaged_sgd_loop(theta, eta=eta, n=n, weight_decay=weight_decay, maximize=maximize)
    run(loop, theta, g, theta_bar, batch=batch)


def averaged_sgd_loop(like: Tensor, *, eta: float, n: int, weight_decay: float, maximize: bool):
    """:func:`_averaged_sgd_loop` bound to its scalars (in ``like``'s dtype)."""
    return _averaged_sgd_loop.bind(3, **scalars(like, wd=weight_decay, minus_eta=-eta, n=max(n, 1)),
                                   maximize=maximize, l2=weight_decay != 0, restart=n <= 1)


@fused_kernel
def _averaged_sgd_loop(theta, g, theta_bar, wd, minus_eta, n, maximize, l2, restart):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)  # g + lambda' theta
        th = fma(gi, minus_eta, th)  # theta - eta g
        theta[i] = th
        if restart:
            theta_bar[i] = th
        else:
            bar = theta_bar[i]
            theta_bar[i] = bar + (th - bar) / n


class AveragedSGD(KernelOptimizer):
    r"""SGD with the Xu/Bottou schedule and Polyak-Juditsky averaging (LeCun's slides; Bottou 2012).

    .. math::
        \eta_t = \frac{\eta_0}{(1 + \lambda\eta_0 t)^{0.75}},\quad \theta \leftarrow \theta - \eta_t g,\quad
        \bar\theta = \text{mean of the iterates after step } s

    Reference: Polyak & Juditsky (1992); Xu (2011); Bottou (2012), Stochastic gradient descent tricks.

    Args:
        params: parameters or parameter groups to optimize.
        lr: eta_0, the initial step size (>= 0).
        lambd: lambda of the schedule eta_t = eta_0 / (1 + lambda eta_0 t)^power (>= 0; 0 keeps eta_0).
        power: the schedule's exponent (>= 0; 0.75 on the slide).
        weight_decay: L2 penalty added to the gradient (>= 0), separate from the schedule.
        steps_per_epoch: the number of steps in an epoch; averaging starts at the end of the first one
            unless ``average_start`` says otherwise.
        average_start: s, the number of steps after which averaging starts (the average holds the
            iterates of steps s+1, s+2, ...). One of ``steps_per_epoch`` and ``average_start`` is needed.
        maximize: ascend instead of descend.
        kernel: ``"fused"`` (:func:`averaged_sgd_fused`), ``"inplace"`` (:func:`averaged_sgd_update_`) or
            ``"reference"`` (:func:`averaged_sgd_update`); all give the same bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    The averaged weights are in ``state[p]["theta_bar"]``; :meth:`averaged_params` lists them,
    ``with opt.averaged(): ...`` evaluates the model with them swapped in (and swaps back), and
    :meth:`copy_averaged_to_params` keeps them for good. There is no torch counterpart.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = AveragedSGD(model.parameters(), lr=0.1, lambd=1e-3, steps_per_epoch=100)
        >>> with opt.averaged():
        ...     pass  # evaluate model here with the averaged weights
    """

    elementwise_state = ("theta_bar",)

    def __init__(self, params, lr=1e-2, lambd=1e-4, power=0.75, weight_decay=0, *, steps_per_epoch=None,
                 average_start=None, maximize=False, kernel="fused"):
        non_negative("AveragedSGD", "lr", lr)
        non_negative("AveragedSGD", "lambd", lambd)
        non_negative("AveragedSGD", "power", power)
        non_negative("AveragedSGD", "weight_decay", weight_decay)
        for name, n in (("steps_per_epoch", steps_per_epoch), ("average_start", average_start)):
            check("AveragedSGD", name, n, n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 0),
                  "None or an int >= 0")
        if average_start is None:
            check("AveragedSGD", "steps_per_epoch", steps_per_epoch, steps_per_epoch is not None,
                  "an int >= 0 when average_start is None (averaging starts at the end of the first epoch)")
            average_start = steps_per_epoch
        defaults = dict(lr=lr, lambd=lambd, power=power, weight_decay=weight_decay, average_start=average_start,
                        maximize=maximize)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = 0
        state["theta_bar"] = p.detach().clone(memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        t = state["step"]
        eta = bottou_eta(t, eta0=value(group["lr"]), lambd=group["lambd"], power=group["power"])
        state["step"] = t = t + 1
        hyper = dict(eta=eta, n=max(0, t - group["average_start"]), weight_decay=group["weight_decay"],
                     maximize=group["maximize"])
        if kernel == "reference":
            theta, theta_bar = averaged_sgd_update(p, g, state["theta_bar"], **hyper)
            p.copy_(theta)
            state["theta_bar"].copy_(theta_bar)
        elif kernel == "fused":
            loop = self._once_per_group_step(("averaged_sgd", p.dtype, eta, hyper["n"]),
                                             lambda: averaged_sgd_loop(p, **hyper))
            averaged_sgd_fused(p, g, state["theta_bar"], **hyper, loop=loop, batch=self._batch())
        else:
            averaged_sgd_update_(p, g, state["theta_bar"], **hyper, work=self._workspace(p))

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def averaged_params(self) -> list[Tensor]:
        """The averaged weights, one tensor per parameter (a parameter never stepped is its own average)."""
        return [self.state[p]["theta_bar"] if "theta_bar" in self.state[p] else p.detach().clone()
                for p in self._params()]

    @torch.no_grad()
    def swap_averaged(self) -> None:
        """Exchange the parameters and their averages in place (call again to swap back)."""
        for p in self._params():
            if "theta_bar" in self.state[p]:
                theta_bar = self.state[p]["theta_bar"]
                current = p.detach().clone()
                p.copy_(theta_bar)
                theta_bar.copy_(current)

    @contextlib.contextmanager
    def averaged(self):
        """``with opt.averaged(): ...`` runs the block with the averaged weights in the model, then restores."""
        self.swap_averaged()
        try:
            yield self
        finally:
            self.swap_averaged()

    @torch.no_grad()
    def copy_averaged_to_params(self) -> None:
        """Overwrite the parameters with their averages (e.g. at the end of training)."""
        for p, theta_bar in zip(self._params(), self.averaged_params()):
            p.copy_(theta_bar)
