r"""Adam and AdamW: momentum on the gradient, RMSprop scaling, and bias correction.

With gradient :math:`g_t`, learning rate :math:`\alpha`, decay rates :math:`\beta_1, \beta_2` and step
count :math:`t = 1, 2, \dots`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
    \hat m_t &= \frac{m_t}{1 - \beta_1^t}, \qquad \hat v_t = \frac{v_t}{1 - \beta_2^t} \\
    \theta_t &= \theta_{t-1} - \alpha\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

Misra's slides write :math:`r_t, p_t` for :math:`m_t, v_t` and :math:`\gamma_1, \gamma_2` for
:math:`\beta_1, \beta_2`; their bias correction reads :math:`1 - (1 - \gamma_1)^t`, a typo: the
published (and implemented) correction is :math:`1 - \beta_1^t`. The slide also drops
:math:`\epsilon`, which the paper and torch keep (outside the square root). Zemel's lecture 4 calls
Adam "RMSprop + momentum".

Options, as in ``torch.optim.Adam``: ``weight_decay`` :math:`\lambda` adds :math:`\lambda\theta` to
:math:`g_t` (L2), or with ``decoupled_weight_decay`` (AdamW) shrinks the weights directly,
:math:`\theta \leftarrow (1 - \alpha\lambda)\theta`, before the step; ``amsgrad`` divides by
:math:`\sqrt{\max_{s \le t} v_s}` instead of :math:`\sqrt{v_t}`; ``maximize`` ascends.

References:
    Kingma, D. P., Ba, J. (2015). Adam: A method for stochastic optimization. ICLR.
    Loshchilov, I., Hutter, F. (2019). Decoupled weight decay regularization. ICLR.
    Reddi, S. J., Kale, S., Kumar, S. (2018). On the convergence of Adam and beyond. ICLR.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import SCRATCH, RootedLoops, fma, fused_kernel, lerp, lerp_weight, prange, run, scalars
from ..errors import check, in_unit_interval, non_negative


def adam_update(
    theta: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    v_max: Tensor | None = None,
    *,
    t: int,
    alpha: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    amsgrad: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    r"""One Adam (or AdamW) step on plain tensors; returns ``(theta, m, v, v_max)``, changing nothing in place.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta - \alpha \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    Args:
        theta, g, m, v: parameters, gradient, first and second moments (zeros before step 1).
        v_max: running maximum of ``v`` (AMSGrad only; zeros before step 1).
        t: the step count *including* this step (1 on the first step).
        alpha, beta1, beta2, eps: learning rate, decay rates, denominator guard.
        weight_decay: lambda; L2 on the gradient, or with ``decoupled_weight_decay`` (AdamW)
            :math:`\theta \leftarrow (1-\alpha\lambda)\theta`.
        amsgrad: normalise by the running maximum of ``v``.
        maximize: ascend instead of descend.

    Reference: Kingma & Ba (2015), Adam; Loshchilov & Hutter (2019), AdamW; Reddi et al. (2018), AMSGrad.

    Example:
        >>> theta, m, v, _ = adam_update(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1),
        ...                              torch.zeros(1), t=1, alpha=0.1)
        >>> theta  # the first step has size alpha whatever the gradient's scale
        tensor([0.9000])
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled_weight_decay:
            theta = theta * (1 - alpha * weight_decay)
        else:
            g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    m = m.lerp(g, 1 - beta1)  # beta1 m + (1 - beta1) g
    v = (v * beta2).addcmul(g, g, value=1 - beta2)  # beta2 v + (1 - beta2) g^2
    if amsgrad:
        v_max = torch.maximum(v_max, v)
    # m_hat / (sqrt(v_hat) + eps) with the bias corrections as torch folds them (same bits as torch.optim.Adam)
    denom = torch.sqrt(v_max if amsgrad else v) / (1 - beta2**t) ** 0.5 + eps
    theta = theta.addcdiv(m, denom, value=-(alpha / (1 - beta1**t)))
    return theta, m, v, v_max


def adam_update_(
    theta: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    v_max: Tensor | None,
    *,
    t: int,
    alpha: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    amsgrad: bool,
    maximize: bool,
    work: Tensor,
    work2: Tensor,
) -> None:
    """:func:`adam_update` in place, with no allocation (``work``, ``work2``: scratch shaped like ``theta``)."""
    if weight_decay != 0 and decoupled_weight_decay:
        theta.mul_(1 - alpha * weight_decay)
        weight_decay = 0.0
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work2)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if amsgrad:
        torch.maximum(v_max, v, out=v_max)
    denom = torch.sqrt(v_max if amsgrad else v, out=work).div_((1 - beta2**t) ** 0.5).add_(eps)
    theta.addcdiv_(m, denom, value=-(alpha / (1 - beta1**t)))


def adam_fused(theta: Tensor, g: Tensor, m: Tensor, v: Tensor, v_max: Tensor | None, *, t: int, alpha: float,
               beta1: float, beta2: float, eps: float, weight_decay: float, decoupled_weight_decay: bool,
               amsgrad: bool, maximize: bool, loops=None, batch=None) -> None:
    r""":func:`adam_update` in place: :func:`_adam_moments_loop`, torch's square root, :func:`_adam_theta_loop`.

    Two passes over :math:`m` and :math:`v` but one over memory, block by block
    (:class:`~optlab.optim._fused.RootedLoops`): the root of the block of :math:`v` (or
    :math:`\max_s v_s`) the first loop has just written goes to scratch, and the second loop reads
    :math:`\theta`, :math:`m` and the root from the cache.

    ``loops``: :func:`adam_loops` of these scalars, when the caller has bound them already. ``batch``:
    a :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loops = loops or adam_loops(theta, t=t, alpha=alpha, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                                decoupled_weight_decay=decoupled_weight_decay, amsgrad=amsgrad, maximize=maximize)
    run(loops, theta, g, m, v, v_max, SCRATCH[0], batch=batch)


def adam_loops(like: Tensor, *, t: int, alpha: float, beta1: float, beta2: float, eps: float, weight_decay: float,
               decoupled_weight_decay: bool, amsgrad: bool, maximize: bool) -> RootedLoops:
    r""":func:`_adam_moments_loop`, the root of :math:`v` (or :math:`\max_s v_s`) and :func:`_adam_theta_loop`,
    bound to their scalars (in ``like``'s dtype), for the tensors :math:`(\theta, g, m, v, \max_s v_s,
    \text{scratch})` (``None`` for :math:`\max_s v_s` without ``amsgrad``)."""
    decoupled = weight_decay != 0 and decoupled_weight_decay
    first = _adam_moments_loop.bind(5, **scalars(like, wd=weight_decay, beta2=beta2, c2=1 - beta2),
                                    **lerp_weight(like, 1 - beta1), maximize=maximize,
                                    l2=weight_decay != 0 and not decoupled, amsgrad=amsgrad)
    second = _adam_theta_loop.bind(3, **scalars(like, decay=1 - alpha * weight_decay, root_bc2=(1 - beta2**t) ** 0.5,
                                                eps=eps, minus_step=-(alpha / (1 - beta1**t))),
                                   decoupled=decoupled)
    return RootedLoops(first, (0, 1, 2, 3, 4), ((4, 5) if amsgrad else (3, 5),), second, (0, 2, 5))


@fused_kernel
def _adam_moments_loop(theta, g, m, v, v_max, wd, beta2, c2, w, w_minus_1, maximize, l2, amsgrad):
    for i in prange(theta.shape[0]):
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(theta[i], wd, gi)  # g + lambda theta
        m[i] = lerp(m[i], gi, w, w_minus_1)  # beta1 m + (1 - beta1) g
        vi = fma(c2 * gi, gi, v[i] * beta2)  # beta2 v + (1 - beta2) g^2
        v[i] = vi
        if amsgrad:
            v_max[i] = max(v_max[i], vi)


@fused_kernel
def _adam_theta_loop(theta, m, root, decay, root_bc2, eps, minus_step, decoupled):
    for i in prange(theta.shape[0]):
        th = theta[i] * decay if decoupled else theta[i]  # AdamW: (1 - alpha lambda) theta
        theta[i] = th + (minus_step * m[i]) / (root[i] / root_bc2 + eps)  # theta - step m / (sqrt(v_hat) + eps)


def _check_adam(name: str, lr, betas, eps, weight_decay) -> None:
    non_negative(name, "lr", lr)
    check(name, "betas", betas, isinstance(betas, (tuple, list)) and len(betas) == 2, "a pair (beta1, beta2)")
    in_unit_interval(name, "betas[0]", betas[0])
    in_unit_interval(name, "betas[1]", betas[1])
    non_negative(name, "eps", eps)
    non_negative(name, "weight_decay", weight_decay)


class Adam(KernelOptimizer):
    r"""Adam; the same constructor, state and trajectories as ``torch.optim.Adam``.

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\ v \leftarrow \beta_2 v + (1-\beta_2) g^2,\
        \theta \leftarrow \theta - \alpha \frac{\hat m}{\sqrt{\hat v} + \epsilon}

    Reference: Kingma & Ba (2015), Adam: A method for stochastic optimization.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate alpha (>= 0).
        betas: (beta1, beta2), each in [0, 1).
        eps: epsilon added to the denominator (>= 0).
        weight_decay: lambda (>= 0), L2 on the gradient (decoupled with ``decoupled_weight_decay``).
        amsgrad: use the AMSGrad variant.
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        capturable, differentiable, fused: must be False/None (raise ``ValueError`` otherwise).
        decoupled_weight_decay: AdamW's decay.
        kernel: ``"fused"`` (:func:`adam_fused`), ``"inplace"`` (:func:`adam_update_`) or ``"reference"``
            (:func:`adam_update`); all give torch's bits (see :class:`~optlab.optim._base.KernelOptimizer`).

    The math is :func:`adam_update`; see the module docstring for the equations and references.

    Example:
        >>> opt = Adam(torch.nn.Linear(3, 1).parameters(), lr=1e-3, betas=(0.9, 0.999))
    """

    elementwise_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False, kernel="fused"):
        _check_adam(type(self).__name__, lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        beta1, beta2 = (value(b) for b in group["betas"])
        hyper = dict(t=state["step"].item(), alpha=value(group["lr"]), beta1=beta1, beta2=beta2,
                     eps=group["eps"], weight_decay=group["weight_decay"],
                     decoupled_weight_decay=group["decoupled_weight_decay"], amsgrad=group["amsgrad"],
                     maximize=group["maximize"])
        m, v, v_max = state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
        if kernel == "reference":
            theta, m_new, v_new, v_max_new = adam_update(p, g, m, v, v_max, **hyper)
            p.copy_(theta)
            m.copy_(m_new)
            v.copy_(v_new)
            if group["amsgrad"]:
                v_max.copy_(v_max_new)
        elif kernel == "fused":
            loops = self._once_per_group_step(("adam", p.dtype, hyper["t"]), lambda: adam_loops(p, **hyper))
            adam_fused(p, g, m, v, v_max, **hyper, loops=loops, batch=self._batch())
        else:
            adam_update_(p, g, m, v, v_max, **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1))


class AdamW(Adam):
    r"""AdamW (Adam with decoupled weight decay); the same constructor and trajectories as ``torch.optim.AdamW``.

    .. math::
        \theta \leftarrow (1 - \alpha\lambda)\,\theta,\qquad
        \theta \leftarrow \theta - \alpha \frac{\hat m}{\sqrt{\hat v} + \epsilon}
        \quad (\hat m, \hat v \text{ as in Adam, from the gradient without the decay term})

    Args are those of :class:`Adam` (``weight_decay`` defaults to 0.01 and is always decoupled).

    Reference: Loshchilov, I., Hutter, F. (2019). Decoupled weight decay regularization. ICLR.

    Example:
        >>> opt = AdamW(torch.nn.Linear(3, 1).parameters(), lr=1e-3, weight_decay=0.01)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
                 kernel="fused"):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         foreach=foreach, maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused, decoupled_weight_decay=True,
                         kernel=kernel)
