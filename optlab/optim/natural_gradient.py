r"""Natural gradient descent with the Fisher information matrix (true or empirical).

Gradient descent takes the steepest step when distance is measured in orthonormal coordinates,
:math:`\theta_{t+1} = \arg\min_\theta \langle \theta, f' \rangle + \frac{1}{2\alpha}\|\theta - \theta_t\|^2`.
Measuring it instead by how much the model's *predictive distribution* moves (the KL divergence, whose
metric tensor is the Fisher matrix F) gives the natural gradient (Misra, "Natural gradients"):

.. math::
    f'_N = F_\theta^{-1} f',\qquad \theta_{t+1} = \theta_t - \alpha\,(F + \lambda I)^{-1} \nabla E,

.. math::
    F = \frac1N \sum_n \mathbb E_{\hat y \sim p_\theta(\cdot|x_n)}\big[\nabla \ell_n(\hat y)\,\nabla \ell_n(\hat y)^\top\big]
      = \frac1N \sum_n J_n^\top\, F_{\text{out},n}\, J_n ,

with :math:`\ell_n = -\log p_\theta(y|x_n)` the per-sample loss, :math:`J_n` the Jacobian of the
network's output for sample n and :math:`F_{\text{out},n}` the Fisher of the output distribution. The
likelihood is the one ``loss_fn`` is the negative log of: ``CrossEntropyLoss`` a categorical
(:math:`F_{\text{out},n} = \mathrm{diag}(p_n) - p_n p_n^\top`), ``MSELoss`` a Gaussian (then F is the
Gauss-Newton matrix), ``BCEWithLogitsLoss`` a Bernoulli. The expectation over :math:`\hat y` is computed
exactly, not sampled. The **empirical Fisher** (``kind="empirical"``) puts the observed targets in its
place, :math:`\tilde F = \frac1N\sum_n g_n g_n^\top` with the per-sample gradients :math:`g_n = \nabla\ell_n(y_n)`;
cheaper to think about, but not the same matrix (Kunstner et al., 2019, show where it fails).

Both are :class:`~optlab.curvature.FisherOperator` (one vocabulary, ``kind=``, and one scaling: the
average over samples, as the mean loss, so that the true Fisher equals the Gauss-Newton matrix of
:math:`E`). The natural gradient is invariant to smooth reparametrizations (to first order), e.g. to
rescaling a linear model's inputs. :mod:`optlab.optim.prong` avoids the inverse by whitening instead.

References:
    S. Amari (1998). Natural gradient works efficiently in learning. Neural Computation.
    J. Martens (2020). New insights and perspectives on the natural gradient method. JMLR.
    F. Kunstner, L. Balles, P. Hennig (2019). Limitations of the empirical Fisher approximation. NeurIPS.
    I. Misra, "Optimization for Deep Networks" (slides), "Natural gradients".
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..curvature import FisherOperator
from ..curvature.fisher import KINDS, check_fisher_loss
from ..flat import add_, unflatten
from ..errors import check, non_negative
from .closure import evaluate, leave_gradient
from .gauss_newton import check_model_params, check_solver_options, damped_solve, gradient
from .param_groups import all_params, joint_options, per_coordinate


def natural_gradient_direction(g: Tensor, F: Tensor, lambda_: Tensor | float = 0.0) -> Tensor:
    r"""The natural-gradient direction :math:`-(F + \lambda I)^{-1} g` (``lambda_`` may be a vector).

    Example:
        >>> F = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
        >>> natural_gradient_direction(torch.tensor([2.0, 1.0]), F)
        tensor([-1., -2.])

    Args:
        g: the gradient; F: the Fisher matrix.
        lambda_: the damping, a number or one value per coordinate.

    Reference: Amari (1998). Natural gradient works efficiently in learning.
    """
    lam = torch.as_tensor(lambda_, dtype=F.dtype, device=F.device)
    return -torch.linalg.solve(F + torch.diag(lam.expand(g.shape)), g)


def true_fisher(model: torch.nn.Module, loss_fn, data, params=None) -> Tensor:
    """The dense true Fisher, ``FisherOperator(model, loss_fn, data, params, kind="true").to_dense()``
    (small models only)."""
    return FisherOperator(model, loss_fn, data, params, kind="true").to_dense()


def empirical_fisher(model: torch.nn.Module, loss_fn, data, params=None) -> Tensor:
    """The dense empirical Fisher, ``FisherOperator(model, loss_fn, data, params, kind="empirical").to_dense()``
    (small models only)."""
    return FisherOperator(model, loss_fn, data, params, kind="empirical").to_dense()


class NaturalGradient(torch.optim.Optimizer):
    r"""Natural gradient descent :math:`\theta \leftarrow \theta - \alpha (F + \lambda I)^{-1}\nabla E`.

    Args:
        params: parameters or parameter groups (each group's ``lr`` scales its part of the step and its
            ``damping`` is added to its part of F's diagonal; ``kind``, ``solver`` and the CG options
            must be the same in every group).
        lr: the step size alpha.
        damping: lambda >= 0 (F is singular as soon as there are more parameters than N times C).
        model: the ``nn.Module`` the closure calls.
        loss_fn: the mean-reduced ``nn.Module`` loss the closure calls as ``loss_fn(model(inputs), targets)``;
            it implies the likelihood (``CrossEntropyLoss``: categorical, ``MSELoss``: Gaussian,
            ``BCEWithLogitsLoss``: Bernoulli; any mean-reduced loss for ``kind="empirical"``).
        kind: ``"true"`` (expectation over the model's own predictions, exact) or ``"empirical"``
            (outer products of the per-sample gradients at the observed targets).
        solver: ``"dense"`` (``F.to_dense()``, small models) or ``"cg"`` (CG on Fisher-vector products).
        cg_max_iter, cg_rtol: CG's iteration cap and relative tolerance.

    ``step(closure)`` with torch's closure; the Fisher is taken on the closure's batch. It returns the
    loss before the step and leaves its gradient in ``p.grad``. ``state[first param]``: ``step``,
    ``cg_iterations``.

    Example:
        >>> model = torch.nn.Linear(2, 3).double()
        >>> x, y = torch.randn(20, 2, dtype=torch.float64), torch.randint(0, 3, (20,))
        >>> loss_fn = torch.nn.CrossEntropyLoss()
        >>> opt = NaturalGradient(model.parameters(), lr=0.5, damping=1e-2, model=model, loss_fn=loss_fn)
        >>> def closure():
        ...     opt.zero_grad()
        ...     loss = loss_fn(model(x), y)
        ...     loss.backward()
        ...     return loss
        >>> losses = [float(opt.step(closure)) for _ in range(5)]
        >>> losses[-1] < losses[0]
        True

    Reference: Amari (1998). Natural gradient works efficiently in learning; Martens (2020).
    """

    needs = "model"
    _joint = ("kind", "solver", "cg_max_iter", "cg_rtol")

    def __init__(self, params, lr: float = 1.0, damping: float = 1e-3, *, model: torch.nn.Module,
                 loss_fn: torch.nn.Module, kind: str = "true", solver: str = "dense", cg_max_iter: int | None = None,
                 cg_rtol: float = 1e-10):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        non_negative(name, "damping", damping)
        check(name, "kind", kind, kind in KINDS, f"one of {KINDS}")
        check_solver_options(name, solver, cg_max_iter, cg_rtol)
        super().__init__(params, dict(lr=lr, damping=damping, kind=kind, solver=solver, cg_max_iter=cg_max_iter,
                                      cg_rtol=cg_rtol))
        check_model_params(name, model, loss_fn, self.param_groups)
        check_fisher_loss(name, loss_fn, kind)
        self.model, self.loss_fn = model, loss_fn

    def step(self, closure=None):
        """One natural-gradient step with torch's closure; returns the loss before it."""
        name = type(self).__name__
        params = all_params(self.param_groups)
        opts = joint_options(name, self.param_groups, self._joint)
        kind = opts.pop("kind")
        check_fisher_loss(name, self.loss_fn, kind)
        ev = evaluate(name, closure, model=self.model, loss_fn=self.loss_fn)
        g = gradient(ev.loss, params)
        F = FisherOperator(self.model, self.loss_fn, ev.data, params, kind=kind)
        with F.many_products():
            d, iterations = damped_solve(F, g, per_coordinate(self.param_groups, "damping", g), **opts)
        add_(params, per_coordinate(self.param_groups, "lr", g) * d)
        leave_gradient(params, unflatten(g, params))
        state = self.state[params[0]]
        state["step"] = state.get("step", 0) + 1
        state["cg_iterations"] = iterations
        return ev.loss.detach()
