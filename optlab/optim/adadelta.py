r"""AdaDelta: steps in the units of the parameters, the ratio of two running RMS values.

In Misra's notation, with gradient :math:`g_t`, running mean of squared gradients :math:`r_t`, running
mean of squared updates :math:`p_t`, decay :math:`\rho` (the slides' :math:`\gamma_1 = \gamma_2`):

.. math::

    r_t &= \rho\, r_{t-1} + (1 - \rho)\, g_t^2 \\
    v_t &= \frac{\sqrt{p_{t-1} + \epsilon}}{\sqrt{r_t + \epsilon}}\, g_t \\
    p_t &= \rho\, p_{t-1} + (1 - \rho)\, v_t^2 \\
    \theta_{t+1} &= \theta_t - \alpha\, v_t

Zeiler's published rule has no learning rate (:math:`\alpha = 1`, torch's default) and puts
:math:`\epsilon` inside both roots, as here; the slide folds :math:`\alpha` into :math:`v_t` and drops
:math:`\epsilon` (without it the first step would be 0). ``weight_decay`` adds :math:`\lambda\theta`
to :math:`g_t`, as in ``torch.optim.Adadelta``.

Reference:
    Zeiler, M. D. (2012). ADADELTA: an adaptive learning rate method. arXiv:1212.5701.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import SCRATCH, RootedLoops, fma, fused_kernel, prange, run, scalars
from ..errors import in_unit_interval, non_negative


def adadelta_update(
    theta: Tensor,
    g: Tensor,
    r: Tensor,
    p: Tensor,
    *,
    alpha: float = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One AdaDelta step on plain tensors; returns ``(theta, r, p)``, changing nothing in place.

    .. math::
        r \leftarrow \rho r + (1-\rho) g^2,\quad v = \frac{\sqrt{p + \epsilon}}{\sqrt{r + \epsilon}} g,\quad
        p \leftarrow \rho p + (1-\rho) v^2,\quad \theta \leftarrow \theta - \alpha v

    Args:
        theta, g: parameters and gradient.
        r: running mean of g^2; p: running mean of the squared updates v^2 (both zeros before step 1).
        alpha: learning rate (1 in Zeiler's paper); rho: decay; eps: guard inside the roots.
        weight_decay: L2 penalty lambda added to the gradient; maximize: ascend instead of descend.

    Reference: Zeiler (2012), ADADELTA.

    Example:
        >>> theta, r, p = adadelta_update(torch.tensor([1.0]), torch.tensor([1.0]), torch.zeros(1),
        ...                               torch.zeros(1), eps=1e-2)
        >>> theta  # first step: sqrt(eps / (0.1 + eps))
        tensor([0.6985])
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    r = (r * rho).addcmul(g, g, value=1 - rho)  # rho r + (1 - rho) g^2
    v = torch.sqrt(p + eps) / torch.sqrt(r + eps) * g
    p = (p * rho).addcmul(v, v, value=1 - rho)  # rho p + (1 - rho) v^2
    return theta.add(v, alpha=-alpha), r, p  # theta - alpha v


def adadelta_update_(theta: Tensor, g: Tensor, r: Tensor, p: Tensor, *, alpha: float, rho: float, eps: float,
                     weight_decay: float, maximize: bool, work: Tensor, work2: Tensor, work3: Tensor) -> None:
    """:func:`adadelta_update` in place (``work``, ``work2``, ``work3``: scratch shaped like ``theta``)."""
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work3)
    r.mul_(rho).addcmul_(g, g, value=1 - rho)
    std = torch.add(r, eps, out=work).sqrt_()
    v = torch.add(p, eps, out=work2).sqrt_().div_(std).mul_(g)
    p.mul_(rho).addcmul_(v, v, value=1 - rho)
    theta.add_(v, alpha=-alpha)


def adadelta_fused(theta: Tensor, g: Tensor, r: Tensor, p: Tensor, *, alpha: float, rho: float, eps: float,
                   weight_decay: float, maximize: bool, loops=None, batch=None) -> None:
    r""":func:`adadelta_update` in place: :func:`_adadelta_r_loop`, torch's square roots, :func:`_adadelta_theta_loop`.

    One pass over memory, block by block (:class:`~optlab.optim._fused.RootedLoops`): the first loop
    writes :math:`r + \epsilon` and :math:`p + \epsilon` into two scratch arrays, torch's square root
    roots them in place, and the second loop reads them back from the cache.

    ``loops``: :func:`adadelta_loops` of these scalars, when the caller has bound them already. ``batch``:
    a :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loops = loops or adadelta_loops(theta, alpha=alpha, rho=rho, eps=eps, weight_decay=weight_decay,
                                    maximize=maximize)
    run(loops, theta, g, r, p, SCRATCH[0], SCRATCH[1], batch=batch)


def adadelta_loops(like: Tensor, *, alpha: float, rho: float, eps: float, weight_decay: float,
                   maximize: bool) -> RootedLoops:
    r""":func:`_adadelta_r_loop`, the two roots and :func:`_adadelta_theta_loop`, bound to their scalars (in
    ``like``'s dtype), for the tensors :math:`(\theta, g, r, p, \text{scratch}, \text{scratch})`."""
    grad = dict(maximize=maximize, l2=weight_decay != 0)
    hyper = scalars(like, wd=weight_decay, rho=rho, c=1 - rho, eps=eps)
    first = _adadelta_r_loop.bind(6, **hyper, **grad)
    second = _adadelta_theta_loop.bind(5, **hyper, **scalars(like, minus_alpha=-alpha), **grad)
    return RootedLoops(first, (0, 1, 2, 3, 4, 5), ((4, 4), (5, 5)), second, (0, 1, 3, 4, 5))


@fused_kernel
def _adadelta_r_loop(theta, g, r, p, r_eps, p_eps, wd, rho, c, eps, maximize, l2):
    for i in prange(theta.shape[0]):
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(theta[i], wd, gi)  # g + lambda theta
        ri = fma(c * gi, gi, r[i] * rho)  # rho r + (1 - rho) g^2
        r[i] = ri
        r_eps[i] = ri + eps
        p_eps[i] = p[i] + eps


@fused_kernel
def _adadelta_theta_loop(theta, g, p, root_r_eps, root_p_eps, wd, rho, c, eps, minus_alpha, maximize, l2):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)
        v = root_p_eps[i] / root_r_eps[i] * gi  # sqrt(p + eps) / sqrt(r + eps) g
        p[i] = fma(c * v, v, p[i] * rho)  # rho p + (1 - rho) v^2
        theta[i] = fma(v, minus_alpha, th)  # theta - alpha v


class Adadelta(KernelOptimizer):
    r"""AdaDelta; the same constructor, state and trajectories as ``torch.optim.Adadelta``.

    .. math::
        r \leftarrow \rho r + (1-\rho) g^2,\ v = \frac{\sqrt{p+\epsilon}}{\sqrt{r+\epsilon}} g,\
        p \leftarrow \rho p + (1-\rho) v^2,\ \theta \leftarrow \theta - \alpha v

    Reference: Zeiler (2012), ADADELTA.

    Args:
        params: parameters or parameter groups to optimize.
        lr: alpha, scales the update (>= 0; 1 in the paper).
        rho: decay of both running means, in [0, 1].
        eps: guard inside the square roots (>= 0).
        weight_decay: L2 penalty lambda (>= 0).
        foreach: accepted for compatibility; ignored.
        capturable, differentiable: must be False (raise ``ValueError`` otherwise).
        maximize: ascend instead of descend.
        kernel: ``"fused"`` (:func:`adadelta_fused`), ``"inplace"`` (:func:`adadelta_update_`) or
            ``"reference"`` (:func:`adadelta_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    State names follow torch: ``square_avg`` is r, ``acc_delta`` is p.
    The math is :func:`adadelta_update`; see the module docstring for the equations and reference.

    Example:
        >>> opt = Adadelta(torch.nn.Linear(3, 1).parameters(), lr=1.0, rho=0.9)
    """

    elementwise_state = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False, kernel="fused"):
        non_negative("Adadelta", "lr", lr)
        in_unit_interval("Adadelta", "rho", rho, closed_right=True)
        non_negative("Adadelta", "eps", eps)
        non_negative("Adadelta", "weight_decay", weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        hyper = dict(alpha=value(group["lr"]), rho=group["rho"], eps=group["eps"],
                     weight_decay=group["weight_decay"], maximize=group["maximize"])
        r, acc = state["square_avg"], state["acc_delta"]
        if kernel == "reference":
            theta, r_new, acc_new = adadelta_update(p, g, r, acc, **hyper)
            p.copy_(theta)
            r.copy_(r_new)
            acc.copy_(acc_new)
        elif kernel == "fused":
            loops = self._once_per_group_step(("adadelta", p.dtype), lambda: adadelta_loops(p, **hyper))
            adadelta_fused(p, g, r, acc, **hyper, loops=loops, batch=self._batch())
        else:
            adadelta_update_(p, g, r, acc, **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1),
                             work3=self._workspace(p, 2))
