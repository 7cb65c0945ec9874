r"""Hutchinson's stochastic estimate of a matrix diagonal (Bekas, Kokiopoulou & Saad 2007).

For random vectors :math:`v` with independent Rademacher (:math:`\pm 1`) entries,
:math:`\mathbb{E}[v \odot Hv] = \operatorname{diag}(H)`, so

.. math::

    \operatorname{diag}(H) \approx \frac{1}{S}\sum_{s=1}^S v_s \odot (H v_s)

an unbiased estimate whose error shrinks as :math:`1/\sqrt{S}` (it is exact for a diagonal matrix).

References:
    Hutchinson, M. F. (1990). A stochastic estimator of the trace of the influence matrix for
    Laplacian smoothing splines. Communications in Statistics - Simulation and Computation.
    Bekas, C., Kokiopoulou, E., Saad, Y. (2007). An estimator for the diagonal of a matrix. Applied
    Numerical Mathematics 57.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import positive_int
from .._eigensolver import check_seed
from .._operator import as_operator


def rademacher(n: int, k: int, *, dtype, device, seed: int) -> Tensor:
    """``n x k`` matrix of independent +-1 entries, seeded."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.randint(0, 2, (n, k), generator=gen) * 2 - 1).to(dtype=dtype, device=device)


def hutchinson_diagonal(op_or_tensor, *, num_samples: int = 100, seed: int = 0, chunk: int = 64) -> Tensor:
    r"""Hutchinson's estimate :math:`\frac1S\sum_s v_s \odot Hv_s` of the diagonal of an operator or matrix.

    Args:
        op_or_tensor: a curvature operator or a plain symmetric matrix.
        num_samples: number :math:`S` of Rademacher probe vectors.
        seed: seed of the probes.
        chunk: probes multiplied at once (``op @ V``).

    Reference: Bekas, C., Kokiopoulou, E., Saad, Y. (2007). An estimator for the diagonal of a matrix.
    Applied Numerical Mathematics 57.
    """
    owner = "hutchinson_diagonal"
    positive_int(owner, "num_samples", num_samples)
    positive_int(owner, "chunk", chunk)
    check_seed(owner, seed)
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    n = op.shape[0]
    V = rademacher(n, num_samples, dtype=op.dtype, device=op.device, seed=seed)
    total = torch.zeros(n, dtype=op.dtype, device=op.device)
    with torch.no_grad():
        for start in range(0, num_samples, chunk):
            Vc = V[:, start:start + chunk]
            total += (Vc * (op @ Vc)).sum(1)
    return total / num_samples
