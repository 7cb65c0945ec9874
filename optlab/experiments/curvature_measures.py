r"""Lecture 05, measuring curvature: the few measurements the lecture makes with :mod:`optlab.curvature`.

* :func:`flop_count`: the cost of a computation in floating-point operations (torch's
  ``FlopCounterMode``: matrix products and convolutions), a deterministic stand-in for time, so that
  "costs about one backprop" is a number a test can assert;
* :func:`fd_hvp_errors`: the relative error of the slides' finite-difference Hessian-vector product
  against Pearlmutter's exact one, for a range of steps :math:`\alpha`;
* :func:`finite_difference_power`: the slides' batch power method
  :math:`\Psi \leftarrow \frac1\alpha(\nabla E(\omega + \alpha\Psi/\|\Psi\|) - \nabla E(\omega))`, with its
  history of :math:`\|\Psi\|`;
* :func:`relative_change`: how far each layer's weights moved during training, relative to their size
  (which layer learns slowly).

References:
    Y. LeCun, P. Simard, B. Pearlmutter (1993). Automatic learning rate maximization by on-line estimation
    of the Hessian's eigenvectors. NIPS 5.
    B. A. Pearlmutter (1994). Fast exact multiplication by the Hessian. Neural Computation 6(1).
    Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998). Efficient BackProp, sections 6-9.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..curvature import finite_difference_hvp, hvp, layer_parameters
from ..errors import check, check_type, int_in_range


def flop_count(fn: Callable[[], object]) -> int:
    """Floating-point operations ``fn()`` performs in matrix products and convolutions (torch's
    ``FlopCounterMode``; element-wise operations are not counted).

    Example:
        >>> a = torch.ones(3, 4, dtype=torch.float64)
        >>> flop_count(lambda: a @ a.T)   # 3 x 3 outputs, 4 multiply-adds each
        72
    """
    from torch.utils.flop_counter import FlopCounterMode

    check("flop_count", "fn", fn, callable(fn), "a function of no arguments")
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def fd_hvp_errors(model: nn.Module, loss_fn, data, v: Tensor, alphas: Sequence[float]) -> np.ndarray:
    r"""Relative errors :math:`\|\widehat{Hv}_\alpha - Hv\| / \|Hv\|` of the finite-difference product
    (:func:`~optlab.curvature.finite_difference_hvp`, forward scheme) for each step of ``alphas``, against
    the exact product (:func:`~optlab.curvature.hvp`). ``v`` is normalized first, so :math:`\alpha` is the
    length of the step in weight space.
    """
    check("fd_hvp_errors", "alphas", alphas, isinstance(alphas, (list, tuple)) and len(alphas) > 0
          and all(isinstance(a, (int, float)) and a > 0 for a in alphas), "a non-empty list of positive steps")
    check_type("fd_hvp_errors", "v", v, isinstance(v, Tensor), "a flat tensor")
    v = v / v.norm()
    exact = hvp(model, loss_fn, data, v)
    return np.array([float((finite_difference_hvp(model, loss_fn, data, v, alpha=a) - exact).norm() / exact.norm())
                     for a in alphas])


def finite_difference_power(model: nn.Module, loss_fn, data, num_iter: int = 30, *, alpha: float | None = None,
                            seed: int = 0) -> np.ndarray:
    r"""The slides' power method with finite-difference products; returns :math:`\|\Psi_k\|`, k = 1..num_iter.

    .. math::

        \Psi \leftarrow \frac{1}{\alpha}\Big(\nabla E\big(\omega + \alpha\tfrac{\Psi}{\|\Psi\|}\big) - \nabla E(\omega)\Big)

    :math:`\|\Psi\|` converges to the eigenvalue of largest magnitude (one iteration: two gradients, i.e.
    "2 fprop and 2 bprop per pattern"). The library's :func:`~optlab.curvature.top_eigenvalue` does the
    same with exact products and a stopping rule; this is the slide's loop, kept for its history.

    Example:
        >>> net = nn.Linear(2, 1, bias=False).double()
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
        >>> mse = lambda out, t: 0.5 * ((out - t) ** 2).sum()
        >>> float(finite_difference_power(net, mse, (x, torch.zeros(2, 1, dtype=torch.float64)), 20)[-1].round(6))
        4.0
    """
    int_in_range("finite_difference_power", "num_iter", num_iter, 1)
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(seed)
    psi = torch.randn(sum(p.numel() for p in params), generator=gen, dtype=torch.float64).to(params[0])
    history = []
    for _ in range(num_iter):
        psi = finite_difference_hvp(model, loss_fn, data, psi / psi.norm(), alpha=alpha)
        history.append(float(psi.norm()))
    return np.array(history)


def relative_change(before: dict[str, list[Tensor]], model: nn.Module) -> dict[str, float]:
    r"""For each layer (as :func:`~optlab.curvature.layer_parameters` names them),
    :math:`\|\omega_l - \omega_l^{(0)}\| / \|\omega_l^{(0)}\|` between the saved ``before`` (a
    ``layer_parameters`` of a copy, detached) and the model now."""
    now = layer_parameters(model)
    check("relative_change", "before", before, isinstance(before, dict) and set(before) == set(now),
          f"a dict with the model's layers {sorted(now)}")
    out = {}
    for name, params in now.items():
        old = torch.cat([p.detach().flatten() for p in before[name]])
        new = torch.cat([p.detach().flatten() for p in params])
        out[name] = float((new - old).norm() / old.norm())
    return out


def snapshot(model: nn.Module) -> dict[str, list[Tensor]]:
    """A detached copy of :func:`~optlab.curvature.layer_parameters` (for :func:`relative_change`)."""
    return {name: [p.detach().clone() for p in ps] for name, ps in layer_parameters(model).items()}
