r"""Directions for 2-D slices: random with filter normalization, or the Hessian's top eigenvectors.

* :func:`random_direction` (Li et al. 2018): draw :math:`d \sim \mathcal N(0, I)` shaped like the
  parameters, then rescale each filter (each slice along the first axis of a weight tensor: a row of a
  linear layer, an output channel of a convolution) to the norm of the same filter of :math:`\theta`:
  :math:`d_{i,j} \leftarrow \frac{d_{i,j}}{\|d_{i,j}\|}\|\theta_{i,j}\|`. One-dimensional parameters
  (biases, BatchNorm scales and shifts) get 0, as Li et al. recommend, so the slice keeps them fixed.
* :func:`hessian_directions`: the top-``k`` eigenvectors of the Hessian at the model's parameters,
  from :func:`optlab.curvature.top_eigenvalues` on a :class:`optlab.curvature.HessianOperator`
  (computed on a copy of the model, which is never modified).

References: H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein (2018), "Visualizing the loss landscape of
neural nets", NeurIPS; I. Goodfellow, deck 004, "2D Subspace Visualization".
"""

from __future__ import annotations

import copy

import torch

from ..curvature import HessianOperator, top_eigenvalues
from ..errors import boolean, check_type, non_negative_int


def random_direction(model: torch.nn.Module, seed: int = 0, filter_normalize: bool = True) -> torch.Tensor:
    r"""A seeded random flat direction, filter-normalized by default (see the module docstring).

    With ``filter_normalize=False`` the raw Gaussian direction is returned (all parameters included).
    """
    check_type("random_direction", "model", model, isinstance(model, torch.nn.Module), "a torch.nn.Module")
    non_negative_int("random_direction", "seed", seed)
    boolean("random_direction", "filter_normalize", filter_normalize)
    g = torch.Generator().manual_seed(seed)
    parts = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        d = torch.randn(p.shape, generator=g, dtype=torch.float64)
        if filter_normalize:
            if p.dim() <= 1:
                d = torch.zeros_like(d)
            else:
                w = p.detach().double()
                dn = d.reshape(d.shape[0], -1).norm(dim=1)
                wn = w.reshape(w.shape[0], -1).norm(dim=1)
                scale = torch.where(dn > 0, wn / dn, torch.zeros_like(dn))
                d = d * scale.reshape(-1, *([1] * (d.dim() - 1)))
        parts.append(d.reshape(-1))
    return torch.cat(parts)


def hessian_directions(model: torch.nn.Module, loss_fn, data, k: int = 2, **power_kwargs):
    r"""The top-``k`` (by magnitude) Hessian eigenpairs at the model's parameters: ``(values (k,), vectors (n, k))``.

    Uses :class:`optlab.curvature.HessianOperator` and :func:`optlab.curvature.top_eigenvalues` (power
    method with deflation); ``power_kwargs`` go to the latter. The model is copied first, so its
    parameters, mode and BatchNorm statistics are unchanged (the curvature tools use the mode as given).
    """
    twin = copy.deepcopy(model)
    pairs = top_eigenvalues(HessianOperator(twin, loss_fn, data), k, **power_kwargs)
    return pairs.values, pairs.vectors
