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
(bracketing, then cubic interpolation: Nocedal & Wright, Algorithms 3.5-3.6). With a tiny
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

from ._flat import flat_params, group_params, require_closure, set_flat, unflatten
from ._validate import check

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


def _gather_grad(params: list[Tensor]) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params])


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
        max_ls: the most closure evaluations per line search.

    ``step(closure)``: as for ``torch.optim.LBFGS``, the closure zeroes the gradients, computes the loss,
    calls ``backward()`` and returns the loss; the line search calls it several times. ``step`` returns
    the loss at the start of the iteration. The number of evaluations so far is
    ``state[first_param]["func_evals"]``.

    Reference: Nocedal & Wright (2006), Numerical Optimization, section 5.2; the module docstring.
    """

    def __init__(self, params, lr: float = 1.0, *, beta: str = "polak-ribiere", restart: int | None = None,
                 c1: float = 1e-4, c2: float = 0.1, max_ls: int = 25):
        name = type(self).__name__
        check(name, "lr", lr, isinstance(lr, (int, float)) and 0 < lr < math.inf, "a finite number > 0")
        check(name, "beta", beta, beta in BETAS, f"one of {BETAS}")
        check(name, "restart", restart,
              restart is None or (isinstance(restart, int) and not isinstance(restart, bool) and restart > 0),
              "None or a positive integer")
        check(name, "c1", c1, isinstance(c1, (int, float)) and 0 < c1 < 1, "a number in (0, 1)")
        check(name, "c2", c2, isinstance(c2, (int, float)) and c1 < c2 < 1, f"a number in (c1={c1}, 1)")
        check(name, "max_ls", max_ls, isinstance(max_ls, int) and not isinstance(max_ls, bool) and max_ls > 0,
              "a positive integer")
        super().__init__(params, dict(lr=lr, beta=beta, restart=restart, c1=c1, c2=c2, max_ls=max_ls))
        group_params(name, self.param_groups, "the conjugate direction couples all parameters")

    def _evaluate(self, closure, params) -> tuple[float, Tensor]:
        with torch.enable_grad():
            loss = closure()
        self.state[params[0]]["func_evals"] = self.state[params[0]].get("func_evals", 0) + 1
        return float(loss), _gather_grad(params)

    @torch.no_grad()
    def step(self, closure=None):
        """One nonlinear-CG iteration; the closure re-evaluates the loss and calls ``backward()``."""
        require_closure(type(self).__name__, closure, "computes the loss, calls backward() and returns the loss")
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        f0, g = self._evaluate(closure, params)
        k = state.get("k", 0)
        restart = group["restart"] or g.numel()
        d = conjugate_direction(g, state.get("g"), state.get("d"), beta=group["beta"], restart=k % restart == 0)
        gtd = float(g @ d)
        if gtd == 0.0:  # at a stationary point: nothing to do
            return torch.tensor(f0, dtype=g.dtype)
        if "t" in state and "gtd" in state:
            t = state["t"] * state["gtd"] / gtd
        else:
            t = group["lr"] / float(torch.linalg.vector_norm(g))
        theta0 = flat_params(params)
        t, f_t, g_t = self._line_search(closure, params, theta0, d, f0, gtd, t, group["c1"], group["c2"],
                                        group["max_ls"])
        set_flat(params, theta0 + t * d)
        if g_t is not None:
            for p, gi in zip(params, unflatten(params, g_t)):
                p.grad = gi.clone()
        if t == 0.0:  # the line search found no decrease: stay, and restart from -g next time
            for key in ("g", "d", "t", "gtd"):
                state.pop(key, None)
            state.update(k=0, loss=f0)
        else:
            state.update(g=g, d=d, t=t, gtd=gtd, k=k + 1, loss=f_t)
        return torch.tensor(f0, dtype=g.dtype)

    def _line_search(self, closure, params, theta0, d, f0, gtd, t, c1, c2, max_ls):
        """A strong-Wolfe line search (Nocedal & Wright, Algorithms 3.5 and 3.6, cubic interpolation)."""
        evals = [0]

        def phi(t):
            set_flat(params, theta0 + t * d)
            f_t, g_t = self._evaluate(closure, params)
            evals[0] += 1
            return f_t, float(g_t @ d), g_t

        best = [0.0, f0, None]

        def keep(t, f_t, g_t):
            if math.isfinite(f_t) and f_t <= f0 + c1 * t * gtd and f_t < best[1]:
                best[:] = [t, f_t, g_t]

        def zoom(lo, hi):  # lo, hi = (t, f, dphi); lo satisfies Armijo and has the lower loss
            while evals[0] < max_ls:
                t = cubic_minimizer(lo, hi)
                f_t, dphi_t, g_t = phi(t)
                keep(t, f_t, g_t)
                if not math.isfinite(f_t) or f_t > f0 + c1 * t * gtd or f_t >= lo[1]:
                    hi = (t, f_t, dphi_t)
                else:
                    if abs(dphi_t) <= -c2 * gtd:
                        return
                    if dphi_t * (hi[0] - lo[0]) >= 0:
                        hi = lo
                    lo = (t, f_t, dphi_t)

        prev = (0.0, f0, gtd)
        while evals[0] < max_ls:
            f_t, dphi_t, g_t = phi(t)
            keep(t, f_t, g_t)
            cur = (t, f_t, dphi_t)
            if not math.isfinite(f_t) or f_t > f0 + c1 * t * gtd or (prev[0] > 0 and f_t >= prev[1]):
                zoom(prev, cur)
                break
            if abs(dphi_t) <= -c2 * gtd:
                break
            if dphi_t >= 0:
                zoom(cur, prev)
                break
            prev, t = cur, 2.0 * t
        return tuple(best)


def cubic_minimizer(a: tuple, b: tuple) -> float:
    """The minimizer of the cubic through (t, f, f') at a and b, kept inside the middle 80% of [a, b].

    Args:
        a, b: ``(t, f(t), f'(t))`` at the two ends of the bracket.

    Reference: Nocedal & Wright (2006). Numerical Optimization, eq. 3.59.
    """
    (ta, fa, da), (tb, fb, db) = a, b
    lo, hi = min(ta, tb), max(ta, tb)
    if not (math.isfinite(fb) and math.isfinite(db)):
        return 0.5 * (ta + tb)
    d1 = da + db - 3 * (fa - fb) / (ta - tb)
    disc = d1 * d1 - da * db
    if disc >= 0:
        d2 = math.copysign(math.sqrt(disc), tb - ta)
        t = tb - (tb - ta) * (db + d2 - d1) / (db - da + 2 * d2) if (db - da + 2 * d2) != 0 else 0.5 * (ta + tb)
    else:
        t = 0.5 * (ta + tb)
    margin = 0.1 * (hi - lo)
    return min(max(t, lo + margin), hi - margin) if math.isfinite(t) else 0.5 * (ta + tb)


def scg_scale_update(lam: float, Delta: float, delta: float, p_sq: float) -> float:
    r"""Moller's update of the scale :math:`\lambda` from the comparison parameter :math:`\Delta`.

    .. math::
        \lambda \leftarrow \lambda/4 \text{ if } \Delta \ge 0.75,\qquad
        \lambda \leftarrow \lambda + \delta (1 - \Delta)/|p|^2 \text{ if } \Delta < 0.25

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


class ScaledCG(torch.optim.Optimizer):
    r"""Moller's scaled conjugate gradient: conjugate directions without a line search.

    The step length along :math:`p_k` comes from a finite-difference curvature
    :math:`s_k = (E'(w_k + \sigma_k p_k) - E'(w_k))/\sigma_k`, :math:`\sigma_k = \sigma/|p_k|`, made positive by a
    Levenberg-Marquardt scale :math:`\lambda_k` (as in a trust region):

    .. math::
        \delta_k = p_k^\top s_k + \lambda_k |p_k|^2,\qquad \mu_k = p_k^\top r_k,\qquad
        \alpha_k = \mu_k / \delta_k,\qquad
        \Delta_k = 2\delta_k\,\frac{E(w_k) - E(w_k + \alpha_k p_k)}{\mu_k^2},

    with :math:`r_k = -E'(w_k)`. The step is taken when :math:`\Delta_k \ge 0` (then
    :math:`p_{k+1} = r_{k+1} + \beta_k p_k`, :math:`\beta_k = (|r_{k+1}|^2 - r_{k+1}^\top r_k)/\mu_k`, restarted
    with :math:`p = r` every n iterations); :math:`\lambda` follows :func:`scg_scale_update`. If
    :math:`\delta_k \le 0` the Hessian is made positive along :math:`p_k` by raising :math:`\lambda` (step 4 of
    the paper). One ``step`` is one iteration of the paper (successful or not).

    Args:
        params: the parameters (one group).
        sigma: the finite-difference constant sigma (the paper: :math:`0 < \sigma \le 10^{-4}`).
        lambda_: the initial scale (the paper: :math:`0 < \lambda_1 \le 10^{-6}`).
        restart: restart with :math:`p = r` every this many successful iterations (default: the number
            of parameters).

    ``step(closure)``: the closure zeroes the gradients, computes the loss, calls ``backward()`` and
    returns the loss (as for ``torch.optim.LBFGS``); it is called two or three times per step.

    Reference: M. F. Moller (1993). A scaled conjugate gradient algorithm for fast supervised learning.
    Neural Networks 6(4), 525-533.
    """

    def __init__(self, params, sigma: float = 1e-4, lambda_: float = 1e-6, *, restart: int | None = None):
        name = type(self).__name__
        check(name, "sigma", sigma, isinstance(sigma, (int, float)) and 0 < sigma < math.inf, "a finite number > 0")
        check(name, "lambda_", lambda_, isinstance(lambda_, (int, float)) and 0 < lambda_ < math.inf,
              "a finite number > 0")
        check(name, "restart", restart,
              restart is None or (isinstance(restart, int) and not isinstance(restart, bool) and restart > 0),
              "None or a positive integer")
        super().__init__(params, dict(sigma=sigma, lambda_=lambda_, restart=restart))
        group_params(name, self.param_groups, "the conjugate direction couples all parameters")

    def _evaluate(self, closure, params) -> tuple[float, Tensor]:
        with torch.enable_grad():
            loss = closure()
        return float(loss), _gather_grad(params)

    @torch.no_grad()
    def step(self, closure=None):
        """One SCG iteration; returns the loss at the start of it."""
        require_closure(type(self).__name__, closure, "computes the loss, calls backward() and returns the loss")
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        w = flat_params(params)
        E, g = self._evaluate(closure, params)  # E(w_k) and r_k = -E'(w_k) at the current point
        r = -g
        if "p" not in state or state["p"].shape != r.shape:
            state.update(p=r.clone(), lam=float(group["lambda_"]), success=True, k=0, successes=0)
        p, lam = state["p"], state["lam"]
        p_sq = float(p @ p)
        if p_sq == 0.0 or float(p @ r) <= 0:  # at a stationary point, or p is no descent direction: restart
            state.update(p=r.clone(), success=True)
            return torch.tensor(E, dtype=g.dtype)
        if state["success"]:  # step 2: second-order information along p
            sigma_k = group["sigma"] / math.sqrt(p_sq)
            set_flat(params, w + sigma_k * p)
            _, g_sigma = self._evaluate(closure, params)
            state["delta_raw"] = float(p @ (g_sigma - g)) / sigma_k
        # step 3: the scaled curvature. The paper accumulates (lambda_k - lambda_bar_k)|p|^2 over failed
        # iterations; that sum is always delta_raw + lambda_k |p|^2, which is what is computed here.
        delta = state["delta_raw"] + lam * p_sq
        if delta <= 0:                           # step 4: make the Hessian positive definite along p
            lam_bar = 2 * (lam - delta / p_sq)
            delta = -delta + lam * p_sq
            lam = lam_bar
        mu = float(p @ r)                        # step 5
        alpha = mu / delta
        set_flat(params, w + alpha * p)          # step 6: the comparison parameter
        E_new, g_new = self._evaluate(closure, params)
        Delta = 2 * delta * (E - E_new) / mu ** 2
        if Delta >= 0:                           # step 7: a successful reduction
            r_new = -g_new
            state["successes"] += 1
            restart = group["restart"] or r.numel()
            if state["successes"] % restart == 0:
                p_new = r_new.clone()
            else:
                beta = (float(r_new @ r_new) - float(r_new @ r)) / mu
                p_new = r_new + beta * p
            state.update(p=p_new, success=True)
            for q, gi in zip(params, unflatten(params, g_new)):
                q.grad = gi.clone()
        else:                                    # no step: back to w_k, the curvature along p is reused
            set_flat(params, w)
            state["success"] = False
        lam = scg_scale_update(lam, Delta, delta, p_sq)  # steps 7-8
        if state["success"]:
            state["delta_raw"] = None
        state.update(lam=lam, k=state["k"] + 1, Delta=Delta)
        return torch.tensor(E, dtype=g.dtype)
