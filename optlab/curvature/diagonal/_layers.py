r"""What the backpropagated diagonals (Becker-LeCun, exact Gauss-Newton) start from and end with: the
loss's derivatives in output space (per entry, or as a factor of the per-sample Hessian blocks), and the
per-parameter diagonals flattened in the order of the parameters.

Running the model's layers one by one is :mod:`optlab.curvature._sequential`, shared with the R-pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import data_error
from ...flat import flatten
from .._data import scalar_loss
from .._sequential import mean_squared_error, plain_cross_entropy


def output_derivatives(loss_fn, out: Tensor, y: Tensor, weight: float, *, first: bool):
    r"""Per-entry :math:`\partial E/\partial f` (if ``first``) and :math:`\partial^2 E/\partial f^2` (the diagonal of the
    per-sample output Hessian blocks) of ``weight * loss_fn(out, y)``.

    Closed forms for mean-reduced ``MSELoss`` and ``CrossEntropyLoss`` (class-index targets); any
    other loss by one Hessian-vector product per output entry of a sample, which assumes the loss is
    a sum over samples (true of torch's losses).
    """
    N = out.shape[0]
    if mean_squared_error(loss_fn, out, y):
        c = 2.0 * weight / out.numel()
        return (c * (out - y) if first else None), torch.full_like(out, c)
    if plain_cross_entropy(loss_fn, out, y):
        p = torch.softmax(out, dim=1)
        d1 = None
        if first:
            d1 = p.clone()
            d1[torch.arange(N), y] -= 1
            d1 *= weight / N
        return d1, p * (1 - p) * (weight / N)
    f = out.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = weight * scalar_loss(loss_fn(f, y))
        (g,) = torch.autograd.grad(loss, f, create_graph=True)
        per = f[0].numel()
        d2 = torch.zeros_like(f).reshape(N, per)
        for c in range(per):
            e = torch.zeros_like(f).reshape(N, per)
            e[:, c] = 1
            (hc,) = torch.autograd.grad(g, f, grad_outputs=e.view_as(f), retain_graph=True, allow_unused=True)
            if hc is not None:
                d2[:, c] = hc.reshape(N, per)[:, c]
    return (g.detach() if first else None), d2.view_as(out)


def multinomial_cholesky(p: Tensor, scale: float = 1.0) -> Tensor:
    r"""The :math:`K \times (K-1)` lower-triangular factor :math:`L` of
    :math:`\mathrm{scale}^2\,(\mathrm{diag}(p) - pp^\top) = LL^\top` (the covariance of one multinomial draw), for
    probabilities ``p`` (N, K) summing to 1; returns ``L`` (N, K, K-1), whose transpose is contiguous.

    With the tail sums :math:`s_k = \sum_{i \ge k} p_i`, column :math:`k = 0, \dots, K-2` is (``scale`` = 1)

    .. math::

        L_{kk} = \sqrt{p_k\, s_{k+1} / s_k}, \qquad L_{jk} = -\frac{p_j}{s_{k+1}}\, L_{kk}
        = -p_j \sqrt{\frac{p_k}{s_k s_{k+1}}} \quad (j > k), \qquad L_{jk} = 0 \quad (j < k),

    and the column is zero where :math:`s_{k+1} = 0` (all later probabilities vanish). Only sums and
    ratios of non-negative numbers enter, so probabilities that underflow to 0 give no NaN.
    The matrix has rank :math:`K - 1` (:math:`(\mathrm{diag}(p) - pp^\top)\mathbf 1 = 0`), hence :math:`K - 1` columns.

    Reference: Tanabe, K., Sagae, M. (1992). An exact Cholesky decomposition and the generalized inverse
    of the variance-covariance matrix of the multinomial distribution, with applications. Journal of
    the Royal Statistical Society B 54(1).
    """
    s = p.flip(-1).cumsum(-1).flip(-1)  # s[:, k] = sum_{i >= k} p_i
    s_k, s_k1 = s[:, :-1], s[:, 1:]
    alive = s_k1 > 0
    s_k1 = torch.where(alive, s_k1, 1)
    L_kk = scale * torch.where(alive, p[:, :-1] * s_k1 / torch.where(alive, s_k, 1), 0).sqrt()  # (N, K-1)
    Lt = (L_kk / -s_k1)[:, :, None] * p[:, None, :]  # Lt[n, k, j] = L_jk for j > k
    Lt.triu_(1).diagonal(dim1=1, dim2=2).copy_(L_kk)
    return Lt.mT


def output_hessian_factor(loss_fn, out: Tensor, y: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    r"""Factor the per-sample output Hessian blocks :math:`H_n = \sum_c s_{nc} b_{nc} b_{nc}^\top`.

    Returns ``B`` of shape ``(N, C, *out.shape[1:])`` (row ``c`` is :math:`b_{nc}`) and signs ``s`` (N, C).
    Closed forms for mean-reduced ``MSELoss`` (:math:`H_n = c I`) and ``CrossEntropyLoss``
    (:math:`H_n \propto \mathrm{diag}(p) - pp^\top`, of rank :math:`K - 1` for :math:`K` classes: its :math:`K - 1`
    Cholesky columns, see :func:`multinomial_cholesky`, so ``C = K - 1``); any other loss by its dense
    blocks and ``eigh`` (``C`` = number of outputs).
    """
    N = out.shape[0]
    per = out[0].numel()
    if mean_squared_error(loss_fn, out, y):
        c = (2.0 * weight / out.numel()) ** 0.5
        B = c * torch.eye(per, dtype=out.dtype, device=out.device).expand(N, per, per)
        return B.reshape(N, per, *out.shape[1:]), torch.ones(N, per, dtype=out.dtype, device=out.device)
    if plain_cross_entropy(loss_fn, out, y):
        B = multinomial_cholesky(torch.softmax(out, dim=1), (weight / N) ** 0.5).mT  # row c = column c of L
        return B, torch.ones(N, per - 1, dtype=out.dtype, device=out.device)
    f = out.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = weight * scalar_loss(loss_fn(f, y))
        (g,) = torch.autograd.grad(loss, f, create_graph=True)
        H = torch.zeros(N, per, per, dtype=out.dtype, device=out.device)
        for c in range(per):
            e = torch.zeros(N, per, dtype=out.dtype, device=out.device)
            e[:, c] = 1
            (hc,) = torch.autograd.grad(g, f, grad_outputs=e.view_as(f), retain_graph=True, allow_unused=True)
            if hc is not None:
                H[:, :, c] = hc.reshape(N, per)
    lam, Q = torch.linalg.eigh((H + H.transpose(1, 2)) / 2)
    B = (lam.abs().sqrt()[:, :, None] * Q.transpose(1, 2))
    return B.reshape(N, per, *out.shape[1:]), torch.sign(lam)


def collect(params, diag_of: dict, owner: str) -> Tensor:
    """The per-parameter diagonals ``diag_of[id(p)]`` flattened in the order of ``params``."""
    for i, p in enumerate(params):
        if id(p) not in diag_of:
            raise data_error(owner, "params", f"params[{i}] (shape {tuple(p.shape)}) is not a parameter of a "
                             "layer of the model", "parameters of the model's supported layers")
    return flatten([diag_of[id(p)] for p in params])
