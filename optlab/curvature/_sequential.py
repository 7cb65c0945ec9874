r"""Running an ``nn.Sequential`` stack layer by layer: what the R-pass (:mod:`.rop`) and the
backpropagated diagonals (:mod:`.diagonal`) share.

Models are ``nn.Sequential`` stacks (nested ones are flattened) of ``Linear``, ``Conv2d``,
``Flatten``, :class:`~optlab.curvature.rbf.RBF` and element-wise non-linearities. Element-wise
derivatives :math:`f'` and :math:`f''` are written out for tanh, sigmoid, ReLU and the identity, and
taken by autograd for the other element-wise torch activations. :func:`sequential_layers` refuses what
running the layers one by one cannot reproduce (an overridden ``forward``, forward hooks, an
unsupported layer) with a ``TypeError``, so every layer-wise method agrees with calling the model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import data_error, type_error
from .rbf import RBF

ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Identity, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU,
               nn.SiLU, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.Mish, nn.LogSigmoid, nn.Hardtanh)
PARAMETRIC = (nn.Linear, nn.Conv2d, RBF)


def hooked_module(model: nn.Module) -> nn.Module | None:
    """The first module of ``model`` with a forward (pre-)hook, or ``None``."""
    return next((m for m in model.modules() if m._forward_hooks or m._forward_pre_hooks), None)


def sequential_layers(model: nn.Module, *, supported=PARAMETRIC + ELEMENTWISE + (nn.Flatten,),
                      owner: str = "sequential_layers") -> list[nn.Module]:
    """The layers of an ``nn.Sequential`` model (nested ones flattened), which the layer-wise methods run
    one by one instead of calling the model; a ``TypeError`` naming ``owner`` says what they cannot
    reproduce: a subclass that overrides ``forward``, forward hooks, an unsupported layer."""
    names = ", ".join(c.__name__ for c in supported[:4])
    expected = f"an nn.Sequential of {names}, element-wise activations..."
    if not isinstance(model, nn.Sequential):
        raise type_error(owner, "model", model, expected)
    if type(model).forward is not nn.Sequential.forward:
        raise data_error(owner, "model", f"{type(model).__name__} overrides Sequential.forward, which running "
                         "the layers one by one would bypass", expected, TypeError)
    hooked = hooked_module(model)
    if hooked is not None:
        raise data_error(owner, "model", f"{type(hooked).__name__} has forward hooks, which running the layers "
                         "one by one would bypass", "a model without forward hooks", TypeError)
    layers = []
    for m in model:
        if isinstance(m, nn.Sequential):
            layers += sequential_layers(m, supported=supported, owner=owner)
        elif not isinstance(m, supported):
            raise data_error(owner, "model", f"unsupported layer {m!r}",
                             f"layers among {', '.join(c.__name__ for c in supported)}", TypeError)
        elif isinstance(m, nn.Flatten) and m.start_dim != 1:
            raise data_error(owner, "model", f"unsupported layer {m!r}",
                             "Flatten(start_dim=1), which keeps the samples apart", TypeError)
        elif isinstance(m, nn.Conv2d) and (m.padding_mode != "zeros" or isinstance(m.padding, str)):
            raise data_error(owner, "model", f"unsupported layer {m!r}", "convolutions with numeric zero padding",
                             TypeError)
        else:
            layers.append(m)
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
