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

from ._data import Batches, batch_loss, flatten, num_params, preserved_buffers, resolve_params, restored_params, unflatten
from .power import random_unit_vector


class StochasticPowerResult(NamedTuple):
    """``value`` = :math:`\\|\\Psi\\|` (estimate of :math:`\\lambda_{\\max}`), unit ``vector``, and ``history`` of
    :math:`\\|\\Psi\\|` after every pattern."""

    value: float
    vector: Tensor
    history: Tensor


def running_average_step(psi: Tensor, hpsi: Tensor, gamma: float) -> Tensor:
    r""":math:`\Psi \leftarrow (1-\gamma)\Psi + \gamma\, \widehat{H\Psi}` (``hpsi`` is the finite-difference estimate)."""
    return (1 - gamma) * psi + gamma * hpsi


def _sample_grad(model, loss_fn, x, y, params) -> Tensor:
    with torch.enable_grad():
        return flatten(torch.autograd.grad(batch_loss(model, loss_fn, x, y), params, allow_unused=True), params)


def stochastic_top_eigenvalue(model: torch.nn.Module, loss_fn, data, *, gamma: float = 0.01,
                              alpha: float | None = None, num_passes: int = 1, shuffle: bool = True,
                              seed: int = 0, params=None) -> StochasticPowerResult:
    r"""LeCun, Simard & Pearlmutter's on-line estimate of :math:`\lambda_{\max}` of the average Hessian.

    .. math::

        \Psi \leftarrow (1-\gamma)\Psi + \gamma\frac{1}{\alpha}\Big(\nabla E^p\big(\omega + \alpha\tfrac{\Psi}{\|\Psi\|}\big)
            - \nabla E^p(\omega)\Big), \qquad \lambda_{\max} \approx \|\Psi\|

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
    if not isinstance(gamma, (int, float)) or isinstance(gamma, bool) or not 0 < gamma <= 1:
        raise ValueError(f"gamma={gamma!r}; expected a number in (0, 1]")
    if alpha is not None and (not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not alpha > 0
                              or alpha == float("inf")):
        raise ValueError(f"alpha={alpha!r}; expected a finite number > 0 (or None for the default)")
    if not isinstance(num_passes, int) or isinstance(num_passes, bool) or num_passes < 1:
        raise ValueError(f"num_passes={num_passes!r}; expected an integer >= 1")
    batches = Batches(data)
    params = resolve_params(model, params)
    p0 = params[0]
    if alpha is None:
        theta_norm = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in params)))
        alpha = torch.finfo(p0.dtype).eps ** 0.5 * (1 + theta_norm)
    samples = list(batches.samples())
    gen = torch.Generator().manual_seed(int(seed))
    psi = random_unit_vector(num_params(params), p0.dtype, p0.device, seed)
    history = []
    with preserved_buffers(model), restored_params(params):
        for _ in range(num_passes):
            order = torch.randperm(len(samples), generator=gen).tolist() if shuffle else range(len(samples))
            for i in order:
                x, y = samples[i]
                G = _sample_grad(model, loss_fn, x, y, params)
                step = unflatten(alpha * psi / psi.norm(), params)
                with torch.no_grad():
                    for p, s in zip(params, step):
                        p.add_(s)
                G_prime = _sample_grad(model, loss_fn, x, y, params)
                with torch.no_grad():
                    for p, s in zip(params, step):
                        p.sub_(s)
                psi = running_average_step(psi, (G_prime - G) / alpha, gamma)
                history.append(float(psi.norm()))
    value = float(psi.norm())
    return StochasticPowerResult(value, psi / value, torch.tensor(history, dtype=torch.float64))
