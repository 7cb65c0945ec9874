r"""Finite-difference curvature: the slides' recipes (LeCun, "Computing the Hessian by finite difference").

Hessian-vector product (step :math:`\alpha` along :math:`\Psi`)::

    1- compute gradient;  2- add alpha * Psi to the parameter vector;
    3- compute gradient with perturbed parameters;  4- subtract 1 from 3, divide by alpha

.. math::

    H\Psi \approx \frac{1}{\alpha}\Big(\nabla E(\omega + \alpha\Psi) - \nabla E(\omega)\Big)

Row :math:`k` of the Hessian is the same with :math:`\Psi = \phi_k` (the k-th unit vector) and step
:math:`\delta`; "due to numerical errors, the resulting Hessian may not be perfectly symmetric. It
should be symmetrized": :math:`H \leftarrow (H + H^\top)/2`.

The forward difference has error :math:`O(\alpha)` from truncation plus :math:`O(\epsilon/\alpha)` from
rounding, so the default step is :math:`\alpha = \sqrt{\epsilon}\,(1 + \|\omega\|)/\|\Psi\|` with
:math:`\epsilon` the machine epsilon of the parameters' dtype. ``scheme="central"`` (not on the slide)
uses :math:`(\nabla E(\omega+\alpha\Psi) - \nabla E(\omega-\alpha\Psi))/2\alpha`, error :math:`O(\alpha^2)`,
with :math:`\alpha = \epsilon^{1/3}(1+\|\omega\|)/\|\Psi\|`.

The parameters are moved in place and always put back, even if the loss raises.

Reference: LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
on-line estimation of the Hessian's eigenvectors. NIPS 5.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import boolean, one_of, positive
from ..flat import add_
from ._data import Batches, check_vector, gradient, num_params, resolve_params, restored_params

SCHEMES = ("forward", "central")


def default_step(dtype: torch.dtype, scheme: str = "forward") -> float:
    r"""Relative finite-difference step for ``dtype``: :math:`\sqrt{\epsilon}` (forward) or :math:`\epsilon^{1/3}` (central)."""
    one_of("default_step", "scheme", scheme, SCHEMES)
    eps = torch.finfo(dtype).eps
    return eps ** 0.5 if scheme == "forward" else eps ** (1 / 3)


def parameter_norm(params) -> float:
    r""":math:`\|\omega\|`, the norm of all of ``params`` as one vector (what the default steps scale with)."""
    return float(torch.sqrt(sum((p.detach() ** 2).sum() for p in params)))


def gradient_difference(model, loss_fn, batches: Batches, params, v: Tensor, alpha: float, scheme: str = "forward",
                        g0: Tensor | None = None) -> Tensor:
    r"""The slides' steps 1-4: :math:`(\nabla E(\omega + \alpha v) - \nabla E(\omega))/\alpha` (``"forward"``;
    ``g0`` is :math:`\nabla E(\omega)` if already known) or :math:`(\nabla E(\omega + \alpha v) -
    \nabla E(\omega - \alpha v))/2\alpha` (``"central"``). The parameters are restored exactly afterwards."""
    with restored_params(params):
        if scheme == "forward":
            g0 = gradient(model, loss_fn, batches, params) if g0 is None else g0
            add_(params, v, alpha)
            return (gradient(model, loss_fn, batches, params) - g0) / alpha
        add_(params, v, alpha)
        gp = gradient(model, loss_fn, batches, params)
        add_(params, v, -2 * alpha)
        return (gp - gradient(model, loss_fn, batches, params)) / (2 * alpha)


def finite_difference_hvp(model: torch.nn.Module, loss_fn, data, v: Tensor, *, params=None,
                          alpha: float | None = None, scheme: str = "forward") -> Tensor:
    r"""Finite-difference Hessian-vector product, the slides' recipe.

    .. math::

        H\Psi \approx \frac{1}{\alpha}\Big(\nabla E(\omega + \alpha\Psi) - \nabla E(\omega)\Big)

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`.
        v: the flat vector :math:`\Psi`.
        alpha: the step (default :math:`\sqrt{\epsilon}(1+\|\omega\|)/\|\Psi\|`, see the module docstring).
        scheme: ``"forward"`` (the slides) or ``"central"``.

    Returns:
        Flat tensor approximating :math:`H\Psi`. The parameters are restored exactly, even on error.

    Reference: LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
    on-line estimation of the Hessian's eigenvectors. NIPS 5.
    """
    owner = "finite_difference_hvp"
    positive(owner, "alpha", alpha, none_ok=True)
    one_of(owner, "scheme", scheme, SCHEMES)
    batches = Batches(data, owner)
    params = resolve_params(model, params, owner)
    v = check_vector(v, num_params(params), params[0], owner=owner)
    vnorm = float(v.norm())
    if vnorm == 0:  # H 0 = 0: no step to take
        return torch.zeros_like(v)
    if alpha is None:
        alpha = default_step(params[0].dtype, scheme) * (1 + parameter_norm(params)) / vnorm
    return gradient_difference(model, loss_fn, batches, params, v, alpha, scheme)


def finite_difference_hessian(model: torch.nn.Module, loss_fn, data, *, params=None, delta: float | None = None,
                              scheme: str = "forward", symmetrize: bool = True) -> Tensor:
    r"""Dense Hessian by finite differences of the gradient, row by row, symmetrized (the slides' recipe).

    .. math::

        (\text{line } k \text{ of } H) \approx \frac{\nabla E(\omega + \delta\phi_k) - \nabla E(\omega)}{\delta},
        \qquad H \leftarrow \tfrac12 (H + H^\top)

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`.
        delta: the step (default :math:`\sqrt{\epsilon}(1+\|\omega\|)`).
        scheme: ``"forward"`` (the slides: one extra gradient per row) or ``"central"``.
        symmetrize: return :math:`(H+H^\top)/2` (the slides' advice); ``False`` shows the raw rows.

    Reference: LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
    on-line estimation of the Hessian's eigenvectors. NIPS 5.
    """
    owner = "finite_difference_hessian"
    positive(owner, "delta", delta, none_ok=True)
    one_of(owner, "scheme", scheme, SCHEMES)
    boolean(owner, "symmetrize", symmetrize)
    batches = Batches(data, owner)
    params = resolve_params(model, params, owner)
    P = num_params(params)
    if delta is None:
        delta = default_step(params[0].dtype, scheme) * (1 + parameter_norm(params))
    g0 = gradient(model, loss_fn, batches, params) if scheme == "forward" else None
    eye = torch.eye(P, dtype=params[0].dtype, device=params[0].device)
    H = torch.stack([gradient_difference(model, loss_fn, batches, params, eye[k], delta, scheme, g0) for k in range(P)])
    return (H + H.T) / 2 if symmetrize else H
