r"""Gauss-Newton and Levenberg-Marquardt: Newton's step with the Gauss-Newton matrix in place of the Hessian.

For the slides' least squares :math:`E(\theta) = \tfrac12 \sum_p \|N(\theta, \chi_p) - D_p\|^2 = \tfrac12 \|r\|^2`
with residuals :math:`r = N - D` and Jacobian :math:`J = \partial r/\partial\theta`, the Hessian is
:math:`J^\top J + \sum_p r_p \nabla^2 r_p`. Dropping the second term (LeCun, "Gauss-Newton approximation
of the Hessian": as if the network were linear in its parameters) leaves the positive semi-definite

.. math::
    G = J^\top J,\qquad g = J^\top r,\qquad
    \theta_{t+1} = \theta_t + \alpha\,d,\quad d = -(G + \mu I)^{-1} g .

For any loss :math:`\ell(N, D)` convex in the outputs the same step uses the generalized Gauss-Newton
matrix :math:`G = J^\top H_\ell J` (:class:`~optlab.curvature.GGNOperator`, with :math:`J` now the
Jacobian of the outputs); least squares is the GGN with the squared error, :math:`H_\ell = I`.

**The loss's scaling.** With ``loss_fn=torch.nn.MSELoss(reduction="sum")``,
:math:`E = \sum_p\|r_p\|^2` is twice the slides' :math:`E`: :math:`G = 2J^\top J`, :math:`g = 2J^\top r`,
and :math:`d = -(J^\top J + \tfrac{\mu}{2} I)^{-1} J^\top r` is the slides' step with damping
:math:`\mu/2`. With the default ``MSELoss()`` (the mean over the :math:`m` entries of :math:`r`),
:math:`E = \tfrac{2}{m}\cdot\tfrac12\|r\|^2` and the slides' damping is :math:`m\mu/2`. The undamped step
(:math:`\mu = 0`) is the same for every scaling.

Levenberg-Marquardt adapts :math:`\mu` with the gain ratio of the actual to the predicted decrease,

.. math::
    \rho = \frac{E(\theta) - E(\theta + d)}{-(g^\top d + \tfrac12 d^\top G d)},\qquad
    \mu \leftarrow \begin{cases} \mu \cdot \text{drop} & \rho > 3/4 \\ \mu \cdot \text{boost} & \rho < 1/4 \\ \mu & \text{otherwise}\end{cases}

and rejects the step when :math:`\rho \le 0`. Between the two ends: :math:`\mu \to 0` gives the
Gauss-Newton step; :math:`\mu \to \infty` gives :math:`d \approx -g/\mu`, gradient descent with
learning rate :math:`1/\mu`. (This is Levenberg's identity damping; Marquardt's variant damps with
:math:`\mathrm{diag}(G)` instead.)

Both are stepped with torch's closure and built with the ``model`` and ``loss_fn`` it calls
(``needs = "model"``, :mod:`optlab.optim.closure`): the batch the closure feeds them is the one the
Gauss-Newton matrix is taken on.

References:
    Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex Learning Problems" (slides).
    K. Levenberg (1944). A method for the solution of certain non-linear problems in least squares.
    D. Marquardt (1963). An algorithm for least-squares estimation of nonlinear parameters.
    N. Schraudolph (2002). Fast curvature matrix-vector products for second-order gradient descent.
    J. Nocedal, S. Wright (2006). Numerical Optimization, 2nd ed., section 10.3.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..curvature import GGNOperator, cg
from ..flat import add_, assign, flatten, unflatten
from ..errors import check, non_negative, positive_int_or_none
from .param_groups import all_params, joint_options, per_coordinate
from .closure import check_model_and_loss, evaluate, leave_gradient, loss_at

SOLVERS = ("dense", "cg")


# ---------------------------------------------------------------- the slides' equations
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

    Example:
        >>> lm_damping_update(1.0, 0.9), lm_damping_update(1.0, 0.5), lm_damping_update(1.0, -1.0)
        (0.3333333333333333, 1.0, 2.0)

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


# ---------------------------------------------------------------- shared by the curvature-matrix optimizers
class Solution(NamedTuple):
    """A damped solve: the direction ``d`` and the CG iterations it took (0 for the dense solver)."""

    d: Tensor
    iterations: int


def damped_solve(A, g: Tensor, mu: Tensor, *, solver: str, cg_max_iter: int | None = None,
                 cg_rtol: float = 1e-10) -> Solution:
    r"""The direction :math:`d = -(A + \mathrm{diag}(\mu))^{-1} g` for a curvature operator ``A``.

    ``solver="dense"`` builds ``A.to_dense()`` (one product per parameter: small models) and solves;
    ``"cg"`` runs :func:`~optlab.curvature.cg` on the products :math:`(A + \mathrm{diag}(\mu))v` (needs
    :math:`A + \mathrm{diag}(\mu)` positive definite on the directions CG explores). Call it inside
    ``with A.many_products():`` so that the operator's linearization is shared by every product.

    Example:
        >>> damped_solve(torch.tensor([[2.0, 0.0], [0.0, 4.0]]), torch.tensor([2.0, 4.0]), torch.zeros(2),
        ...              solver="cg").d
        tensor([-1., -1.])
    """
    if solver == "dense":
        M = A.to_dense() if hasattr(A, "to_dense") else A
        return Solution(-torch.linalg.solve(M + torch.diag(mu), g), 0)
    result = cg(lambda v: A @ v + mu * v, -g, rtol=cg_rtol, max_iter=cg_max_iter)
    return Solution(result.x, result.iterations)


def check_solver_options(owner: str, solver, cg_max_iter, cg_rtol) -> None:
    """The linear-solver options of the curvature-matrix optimizers."""
    check(owner, "solver", solver, solver in SOLVERS, f"one of {SOLVERS}")
    positive_int_or_none(owner, "cg_max_iter", cg_max_iter)
    non_negative(owner, "cg_rtol", cg_rtol)


def check_model_params(owner: str, model, loss_fn, param_groups) -> None:
    """``model``/``loss_fn`` are modules and every optimized parameter is one of ``model``'s."""
    check_model_and_loss(owner, model, loss_fn)
    own = {id(p) for p in model.parameters()}
    for i, group in enumerate(param_groups):
        for j, p in enumerate(group["params"]):
            if id(p) not in own:
                raise ValueError(f"{owner}: invalid param_groups[{i}]['params'][{j}]=<tensor of shape "
                                 f"{tuple(p.shape)}, not in model>; expected a parameter of model= (the curvature "
                                 f"is taken through it)")


def gradient(loss: Tensor, params: list[Tensor]) -> Tensor:
    """The flat gradient of the closure's loss (unused parameters: zeros)."""
    return flatten(torch.autograd.grad(loss, params, allow_unused=True), params)


# ---------------------------------------------------------------- the optimizers
class GaussNewton(torch.optim.Optimizer):
    r"""Gauss-Newton: :math:`\theta \leftarrow \theta - \alpha (G + \mu I)^{-1} g` with the (generalized)
    Gauss-Newton matrix :math:`G = J^\top H_\ell J` of ``loss_fn`` on the closure's batch.

    Least squares is ``loss_fn=torch.nn.MSELoss(reduction="sum")``: :math:`G = 2J^\top J`, :math:`g = 2J^\top r`
    (the module docstring relates the scalings to the slides' :math:`\tfrac12\|r\|^2`).

    Args:
        params: parameters or parameter groups (each group's ``lr`` scales its part of the step and its
            ``damping`` is added to its part of the diagonal; ``solver`` and the CG options must be the
            same in every group).
        lr: the step size alpha.
        damping: mu >= 0 (fixed; see :class:`LevenbergMarquardt` for the adaptive one).
        model: the ``nn.Module`` the closure calls.
        loss_fn: the ``nn.Module`` loss the closure calls as ``loss_fn(model(inputs), targets)``.
        solver: ``"dense"`` (``G.to_dense()``, one product per parameter) or ``"cg"`` (CG on matrix-free
            products; needs ``damping > 0`` when G is singular).
        cg_max_iter, cg_rtol: CG's iteration cap (default 10 times the number of parameters) and
            relative tolerance.

    ``step(closure)`` with torch's closure; it returns the closure's loss before the step and leaves its
    gradient in ``p.grad``. The closure's loss must be ``loss_fn(model(inputs), targets)``: a term added
    to it enters the gradient but not :math:`G`. ``state[first param]``: ``step``, ``cg_iterations``.

    Example:
        >>> model = torch.nn.Linear(2, 1).double()
        >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
        >>> y = x @ torch.tensor([[2.0], [-1.0]], dtype=torch.float64) + 0.5
        >>> loss_fn = torch.nn.MSELoss(reduction="sum")
        >>> opt = GaussNewton(model.parameters(), model=model, loss_fn=loss_fn)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> _ = opt.step(closure)     # linear least squares: one undamped step lands on the solution
        >>> [round(v, 6) for v in model.weight.flatten().tolist() + model.bias.tolist()]
        [2.0, -1.0, 0.5]

    Reference: LeCun (slides), "Gauss-Newton approximation of the Hessian"; Nocedal & Wright (2006) 10.3.
    """

    needs = "model"
    _joint = ("solver", "cg_max_iter", "cg_rtol")

    def __init__(self, params, lr: float = 1.0, damping: float = 0.0, *, model: torch.nn.Module,
                 loss_fn: torch.nn.Module, solver: str = "dense", cg_max_iter: int | None = None,
                 cg_rtol: float = 1e-10):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        non_negative(name, "damping", damping)
        check_solver_options(name, solver, cg_max_iter, cg_rtol)
        super().__init__(params, dict(lr=lr, damping=damping, solver=solver, cg_max_iter=cg_max_iter,
                                      cg_rtol=cg_rtol))
        check_model_params(name, model, loss_fn, self.param_groups)
        self.model, self.loss_fn = model, loss_fn

    def _evaluate(self, closure, params):
        """Run the closure: ``(loss, flat gradient, Gauss-Newton operator on the closure's batch)``."""
        ev = evaluate(type(self).__name__, closure, model=self.model, loss_fn=self.loss_fn)
        g = gradient(ev.loss, params)
        return ev.loss.detach(), g, GGNOperator(self.model, self.loss_fn, ev.data, params)

    def step(self, closure=None):
        """One Gauss-Newton step with torch's closure; returns the loss before the step."""
        params = all_params(self.param_groups)
        opts = joint_options(type(self).__name__, self.param_groups, self._joint)
        loss, g, G = self._evaluate(closure, params)
        with G.many_products():
            d, iterations = damped_solve(G, g, per_coordinate(self.param_groups, "damping", g), **opts)
        add_(params, per_coordinate(self.param_groups, "lr", g) * d)
        leave_gradient(params, unflatten(g, params))
        state = self.state[params[0]]
        state["step"] = state.get("step", 0) + 1
        state["cg_iterations"] = iterations
        return loss


class LevenbergMarquardt(GaussNewton):
    r"""Levenberg-Marquardt: Gauss-Newton with the damping mu adapted by the gain ratio rho.

    Each step solves :math:`(G + \mu I) d = -g`, tries :math:`\theta + d`, keeps it if the loss went down
    (:math:`\rho > 0`), and updates mu with :func:`lm_damping_update` (the module docstring).

    Args:
        params: the parameters (one group: one mu adapts for all of them).
        damping: the initial mu > 0.
        model, loss_fn, solver, cg_max_iter, cg_rtol: as in :class:`GaussNewton`.
        drop, boost: the factors applied to mu after a good (rho > 3/4) or poor (rho < 1/4) step.

    ``step(closure)`` runs the closure once with gradients and evaluates the trial point once more
    (:func:`~optlab.optim.closure.loss_at`); it returns the loss before the step. ``state[first param]``
    holds the current ``damping`` (mu), the last ``rho``, ``step`` and ``cg_iterations`` (all in
    ``state_dict``).

    Reference: Levenberg (1944); Marquardt (1963); Nocedal & Wright (2006), section 10.3.
    """

    def __init__(self, params, damping: float = 1e-2, *, model: torch.nn.Module, loss_fn: torch.nn.Module,
                 drop: float = 1 / 3, boost: float = 2.0, solver: str = "dense", cg_max_iter: int | None = None,
                 cg_rtol: float = 1e-10):
        name = type(self).__name__
        number = (int, float)
        check(name, "damping", damping, isinstance(damping, number) and 0 < damping < math.inf, "a finite number > 0")
        check(name, "drop", drop, isinstance(drop, number) and 0 < drop < 1, "a number in (0, 1)")
        check(name, "boost", boost, isinstance(boost, number) and 1 < boost < math.inf, "a finite number > 1")
        check_solver_options(name, solver, cg_max_iter, cg_rtol)
        torch.optim.Optimizer.__init__(self, params, dict(damping=damping, drop=drop, boost=boost, solver=solver,
                                                          cg_max_iter=cg_max_iter, cg_rtol=cg_rtol))
        if len(self.param_groups) != 1:
            raise ValueError(f"{name}: got {len(self.param_groups)} parameter groups; expected exactly 1 "
                             f"(one damping mu adapts for all parameters)")
        check_model_params(name, model, loss_fn, self.param_groups)
        self.model, self.loss_fn = model, loss_fn

    def step(self, closure=None):
        """One LM step (accepted or rejected); returns the loss before the step."""
        group = self.param_groups[0]
        params = group["params"]
        state = self.state[params[0]]
        mu = state.get("damping", group["damping"])
        E, g, G = self._evaluate(closure, params)
        with G.many_products():
            d, iterations = damped_solve(G, g, torch.full_like(g, mu), solver=group["solver"],
                                         cg_max_iter=group["cg_max_iter"], cg_rtol=group["cg_rtol"])
            predicted = -(float(g @ d) + 0.5 * float(d @ (G @ d)))
        theta0 = flatten([p.detach() for p in params])
        add_(params, d)
        E_new = loss_at(type(self).__name__, closure)
        rho = (float(E) - E_new) / predicted if predicted > 0 else -math.inf
        if not rho > 0:
            assign(params, theta0)  # reject: back to where we were
        state.update(damping=lm_damping_update(mu, rho, drop=group["drop"], boost=group["boost"]), rho=rho,
                     step=state.get("step", 0) + 1, cg_iterations=iterations)
        leave_gradient(params, unflatten(g, params))
        return E
