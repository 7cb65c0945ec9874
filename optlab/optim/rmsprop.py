r"""RMSprop: divide the gradient by a running root-mean-square of recent gradients.

With learning rate :math:`\alpha`, smoothing constant :math:`\gamma` (torch's ``alpha``; Misra's
:math:`\gamma`, Zemel's :math:`1-\gamma`) and gradient :math:`g_t`:

.. math::

    r_t &= \gamma\, r_{t-1} + (1 - \gamma)\, g_t^2 \\
    \theta_{t+1} &= \theta_t - \alpha\, \frac{g_t}{\sqrt{r_t} + \epsilon}

Options, as in ``torch.optim.RMSprop``: ``centered`` divides by an estimate of the gradient's
standard deviation, :math:`\sqrt{r_t - \bar g_t^2} + \epsilon` with
:math:`\bar g_t = \gamma \bar g_{t-1} + (1-\gamma) g_t` (Graves 2013); ``momentum`` :math:`\mu`
accumulates the scaled step, :math:`b_t = \mu b_{t-1} + g_t / (\sqrt{r_t} + \epsilon)`,
:math:`\theta_{t+1} = \theta_t - \alpha b_t`; ``weight_decay`` adds :math:`\lambda\theta` to
:math:`g_t`. Misra's slide writes :math:`\alpha / \sqrt{r_t}` without :math:`\epsilon`; Zemel's and
torch's put :math:`\epsilon` outside the root, as here.

References:
    Tieleman, T., Hinton, G. (2012). Lecture 6.5 - RMSProp. COURSERA: Neural Networks for Machine Learning.
    Graves, A. (2013). Generating sequences with recurrent neural networks. arXiv:1308.0850.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import SCRATCH, RootedLoops, fma, fused_kernel, lerp, lerp_weight, prange, run, scalars
from ..errors import in_unit_interval, non_negative


def rmsprop_update(
    theta: Tensor,
    g: Tensor,
    r: Tensor,
    g_bar: Tensor | None = None,
    b: Tensor | None = None,
    *,
    alpha: float,
    gamma: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    mu: float = 0.0,
    centered: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    r"""One RMSprop step on plain tensors; returns ``(theta, r, g_bar, b)``, changing nothing in place.

    .. math::
        r \leftarrow \gamma r + (1-\gamma) g^2,\quad
        d = \frac{g}{\sqrt{r - \bar g^2 \text{ (centered) or } r} + \epsilon},\quad
        \theta \leftarrow \theta - \alpha\,(\,b \leftarrow \mu b + d \text{ if } \mu > 0 \text{ else } d\,)

    Args:
        theta, g: parameters and gradient.
        r: running mean of g^2 (zeros before step 1).
        g_bar: running mean of g (``centered`` only; zeros before step 1).
        b: momentum buffer (``mu > 0`` only; zeros before step 1).
        alpha: learning rate; gamma: smoothing constant (torch's ``alpha``).
        eps, weight_decay, mu, centered, maximize: as in ``torch.optim.RMSprop``.

    Reference: Tieleman & Hinton (2012), RMSProp; Graves (2013) for the centered form.

    Example:
        >>> theta, r, _, _ = rmsprop_update(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1),
        ...                                 alpha=0.01, gamma=0.99, eps=0.0)
        >>> theta  # the first step is alpha / sqrt(1 - gamma) in size
        tensor([0.9000])
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    r = (r * gamma).addcmul(g, g, value=1 - gamma)  # gamma r + (1 - gamma) g^2
    if centered:
        g_bar = g_bar.lerp(g, 1 - gamma)  # gamma g_bar + (1 - gamma) g
        denom = torch.sqrt(r.addcmul(g_bar, g_bar, value=-1)) + eps  # sqrt(r - g_bar^2) + eps
    else:
        denom = torch.sqrt(r) + eps
    if mu > 0:
        b = (b * mu).addcdiv(g, denom)  # mu b + g / denom
        return theta.add(b, alpha=-alpha), r, g_bar, b
    return theta.addcdiv(g, denom, value=-alpha), r, g_bar, b


def rmsprop_update_(theta: Tensor, g: Tensor, r: Tensor, g_bar: Tensor | None, b: Tensor | None, *, alpha: float,
                    gamma: float, eps: float, weight_decay: float, mu: float, centered: bool, maximize: bool,
                    work: Tensor, work2: Tensor) -> None:
    """:func:`rmsprop_update` in place (``work``, ``work2``: scratch shaped like ``theta``)."""
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work2)
    r.mul_(gamma).addcmul_(g, g, value=1 - gamma)
    if centered:
        g_bar.lerp_(g, 1 - gamma)
        denom = torch.addcmul(r, g_bar, g_bar, value=-1, out=work).sqrt_().add_(eps)
    else:
        denom = torch.sqrt(r, out=work).add_(eps)
    if mu > 0:
        b.mul_(mu).addcdiv_(g, denom)
        theta.add_(b, alpha=-alpha)
    else:
        theta.addcdiv_(g, denom, value=-alpha)


def rmsprop_fused(theta: Tensor, g: Tensor, r: Tensor, g_bar: Tensor | None, b: Tensor | None, *, alpha: float,
                  gamma: float, eps: float, weight_decay: float, mu: float, centered: bool, maximize: bool,
                  loops=None, batch=None) -> None:
    r""":func:`rmsprop_update` in place: :func:`_rmsprop_r_loop`, torch's square root, :func:`_rmsprop_theta_loop`.

    One pass over memory, block by block (:class:`~optlab.optim._fused.RootedLoops`): the first loop
    updates :math:`r` (and :math:`\bar g`, writing :math:`r - \bar g^2` into scratch when centered),
    the root of that goes to scratch, and the second loop reads it back from the cache.

    ``loops``: :func:`rmsprop_loops` of these scalars, when the caller has bound them already. ``batch``:
    a :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loops = loops or rmsprop_loops(theta, alpha=alpha, gamma=gamma, eps=eps, weight_decay=weight_decay, mu=mu,
                                   centered=centered, maximize=maximize)
    run(loops, theta, g, r, g_bar, b, SCRATCH[0], batch=batch)


def rmsprop_loops(like: Tensor, *, alpha: float, gamma: float, eps: float, weight_decay: float, mu: float,
                  centered: bool, maximize: bool) -> RootedLoops:
    r""":func:`_rmsprop_r_loop`, the root and :func:`_rmsprop_theta_loop`, bound to their scalars (in ``like``'s
    dtype), for the tensors :math:`(\theta, g, r, \bar g, b, \text{scratch})` (``None`` for a state not kept)."""
    wd = scalars(like, wd=weight_decay)["wd"]
    l2 = weight_decay != 0
    first = _rmsprop_r_loop.bind(5, wd=wd, **scalars(like, gamma=gamma, c=1 - gamma), **lerp_weight(like, 1 - gamma),
                                 centered=centered, maximize=maximize, l2=l2)
    second = _rmsprop_theta_loop.bind(4, wd=wd, **scalars(like, eps=eps, mu=mu, minus_alpha=-alpha), momentum=mu > 0,
                                      maximize=maximize, l2=l2)
    return RootedLoops(first, (0, 1, 2, 3, 5), ((5, 5) if centered else (2, 5),), second, (0, 1, 4, 5))


@fused_kernel
def _rmsprop_r_loop(theta, g, r, g_bar, r_centered, wd, gamma, c, w, w_minus_1, centered, maximize, l2):
    for i in prange(theta.shape[0]):
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(theta[i], wd, gi)  # g + lambda theta
        ri = fma(c * gi, gi, r[i] * gamma)  # gamma r + (1 - gamma) g^2
        r[i] = ri
        if centered:
            gb = lerp(g_bar[i], gi, w, w_minus_1)  # gamma g_bar + (1 - gamma) g
            g_bar[i] = gb
            r_centered[i] = fma(-gb, gb, ri)  # r - g_bar^2


@fused_kernel
def _rmsprop_theta_loop(theta, g, b, root, wd, eps, mu, minus_alpha, momentum, maximize, l2):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)
        denom = root[i] + eps
        if momentum:
            bi = b[i] * mu + gi / denom  # mu b + g / denom
            b[i] = bi
            theta[i] = fma(bi, minus_alpha, th)  # theta - alpha b
        else:
            theta[i] = th + (minus_alpha * gi) / denom  # theta - alpha g / denom


class RMSprop(KernelOptimizer):
    r"""RMSprop; the same constructor, state and trajectories as ``torch.optim.RMSprop``.

    .. math::
        r \leftarrow \gamma r + (1-\gamma) g^2,\qquad \theta \leftarrow \theta - \alpha \frac{g}{\sqrt{r} + \epsilon}

    Reference: Tieleman & Hinton (2012), Lecture 6.5 RMSProp.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate alpha (>= 0).
        alpha: smoothing constant gamma of the running mean of g^2, in [0, 1].
        eps: denominator guard (>= 0).
        weight_decay: L2 penalty lambda (>= 0).
        momentum: mu (>= 0).
        centered: divide by the estimated standard deviation of the gradient.
        capturable, differentiable: must be False (raise ``ValueError`` otherwise).
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        kernel: ``"fused"`` (:func:`rmsprop_fused`), ``"inplace"`` (:func:`rmsprop_update_`) or
            ``"reference"`` (:func:`rmsprop_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    The math is :func:`rmsprop_update`; see the module docstring for the equations and references.

    Example:
        >>> opt = RMSprop(torch.nn.Linear(3, 1).parameters(), lr=0.01, alpha=0.99)
    """

    elementwise_state = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *, kernel="fused"):
        non_negative("RMSprop", "lr", lr)
        in_unit_interval("RMSprop", "alpha", alpha, closed_right=True)
        non_negative("RMSprop", "eps", eps)
        non_negative("RMSprop", "weight_decay", weight_decay)
        non_negative("RMSprop", "momentum", momentum)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        hyper = dict(alpha=value(group["lr"]), gamma=group["alpha"], eps=group["eps"],
                     weight_decay=group["weight_decay"], mu=group["momentum"], centered=group["centered"],
                     maximize=group["maximize"])
        r, g_bar, b = state["square_avg"], state.get("grad_avg"), state.get("momentum_buffer")
        if kernel == "reference":
            theta, r_new, g_bar_new, b_new = rmsprop_update(p, g, r, g_bar, b, **hyper)
            p.copy_(theta)
            r.copy_(r_new)
            if g_bar is not None:
                g_bar.copy_(g_bar_new)
            if b is not None:
                b.copy_(b_new)
        elif kernel == "fused":
            loops = self._once_per_group_step(("rmsprop", p.dtype), lambda: rmsprop_loops(p, **hyper))
            rmsprop_fused(p, g, r, g_bar, b, **hyper, loops=loops, batch=self._batch())
        else:
            rmsprop_update_(p, g, r, g_bar, b, **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1))
