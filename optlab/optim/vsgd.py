r"""vSGD (Schaul, Zhang & LeCun 2013): per-parameter learning rates that need no tuning.

"No more pesky learning rates" picks, for every parameter :math:`\theta_i`, the learning rate that
minimizes the expected loss after the next step on a local quadratic model with curvature :math:`h_i`
and noisy gradients of mean :math:`\mathbb{E}[\nabla_{\theta_i}]` and second moment
:math:`\mathbb{E}[\nabla_{\theta_i}^2]`:

.. math::
    \eta_i^* = \frac{1}{h_i}\cdot\frac{\mathbb{E}[\nabla_{\theta_i}]^2}{\mathbb{E}[\nabla_{\theta_i}^2]}.

Far from the optimum the gradient is mostly signal and :math:`\eta^* \to 1/h` (a Newton step); near it the
gradient is mostly noise and :math:`\eta^*` shrinks towards 0 by itself -- an annealing schedule nobody
has to design. For a quadratic :math:`\tfrac h2(\theta-\theta^*)^2` with gradient noise of variance
:math:`\sigma^2`: :math:`\eta^* = \frac{(\theta-\theta^*)^2 h}{(\theta-\theta^*)^2 h^2 + \sigma^2}`.

vSGD-l (the "local", element-wise variant, the paper's Algorithm 1) estimates the three expectations with
running averages whose memory :math:`\tau_i` adapts too; at each sample, for every :math:`i`:

.. math::
    \bar g_i &\leftarrow (1 - \tau_i^{-1})\,\bar g_i + \tau_i^{-1}\,\nabla_{\theta_i} \\
    \bar v_i &\leftarrow (1 - \tau_i^{-1})\,\bar v_i + \tau_i^{-1}\,(\nabla_{\theta_i})^2 \\
    \bar h_i &\leftarrow (1 - \tau_i^{-1})\,\bar h_i + \tau_i^{-1}\,|h_i^{\mathrm{bbprop}}| \\
    \eta_i^* &= \frac{\bar g_i^2}{\bar h_i\,\bar v_i} \\
    \tau_i &\leftarrow \Big(1 - \frac{\bar g_i^2}{\bar v_i}\Big)\,\tau_i + 1 \\
    \theta_i &\leftarrow \theta_i - \eta_i^*\,\nabla_{\theta_i}

The memory shrinks to about one sample when the gradient is all signal (:math:`\bar g^2 \approx \bar v`) and
grows by one per step when it is all noise. Slow start: the averages are initialized from ``n0`` samples
taken before the first update, with :math:`\bar v` and :math:`\bar h` overestimated by the constant
:math:`C` (default :math:`\max(1, d/10)`, :math:`d` the number of parameters, as in the authors' code), so that
the first rates are small and the memory long until the estimates are trustworthy; :math:`\tau` starts at
``n0``. With ``n0 = 1`` the first update replaces the averages entirely (:math:`1 - 1/\tau = 0`), so the
overestimation only slows anything down with ``n0 >= 2``.

Departures from the paper, all documented where they occur:

* ``h^bbprop`` is :func:`optlab.curvature.diagonal_hessian` of the model's loss on the batch the step's
  closure feeds it (so VSGD has ``needs = "model"``), with ``diagonal="gauss-newton"`` by default or
  ``"becker-lecun"``, the paper's bbprop; as in the paper its absolute value is averaged.
* :math:`\bar v` and :math:`\bar h` are guarded by a small ``eps`` in the denominators,
  :math:`\eta^* = \bar g^2 / ((\bar h + \epsilon)(\bar v + \epsilon))` and
  :math:`\tau \leftarrow (1 - \bar g^2/(\bar v + \epsilon))\tau + 1`, so that a parameter with an exactly
  zero gradient or curvature gets rate 0 instead of 0/0 (``eps=0`` is the paper exactly).
* ``lr`` is a factor on :math:`\eta^*`, 1 by default (the paper); it exists so that a parameter group can
  be frozen with ``lr=0`` or a scheduler applied. It is not a learning rate to tune.
* With mini-batches, each mini-batch gradient is one "sample" (the paper's equations on the mini-batch
  gradient); the minibatch-aware correction and the outlier detection of Schaul & LeCun (2013, ICLR) are
  not implemented.
* How ``tau`` is set after the slow start (``n0``) and that :math:`\bar h` is overestimated like
  :math:`\bar v` follow the authors' reference implementation (``schaul/py-optim``), not just the text.

Reference:
    T. Schaul, S. Zhang, Y. LeCun (2013). No more pesky learning rates. ICML 2013 (arXiv:1206.1106).
    Cited in I. Misra, "Optimization for Deep Networks" (slides, "Fancy RMSProp").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..curvature import diagonal_hessian
from ..curvature.diagonal import METHODS as DIAGONALS
from ..flat import unflatten
from ..errors import check, non_negative
from .closure import check_model_and_loss, evaluate, leave_gradient
from .param_groups import joint_option


class VSGDState(NamedTuple):
    r"""The running estimates of one parameter tensor: :math:`\bar g, \bar v, \bar h` and the memory :math:`\tau`."""

    g_bar: Tensor
    v_bar: Tensor
    h_bar: Tensor
    tau: Tensor


def running_average(x_bar: Tensor, x: Tensor, tau: Tensor) -> Tensor:
    r""":math:`\bar x \leftarrow (1 - \tau^{-1})\,\bar x + \tau^{-1} x`, element-wise with memory ``tau`` >= 1.

    Reference: Schaul, Zhang & LeCun (2013). No more pesky learning rates, Algorithm 1.
    """
    return (1 - 1 / tau) * x_bar + x / tau


def vsgd_rate(g_bar: Tensor, v_bar: Tensor, h_bar: Tensor, *, eps: float = 0.0) -> Tensor:
    r"""The per-parameter learning rate :math:`\eta^* = \bar g^2 / ((\bar h + \epsilon)(\bar v + \epsilon))`.

    Example:
        >>> vsgd_rate(torch.tensor([2.0, 0.0]), torch.tensor([4.0, 1.0]), torch.tensor([0.5, 0.5]))
        tensor([2., 0.])

    Args:
        g_bar, v_bar, h_bar: running averages of the gradient, its square and the diagonal curvature.
        eps: guard in the denominators (0: the paper's formula).

    Reference: Schaul, Zhang & LeCun (2013). No more pesky learning rates, Algorithm 1 (vSGD-l).
    """
    return g_bar ** 2 / ((h_bar + eps) * (v_bar + eps))


def vsgd_memory(tau: Tensor, g_bar: Tensor, v_bar: Tensor, *, eps: float = 0.0) -> Tensor:
    r"""The adaptive memory :math:`\tau \leftarrow (1 - \bar g^2 / (\bar v + \epsilon))\,\tau + 1`.

    Since :math:`\bar g^2 \le \bar v` (a square of an average never exceeds the average of squares, and the
    slow start only inflates :math:`\bar v`), :math:`\tau` stays >= 1.

    Reference: Schaul, Zhang & LeCun (2013). No more pesky learning rates, Algorithm 1.
    """
    return (1 - g_bar ** 2 / (v_bar + eps)) * tau + 1


def vsgd_slow_start(grads: Sequence[Tensor], hs: Sequence[Tensor], *, C: float) -> VSGDState:
    r"""Initial estimates from ``n0`` samples, overestimated by ``C`` ("slow start").

    .. math::
        \bar g = \frac1{n_0}\sum_k \nabla^{(k)},\quad
        \bar v = \frac{C}{n_0}\sum_k (\nabla^{(k)})^2,\quad
        \bar h = \frac{C}{n_0}\sum_k |h^{(k)}|,\quad
        \tau = n_0.

    Args:
        grads: ``n0`` gradient samples of one parameter tensor (same shape each).
        hs: ``n0`` diagonal-curvature samples of the same shape.
        C: the overestimation constant, >= 1 (default of the class: :math:`\max(1, d/10)`).

    Reference: Schaul, Zhang & LeCun (2013). No more pesky learning rates, section on initialization;
    ``tau = n0`` and the inflated :math:`\bar h` as in the authors' reference code.
    """
    if len(grads) == 0 or len(grads) != len(hs):
        raise ValueError(f"vsgd_slow_start: got {len(grads)} gradients and {len(hs)} curvatures; expected the "
                         f"same positive number n0 of each")
    g = torch.stack(list(grads))
    h = torch.stack(list(hs))
    n0 = len(grads)
    return VSGDState(g_bar=g.mean(0), v_bar=C * (g ** 2).mean(0), h_bar=C * h.abs().mean(0),
                     tau=torch.full_like(g[0], float(n0)))


def vsgd_update(theta: Tensor, g: Tensor, h: Tensor, state: VSGDState, *, eps: float = 0.0,
                lr: float = 1.0) -> tuple[Tensor, VSGDState, Tensor]:
    r"""One vSGD-l step on a tensor (Algorithm 1 of the paper); nothing is changed in place.

    Updates the averages with the sample ``(g, |h|)`` using the current memory, computes
    :math:`\eta^* = \bar g^2/(\bar h\,\bar v)`, updates :math:`\tau`, and returns
    :math:`(\theta - \mathrm{lr}\cdot\eta^* \odot g,\ \text{new state},\ \eta^*)`.

    Example:
        >>> s = VSGDState(*(torch.ones(1),) * 3, tau=torch.tensor([2.0]))
        >>> theta, s, eta = vsgd_update(torch.zeros(1), torch.ones(1), torch.ones(1), s)
        >>> eta, s.tau
        (tensor([1.]), tensor([1.]))

    Args:
        theta: the parameters; g: their (mini-batch) gradient; h: a diagonal-curvature sample (bbprop,
            Gauss-Newton...), of which the absolute value is averaged.
        state: the running estimates (:class:`VSGDState`).
        eps: guard in the denominators (0: the paper).
        lr: a factor on :math:`\eta^*` (1: the paper).

    Reference: Schaul, Zhang & LeCun (2013). No more pesky learning rates, Algorithm 1 (vSGD-l).
    """
    g_bar = running_average(state.g_bar, g, state.tau)
    v_bar = running_average(state.v_bar, g ** 2, state.tau)
    h_bar = running_average(state.h_bar, h.abs(), state.tau)
    eta = vsgd_rate(g_bar, v_bar, h_bar, eps=eps)
    tau = vsgd_memory(state.tau, g_bar, v_bar, eps=eps)
    return theta - lr * eta * g, VSGDState(g_bar, v_bar, h_bar, tau), eta


class VSGD(torch.optim.Optimizer):
    r"""vSGD-l: SGD with the per-parameter rates :math:`\eta^* = \bar g^2/(\bar h\,\bar v)`, no learning rate to tune.

    Args:
        params: parameters or parameter groups.
        model, loss_fn: the ``nn.Module`` model and loss the closure calls (``loss_fn(model(inputs), targets)``).
        diagonal: the curvature sample :math:`h^{\mathrm{bbprop}}`, a method of
            :func:`optlab.curvature.diagonal_hessian` run on the step's batch: ``"gauss-newton"``
            (default), ``"becker-lecun"`` (the paper's bbprop), ``"exact"`` or ``"hutchinson"``.
        n0: number of samples (steps) of the slow start; the parameters do not move during them. The
            authors' code uses 10; the overestimation ``C`` only acts with ``n0 >= 2``.
        C: the slow start's overestimation of :math:`\bar v` and :math:`\bar h`, a number >= 1; ``None``:
            :math:`\max(1, d/10)` with :math:`d` the number of parameters of the optimizer (the authors' default).
        eps: guard added to :math:`\bar v` and :math:`\bar h` in the denominators (0: the paper exactly).
        lr: a factor on :math:`\eta^*`, 1 as published; 0 freezes a group. Not a learning rate to tune.

    ``needs = "model"``: ``step(closure)`` takes torch's closure and runs it once through
    :func:`optlab.optim.closure.evaluate`: the gradient sample comes from its loss, the curvature sample
    from its batch. The first ``n0`` steps only collect samples; the next ones update. Per parameter,
    ``state[p]`` holds ``g_bar, v_bar, h_bar, tau`` and the last rates ``eta``; ``p.grad`` is left
    holding the gradient. ``n0``, ``C``, ``eps``, ``lr`` and ``diagonal`` are in ``param_groups``.

    Reference: T. Schaul, S. Zhang, Y. LeCun (2013). No more pesky learning rates. ICML.

    Example:
        >>> model, loss_fn = torch.nn.Linear(2, 1), torch.nn.MSELoss()
        >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
        >>> opt = VSGD(model.parameters(), model=model, loss_fn=loss_fn, n0=2)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> losses = [float(opt.step(closure)) for _ in range(4)]
        >>> losses[0] == losses[1] > losses[3]   # the slow start does not move; then the loss goes down
        True
    """

    needs = "model"

    def __init__(self, params, *, model, loss_fn, diagonal: str = "gauss-newton", n0: int = 10,
                 C: float | None = None, eps: float = 1e-9, lr: float = 1.0):
        name = type(self).__name__
        check_model_and_loss(name, model, loss_fn)
        check(name, "diagonal", diagonal, diagonal in DIAGONALS, f"one of {DIAGONALS}")
        check(name, "n0", n0, isinstance(n0, int) and not isinstance(n0, bool) and n0 > 0, "a positive integer")
        check(name, "C", C, C is None or (isinstance(C, (int, float)) and not isinstance(C, bool)
                                          and 1 <= C < math.inf), "None or a finite number >= 1")
        non_negative(name, "eps", eps)
        non_negative(name, "lr", lr)
        super().__init__(params, dict(lr=lr, eps=eps, n0=n0, C=C, diagonal=diagonal))
        d = sum(p.numel() for p in self._params())
        for group in self.param_groups:  # the authors' default C, from the optimizer's number of parameters
            if group["C"] is None:
                group["C"] = float(max(1.0, d / 10))
        self.model, self.loss_fn = model, loss_fn

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _curvature(self, data, params: list[Tensor]) -> list[Tensor]:
        """One curvature sample on the step's batch, checked and split per parameter."""
        method = joint_option(type(self).__name__, self.param_groups, "diagonal")
        h = diagonal_hessian(self.model, self.loss_fn, data, method, params=params).detach()
        if not torch.all(torch.isfinite(h)):
            raise ValueError(f"VSGD: the {method} curvature sample has non-finite entries; expected finite numbers")
        return unflatten(h, params)

    def step(self, closure=None):
        """Collect a slow-start sample, or take one vSGD-l step, with torch's closure; returns the loss."""
        params = self._params()
        ev = evaluate(type(self).__name__, closure, model=self.model, loss_fn=self.loss_fn)
        grads = torch.autograd.grad(ev.loss, params, allow_unused=True)
        sample = {id(p): (g, h) for p, g, h in zip(params, grads, self._curvature(ev.data, params))}
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    g, h = sample[id(p)]
                    if g is not None:
                        self._update(p, g, h, group)
        leave_gradient(params, grads)
        return ev.loss.detach()

    def _update(self, p: Tensor, g: Tensor, h: Tensor, group: dict) -> None:
        """The slow start (collect ``n0`` samples, do not move), then :func:`vsgd_update`."""
        state = self.state[p]
        if "tau" not in state:
            state.setdefault("g_samples", []).append(g)
            state.setdefault("h_samples", []).append(h)
            if len(state["g_samples"]) == group["n0"]:
                s = vsgd_slow_start(state.pop("g_samples"), state.pop("h_samples"), C=group["C"])
                state.update(s._asdict())
            return
        s = VSGDState(state["g_bar"], state["v_bar"], state["h_bar"], state["tau"])
        theta, s, eta = vsgd_update(p, g, h, s, eps=group["eps"], lr=group["lr"])
        p.copy_(theta)
        state.update(s._asdict())
        state["eta"] = eta
