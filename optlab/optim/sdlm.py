r"""Stochastic diagonal Levenberg-Marquardt (LeCun): one learning rate per weight from the diagonal Hessian.

Each weight :math:`\omega_{ki}` gets its own learning rate from a running estimate of the diagonal second
derivative :math:`h_{ki} \approx \partial^2 E / \partial \omega_{ki}^2` (Gauss-Newton, or Becker-LeCun's
backpropagated diagonal), damped by the Levenberg-Marquardt parameter :math:`\mu` so that it cannot blow
up where the curvature is small:

.. math::
    \eta_{ki} = \frac{\varepsilon}{h_{ki} + \mu},\qquad
    \omega_{ki} \leftarrow \omega_{ki} - \eta_{ki}\,\frac{\partial E^p}{\partial \omega_{ki}},\qquad
    h_{ki} \leftarrow (1 - \gamma)\,h_{ki} + \gamma\,\frac{\partial^2 E^p}{\partial \omega_{ki}^2}.

The second derivatives evolve slowly: they are estimated at the start over a few hundred patterns and
re-estimated every few epochs, at a negligible extra cost (the slides: "usually about 3 times faster
than carefully tuned stochastic gradient").

Here the running average starts from the first estimate (rather than from 0, which would give
:math:`\eta = \varepsilon/\mu` to every weight until the average warms up). The instantaneous estimates
:math:`\partial^2 E^p / \partial\omega^2` are :func:`optlab.curvature.diagonal_hessian` of the model's
loss on the batch the step's closure feeds it (Gauss-Newton by default; Becker-LeCun's backpropagated
diagonal, the exact diagonal or Hutchinson's estimate on request): SDLM has ``needs = "model"``.

References:
    Y. LeCun, L. Bottou, G. Orr, K.-R. Muller (1998). Efficient BackProp. Neural Networks: Tricks of the
    Trade, section 9.1 (stochastic diagonal Levenberg-Marquardt).
    S. Becker, Y. LeCun (1989). Improving the convergence of back-propagation learning with second order
    methods. Connectionist Models Summer School.
    Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (slides).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..curvature import diagonal_hessian
from ..curvature.diagonal import METHODS as DIAGONALS
from ..flat import unflatten
from ..errors import check, non_negative
from .closure import check_model_and_loss, evaluate, leave_gradient
from .param_groups import joint_option


def sdlm_rates(h: Tensor, *, eps: float, mu: float) -> Tensor:
    r"""The per-weight learning rates :math:`\eta = \varepsilon / (h + \mu)`.

    Example:
        >>> sdlm_rates(torch.tensor([0.0, 9.0]), eps=1.0, mu=1.0)
        tensor([1.0000, 0.1000])

    Args:
        h: the running diagonal estimate.
        eps: the global learning rate epsilon.
        mu: the Levenberg-Marquardt damping.

    Reference: LeCun, Bottou, Orr & Muller (1998). Efficient BackProp, section 9.1.
    """
    return eps / (h + mu)


def sdlm_update(theta: Tensor, g: Tensor, h: Tensor, *, eps: float, mu: float) -> Tensor:
    r"""One SDLM step on a tensor: :math:`\theta - \frac{\varepsilon}{h + \mu} \odot g` (nothing changed in place).

    Example:
        >>> sdlm_update(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([0.0, 9.0]), eps=1.0, mu=1.0)
        tensor([0.0000, 0.9000])

    Args:
        theta: the parameters; g: their gradient; h: the running diagonal.
        eps, mu: as in :func:`sdlm_rates`.

    Reference: LeCun, Bottou, Orr & Muller (1998). Efficient BackProp, section 9.1.
    """
    return theta - sdlm_rates(h, eps=eps, mu=mu) * g


def running_diagonal(h: Tensor | None, h_p: Tensor, *, gamma: float) -> Tensor:
    r""":math:`h \leftarrow (1 - \gamma) h + \gamma h^p`; the first estimate (``h is None``) is taken as it is.

    Args:
        h: the running estimate (``None`` before the first one).
        h_p: the instantaneous estimate.
        gamma: the running-average constant.

    Reference: LeCun, Bottou, Orr & Muller (1998). Efficient BackProp, section 9.1.
    """
    return h_p.clone() if h is None else (1 - gamma) * h + gamma * h_p


def _positive_int(owner: str, name: str, value, *, none: bool = False) -> None:
    ok = (none and value is None) or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    check(owner, name, value, ok, "None or a positive integer" if none else "a positive integer")


class SDLM(torch.optim.Optimizer):
    r"""Stochastic diagonal Levenberg-Marquardt: SGD with per-weight rates :math:`\varepsilon / (h + \mu)`.

    Args:
        params: parameters or parameter groups.
        lr: the global learning rate epsilon.
        damping: the Levenberg-Marquardt damping mu (> 0).
        gamma: the running-average constant in (0, 1].
        model, loss_fn: the ``nn.Module`` model and loss the closure calls (``loss_fn(model(inputs), targets)``).
        diagonal: how the diagonal is estimated on the step's batch, a method of
            :func:`optlab.curvature.diagonal_hessian`: ``"gauss-newton"`` (default; positive for convex
            losses), ``"becker-lecun"``, ``"exact"`` or ``"hutchinson"``.
        estimate_every: start a re-estimation every this many steps (also at step 0); ``None``: only at
            the start. A parameter without an estimate yet (a group added later) gets one at its first step.
        estimate_steps: each re-estimation folds the diagonals of this many consecutive steps' batches
            into the running average (the slides: "over a few hundred patterns").

    ``needs = "model"``: ``step(closure)`` takes torch's closure, runs it once through
    :func:`optlab.optim.closure.evaluate` (the gradient comes from its loss, the batch from its call of
    ``model`` and ``loss_fn``), re-estimates the diagonal when it is due, and updates every parameter
    with a gradient. ``p.grad`` is left holding the gradient; the running diagonal of ``p`` is
    ``state[p]["h"]``, the step counter ``state[first param]["step"]``.

    Reference: LeCun, Bottou, Orr & Muller (1998). Efficient BackProp, section 9.1.

    Example:
        >>> model, loss_fn = torch.nn.Linear(2, 1), torch.nn.MSELoss()
        >>> x, y = torch.randn(8, 2), torch.randn(8, 1)
        >>> opt = SDLM(model.parameters(), lr=0.5, damping=0.1, model=model, loss_fn=loss_fn)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> loss0 = opt.step(closure)
        >>> bool(opt.step(closure) < loss0)
        True
    """

    needs = "model"

    def __init__(self, params, lr: float = 0.01, damping: float = 0.1, gamma: float = 0.1, *, model, loss_fn,
                 diagonal: str = "gauss-newton", estimate_every: int | None = None, estimate_steps: int = 1):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        check(name, "damping", damping, isinstance(damping, (int, float)) and not isinstance(damping, bool)
              and 0 < damping < math.inf, "a finite number > 0 (it keeps eps / (h + damping) finite)")
        check(name, "gamma", gamma, isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and 0 < gamma <= 1,
              "a number in (0, 1]")
        check_model_and_loss(name, model, loss_fn)
        check(name, "diagonal", diagonal, diagonal in DIAGONALS, f"one of {DIAGONALS}")
        _positive_int(name, "estimate_every", estimate_every, none=True)
        _positive_int(name, "estimate_steps", estimate_steps)
        super().__init__(params, dict(lr=lr, damping=damping, gamma=gamma, diagonal=diagonal,
                                      estimate_every=estimate_every, estimate_steps=estimate_steps))
        self.model, self.loss_fn = model, loss_fn

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def update_diagonal(self, h_p) -> None:
        r"""Fold one instantaneous estimate into :math:`h \leftarrow (1-\gamma)h + \gamma h^p`.

        ``h_p`` is one tensor per parameter, or one flat vector over all the parameters in order.
        """
        params = self._params()
        if isinstance(h_p, Tensor) and h_p.dim() == 1 and h_p.numel() == sum(p.numel() for p in params):
            h_p = unflatten(h_p, params)  # a flat diagonal, as optlab.curvature.diagonal_hessian returns
        h_p = list(h_p)
        if len(h_p) != len(params):
            raise ValueError(f"SDLM.update_diagonal: got {len(h_p)} tensors; expected {len(params)}, one per parameter")
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                hp = torch.as_tensor(h_p[i], dtype=p.dtype, device=p.device)
                if hp.shape != p.shape:
                    raise ValueError(f"SDLM.update_diagonal: estimate {i} has shape {tuple(hp.shape)}; expected "
                                     f"{tuple(p.shape)}")
                if torch.any(hp < 0) or not torch.all(torch.isfinite(hp)):
                    raise ValueError(f"SDLM.update_diagonal: estimate {i} has negative or non-finite entries; "
                                     f"expected a positive semi-definite diagonal (Gauss-Newton, Becker-LeCun)")
                state = self.state[p]
                state["h"] = running_diagonal(state.get("h"), hp, gamma=group["gamma"])
                i += 1

    def _estimate_due(self, step: int) -> bool:
        name, groups = type(self).__name__, self.param_groups
        every, steps = joint_option(name, groups, "estimate_every"), joint_option(name, groups, "estimate_steps")
        return step < steps if every is None else step % every < steps

    def step(self, closure=None):
        """One SDLM step with torch's closure; re-estimates the diagonal first when it is due. Returns the loss."""
        params = self._params()
        ev = evaluate(type(self).__name__, closure, model=self.model, loss_fn=self.loss_fn)
        grads = torch.autograd.grad(ev.loss, params, allow_unused=True)
        counter = self.state[params[0]]
        step = counter.get("step", 0)
        if self._estimate_due(step) or any("h" not in self.state[p] for p in params):
            method = joint_option(type(self).__name__, self.param_groups, "diagonal")
            self.update_diagonal(diagonal_hessian(self.model, self.loss_fn, ev.data, method, params=params).detach())
        grad_of = {id(p): g for p, g in zip(params, grads)}
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    g = grad_of[id(p)]
                    if g is not None:
                        p.copy_(sdlm_update(p, g, self.state[p]["h"], eps=group["lr"], mu=group["damping"]))
        leave_gradient(params, grads)
        counter["step"] = step + 1
        return ev.loss.detach()
