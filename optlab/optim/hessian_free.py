r"""Hessian-free optimization (Martens, 2010): truncated Newton with CG on Gauss-Newton products.

Each step minimizes the damped quadratic model of the loss around :math:`\theta`,

.. math::
    q(d) = g^\top d + \tfrac12 d^\top (G + \lambda I)\, d,
    \qquad G = J^\top H_\ell J \quad\text{(generalized Gauss-Newton)},

by linear conjugate gradient (:func:`optlab.curvature.cg`), which only needs products
:math:`(G + \lambda I)v` -- computed without building any matrix by
:class:`~optlab.curvature.GGNOperator`: :math:`Jv` by the forward R-pass, :math:`H_\ell (Jv)` by the
loss's Hessian with respect to the network's outputs, and :math:`J^\top(\cdot)` by backpropagation. The
ingredients of the paper, one stage of :meth:`HessianFree.step` each:

1. **Evaluate** torch's closure: the loss, its gradient :math:`g`, and the batch the curvature is taken on.
2. **CG with Martens' stopping rule**, warm-started from :math:`\zeta\, d_{\text{prev}}` (:math:`\zeta = 0.95`):
   stop at iteration i when :math:`i > k`, :math:`q_i < 0` and :math:`(q_i - q_{i-k}) / q_i < k \epsilon` with
   :math:`k = \max(10, i/10)`, :math:`\epsilon = 5\cdot10^{-4}`; the iterates at iterations
   :math:`\lceil 1.3^j \rceil` are saved (:func:`martens_cg`, a callback of the one CG).
3. **CG backtracking**: walk back from the last saved iterate while the true loss keeps decreasing
   (:func:`cg_backtracking`).
4. **Levenberg-Marquardt damping** with the reduction ratio
   :math:`\rho = (E(\theta + d) - E(\theta)) / q(d)`: :math:`\lambda \leftarrow \tfrac32\lambda` if
   :math:`\rho < \tfrac14`, :math:`\lambda \leftarrow \tfrac23\lambda` if :math:`\rho > \tfrac34`
   (:func:`~optlab.optim.gauss_newton.lm_damping_update`).
5. An **Armijo line search** on the chosen direction, as in Martens & Sutskever (2012); the step is
   rejected (:math:`\theta` unchanged) if no step length decreases the loss (:func:`armijo_backtracking`).

``curvature="hessian"`` uses exact Hessian-vector products (:class:`~optlab.curvature.HessianOperator`,
on the same batch) instead. CG stops where it meets negative curvature (:math:`p^\top B p \le 0`: an
indefinite Hessian, or the Gauss-Newton matrix of a loss that is not convex in the outputs) and keeps
the iterate it has; ``state["cg_reason"]`` says why CG stopped.

References:
    J. Martens (2010). Deep learning via Hessian-free optimization. ICML.
    J. Martens, I. Sutskever (2012). Training deep and recurrent networks with Hessian-free optimization.
    N. Schraudolph (2002). Fast curvature matrix-vector products for second-order gradient descent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ..curvature import GGNOperator, HessianOperator, cg, quadratic_value
from ..flat import assign, flatten, unflatten
from ..errors import check
from .closure import evaluate, leave_gradient, loss_at
from .gauss_newton import check_model_params, gradient, lm_damping_update

CURVATURES = ("gauss-newton", "hessian")
SAVE_RATIO = 1.3  # Martens saves the CG iterates at iterations ceil(1.3^j)


def ggn_product(model: torch.nn.Module, loss_fn, data, params=None) -> GGNOperator:
    """The Gauss-Newton products Hessian-free runs CG on: ``GGNOperator(model, loss_fn, data, params)``
    (``G @ v``; see :class:`~optlab.curvature.GGNOperator`)."""
    return GGNOperator(model, loss_fn, data, params)


class MartensCG(NamedTuple):
    """What :func:`martens_cg` returns: the last iterate, the saved ``(x_i, q(x_i))`` pairs (the last
    iterate included), the number of CG iterations and why CG stopped."""

    x: Tensor
    saved: list
    iterations: int
    reason: str


def martens_stop(q: list[float], i: int, epsilon: float) -> bool:
    r"""Martens' rule: stop at iteration ``i`` when :math:`i > k`, :math:`q_i < 0` and
    :math:`(q_i - q_{i-k})/q_i < k\epsilon`, :math:`k = \max(10, \lfloor i/10 \rfloor)`; ``q[j]`` is :math:`q(x_j)`.

    Example:
        >>> q = [-1.0 + 0.5 ** j for j in range(30)]          # q_j -> -1: progress dies out
        >>> [i for i in range(1, 30) if martens_stop(q, i, 5e-4)][:1]
        [18]
    """
    k = max(10, i // 10)
    return i > k and q[i] < 0 and (q[i] - q[i - k]) / q[i] < k * epsilon


def martens_cg(B: Callable[[Tensor], Tensor], g: Tensor, x0: Tensor, *, max_iter: int, epsilon: float = 5e-4,
               negative_curvature: str = "raise") -> MartensCG:
    r"""Minimize :math:`q(x) = g^\top x + \tfrac12 x^\top B x` by :func:`~optlab.curvature.cg` (solving
    :math:`Bx = -g`) from ``x0``, stopped by :func:`martens_stop` and saving the iterates at iterations
    :math:`\lceil 1.3^j \rceil` for CG backtracking -- both through CG's callback, with
    :math:`q(x_i)` from the residual (:func:`~optlab.curvature.quadratic_value`, no extra product).

    Args:
        B: the damped curvature as a function ``v -> (G + lambda I) v``.
        g: the gradient; x0: the warm start.
        max_iter: the most CG iterations; epsilon: the stopping rule's tolerance.
        negative_curvature: CG's option (``"stop"`` for an indefinite Hessian).

    Reference: Martens (2010). Deep learning via Hessian-free optimization, sections 4.3-4.6.
    """
    q: list[float] = [math.nan]  # q(x_0) is never needed by the rule (i - k >= 1)
    saved: list[tuple[Tensor, float]] = []
    save_at = {math.ceil(SAVE_RATIO ** j) for j in range(int(math.log(max(max_iter, 1)) / math.log(SAVE_RATIO)) + 2)}

    def callback(i: int, x: Tensor, r: Tensor) -> bool:
        q.append(quadratic_value(x, -g, r))
        if i in save_at:
            saved.append((x, q[i]))
        return martens_stop(q, i, epsilon)

    result = cg(B, -g, x0, rtol=0.0, max_iter=max_iter, callback=callback, negative_curvature=negative_curvature)
    if result.iterations == 0:  # no CG step taken: x = x0
        saved.append((result.x, float(g @ result.x + 0.5 * result.x @ B(result.x))))
    elif result.iterations not in save_at:
        saved.append((result.x, q[result.iterations]))
    return MartensCG(result.x, saved, result.iterations, result.reason)


def cg_backtracking(saved: list[tuple[Tensor, float]], loss_of: Callable[[Tensor], float]) -> tuple[Tensor, float, float]:
    """Martens' CG backtracking: from the last saved iterate, walk back while the true loss ``loss_of(x)``
    keeps decreasing; return the chosen ``(x, q(x), loss)``.

    Example:
        >>> saved = [(torch.tensor([1.0]), -1.0), (torch.tensor([2.0]), -2.0), (torch.tensor([3.0]), -2.5)]
        >>> cg_backtracking(saved, lambda x: float((x - 2) ** 2))    # x = 3 overshoots, x = 2 is better
        (tensor([2.]), -2.0, 0.0)

    Reference: Martens (2010), section 4.6.
    """
    best = None
    for x, q in reversed(saved):
        E = loss_of(x)
        if best is not None and not E < best[2]:
            break
        best = (x, q, E)
    return best


def armijo_backtracking(phi: Callable[[float], float], f0: float, slope: float, alpha: float, *, c1: float = 1e-2,
                        shrink: float = 0.8, min_alpha: float = 1e-4,
                        f_alpha: float | None = None) -> tuple[float, float]:
    r"""Backtracking line search: shrink :math:`\alpha` until :math:`\phi(\alpha) \le \phi(0) + c_1 \alpha\, g^\top p`
    (Armijo) or :math:`\alpha <` ``min_alpha``; returns ``(alpha, phi(alpha))``, or ``(0, f0)`` if the loss did
    not decrease. ``f_alpha`` is :math:`\phi(\alpha)` when already known.

    Example:
        >>> armijo_backtracking(lambda a: (a - 0.3) ** 2, f0=0.09, slope=-0.6, alpha=1.0, shrink=0.5)
        (0.5, 0.04000000000000001)

    Reference: Nocedal & Wright (2006), Algorithm 3.1; Martens & Sutskever (2012), section 8.
    """
    f = phi(alpha) if f_alpha is None else f_alpha
    while not (math.isfinite(f) and f <= f0 + c1 * alpha * slope) and alpha > min_alpha:
        alpha *= shrink
        f = phi(alpha)
    if not (math.isfinite(f) and f < f0):
        return 0.0, f0
    return alpha, f


class HessianFree(torch.optim.Optimizer):
    r"""Hessian-free optimization (Martens 2010): CG on damped Gauss-Newton products, LM damping, warm starts.

    Args:
        params: the parameters (one group: one damping and one CG solve couple them all).
        lr: the first trial step length of the line search (1: the CG solution itself).
        damping: the initial lambda > 0.
        model: the ``nn.Module`` the closure calls.
        loss_fn: the ``nn.Module`` loss the closure calls as ``loss_fn(model(inputs), targets)``.
        curvature: ``"gauss-newton"`` (default, :class:`~optlab.curvature.GGNOperator`) or ``"hessian"``
            (:class:`~optlab.curvature.HessianOperator` on the same batch: the method still needs
            ``model`` and ``loss_fn``, ``needs = "model"`` in both cases).
        cg_max_iter: the most CG iterations per step.
        warm_start: zeta in [0, 1), the share of the previous direction CG starts from.
        epsilon: the tolerance of Martens' CG stopping rule.
        drop, boost: lambda's factors after a good (rho > 3/4) or poor (rho < 1/4) step.
        c1, shrink, min_alpha: the Armijo line search's sufficient-decrease constant, step shrink factor
            and smallest step length.

    ``step(closure)`` with torch's closure; the closure is called again (without gradients) at every
    trial point. It returns the loss before the step and leaves its gradient in ``p.grad``.
    ``state[first param]`` holds the current ``damping`` (lambda), the CG solution ``d`` (the next warm
    start), ``rho``, ``alpha``, ``loss`` (after the step), ``cg_iterations``, ``cg_reason`` (``"callback"``:
    Martens' rule, ``"max_iter"``, ``"converged"`` or ``"negative curvature"``) and ``step``.

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
        >>> x = torch.randn(32, 2, dtype=torch.float64); y = torch.sin(x.sum(1, keepdim=True))
        >>> loss_fn = torch.nn.MSELoss()
        >>> opt = HessianFree(model.parameters(), model=model, loss_fn=loss_fn, cg_max_iter=20)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> losses = [float(opt.step(closure)) for _ in range(5)]
        >>> losses[-1] < 0.5 * losses[0]
        True

    Reference: Martens (2010). Deep learning via Hessian-free optimization. ICML.
    """

    needs = "model"

    def __init__(self, params, lr: float = 1.0, damping: float = 1.0, *, model: torch.nn.Module,
                 loss_fn: torch.nn.Module, curvature: str = "gauss-newton", cg_max_iter: int = 250,
                 warm_start: float = 0.95, epsilon: float = 5e-4, drop: float = 2 / 3, boost: float = 1.5,
                 c1: float = 1e-2, shrink: float = 0.8, min_alpha: float = 1e-4):
        name = type(self).__name__
        number = (int, float)
        check(name, "lr", lr, isinstance(lr, number) and 0 < lr < math.inf, "a finite number > 0")
        check(name, "damping", damping, isinstance(damping, number) and 0 < damping < math.inf, "a finite number > 0")
        check(name, "curvature", curvature, curvature in CURVATURES, f"one of {CURVATURES}")
        check(name, "cg_max_iter", cg_max_iter,
              isinstance(cg_max_iter, int) and not isinstance(cg_max_iter, bool) and cg_max_iter > 0,
              "a positive integer")
        check(name, "warm_start", warm_start, isinstance(warm_start, number) and 0 <= warm_start < 1,
              "a number in [0, 1)")
        check(name, "epsilon", epsilon, isinstance(epsilon, number) and 0 < epsilon < math.inf, "a finite number > 0")
        check(name, "drop", drop, isinstance(drop, number) and 0 < drop < 1, "a number in (0, 1)")
        check(name, "boost", boost, isinstance(boost, number) and 1 < boost < math.inf, "a finite number > 1")
        check(name, "c1", c1, isinstance(c1, number) and 0 < c1 < 1, "a number in (0, 1)")
        check(name, "shrink", shrink, isinstance(shrink, number) and 0 < shrink < 1, "a number in (0, 1)")
        check(name, "min_alpha", min_alpha, isinstance(min_alpha, number) and 0 < min_alpha < math.inf,
              "a finite number > 0")
        super().__init__(params, dict(lr=lr, damping=damping, curvature=curvature, cg_max_iter=cg_max_iter,
                                      warm_start=warm_start, epsilon=epsilon, drop=drop, boost=boost, c1=c1,
                                      shrink=shrink, min_alpha=min_alpha))
        if len(self.param_groups) != 1:
            raise ValueError(f"{name}: got {len(self.param_groups)} parameter groups; expected exactly 1 "
                             f"(one damping lambda and one CG solve couple all parameters)")
        check_model_params(name, model, loss_fn, self.param_groups)
        self.model, self.loss_fn = model, loss_fn

    def _curvature(self, data, params, curvature: str):
        """The curvature operator on the closure's batch: Gauss-Newton or exact Hessian."""
        if curvature == "gauss-newton":
            return GGNOperator(self.model, self.loss_fn, data, params)
        return HessianOperator(self.model, self.loss_fn, data, params)

    def step(self, closure=None):
        """One Hessian-free step (the five stages of the module docstring); returns the loss before it."""
        name = type(self).__name__
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        lam = state.get("damping", group["damping"])

        # 1. evaluate: loss, gradient and the curvature on the closure's batch
        ev = evaluate(name, closure, model=self.model, loss_fn=self.loss_fn)
        E0, g = float(ev.loss.detach()), gradient(ev.loss, params)
        curvature = self._curvature(ev.data, params, group["curvature"])

        # 2. CG with Martens' rule on (G + lambda I) d = -g, warm-started
        d_prev = state.get("d")
        x0 = group["warm_start"] * d_prev if d_prev is not None else torch.zeros_like(g)
        with curvature.many_products():
            run = martens_cg(lambda v: curvature @ v + lam * v, g, x0, max_iter=group["cg_max_iter"],
                             epsilon=group["epsilon"], negative_curvature="stop")

        # 3. CG backtracking on the true loss
        theta0 = flatten([p.detach() for p in params])

        def loss_along(step: Tensor) -> float:
            assign(params, theta0 + step)
            return loss_at(name, closure)

        p, q_p, E_p = cg_backtracking(run.saved, loss_along)

        # 4. Levenberg-Marquardt damping from the reduction ratio
        rho = (E_p - E0) / q_p if q_p < 0 else -math.inf
        state["damping"] = lm_damping_update(lam, rho, drop=group["drop"], boost=group["boost"])

        # 5. Armijo line search along p (rejects the step if the loss does not decrease)
        alpha, E_new = armijo_backtracking(lambda a: loss_along(a * p), E0, float(g @ p), group["lr"],
                                           c1=group["c1"], shrink=group["shrink"], min_alpha=group["min_alpha"],
                                           f_alpha=E_p if group["lr"] == 1.0 else None)
        assign(params, theta0 + alpha * p)
        state.update(d=run.x, rho=rho, alpha=alpha, loss=E_new, cg_iterations=run.iterations, cg_reason=run.reason,
                     step=state.get("step", 0) + 1)
        leave_gradient(params, unflatten(g, params))
        return ev.loss.detach()
