r"""Gauss-Newton and Levenberg-Marquardt for least squares on small models.

For :math:`E(\theta) = \tfrac12 \sum_p (D_p - N(\theta, \chi_p))'(D_p - N(\theta, \chi_p)) = \tfrac12 \|r\|^2`
with residuals :math:`r = N - D` and Jacobian :math:`J = \partial r/\partial\theta`, the Hessian is
:math:`J^\top J + \sum_p r_p \nabla^2 r_p`. Dropping the second term (LeCun, "Gauss-Newton approximation
of the Hessian": as if the network were linear in its parameters) leaves the positive semi-definite

.. math::
    G = J^\top J,\qquad g = J^\top r,\qquad
    \theta_{t+1} = \theta_t + \alpha\,d,\quad d = -(G + \mu I)^{-1} g .

Levenberg-Marquardt adapts :math:`\mu` with the gain ratio of the actual to the predicted decrease,

.. math::
    \rho = \frac{E(\theta) - E(\theta + d)}{-(g^\top d + \tfrac12 d^\top G d)},\qquad
    \mu \leftarrow \begin{cases} \mu \cdot \text{drop} & \rho > 3/4 \\ \mu \cdot \text{boost} & \rho < 1/4 \\ \mu & \text{otherwise}\end{cases}

and rejects the step when :math:`\rho \le 0`. Between the two ends: :math:`\mu \to 0` gives the
Gauss-Newton step; :math:`\mu \to \infty` gives :math:`d \approx -g/\mu`, gradient descent with
learning rate :math:`1/\mu`. (This is Levenberg's identity damping; Marquardt's variant damps with
:math:`\mathrm{diag}(G)` instead.)

References:
    Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (slides).
    K. Levenberg (1944). A method for the solution of certain non-linear problems in least squares.
    D. Marquardt (1963). An algorithm for least-squares estimation of nonlinear parameters.
    J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., section 10.3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._flat import add_flat, store_grad
from ._validate import check
from ..curvature.cg import cg
from .newton import SOLVERS, _all_params, _group_vector, check_solver_args


def gauss_newton_direction(J: Tensor, r: Tensor, mu: Tensor | float = 0.0) -> Tensor:
    r"""The (damped) Gauss-Newton direction :math:`d = -(J^\top J + \mu I)^{-1} J^\top r`.

    Example:
        >>> J = torch.eye(2); r = torch.tensor([1.0, -2.0])
        >>> gauss_newton_direction(J, r)
        tensor([-1.,  2.])

    Args:
        J: the Jacobian of the residuals (m x n).
        r: the residuals (m).
        mu: the damping, a number or one value per coordinate.

    Reference: LeCun (slides), "Gauss-Newton approximation of the Hessian"; Levenberg (1944).
    """
    mu = torch.as_tensor(mu, dtype=J.dtype, device=J.device)
    G = J.T @ J
    return -torch.linalg.solve(G + torch.diag(mu.expand(G.shape[:1])), J.T @ r)


def lm_damping_update(mu: float, rho: float, *, drop: float = 1 / 3, boost: float = 2.0) -> float:
    r"""Levenberg-Marquardt's rule: :math:`\mu \cdot \text{drop}` if :math:`\rho > 3/4`, :math:`\mu \cdot \text{boost}` if :math:`\rho < 1/4`.

    Args:
        mu: the current damping.
        rho: the gain ratio, actual over predicted decrease.
        drop, boost: the factors for a good and a poor step.

    Reference: Nocedal & Wright (2006), section 10.3; Martens (2010), section 4.1.
    """
    if rho > 0.75:
        return mu * drop
    if rho < 0.25:
        return mu * boost
    return mu


def residual_jacobian(r: Tensor, params: list[Tensor]) -> Tensor:
    """The dense Jacobian ``(len(r), n_params)`` of a residual vector with a graph (one batched backward).

    Args:
        r: the residual vector, attached to the graph.
        params: the tensors to differentiate with respect to.

    Reference: Nocedal & Wright (2006), section 10.3.
    """
    eye = torch.eye(r.numel(), dtype=r.dtype, device=r.device)
    rows = torch.autograd.grad(r, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True,
                               allow_unused=True)
    return torch.cat([(torch.zeros(r.numel(), p.numel(), dtype=r.dtype, device=r.device) if h is None
                       else h.reshape(r.numel(), -1)) for p, h in zip(params, rows)], dim=1)


def gn_product(r: Tensor, params: list[Tensor]):
    r"""A function ``v -> J^T J v`` from autograd (two backward passes per product, no matrix built).

    :math:`J^\top u` is a vector-Jacobian product; :math:`J v` is obtained by differentiating
    :math:`J^\top u` with respect to the dummy :math:`u` (the "double-backward" trick).

    Args:
        r: the residual vector, attached to the graph.
        params: the tensors to differentiate with respect to.

    Reference: N. Schraudolph (2002). Fast curvature matrix-vector products for second-order gradient descent.
    """
    u = torch.zeros_like(r, requires_grad=True)
    with torch.enable_grad():
        Jtu = torch.autograd.grad(r, params, grad_outputs=u, create_graph=True, allow_unused=True)
        Jtu = [torch.zeros_like(p) if h is None else h for p, h in zip(params, Jtu)]

    def product(v: Tensor) -> Tensor:
        vs, i = [], 0
        for p in params:
            vs.append(v[i:i + p.numel()].view_as(p))
            i += p.numel()
        Jv = torch.autograd.grad(Jtu, u, grad_outputs=vs, retain_graph=True)[0]
        JtJv = torch.autograd.grad(r, params, grad_outputs=Jv.detach(), retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if h is None else h).reshape(-1) for p, h in zip(params, JtJv)])

    return product


def _residuals(owner: str, closure) -> Tensor:
    if closure is None or not callable(closure):
        raise TypeError(f"{owner}: step() needs a closure that returns the residual vector r (got {closure!r})")
    with torch.enable_grad():
        r = closure()
    if not isinstance(r, Tensor) or not r.requires_grad:
        raise TypeError(f"{owner}: the closure must return the residuals r = N(theta) - D as a tensor attached "
                        f"to the graph, got {r!r}")
    return r.reshape(-1)


class GaussNewton(torch.optim.Optimizer):
    r"""Gauss-Newton for least squares: :math:`\theta \leftarrow \theta - \alpha (J^\top J + \mu I)^{-1} J^\top r`.

    Args:
        params: parameters or parameter groups (each group's ``lr`` scales its part of the step and its
            ``damping`` is added to its part of the diagonal).
        lr: the step size alpha.
        damping: mu >= 0 (fixed; see :class:`LevenbergMarquardt` for the adaptive one).
        solver: ``"dense"`` (build J) or ``"cg"`` (CG on matrix-free Gauss-Newton products, needs ``damping > 0``
            when G is singular).
        cg_maxiter, cg_rtol: CG's iteration cap and relative tolerance.

    ``step(closure)``: the closure recomputes the model and returns the **residual vector**
    ``r = N(theta) - D`` (any shape, flattened) without calling ``backward``. The loss is
    :math:`E = \tfrac12\|r\|^2`; ``step`` returns it.

    Reference: LeCun (slides), "Gauss-Newton approximation of the Hessian"; Nocedal & Wright (2006) 10.3.
    """

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0, *, solver: str = "dense",
                 cg_maxiter: int | None = None, cg_rtol: float = 1e-10):
        check_solver_args(type(self).__name__, lr, damping, solver, cg_maxiter, cg_rtol)
        super().__init__(params, dict(lr=lr, damping=damping))
        self.solver, self.cg_maxiter, self.cg_rtol = solver, cg_maxiter, cg_rtol

    def _direction(self, r: Tensor, params: list[Tensor], mu: Tensor) -> tuple[Tensor, Tensor, callable]:
        """``(d, g, G_product)`` for the current residuals."""
        if self.solver == "dense":
            J = residual_jacobian(r, params)
            rd = r.detach()
            return gauss_newton_direction(J, rd, mu), J.T @ rd, (lambda v: J.T @ (J @ v))
        Gv = gn_product(r, params)
        g = torch.cat([(torch.zeros_like(p) if h is None else h).reshape(-1) for p, h in zip(
            params, torch.autograd.grad(r, params, grad_outputs=r.detach(), retain_graph=True, allow_unused=True))])
        d = cg(lambda v: Gv(v) + mu * v, -g, rtol=self.cg_rtol, max_iter=self.cg_maxiter).x
        return d, g, Gv

    def step(self, closure=None):
        """One Gauss-Newton step; the closure returns the residuals. Returns :math:`\\tfrac12\\|r\\|^2` before the step."""
        params = _all_params(self.param_groups)
        r = _residuals(type(self).__name__, closure)
        mu = _group_vector(self.param_groups, "damping", r.detach())
        d, g, _ = self._direction(r, params, mu)
        add_flat(params, _group_vector(self.param_groups, "lr", g) * d)
        store_grad(params, g)
        state = self.state[params[0]]
        state["step"] = state.get("step", 0) + 1
        return 0.5 * (r.detach() ** 2).sum()


class LevenbergMarquardt(GaussNewton):
    r"""Levenberg-Marquardt: Gauss-Newton with the damping mu adapted by the gain ratio rho.

    Each step solves :math:`(J^\top J + \mu I) d = -J^\top r`, tries :math:`\theta + d`, keeps it if the
    loss went down (:math:`\rho > 0`), and updates mu with :func:`lm_damping_update` (the module
    docstring). The current mu is ``optimizer.state[first_param]["mu"]`` (saved in ``state_dict``).

    Args:
        params: the parameters (one group).
        damping: the initial mu > 0.
        drop, boost: the factors applied to mu after a good (rho > 3/4) or poor (rho < 1/4) step.
        solver, cg_maxiter, cg_rtol: as in :class:`GaussNewton`.

    ``step(closure)`` may call the closure twice (before and after the trial step); it returns the loss
    :math:`\tfrac12\|r\|^2` before the step.

    Reference: Levenberg (1944); Marquardt (1963); Nocedal & Wright (2006), section 10.3.
    """

    def __init__(self, params, damping: float = 1e-2, *, drop: float = 1 / 3, boost: float = 2.0,
                 solver: str = "dense", cg_maxiter: int | None = None, cg_rtol: float = 1e-10):
        name = type(self).__name__
        check(name, "damping", damping, isinstance(damping, (int, float)) and damping > 0 and damping != float("inf"),
              "a finite number > 0")
        check(name, "drop", drop, isinstance(drop, (int, float)) and 0 < drop < 1, "a number in (0, 1)")
        check(name, "boost", boost, isinstance(boost, (int, float)) and 1 < boost < float("inf"), "a finite number > 1")
        super().__init__(params, lr=1.0, damping=damping, solver=solver, cg_maxiter=cg_maxiter, cg_rtol=cg_rtol)
        if len(self.param_groups) != 1:
            raise ValueError(f"{name}: got {len(self.param_groups)} parameter groups; expected exactly 1 "
                             f"(one damping mu adapts for all parameters)")
        self.defaults.update(drop=drop, boost=boost)
        self.param_groups[0].setdefault("drop", drop)
        self.param_groups[0].setdefault("boost", boost)

    def step(self, closure=None):
        """One LM step (accepted or rejected); returns the loss before the step."""
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        mu = state.get("mu", group["damping"])
        r = _residuals(type(self).__name__, closure)
        E = 0.5 * float((r.detach() ** 2).sum())
        n = sum(p.numel() for p in params)
        d, g, Gv = self._direction(r, params, torch.full((n,), mu, dtype=r.dtype, device=r.device))
        predicted = -(float(g @ d) + 0.5 * float(d @ Gv(d)))
        add_flat(params, d)
        with torch.no_grad():
            E_new = 0.5 * float((_residuals_nograd(closure) ** 2).sum())
        rho = (E - E_new) / predicted if predicted > 0 else -1.0
        if not rho > 0:
            add_flat(params, d, -1.0)  # reject: back to where we were
        state["mu"] = lm_damping_update(mu, rho, drop=group["drop"], boost=group["boost"])
        state["rho"] = rho
        state["step"] = state.get("step", 0) + 1
        store_grad(params, g)
        return torch.tensor(E, dtype=r.dtype)


def _residuals_nograd(closure) -> Tensor:
    r = closure()
    return r.detach().reshape(-1)
