r"""AdaGrad: each weight's step divided by the root of its accumulated squared gradients.

With gradient :math:`g_t`, learning rate :math:`\alpha`, learning-rate decay :math:`\kappa` and
accumulator :math:`r_t` (:math:`r_0` = ``initial_accumulator_value``):

.. math::

    r_t &= r_{t-1} + g_t^2 \\
    \theta_{t+1} &= \theta_t - \frac{\alpha}{1 + (t - 1)\kappa}\, \frac{g_t}{\sqrt{r_t} + \epsilon}

Misra's slide writes the accumulator as :math:`r_t = \theta_t^2 + r_{t-1}`, a typo: the published
accumulator sums the squared *gradients* :math:`g_t^2`, as implemented here. The slide also drops
:math:`\epsilon`; torch adds it outside the square root, and so does optlab. The decay
:math:`\kappa` (``lr_decay``) and the L2 term ``weight_decay`` are torch's options.

Reference:
    Duchi, J., Hazan, E., Singer, Y. (2011). Adaptive subgradient methods for online learning and
    stochastic optimization. JMLR 12.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._base import KernelOptimizer, as_scalar_state, effective_grad, scalar_state, value
from ._fused import SCRATCH, RootedLoops, fma, fused_kernel, prange, run, scalars
from ..errors import non_negative


def adagrad_update(
    theta: Tensor,
    g: Tensor,
    r: Tensor,
    *,
    t: int,
    alpha: float,
    lr_decay: float = 0.0,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""One AdaGrad step on plain tensors; returns ``(theta, r)``, changing nothing in place.

    .. math::
        r \leftarrow r + g^2,\qquad
        \theta \leftarrow \theta - \frac{\alpha}{1 + (t-1)\kappa} \frac{g}{\sqrt{r} + \epsilon}

    A sparse ``g`` (``torch.sparse_coo``, as from ``nn.Embedding(sparse=True)``) updates only the rows it
    holds, as in ``torch.optim.Adagrad``; weight decay is then not allowed.

    Args:
        theta, g: parameters and gradient.
        r: the accumulated squared gradients (``initial_accumulator_value`` before step 1).
        t: the step count including this step (1 on the first step).
        alpha: learning rate; lr_decay: kappa, the decay of alpha over steps.
        eps: denominator guard; weight_decay: L2 penalty lambda added to the gradient.
        maximize: ascend instead of descend.

    Reference: Duchi, Hazan & Singer (2011), Adaptive subgradient methods.

    Example:
        >>> theta, r = adagrad_update(torch.tensor([1.0]), torch.tensor([2.0]), torch.zeros(1), t=1, alpha=0.1)
        >>> theta, r
        (tensor([0.9000]), tensor([4.]))
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        if g.is_sparse:
            raise RuntimeError("adagrad_update: weight_decay is not compatible with sparse gradients")
        g = g.add(theta, alpha=weight_decay)  # g + lambda theta
    alpha_t = alpha / (1 + (t - 1) * lr_decay)
    if g.is_sparse:
        g = g.coalesce()  # one value per index, so that g^2 is the square of the summed gradient
        idx, g_vals = g.indices(), g.values()
        r = r + torch.sparse_coo_tensor(idx, g_vals * g_vals, g.shape, check_invariants=True)
        r_vals = r.sparse_mask(g).values()  # r at the rows g holds, in g's order
        step = torch.sparse_coo_tensor(idx, g_vals / (torch.sqrt(r_vals) + eps), g.shape, check_invariants=True)
        return theta.add(step, alpha=-alpha_t), r
    r = r.addcmul(g, g)  # r + g^2
    return theta.addcdiv(g, torch.sqrt(r) + eps, value=-alpha_t), r


def adagrad_update_(theta: Tensor, g: Tensor, r: Tensor, *, t: int, alpha: float, lr_decay: float, eps: float,
                    weight_decay: float, maximize: bool, work: Tensor, work2: Tensor) -> None:
    """:func:`adagrad_update` in place on dense tensors (``work``, ``work2``: scratch shaped like ``theta``)."""
    g = effective_grad(theta, g, maximize=maximize, weight_decay=weight_decay, out=work2)
    r.addcmul_(g, g)
    denom = torch.sqrt(r, out=work).add_(eps)
    theta.addcdiv_(g, denom, value=-(alpha / (1 + (t - 1) * lr_decay)))


def adagrad_fused(theta: Tensor, g: Tensor, r: Tensor, *, t: int, alpha: float, lr_decay: float, eps: float,
                  weight_decay: float, maximize: bool, loops=None, batch=None) -> None:
    r""":func:`adagrad_update` in place: :func:`_adagrad_sum_loop`, torch's square root, :func:`_adagrad_theta_loop`.

    One pass over memory, block by block (:class:`~optlab.optim._fused.RootedLoops`): the root of the
    block of :math:`r` the first loop has just written goes to scratch, and the second loop reads
    :math:`\theta`, :math:`g` and the root from the cache.

    ``loops``: :func:`adagrad_loops` of these scalars, when the caller has bound them already. ``batch``:
    a :class:`~optlab.optim._fused.Batch` to add the step to (it runs with the group's other tensors).
    """
    loops = loops or adagrad_loops(theta, t=t, alpha=alpha, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                   maximize=maximize)
    run(loops, theta, g, r, SCRATCH[0], batch=batch)


def adagrad_loops(like: Tensor, *, t: int, alpha: float, lr_decay: float, eps: float, weight_decay: float,
                  maximize: bool) -> RootedLoops:
    """:func:`_adagrad_sum_loop`, the root of :math:`r` and :func:`_adagrad_theta_loop`, bound to their scalars
    (in ``like``'s dtype), for the tensors :math:`(\theta, g, r, \text{scratch})`."""
    hyper = scalars(like, wd=weight_decay, eps=eps, minus_alpha_t=-(alpha / (1 + (t - 1) * lr_decay)))
    l2 = weight_decay != 0
    return RootedLoops(_adagrad_sum_loop.bind(3, wd=hyper["wd"], maximize=maximize, l2=l2), (0, 1, 2), ((2, 3),),
                       _adagrad_theta_loop.bind(3, **hyper, maximize=maximize, l2=l2), (0, 1, 3))


@fused_kernel
def _adagrad_sum_loop(theta, g, r, wd, maximize, l2):
    for i in prange(theta.shape[0]):
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(theta[i], wd, gi)  # g + lambda theta
        r[i] = fma(gi, gi, r[i])  # r + g^2


@fused_kernel
def _adagrad_theta_loop(theta, g, root, wd, eps, minus_alpha_t, maximize, l2):
    for i in prange(theta.shape[0]):
        th = theta[i]
        gi = -g[i] if maximize else g[i]
        if l2:
            gi = fma(th, wd, gi)
        theta[i] = th + (minus_alpha_t * gi) / (root[i] + eps)  # theta - alpha_t g / (sqrt(r) + eps)


class Adagrad(KernelOptimizer):
    r"""AdaGrad; the same constructor, state and trajectories as ``torch.optim.Adagrad``.

    .. math::
        r \leftarrow r + g^2,\qquad \theta \leftarrow \theta - \frac{\alpha}{1+(t-1)\kappa}\frac{g}{\sqrt{r}+\epsilon}

    Reference: Duchi, Hazan & Singer (2011), Adaptive subgradient methods.

    Args:
        params: parameters or parameter groups to optimize.
        lr: learning rate alpha (>= 0).
        lr_decay: kappa (>= 0): the step uses alpha / (1 + (t - 1) kappa).
        weight_decay: L2 penalty lambda (>= 0).
        initial_accumulator_value: r_0 (>= 0).
        eps: denominator guard (>= 0).
        foreach: accepted for compatibility; ignored.
        maximize: ascend instead of descend.
        differentiable, fused: must be False/None (raise ``ValueError`` otherwise).
        kernel: ``"fused"`` (:func:`adagrad_fused`), ``"inplace"`` (:func:`adagrad_update_`) or
            ``"reference"`` (:func:`adagrad_update`); all give torch's bits (see
            :class:`~optlab.optim._base.KernelOptimizer`).

    Sparse gradients are accepted as by torch; they step with ``kernel="reference"`` whatever was
    asked (the only kernel that takes them; see ``kernel_used``). As in torch, the state is created in
    the constructor. See the module docstring for equations and reference.

    Example:
        >>> opt = Adagrad(torch.nn.Linear(3, 1).parameters(), lr=0.01)
    """

    supports_sparse = True
    elementwise_state = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None, kernel="fused"):
        non_negative("Adagrad", "lr", lr)
        non_negative("Adagrad", "lr_decay", lr_decay)
        non_negative("Adagrad", "weight_decay", weight_decay)
        non_negative("Adagrad", "initial_accumulator_value", initial_accumulator_value)
        non_negative("Adagrad", "eps", eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, kernel=kernel)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group, self.state[p])

    def _init_state(self, p, group, state):
        state["step"] = scalar_state(0.0)
        state["sum"] = torch.full_like(p, group["initial_accumulator_value"], memory_format=torch.preserve_format)

    @staticmethod
    def _hyper(group, state) -> dict:
        """The step's hyper-parameters, the step count ``t`` counted first."""
        state["step"] = as_scalar_state(state["step"]).add_(1)
        return dict(t=state["step"].item(), alpha=value(group["lr"]), lr_decay=group["lr_decay"],
                    eps=group["eps"], weight_decay=group["weight_decay"], maximize=group["maximize"])

    def _update(self, p, g, state, group, kernel):
        hyper = self._hyper(group, state)
        if kernel == "reference":
            theta, r = adagrad_update(p, g, state["sum"], **hyper)
            p.copy_(theta)
            state["sum"].copy_(r)
        elif kernel == "fused":
            loops = self._once_per_group_step(("adagrad", hyper["t"], p.dtype), lambda: adagrad_loops(p, **hyper))
            adagrad_fused(p, g, state["sum"], **hyper, loops=loops, batch=self._batch())
        else:
            adagrad_update_(p, g, state["sum"], **hyper, work=self._workspace(p, 0), work2=self._workspace(p, 1))
