r"""The exact diagonal of the Hessian, one Hessian-vector product per parameter (small models only).

.. math::

    H_{ii} = \phi_i^\top H \phi_i, \qquad \phi_i = (0, \dots, 1, \dots, 0)

Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import positive_int
from .._operator import as_operator


def exact_diagonal(op_or_tensor, *, chunk: int = 256) -> Tensor:
    r"""The diagonal :math:`H_{ii} = \phi_i^\top H \phi_i` of a curvature operator or matrix, ``chunk`` columns at a time.

    Reference: Pearlmutter, B. A. (1994). Fast exact multiplication by the Hessian. Neural Computation.
    """
    positive_int("exact_diagonal", "chunk", chunk)
    op = as_operator(op_or_tensor, "op_or_tensor", "exact_diagonal")
    n = op.shape[0]
    out = torch.empty(n, dtype=op.dtype, device=op.device)
    with torch.no_grad():
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            E = torch.zeros(n, stop - start, dtype=op.dtype, device=op.device)
            E[torch.arange(start, stop), torch.arange(stop - start)] = 1
            out[start:stop] = (op @ E)[torch.arange(start, stop), torch.arange(stop - start)]
    return out
