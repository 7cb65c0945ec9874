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
come from a user-supplied function -- typically ``optlab.curvature.diagonal_hessian`` on a mini-batch --
so any of its methods (Gauss-Newton, Becker-LeCun, Hutchinson) can drive SDLM.

References:
    Y. LeCun, L. Bottou, G. Orr, K.-R. Muller (1998). Efficient BackProp. Neural Networks: Tricks of the
    Trade, section 9.1 (stochastic diagonal Levenberg-Marquardt).
    S. Becker, Y. LeCun (1989). Improving the convergence of back-propagation learning with second order
    methods. Connectionist Models Summer School.
    Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (slides).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ._flat import unflatten
from ._validate import check, non_negative


def sdlm_rates(h: Tensor, *, eps: float, mu: float) -> Tensor:
    r"""The per-weight learning rates :math:`\eta = \varepsilon / (h + \mu)`.

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


class SDLM(torch.optim.Optimizer):
    r"""Stochastic diagonal Levenberg-Marquardt: SGD with per-weight rates :math:`\varepsilon / (h + \mu)`.

    Args:
        params: parameters or parameter groups.
        lr: the global learning rate epsilon.
        mu: the Levenberg-Marquardt damping (> 0).
        gamma: the running-average constant in (0, 1].
        diagonal_fn: a function with no argument returning one instantaneous diagonal estimate
            :math:`\partial^2 E^p / \partial\omega^2`: a list of tensors, one per parameter of the optimizer
            in order, or one flat vector (e.g. ``lambda: diagonal_hessian(model, loss_fn, next(batches),
            method="gauss-newton")`` from :mod:`optlab.curvature`).
            ``None``: feed estimates yourself with :meth:`update_diagonal`.
        estimate_every: re-estimate every this many steps (also at step 0); ``None``: only at the start.
        estimate_batches: how many calls of ``diagonal_fn`` each estimation averages with gamma.

    ``step(closure=None)`` uses ``p.grad`` like ``torch.optim.SGD``; the optional closure recomputes the
    loss and calls ``backward``. The running diagonal of ``p`` is ``state[p]["h"]``.

    Reference: LeCun, Bottou, Orr & Muller (1998). Efficient BackProp, section 9.1.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 1.0]))
        >>> opt = SDLM([w], lr=0.5, mu=0.1, diagonal_fn=lambda: [torch.tensor([1.0, 100.0])])
    """

    def __init__(self, params, lr: float = 0.01, mu: float = 0.1, gamma: float = 0.1, *,
                 diagonal_fn: Callable[[], Sequence[Tensor]] | None = None, estimate_every: int | None = None,
                 estimate_batches: int = 1):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        check(name, "mu", mu, isinstance(mu, (int, float)) and not isinstance(mu, bool) and 0 < mu < math.inf,
              "a finite number > 0 (it keeps eps / (h + mu) finite)")
        check(name, "gamma", gamma, isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and 0 < gamma <= 1,
              "a number in (0, 1]")
        check(name, "diagonal_fn", diagonal_fn, diagonal_fn is None or callable(diagonal_fn), "None or a callable")
        check(name, "estimate_every", estimate_every,
              estimate_every is None or (isinstance(estimate_every, int) and not isinstance(estimate_every, bool)
                                         and estimate_every > 0), "None or a positive integer")
        check(name, "estimate_batches", estimate_batches,
              isinstance(estimate_batches, int) and not isinstance(estimate_batches, bool) and estimate_batches > 0,
              "a positive integer")
        super().__init__(params, dict(lr=lr, mu=mu, gamma=gamma))
        self.diagonal_fn, self.estimate_every, self.estimate_batches = diagonal_fn, estimate_every, estimate_batches
        self._steps = 0

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def update_diagonal(self, h_p: Sequence[Tensor]) -> None:
        r"""Fold one instantaneous estimate into :math:`h \leftarrow (1-\gamma)h + \gamma h^p`.

        ``h_p`` is one tensor per parameter, or one flat vector over all the parameters in order.
        """
        params = self._params()
        if isinstance(h_p, Tensor) and h_p.dim() == 1 and h_p.numel() == sum(p.numel() for p in params):
            h_p = unflatten(params, h_p)  # a flat diagonal, as optlab.curvature.diagonal_hessian returns
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

    def estimate_diagonal(self) -> None:
        """Run ``diagonal_fn`` ``estimate_batches`` times and fold the estimates into the running diagonal."""
        if self.diagonal_fn is None:
            raise ValueError("SDLM.estimate_diagonal: no diagonal_fn was given to the constructor")
        for _ in range(self.estimate_batches):
            with torch.enable_grad():
                h_p = self.diagonal_fn()
            self.update_diagonal(h_p.detach() if isinstance(h_p, Tensor) else [t.detach() for t in h_p])

    @torch.no_grad()
    def step(self, closure=None):
        """One SDLM step from ``p.grad``; re-estimates the diagonal first when it is due."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.diagonal_fn is not None and (
                self._steps == 0 or (self.estimate_every is not None and self._steps % self.estimate_every == 0)):
            self.estimate_diagonal()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "h" not in state:
                    raise RuntimeError("SDLM.step: no diagonal estimate for a parameter yet; pass diagonal_fn to the "
                                       "constructor or call update_diagonal() before stepping")
                p.copy_(sdlm_update(p, p.grad, state["h"], eps=group["lr"], mu=group["mu"]))
        self._steps += 1
        return loss

    def state_dict(self):
        sd = super().state_dict()
        sd["sdlm_steps"] = self._steps
        return sd

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        self._steps = state_dict.pop("sdlm_steps", 0)
        super().load_state_dict(state_dict)
