r"""The stochastic power method: :math:`\lambda_{\max}` of the average Hessian on-line (LeCun, Simard & Pearlmutter 1993).

The slides' recipe ("Recipe to compute the maximum learning rate for SGD"):

1. pick an initial eigenvector estimate :math:`\Psi` at random;
2. present a pattern :math:`p`, forward and backward prop, save the gradient :math:`G = \nabla E^p(\omega)`;
3. add :math:`\alpha\,\Psi/\|\Psi\|` to the weights;
4. forward and backward prop with the perturbed weights, save :math:`G' = \nabla E^p(\omega + \alpha\Psi/\|\Psi\|)`;
5. update the running average of the eigenvector with :math:`(G' - G)/\alpha`:

.. math::

    \Psi \leftarrow (1-\gamma)\,\Psi + \gamma\,\frac{1}{\alpha}\Big(\nabla E^p\big(\omega + \alpha\tfrac{\Psi}{\|\Psi\|}\big)
        - \nabla E^p(\omega)\Big)

6. repeat until stable; :math:`\|\Psi\| \to \lambda_{\max}` of the *average* Hessian, and "the optimal
   learning rate is :math:`1/\|\Psi\|`" (:func:`~optlab.curvature.optimal_learning_rate`).

:math:`\gamma` trades fluctuations for speed (the window is about :math:`1/\gamma` patterns);
:math:`\alpha` is the finite-difference step. Like the batch power method, this finds the eigenvalue
of largest magnitude; near a minimum that is :math:`\lambda_{\max}`.

Reference: LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
on-line estimation of the Hessian's eigenvectors. NIPS 5.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import boolean, in_interval, positive, positive_int
from ._data import Batches, num_params, preserved_buffers, resolve_params
from ._eigensolver import check_seed, random_unit_vector
from .finite_difference import default_step, gradient_difference, parameter_norm


class StochasticPowerResult(NamedTuple):
    """``value`` = :math:`\\|\\Psi\\|` (estimate of :math:`\\lambda_{\\max}`), unit ``vector``, and ``history`` of
    :math:`\\|\\Psi\\|` after every pattern."""

    value: float
    vector: Tensor
    history: Tensor


def running_average_step(psi: Tensor, hpsi: Tensor, gamma: float) -> Tensor:
    r""":math:`\Psi \leftarrow (1-\gamma)\Psi + \gamma\, \widehat{H\Psi}` (``hpsi`` is the finite-difference estimate)."""
    return (1 - gamma) * psi + gamma * hpsi


def stochastic_top_eigenvalue(model: torch.nn.Module, loss_fn, data, *, gamma: float = 0.01,
                              alpha: float | None = None, num_passes: int = 1, shuffle: bool = True,
                              seed: int = 0, params=None) -> StochasticPowerResult:
    r"""LeCun, Simard & Pearlmutter's on-line estimate of :math:`\lambda_{\max}` of the average Hessian.

    .. math::

        \Psi \leftarrow (1-\gamma)\Psi + \gamma\frac{1}{\alpha}\Big(\nabla E^p\big(\omega + \alpha\tfrac{\Psi}{\|\Psi\|}\big)
            - \nabla E^p(\omega)\Big), \qquad \lambda_{\max} \approx \|\Psi\|

    It shares with the batch power method (:func:`~optlab.curvature.top_eigenvalue`) the seeded random
    start :math:`\Psi_0`, and with :func:`~optlab.curvature.finite_difference_hvp` the product
    :math:`\widehat{H\Psi}` (steps 2-4 of the recipe, on one pattern) and its default step.

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`; patterns are
            taken one at a time from ``data`` (``loss_fn`` on a batch of one).
        gamma: running-average constant :math:`\gamma \in (0, 1]`.
        alpha: finite-difference step :math:`\alpha` (default :math:`\sqrt{\epsilon}(1+\|\omega\|)` for the
            parameters' dtype).
        num_passes: passes over the data.
        shuffle: present the patterns in a random (seeded) order each pass.
        seed: seed of the initial :math:`\Psi` and of the order.

    Returns:
        ``StochasticPowerResult(value, vector, history)``. The parameters are restored exactly.

    Reference: LeCun, Y., Simard, P. Y., Pearlmutter, B. (1993). Automatic learning rate maximization by
    on-line estimation of the Hessian's eigenvectors. NIPS 5.
    """
    owner = "stochastic_top_eigenvalue"
    in_interval(owner, "gamma", gamma, 0, 1, open_low=True)
    positive(owner, "alpha", alpha, none_ok=True)
    positive_int(owner, "num_passes", num_passes)
    boolean(owner, "shuffle", shuffle)
    check_seed(owner, seed)
    batches = Batches(data, owner)
    params = resolve_params(model, params, owner)
    p0 = params[0]
    if alpha is None:
        alpha = default_step(p0.dtype) * (1 + parameter_norm(params))
    samples = [Batches(pattern, owner) for pattern in batches.samples()]
    gen = torch.Generator().manual_seed(seed)
    psi = random_unit_vector(num_params(params), p0.dtype, p0.device, seed)
    history = []
    with preserved_buffers(model):
        for _ in range(num_passes):
            order = torch.randperm(len(samples), generator=gen).tolist() if shuffle else range(len(samples))
            for i in order:
                hpsi = gradient_difference(model, loss_fn, samples[i], params, psi / psi.norm(), alpha)
                psi = running_average_step(psi, hpsi, gamma)
                history.append(float(psi.norm()))
    value = float(psi.norm())
    return StochasticPowerResult(value, psi / value, torch.tensor(history, dtype=torch.float64))
