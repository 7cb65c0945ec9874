r"""NAdam: Adam with Nesterov momentum, using Dozat's momentum schedule as torch does.

With gradient :math:`g_t`, learning rate :math:`\alpha`, decay rates :math:`\beta_1, \beta_2`, momentum
decay :math:`\psi` and step count :math:`t`:

.. math::

    \mu_t &= \beta_1 \big(1 - \tfrac12\, 0.96^{t\psi}\big), \qquad
    \Pi_t = \prod_{i=1}^{t} \mu_i \\
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
    \theta_{t+1} &= \theta_t - \alpha \left( \frac{(1 - \mu_t)\, g_t}{1 - \Pi_t}
      + \frac{\mu_{t+1}\, m_t}{1 - \Pi_t \mu_{t+1}} \right)
      \Big/ \left(\sqrt{\frac{v_t}{1 - \beta_2^t}} + \epsilon\right)

The step looks ahead as Nesterov's momentum does: the current gradient enters with its own weight,
and the first moment with the *next* momentum coefficient. ``weight_decay`` adds :math:`\lambda\theta`
to :math:`g_t`, or with ``decoupled_weight_decay`` shrinks :math:`\theta \leftarrow (1-\alpha\lambda)\theta`
(NAdamW), as in ``torch.optim.NAdam``. The slides do not state NAdam; this is the published form.

References:
    Dozat, T. (2016). Incorporating Nesterov momentum into Adam. ICLR workshop.
    Sutskever, I., Martens, J., Dahl, G., Hinton, G. (2013). On the importance of initialization and
    momentum in deep learning. ICML.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import SCRATCH, RootedLoops, fma, fused_kernel, lerp, lerp_weight, prange, run, scalars
from ..errors import check, in_unit_interval, non_negative


def nadam_mu(t: int, *, beta1: float, psi: float) -> float:
    r"""The momentum schedule :math:`\mu_t = \beta_1 (1 - \frac12 0.96^{t\psi})` (Dozat 2016)."""
    return beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))


def nadam_update(
    theta: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    *,
    t: int,
    mu_product: float,
    alpha: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    psi: float = 4e-3,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One NAdam step on plain tensors; returns ``(theta, m, v)``, changing nothing in place.

    .. math::
        \theta \leftarrow \theta - \alpha \Big( \frac{(1-\mu_t) g}{1-\Pi_t}
        + \frac{\mu_{t+1} m}{1 - \Pi_t \mu_{t+1}} \Big) \Big/ \Big(\sqrt{\tfrac{v}{1-\beta_2^t}} + \epsilon\Big)

    Args:
        theta, g, m, v: parameters, gradient, first and second moments (zeros before step 1).
        t: the step count including this step (1 on the first step).
        mu_product: :math:`\Pi_t = \mu_1 \cdots \mu_t`, *including* this step's :math:`\mu_t`
            (the optimizer keeps it in its state, see :func:`nadam_mu`).
        alpha, beta1, beta2, eps: as in Adam; psi: the momentum decay (torch's ``momentum_decay``).
        weight_decay, decoupled_weight_decay, maximize: as in ``torch.optim.NAdam``.

    Reference: Dozat (2016), Incorporating Nesterov momentum into Adam.

    Example:
        >>> mu1 = nadam_mu(1, beta1=0.9, psi=4e-3)
        >>> theta, m, v = nadam_update(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1),
        ...                            torch.zeros(1), t=1, mu_product=mu1, alpha=0.1)
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        if decoupled_weight_decay:
            theta = theta * (1 - alpha * weight_decay)
        else:
            g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    mu_t = nadam_mu(t, beta1=beta1, psi=psi)
    mu_next = nadam_mu(t + 1, beta1=beta1, psi=psi)
    m = m.lerp(g, 1 - beta1)  # beta1 m + (1 - beta1) g
    v = (v * beta2).addcmul(g, g, value=1 - beta2)  # beta2 v + (1 - beta2) g^2
    denom = torch.sqrt(v / (1 - beta2**t)) + eps
    theta = theta.addcdiv(g, denom, value=-alpha * (1 - mu_t) / (1 - mu_product))
    theta = theta.addcdiv(m, denom, value=-alpha * mu_next / (1 - mu_product * mu_next))
    return theta, m, v


def nadam_update_(theta: Tensor, g: Tensor, m: Tensor, v: Tensor, *, t: int, mu_product: float, alpha: float,
                  beta1: float, beta2: float, eps: float, psi: float, weight_decay: float,
                  decoupled_weight_decay: bool, maximize: bool, work: Tensor, work2: Tensor) -> None:
    """:func:`nadam_update` in place (``work``, ``work2``: scratch shaped like ``theta``)."""
    if weight_decay != 0 and decoupled_weight_decay:
        theta.mul_(1 - alpha * weight_decay)
        weight_decay = 0.0
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work2)
    mu_t = nadam_mu(t, beta1=beta1, psi=psi)
    mu_next = nadam_mu(t + 1, beta1=beta1, psi=psi)
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    denom = torch.div(v, 1 - beta2**t, out=work).sqrt_().add_(eps)
    theta.addcdiv_(g, denom, value=-alpha * (1 - mu_t) / (1 - mu_product))
    theta.addcdiv_(m, denom, value=-alpha * mu_next / (1 - mu_product * mu_next))


def nadam_fused(theta: Tensor, g: Tensor, m: Tensor, v: Tensor, *, t: int, mu_product: float, alpha: float,
                beta1: float, beta2: float, eps: float, psi: float, weight_decay: float,
                decoupled_weight_decay: bool, maximize: bool, loops=None, batch=None) -> None:
    r""":func:`nadam_update` in place: :func:`_nadam_moments_loop`, torch's square root, :func:`_nadam_theta_loop`.

    One pass over memory, block by block (:class:`~optlab.optim._fused.RootedLoops`): the first loop
    writes :math:`v / (1 - \beta_2^t)` into scratch, the root of that replaces it, and the second loop
    reads it back from the cache.

    ``loops``: :func:`nadam_loops` of these scalars, when the caller has bound them already. ``batch``:
    a :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loops = loops or nadam_loops(theta, t=t, mu_product=mu_product, alpha=alpha, beta1=beta1, beta2=beta2, eps=eps,
                                 psi=psi, weight_decay=weight_decay, decoupled_weight_decay=decoupled_weight_decay,
                                 maximize=maximize)
    run(loops, theta, g, m, v, SCRATCH[0], batch=batch)


def nadam_loops(like: Tensor, *, t: int, mu_product: float, alpha: float, beta1: float, beta2: float, eps: float,
                psi: float, weight_decay: float, decoupled_weight_decay: bool, maximize: bool) -> RootedLoops:
    r""":func:`_nadam_moments_loop`, the root of :math:`\hat v` and :func:`_nadam_theta_loop`, bound to their
    scalars (in ``like``'s dtype), for the tensors :math:`(\theta, g, m, v, \text{scratch})`."""
    decoupled = weight_decay != 0 and decoupled_weight_decay
    grad = dict(maximize=maximize, l2=weight_decay != 0 and not decoupled)
    mu_t = nadam_mu(t, beta1=beta1, psi=psi)
    mu_next = nadam_mu(t + 1, beta1=beta1, psi=psi)
    first = _nadam_moments_loop.bind(5, **scalars(like, wd=weight_decay, beta2=beta2, c2=1 - beta2, bc2=1 - beta2**t),
                                     **lerp_weight(like, 1 - beta1), **grad)
    second = _nadam_theta_loop.bind(4, **scalars(like, wd=weight_decay, decay=1 - alpha * weight_decay, eps=eps,
                                                 step_g=-alpha * (1 - mu_t) / (1 - mu_product),
                                                 step_m=-alpha * mu_next / (1 - mu_product * mu_next)),
                                    decoupled=decoupled, **grad)
    return RootedLoops(first, (0, 1, 2, 3, 4), ((4, 4),), second, (0, 1, 2, 4))


@fused_kernel
def _nadam_moments_loop(theta, g, m, v, v_hat, wd, beta2, c2, bc2, w, w_minus_1, maximize, l2):
    for i in prange(theta.shape[0]):
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(theta[i], wd, gi)  # g + lambda theta
        m[i] = lerp(m[i], gi, w, w_minus_1)  # beta1 m + (1 - beta1) g
        vi = fma(c2 * gi, gi, v[i] * beta2)  # beta2 v + (1 - beta2) g^2
        v[i] = vi
        v_hat[i] = vi / bc2


@fused_kernel
def _nadam_theta_loop(theta, g, m, root_v_hat, wd, decay, eps, step_g, step_m, decoupled, maximize, l2):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)
        if decoupled:
            th = th * decay  # NAdamW: (1 - alpha lambda) theta
        d = root_v_hat[i] + eps
        th = th + (step_g * gi) / d
        theta[i] = th + (step_m * m[i]) / d


class NAdam(KernelOptimizer):
    r"""NAdam; the same constructor, state and trajectories as ``torch.optim.NAdam``.

    .. math::
        \theta \leftarrow \theta - \alpha \Big( \frac{(1-\mu_t) g}{1-\Pi_t}
        + \frac{\mu_{t+1} m}{1 - \Pi_t \mu_{t+1}} \Big) \Big/ \Big(\sqrt{\hat v} + \epsilon\Big)

    Reference: Dozat (2016), Incorporating Nesterov momentum into Adam.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate alpha (>= 0).
        betas: (beta1, beta2), each in [0, 1).
        eps: denominator guard (>= 0).
        weight_decay: lambda (>= 0).
        momentum_decay: psi (>= 0) of the momentum schedule.
        decoupled_weight_decay: shrink the weights directly (NAdamW) instead of L2 on the gradient.
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        capturable, differentiable: must be False (raise ``ValueError`` otherwise).
        kernel: ``"fused"`` (:func:`nadam_fused`), ``"inplace"`` (:func:`nadam_update_`) or
            ``"reference"`` (:func:`nadam_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    The running product of the momentum coefficients is kept as torch keeps it (``mu_product``, a
    scalar tensor), so both follow the same rounding. See the module docstring for the equations.

    Example:
        >>> opt = NAdam(torch.nn.Linear(3, 1).parameters(), lr=2e-3)
    """

    elementwise_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, kernel="fused"):
        non_negative("NAdam", "lr", lr)
        check("NAdam", "betas", betas, isinstance(betas, (tuple, list)) and len(betas) == 2, "a pair (beta1, beta2)")
        in_unit_interval("NAdam", "betas[0]", betas[0])
        in_unit_interval("NAdam", "betas[1]", betas[1])
        non_negative("NAdam", "eps", eps)
        non_negative("NAdam", "weight_decay", weight_decay)
        non_negative("NAdam", "momentum_decay", momentum_decay)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults, kernel=kernel)

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["mu_product"] = scalar_state(1.0)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, p, g, state, group, kernel):
        state["step"] = as_scalar_state(state["step"]).add_(1)
        t = state["step"].item()
        beta1, beta2 = group["betas"]
        psi = group["momentum_decay"]
        state["mu_product"] = as_scalar_state(state["mu_product"]).mul_(nadam_mu(t, beta1=beta1, psi=psi))
        hyper = dict(t=t, mu_product=state["mu_product"].item(), alpha=value(group["lr"]), beta1=beta1,
                     beta2=beta2, eps=group["eps"], psi=psi, weight_decay=group["weight_decay"],
                     decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if kernel == "reference":
            theta, m_new, v_new = nadam_update(p, g, m, v, **hyper)
            p.copy_(theta)
            m.copy_(m_new)
            v.copy_(v_new)
        elif kernel == "fused":
            loops = self._once_per_group_step(("nadam", p.dtype, t, hyper["mu_product"]),
                                              lambda: nadam_loops(p, **hyper))
            nadam_fused(p, g, m, v, **hyper, loops=loops, batch=self._batch())
        else:
            nadam_update_(p, g, m, v, **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1))
