r"""Nonlinear conjugate gradient (Fletcher-Reeves, Polak-Ribiere) with restarts and a line search.

Linear CG's recurrence applied to any differentiable loss, with the step length found by a line search
instead of :math:`\alpha_k = r_k^\top r_k / p_k^\top A p_k`:

.. math::
    d_0 = -g_0,\qquad \theta_{k+1} = \theta_k + t_k d_k,\qquad d_{k+1} = -g_{k+1} + \beta_{k+1} d_k,

.. math::
    \beta^{FR}_{k+1} = \frac{g_{k+1}^\top g_{k+1}}{g_k^\top g_k},\qquad
    \beta^{PR+}_{k+1} = \max\Big(0, \frac{g_{k+1}^\top (g_{k+1} - g_k)}{g_k^\top g_k}\Big).

The direction is reset to :math:`-g` every ``restart`` iterations (default: the number of parameters,
after which the conjugacy is spent) and whenever it is not a descent direction (:math:`g^\top d \ge 0`).
The line search starts from :math:`t = t_{k-1}\, g_{k-1}^\top d_{k-1} / g_k^\top d_k` (Nocedal & Wright,
eq. 3.60) and looks for a step satisfying the strong Wolfe conditions
:math:`E(\theta + t d) \le E(\theta) + c_1 t\, g^\top d` and :math:`|g(\theta + td)^\top d| \le c_2 |g^\top d|`
(:func:`optlab.optim.line_search.strong_wolfe`: bracketing, then cubic interpolation; Nocedal & Wright,
Algorithms 3.5-3.6). With a tiny
:math:`c_2` the search is exact on a quadratic, and Fletcher-Reeves then reproduces linear CG's iterates.

PR+ (the "+" keeps :math:`\beta \ge 0`, Powell's fix) restarts by itself when progress stalls and is
usually the better choice on neural networks.

References:
    R. Fletcher, C. M. Reeves (1964). Function minimization by conjugate gradients.
    E. Polak, G. Ribiere (1969). Note sur la convergence de methodes de directions conjuguees.
    M. J. D. Powell (1986). Convergence properties of algorithms for nonlinear optimization.
    J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., section 5.2.
    M. F. Moller (1993). A scaled conjugate gradient algorithm for fast supervised learning (cited by the
    slides): :class:`ScaledCG`, which replaces the line search by a Levenberg-Marquardt-scaled
    finite-difference curvature along the direction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..flat import assign, flatten, unflatten
from ..errors import check
from .closure import loss_and_grad_at, require_closure
from .line_search import LineSearchResult, strong_wolfe

BETAS = ("fletcher-reeves", "polak-ribiere")


def fletcher_reeves_beta(g_new: Tensor, g_old: Tensor) -> Tensor:
    r""":math:`\beta^{FR} = g_{k+1}^\top g_{k+1} / g_k^\top g_k`.

    Args:
        g_new, g_old: the gradients at the new and the previous iterate.

    Reference: Fletcher & Reeves (1964). Function minimization by conjugate gradients.
    """
    return (g_new @ g_new) / (g_old @ g_old)


def polak_ribiere_beta(g_new: Tensor, g_old: Tensor) -> Tensor:
    r""":math:`\beta^{PR+} = \max(0, g_{k+1}^\top (g_{k+1} - g_k) / g_k^\top g_k)`.

    Args:
        g_new, g_old: the gradients at the new and the previous iterate.

    Reference: Polak & Ribiere (1969); Powell (1986) for the clipping at 0.
    """
    return torch.clamp((g_new @ (g_new - g_old)) / (g_old @ g_old), min=0.0)


def conjugate_direction(g: Tensor, g_old: Tensor | None, d_old: Tensor | None, *, beta: str,
                        restart: bool = False) -> Tensor:
    r"""The next search direction :math:`d = -g + \beta d_{\text{old}}`, or :math:`-g` on a restart or a non-descent direction.

    Example:
        >>> g_old, d_old = torch.tensor([1.0, 2.0]), torch.tensor([-1.0, -2.0])
        >>> conjugate_direction(torch.tensor([0.5, -1.0]), g_old, d_old, beta="fletcher-reeves")
        tensor([-0.7500,  0.5000])

    Args:
        g, g_old, d_old: the gradient, the previous gradient and direction (``None`` at the start).
        beta: ``"fletcher-reeves"`` or ``"polak-ribiere"``.
        restart: force :math:`d = -g`.

    Reference: Nocedal & Wright (2006). Numerical Optimization, section 5.2.
    """
    if g_old is None or d_old is None or restart:
        return -g
    b = fletcher_reeves_beta(g, g_old) if beta == "fletcher-reeves" else polak_ribiere_beta(g, g_old)
    d = -g + b * d_old
    return d if g @ d < 0 else -g


def _one_group(owner: str, param_groups) -> dict:
    check(owner, "param groups", len(param_groups), len(param_groups) == 1,
          "exactly 1 parameter group (the conjugate direction couples all parameters)")
    return param_groups[0]


def _restart_every(owner: str, restart) -> None:
    check(owner, "restart", restart,
          restart is None or (isinstance(restart, int) and not isinstance(restart, bool) and restart > 0),
          "None or a positive integer")


class NonlinearCG(torch.optim.Optimizer):
    r"""Nonlinear conjugate gradient; one ``step`` is one iteration (a direction and a line search).

    Args:
        params: the parameters (one group: the direction couples them all).
        lr: scales the first trial step of the first line search, :math:`t_0 = \text{lr}/\|g_0\|`.
        beta: ``"polak-ribiere"`` (PR+, default) or ``"fletcher-reeves"``.
        restart: reset the direction to :math:`-g` every this many iterations (default: the number of
            parameters).
        c1: the sufficient-decrease (Armijo) constant in (0, 1).
        c2: the strong-Wolfe curvature constant in (c1, 1); 0.1 as Nocedal & Wright advise for CG, a
            tiny value makes the line search (nearly) exact.
        ls_max_iter: the most closure evaluations per line search.

    ``needs = "closure"``: ``step(closure)`` takes torch's closure (``zero_grad``, loss, ``backward()``,
    return the loss), as ``torch.optim.LBFGS`` does, and calls it once at the start and once per trial
    step of the line search; it returns the loss at the start of the iteration. ``state[first param]``
    counts the ``iterations`` and the closure ``evaluations``; when a line search finds no sufficient
    decrease the parameters stay and the next iteration restarts from :math:`-g`
    (``state[first param]["restarts"]`` counts those).

    Reference: Nocedal & Wright (2006), Numerical Optimization, section 5.2; the module docstring.
    """

    needs = "closure"

    def __init__(self, params, lr: float = 1.0, *, beta: str = "polak-ribiere", restart: int | None = None,
                 c1: float = 1e-4, c2: float = 0.1, ls_max_iter: int = 25):
        name = type(self).__name__
        check(name, "lr", lr, isinstance(lr, (int, float)) and 0 < lr < math.inf, "a finite number > 0")
        check(name, "beta", beta, beta in BETAS, f"one of {BETAS}")
        _restart_every(name, restart)
        check(name, "c1", c1, isinstance(c1, (int, float)) and 0 < c1 < 1, "a number in (0, 1)")
        check(name, "c2", c2, isinstance(c2, (int, float)) and c1 < c2 < 1, f"a number in (c1={c1}, 1)")
        check(name, "ls_max_iter", ls_max_iter,
              isinstance(ls_max_iter, int) and not isinstance(ls_max_iter, bool) and ls_max_iter > 0,
              "a positive integer")
        super().__init__(params, dict(lr=lr, beta=beta, restart=restart, c1=c1, c2=c2, ls_max_iter=ls_max_iter))
        _one_group(name, self.param_groups)

    def _evaluate(self, closure, params) -> tuple[float, Tensor]:
        """Loss and flat gradient from torch's closure, counted in ``state["evaluations"]``."""
        state = self.state[params[0]]
        state["evaluations"] = state.get("evaluations", 0) + 1
        return loss_and_grad_at(type(self).__name__, closure, params)

    def _direction(self, state: dict, g: Tensor, group: dict) -> Tensor:
        """:func:`conjugate_direction`, restarted every ``restart`` iterations."""
        restart = group["restart"] or g.numel()
        since = state.get("since_restart", 0)
        return conjugate_direction(g, state.get("g"), state.get("d"), beta=group["beta"], restart=since % restart == 0)

    def _first_trial(self, state: dict, g: Tensor, gtd: float, group: dict) -> float:
        r"""The line search's first trial step: :math:`t_{k-1} g_{k-1}^\top d_{k-1} / g_k^\top d_k` (Nocedal
        & Wright, eq. 3.60), or :math:`\text{lr}/\|g\|` after a restart."""
        if "t" in state:
            return state["t"] * state["gtd"] / gtd
        return group["lr"] / float(torch.linalg.vector_norm(g))

    def _line_search(self, closure, params, d: Tensor, f0: float, gtd: float, t: float,
                     group: dict) -> tuple[LineSearchResult, Tensor | None]:
        """:func:`strong_wolfe` along ``d``; returns its result and the gradient at the accepted step."""
        theta0 = flatten([p.detach() for p in params])
        grads = {}

        def phi(t: float) -> tuple[float, float]:
            assign(params, theta0 + t * d)
            f_t, grads[t] = self._evaluate(closure, params)
            return f_t, float(grads[t] @ d)

        result = strong_wolfe(phi, f0, gtd, t, c1=group["c1"], c2=group["c2"], max_iter=group["ls_max_iter"])
        assign(params, theta0 + result.t * d)
        return result, grads.get(result.t)

    def _accept(self, state: dict, params, g: Tensor, d: Tensor, gtd: float, result: LineSearchResult,
                g_t: Tensor | None) -> None:
        """Record the iteration; after a failed search (``t = 0``) forget the direction (restart)."""
        state["iterations"] = state.get("iterations", 0) + 1
        if result.t == 0.0:
            for key in ("g", "d", "t", "gtd"):
                state.pop(key, None)
            state.update(since_restart=0, restarts=state.get("restarts", 0) + 1)
            return
        for p, gi in zip(params, unflatten(g_t, params)):
            p.grad = gi.clone()
        state.update(g=g, d=d, t=result.t, gtd=gtd, since_restart=state.get("since_restart", 0) + 1,
                     loss=result.value)

    @torch.no_grad()
    def step(self, closure=None):
        """One nonlinear-CG iteration with torch's closure; returns the loss at its start."""
        require_closure(type(self).__name__, closure)
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        f0, g = self._evaluate(closure, params)
        d = self._direction(state, g, group)
        gtd = float(g @ d)
        if gtd == 0.0:  # a stationary point: nothing to do
            return torch.tensor(f0, dtype=g.dtype)
        t = self._first_trial(state, g, gtd, group)
        result, g_t = self._line_search(closure, params, d, f0, gtd, t, group)
        self._accept(state, params, g, d, gtd, result, g_t)
        return torch.tensor(f0, dtype=g.dtype)


def scg_scale_update(lam: float, Delta: float, delta: float, p_sq: float) -> float:
    r"""Moller's update of the scale :math:`\lambda` from the comparison parameter :math:`\Delta`.

    .. math::
        \lambda \leftarrow \lambda/4 \text{ if } \Delta \ge 0.75,\qquad
        \lambda \leftarrow \lambda + \delta (1 - \Delta)/|p|^2 \text{ if } \Delta < 0.25

    Example:
        >>> scg_scale_update(1.0, 0.9, 5.0, 2.0)
        0.25

    Args:
        lam: the current scale lambda.
        Delta: the comparison parameter (actual over predicted decrease).
        delta: the (scaled) curvature :math:`p^\top s` along p.
        p_sq: :math:`|p|^2`.

    Reference: Moller (1993). A scaled conjugate gradient algorithm for fast supervised learning, steps 7-8.
    """
    if Delta >= 0.75:
        lam = lam / 4
    if Delta < 0.25:
        lam = lam + delta * (1 - Delta) / p_sq
    return lam


def scg_scaled_curvature(delta_raw: float, lam: float, p_sq: float) -> tuple[float, float]:
    r"""Steps 3-4 of Moller's algorithm: :math:`\delta = p^\top s + \lambda |p|^2`, made positive if needed.

    .. math::
        \delta \le 0 \;\Rightarrow\; \bar\lambda = 2\big(\lambda - \delta/|p|^2\big),\quad
        \delta \leftarrow -\delta + \lambda |p|^2,\quad \lambda \leftarrow \bar\lambda

    Returns ``(delta, lambda)``. (The paper accumulates :math:`(\lambda_k - \bar\lambda_k)|p|^2` over
    failed iterations; that sum is always ``delta_raw + lambda |p|^2``, which is what is computed here.)

    Example:
        >>> scg_scaled_curvature(-1.0, 0.5, 1.0)   # negative curvature along p: raise lambda
        (1.0, 2.0)

    Reference: Moller (1993). A scaled conjugate gradient algorithm for fast supervised learning, steps 3-4.
    """
    delta = delta_raw + lam * p_sq
    if delta <= 0:
        lam_bar = 2 * (lam - delta / p_sq)
        return -delta + lam * p_sq, lam_bar
    return delta, lam


class ScaledCG(torch.optim.Optimizer):
    r"""Moller's scaled conjugate gradient: conjugate directions without a line search.

    The step length along :math:`p_k` comes from a finite-difference curvature
    :math:`s_k = (E'(w_k + \sigma_k p_k) - E'(w_k))/\sigma_k`, :math:`\sigma_k = \sigma/|p_k|`, made positive by a
    Levenberg-Marquardt damping :math:`\lambda_k` (Moller's scale, as in a trust region):

    .. math::
        \delta_k = p_k^\top s_k + \lambda_k |p_k|^2,\qquad \mu_k = p_k^\top r_k,\qquad
        \alpha_k = \mu_k / \delta_k,\qquad
        \Delta_k = 2\delta_k\,\frac{E(w_k) - E(w_k + \alpha_k p_k)}{\mu_k^2},

    with :math:`r_k = -E'(w_k)`. The step is taken when :math:`\Delta_k \ge 0` (then
    :math:`p_{k+1} = r_{k+1} + \beta_k p_k`, :math:`\beta_k = (|r_{k+1}|^2 - r_{k+1}^\top r_k)/\mu_k`, restarted
    with :math:`p = r` every n successful iterations); :math:`\lambda` follows :func:`scg_scale_update`. If
    :math:`\delta_k \le 0` the Hessian is made positive along :math:`p_k` by raising :math:`\lambda`
    (:func:`scg_scaled_curvature`). One ``step`` is one iteration of the paper (successful or not).

    Args:
        params: the parameters (one group).
        sigma: the finite-difference constant sigma (the paper: :math:`0 < \sigma \le 10^{-4}`).
        damping: the initial scale :math:`\lambda_1` (the paper: :math:`0 < \lambda_1 \le 10^{-6}`).
        restart: restart with :math:`p = r` every this many successful iterations (default: the number
            of parameters).

    ``needs = "closure"``: ``step(closure)`` takes torch's closure (``zero_grad``, loss, ``backward()``,
    return the loss), as ``torch.optim.LBFGS`` does, and calls it two or three times. Where
    :math:`p_k` is no descent direction (or zero: a stationary point) the step only restarts with
    :math:`p = r`; ``state[first param]["restarts"]`` counts those. The current :math:`\lambda` is
    ``state[first param]["lam"]``.

    Reference: M. F. Moller (1993). A scaled conjugate gradient algorithm for fast supervised learning.
    Neural Networks 6(4), 525-533.
    """

    needs = "closure"

    def __init__(self, params, sigma: float = 1e-4, damping: float = 1e-6, *, restart: int | None = None):
        name = type(self).__name__
        check(name, "sigma", sigma, isinstance(sigma, (int, float)) and 0 < sigma < math.inf, "a finite number > 0")
        check(name, "damping", damping, isinstance(damping, (int, float)) and 0 < damping < math.inf,
              "a finite number > 0")
        _restart_every(name, restart)
        super().__init__(params, dict(sigma=sigma, damping=damping, restart=restart))
        _one_group(name, self.param_groups)

    def _evaluate(self, closure, params) -> tuple[float, Tensor]:
        return loss_and_grad_at(type(self).__name__, closure, params)

    def _curvature_along_p(self, closure, params, w: Tensor, p: Tensor, g: Tensor, p_sq: float, sigma: float) -> float:
        r"""Step 2: :math:`p^\top s` with :math:`s = (E'(w + \sigma_k p) - E'(w))/\sigma_k`, :math:`\sigma_k = \sigma/|p|`."""
        sigma_k = sigma / math.sqrt(p_sq)
        assign(params, w + sigma_k * p)
        _, g_sigma = self._evaluate(closure, params)
        return float(p @ (g_sigma - g)) / sigma_k

    def _next_direction(self, state: dict, group: dict, params, r: Tensor, g_new: Tensor, mu: float) -> None:
        r"""Step 7 after a successful reduction: :math:`p \leftarrow r_{k+1} + \beta_k p` (or :math:`r_{k+1}` on a restart)."""
        r_new = -g_new
        state["successes"] += 1
        if state["successes"] % (group["restart"] or r.numel()) == 0:
            p_new = r_new.clone()
        else:
            beta = (float(r_new @ r_new) - float(r_new @ r)) / mu
            p_new = r_new + beta * state["p"]
        state.update(p=p_new, success=True, delta_raw=None)
        for q, gi in zip(params, unflatten(g_new, params)):
            q.grad = gi.clone()

    @torch.no_grad()
    def step(self, closure=None):
        """One SCG iteration with torch's closure; returns the loss at the start of it."""
        require_closure(type(self).__name__, closure)
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        w = flatten([q.detach() for q in params])
        E, g = self._evaluate(closure, params)  # E(w_k) and r_k = -E'(w_k) at the current point
        r = -g
        if "p" not in state:
            state.update(p=r.clone(), lam=float(group["damping"]), success=True, iterations=0, successes=0,
                         restarts=0, delta_raw=None)
        p = state["p"]
        p_sq, mu = float(p @ p), float(p @ r)
        state["iterations"] += 1
        if p_sq == 0.0 or mu <= 0:  # a stationary point, or p is no descent direction: restart with p = r
            state.update(p=r.clone(), success=True, delta_raw=None, restarts=state["restarts"] + 1)
            return torch.tensor(E, dtype=g.dtype)
        if state["success"]:  # step 2: second-order information along p
            state["delta_raw"] = self._curvature_along_p(closure, params, w, p, g, p_sq, group["sigma"])
        delta, lam = scg_scaled_curvature(state["delta_raw"], state["lam"], p_sq)  # steps 3-4
        alpha = mu / delta                                                        # step 5
        assign(params, w + alpha * p)                                             # step 6
        E_new, g_new = self._evaluate(closure, params)
        Delta = 2 * (delta / mu) * ((E - E_new) / mu)  # 2 delta (E - E_new) / mu^2, without underflowing mu^2
        if Delta >= 0:                                                            # step 7
            self._next_direction(state, group, params, r, g_new, mu)
        else:  # no step: back to w_k; the curvature along p is reused
            assign(params, w)
            state["success"] = False
        state.update(lam=scg_scale_update(lam, Delta, delta, p_sq), Delta=Delta)  # steps 7-8
        return torch.tensor(E, dtype=g.dtype)
