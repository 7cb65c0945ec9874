r"""Hessian-free optimization (Martens, 2010): truncated Newton with CG on Gauss-Newton products.

Each step minimizes the damped quadratic model of the loss around :math:`\theta`,

.. math::
    q(d) = E(\theta) + g^\top d + \tfrac12 d^\top (G + \lambda I)\, d,
    \qquad G = J^\top H_L J \quad\text{(generalized Gauss-Newton)},

by linear conjugate gradient, which only needs products :math:`(G + \lambda I)v` -- computed without
building any matrix: :math:`Jv` by forward differentiation, :math:`H_L (Jv)` by the loss's Hessian with
respect to the network's outputs, and :math:`J^\top(\cdot)` by backpropagation. The ingredients of the
paper:

- **Gauss-Newton curvature** (positive semi-definite, so CG is well-posed); ``curvature="hessian"`` uses
  exact Hessian-vector products instead (CG then stops if it meets negative curvature).
- **CG warm start**: CG starts from :math:`\zeta\, d_{\text{prev}}` (:math:`\zeta = 0.95`).
- **Martens' CG stopping rule**: stop at iteration i when :math:`i > k`, :math:`q_i < 0` and
  :math:`(q_i - q_{i-k}) / q_i < k \epsilon` with :math:`k = \max(10, i/10)`, :math:`\epsilon = 5\cdot10^{-4}`.
- **CG backtracking**: among the iterates saved at iterations :math:`\lceil 1.3^j \rceil`, walk back from
  the last one while the true loss keeps decreasing.
- **Levenberg-Marquardt damping** with the reduction ratio
  :math:`\rho = (E(\theta + d) - E(\theta)) / (q(d) - q(0))`: :math:`\lambda \leftarrow \tfrac32\lambda` if
  :math:`\rho < \tfrac14`, :math:`\lambda \leftarrow \tfrac23\lambda` if :math:`\rho > \tfrac34`.
- A backtracking (Armijo) line search on the chosen direction, as in Martens & Sutskever (2012); the
  step is rejected (:math:`\theta` unchanged) if no step length decreases the loss.

References:
    J. Martens (2010). Deep learning via Hessian-free optimization. ICML.
    J. Martens, I. Sutskever (2012). Training deep and recurrent networks with Hessian-free optimization.
    N. Schraudolph (2002). Fast curvature matrix-vector products for second-order gradient descent.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._flat import flat_params, set_flat, store_grad, unflatten
from ._validate import check
from .gauss_newton import lm_damping_update

CURVATURES = ("gauss-newton", "hessian")


def _cat(params, grads) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if h is None else h).reshape(-1) for p, h in zip(params, grads)])


def ggn_product(outputs: Tensor, loss: Tensor, params: list[Tensor]):
    r"""A function ``v -> G v = J^T H_L J v`` for ``loss = L(outputs)``; the graphs are kept for many products.

    :math:`Jv` comes from the double-backward trick (differentiate :math:`J^\top u` with respect to a dummy
    :math:`u`), :math:`H_L w` from differentiating :math:`\partial L/\partial z` along :math:`w`, and
    :math:`J^\top` is ordinary backpropagation (Schraudolph, 2002).

    Args:
        outputs: the network's outputs z, attached to the graph.
        loss: the scalar loss L(z), computed from ``outputs``.
        params: the tensors the Gauss-Newton matrix is taken for.

    Reference: N. Schraudolph (2002). Fast curvature matrix-vector products; Martens (2010).
    """
    u = torch.zeros_like(outputs, requires_grad=True)
    with torch.enable_grad():
        Jtu = torch.autograd.grad(outputs, params, grad_outputs=u, create_graph=True, allow_unused=True)
        Jtu = [torch.zeros_like(p) if h is None else h for p, h in zip(params, Jtu)]
        dL_dz = torch.autograd.grad(loss, outputs, create_graph=True)[0]

    def product(v: Tensor) -> Tensor:
        Jv = torch.autograd.grad(Jtu, u, grad_outputs=unflatten(params, v), retain_graph=True)[0]
        HJv = torch.autograd.grad(dL_dz, outputs, grad_outputs=Jv, retain_graph=True)[0]
        return _cat(params, torch.autograd.grad(outputs, params, grad_outputs=HJv, retain_graph=True,
                                                allow_unused=True))

    return product


def hf_cg(Bv, g: Tensor, x0: Tensor, *, maxiter: int,
          epsilon: float = 5e-4) -> tuple[Tensor, list[tuple[Tensor, float]], int]:
    r"""Minimize :math:`q(x) = g^\top x + \tfrac12 x^\top B x` by CG from ``x0`` with Martens' stopping rule.

    Returns ``(x, saved, iterations)``: the last iterate, the pairs :math:`(x_i, q(x_i))` saved at
    iterations :math:`\lceil 1.3^j \rceil` and at the last one (for CG backtracking), and the number of
    iterations.

    Args:
        Bv: the damped curvature product ``v -> (G + lambda I) v``.
        g: the gradient; x0: the warm start.
        maxiter: the most CG iterations; epsilon: the stopping rule's tolerance.

    Reference: Martens (2010). Deep learning via Hessian-free optimization, sections 4.3-4.6.
    """
    x = x0.clone()
    Bx = Bv(x)
    r = -g - Bx
    q = float(g @ x + 0.5 * x @ Bx)
    p = r.clone()
    rr = r @ r
    qs, saved = [q], []
    i = 0
    save_at = {math.ceil(1.3 ** j) for j in range(60)}
    for i in range(1, maxiter + 1):
        Bp = Bv(p)
        pBp = p @ Bp
        if pBp <= 0:  # negative curvature (only with curvature="hessian"): stop here
            break
        a = rr / pBp
        x = x + a * p
        r = r - a * Bp
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        q = float(0.5 * (g @ x) - 0.5 * (r @ x))  # q(x) = g.x + x.Bx/2 with Bx = -g - r
        qs.append(q)
        if i in save_at:
            saved.append((x, q))
        k = max(10, i // 10)
        if i > k and q < 0 and (q - qs[i - k]) / q < k * epsilon:
            break
        if float(rr) == 0.0:
            break
    if not saved or saved[-1][0] is not x:
        saved.append((x, q))
    return x, saved, i


class HessianFree(torch.optim.Optimizer):
    r"""Hessian-free optimization (Martens 2010): CG on damped Gauss-Newton products, LM damping, warm starts.

    Args:
        params: the parameters (one group).
        lr: the first trial step length of the line search (1: the CG solution itself).
        damping: the initial lambda > 0.
        curvature: ``"gauss-newton"`` (default; the closure returns ``(outputs, loss)``) or ``"hessian"``
            (the closure may return just the loss).
        cg_maxiter: the most CG iterations per step.
        warm_start: zeta in [0, 1), the share of the previous direction CG starts from.
        drop, boost: lambda's factors after a good (rho > 3/4) or poor (rho < 1/4) step.

    ``step(closure)``: the closure recomputes the model **without** calling ``backward`` and returns
    ``(outputs, loss)`` with ``loss`` computed from ``outputs`` (for the Gauss-Newton product), or only the
    loss with ``curvature="hessian"``. It is called again to evaluate trial points. ``step`` returns the
    loss before the step; ``state[first_param]`` holds ``lambda``, ``rho``, ``cg_iterations``.

    Reference: Martens (2010). Deep learning via Hessian-free optimization. ICML.
    """

    def __init__(self, params, lr: float = 1.0, damping: float = 1.0, *, curvature: str = "gauss-newton",
                 cg_maxiter: int = 250, warm_start: float = 0.95, drop: float = 2 / 3, boost: float = 1.5):
        name = type(self).__name__
        check(name, "lr", lr, isinstance(lr, (int, float)) and 0 < lr < math.inf, "a finite number > 0")
        check(name, "damping", damping, isinstance(damping, (int, float)) and 0 < damping < math.inf,
              "a finite number > 0")
        check(name, "curvature", curvature, curvature in CURVATURES, f"one of {CURVATURES}")
        check(name, "cg_maxiter", cg_maxiter,
              isinstance(cg_maxiter, int) and not isinstance(cg_maxiter, bool) and cg_maxiter > 0, "a positive integer")
        check(name, "warm_start", warm_start, isinstance(warm_start, (int, float)) and 0 <= warm_start < 1,
              "a number in [0, 1)")
        check(name, "drop", drop, isinstance(drop, (int, float)) and 0 < drop < 1, "a number in (0, 1)")
        check(name, "boost", boost, isinstance(boost, (int, float)) and 1 < boost < math.inf, "a finite number > 1")
        super().__init__(params, dict(lr=lr, damping=damping, curvature=curvature, cg_maxiter=cg_maxiter,
                                      warm_start=warm_start, drop=drop, boost=boost))
        if len(self.param_groups) != 1:
            raise ValueError(f"{name}: got {len(self.param_groups)} parameter groups; expected exactly 1 "
                             f"(one damping lambda and one CG solve couple all parameters)")

    def _outputs_and_loss(self, closure, curvature):
        if closure is None or not callable(closure):
            raise TypeError(f"{type(self).__name__}: step() needs a closure returning (outputs, loss) "
                            f"(got {closure!r})")
        with torch.enable_grad():
            out = closure()
        if isinstance(out, tuple) and len(out) == 2:
            outputs, loss = out
        elif curvature == "hessian" and isinstance(out, Tensor):
            outputs, loss = None, out
        else:
            raise TypeError(f"{type(self).__name__}: the closure must return (outputs, loss)"
                            f"{' or the loss' if curvature == 'hessian' else ''}, got {type(out).__name__}")
        if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise TypeError(f"{type(self).__name__}: the loss must be a scalar tensor attached to the graph")
        return outputs, loss.reshape(())

    def _loss_at(self, closure) -> float:
        with torch.no_grad():
            out = closure()
        loss = out[1] if isinstance(out, tuple) else out
        return float(loss)

    def step(self, closure=None):
        """One Hessian-free step; returns the loss before it."""
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        lam = state.get("lambda", group["damping"])
        outputs, loss = self._outputs_and_loss(closure, group["curvature"])
        with torch.enable_grad():
            g_list = torch.autograd.grad(loss, params, create_graph=group["curvature"] == "hessian",
                                         retain_graph=True, allow_unused=True)
        g_graph = _cat(params, g_list)
        g = g_graph.detach()
        if group["curvature"] == "gauss-newton":
            Gv = ggn_product(outputs, loss, params)
        else:
            def Gv(v):
                return _cat(params, torch.autograd.grad(g_graph, params, grad_outputs=v, retain_graph=True,
                                                        allow_unused=True))

        def Bv(v):
            return Gv(v) + lam * v

        d_prev = state.get("d")
        x0 = group["warm_start"] * d_prev if d_prev is not None else torch.zeros_like(g)
        d, saved, iterations = hf_cg(Bv, g, x0, maxiter=group["cg_maxiter"])
        E0 = float(loss.detach())
        theta0 = flat_params(params)

        # CG backtracking: from the last saved iterate back while the loss keeps decreasing
        p, q_p, best_E = None, None, None
        for cand, q_cand in reversed(saved):
            set_flat(params, theta0 + cand)
            E = self._loss_at(closure)
            if best_E is None or E < best_E:
                p, q_p, best_E = cand, q_cand, E
            else:
                break
        rho = (best_E - E0) / q_p if q_p < 0 else -math.inf
        state["lambda"] = lm_damping_update(lam, rho, drop=group["drop"], boost=group["boost"])

        # Armijo backtracking line search along p
        alpha, gp, E_new = group["lr"], float(g @ p), best_E
        if alpha != 1.0:
            set_flat(params, theta0 + alpha * p)
            E_new = self._loss_at(closure)
        while not (math.isfinite(E_new) and E_new <= E0 + 1e-2 * alpha * gp) and alpha > 1e-4:
            alpha *= 0.8
            set_flat(params, theta0 + alpha * p)
            E_new = self._loss_at(closure)
        if not (math.isfinite(E_new) and E_new < E0):
            alpha = 0.0
        set_flat(params, theta0 + alpha * p)
        state.update(d=d, rho=rho, alpha=alpha, loss=E_new if alpha > 0 else E0,
                     cg_iterations=iterations, step=state.get("step", 0) + 1)
        store_grad(params, g)
        return loss.detach()
