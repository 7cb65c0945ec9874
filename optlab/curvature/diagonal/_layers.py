"""Layer-by-layer plumbing for the backpropagated diagonals (Becker-LeCun, exact Gauss-Newton).

Models are ``nn.Sequential`` stacks (nested ones are flattened) of ``Linear``, ``Conv2d``,
``Flatten``, :class:`~optlab.curvature.rbf.RBF` and element-wise non-linearities. Element-wise
derivatives :math:`f'` and :math:`f''` are written out for tanh, sigmoid, ReLU and the identity, and
taken by autograd for the other element-wise torch activations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..rbf import RBF

ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Identity, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
               nn.SiLU, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Mish, nn.LogSigmoid, nn.Hardtanh)
PARAMETRIC = (nn.Linear, nn.Conv2d, RBF)


def hooked_module(model: nn.Module) -> nn.Module | None:
    """The first module of ``model`` with a forward (pre-)hook, or ``None``."""
    return next((m for m in model.modules() if m._forward_hooks or m._forward_pre_hooks), None)


def sequential_layers(model: nn.Module, *, supported=PARAMETRIC + ELEMENTWISE + (nn.Flatten,)) -> list[nn.Module]:
    """The layers of an ``nn.Sequential`` model (nested ones flattened), which the layer-wise methods run
    one by one instead of calling the model; ``TypeError`` names what they cannot reproduce: a subclass
    that overrides ``forward``, forward hooks, an unsupported layer."""
    if not isinstance(model, nn.Sequential) or type(model).forward is not nn.Sequential.forward:
        raise TypeError(f"this method needs an nn.Sequential (forward not overridden) of "
                        f"{', '.join(c.__name__ for c in supported[:4])}, element-wise activations...; "
                        f"got {type(model).__name__}")
    hooked = hooked_module(model)
    if hooked is not None:
        raise TypeError(f"{type(hooked).__name__} has forward hooks, which running the layers one by one would bypass")
    layers = []
    for m in model:
        if isinstance(m, nn.Sequential):
            layers += sequential_layers(m, supported=supported)
        elif isinstance(m, supported):
            if isinstance(m, nn.Flatten) and m.start_dim != 1:
                raise TypeError(f"unsupported layer {m!r}: only Flatten(start_dim=1) keeps samples apart")
            if isinstance(m, nn.Conv2d) and (m.padding_mode != "zeros" or isinstance(m.padding, str)):
                raise TypeError(f"unsupported layer {m!r}: only numeric zero padding is supported")
            layers.append(m)
        else:
            raise TypeError(f"unsupported layer {m!r} ({type(m).__name__}); supported: "
                            f"{', '.join(c.__name__ for c in supported)}")
    return layers


def forward_record(layers, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """Run the layers without a graph; return the input of every layer and the output."""
    inputs = []
    with torch.no_grad():
        h = x
        for m in layers:
            inputs.append(h)
            h = m(h)
    return inputs, h


def activation_derivatives(m: nn.Module, y: Tensor, z: Tensor, *, second: bool) -> tuple[Tensor, Tensor | None]:
    """:math:`f'(y)` and (if ``second``) :math:`f''(y)` of the element-wise ``m`` at ``y``, with ``z = f(y)``."""
    one, zero = z.new_ones(()), z.new_zeros(())  # 0-dim: each closed form below is one pass
    if isinstance(m, nn.Tanh):  # f' = 1 - z^2, f'' = -2 z f'
        d1 = torch.addcmul(one, z, z, value=-1)
        return d1, (torch.addcmul(zero, z, d1, value=-2) if second else None)
    if isinstance(m, nn.Sigmoid):  # f' = z (1 - z), f'' = f' (1 - 2 z)
        d1 = torch.addcmul(z, z, z, value=-1)
        return d1, (torch.addcmul(d1, d1, z, value=-2) if second else None)
    if isinstance(m, nn.ReLU):
        return (y > 0).to(y.dtype), (torch.zeros_like(y) if second else None)
    if isinstance(m, nn.Identity):
        return torch.ones_like(y), (torch.zeros_like(y) if second else None)
    with torch.enable_grad():
        yy = y.detach().requires_grad_(True)
        (d1,) = torch.autograd.grad(m(yy).sum(), yy, create_graph=second)
        d2 = None
        if second:
            d2 = torch.autograd.grad(d1.sum(), yy, allow_unused=True)[0]
            d2 = torch.zeros_like(y) if d2 is None else d2
    return d1.detach(), d2


def conv_kwargs(m: nn.Conv2d) -> dict:
    return dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)


def plain_cross_entropy(loss_fn, out: Tensor, y: Tensor) -> bool:
    """Is ``loss_fn(out, y)`` the mean cross-entropy of class-index targets (no weights, smoothing or ignored index)?"""
    return (type(loss_fn) is nn.CrossEntropyLoss and loss_fn.reduction == "mean" and loss_fn.weight is None
            and loss_fn.label_smoothing == 0 and out.dim() == 2 and y.dim() == 1 and not y.is_floating_point()
            and loss_fn.ignore_index < 0)


def mean_squared_error(loss_fn, out: Tensor, y: Tensor) -> bool:
    r"""Is ``loss_fn(out, y)`` the mean-reduced ``nn.MSELoss`` with targets shaped like ``out`` (no
    broadcasting), whose output Hessian is :math:`(2/\text{numel})\,I`?"""
    return type(loss_fn) is nn.MSELoss and loss_fn.reduction == "mean" and y.shape == out.shape


def output_derivatives(loss_fn, out: Tensor, y: Tensor, weight: float, *, first: bool):
    r"""Per-entry :math:`\partial E/\partial f` (if ``first``) and :math:`\partial^2 E/\partial f^2` (the diagonal of the
    per-sample output Hessian blocks) of ``weight * loss_fn(out, y)``.

    Closed forms for mean-reduced ``MSELoss`` and ``CrossEntropyLoss`` (class-index targets); any
    other loss by one Hessian-vector product per output entry of a sample, which assumes the loss is
    a sum over samples (true of torch's losses).
    """
    from .._data import scalar_loss
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
    from .._data import scalar_loss
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


def collect(model: nn.Module, params, diag_of: dict) -> Tensor:
    """Flatten the per-parameter diagonals ``diag_of[id(p)]`` in the order of ``params``."""
    parts = []
    for i, p in enumerate(params):
        if id(p) not in diag_of:
            raise ValueError(f"params[{i}] (shape {tuple(p.shape)}) is not a parameter of a supported layer of the model")
        parts.append(diag_of[id(p)].reshape(-1))
    return torch.cat(parts)
