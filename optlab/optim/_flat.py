"""Plumbing shared by the curvature-driven optimizers: parameters as one flat vector, and a closure's
loss with its gradient kept differentiable (so that Hessian-vector products can follow).

Nothing here is an algorithm; each optimizer module holds its own math.
"""

from __future__ import annotations

import torch
from torch import Tensor


def flat_params(params: list[Tensor]) -> Tensor:
    """The parameters concatenated into one detached vector."""
    return torch.cat([p.detach().reshape(-1) for p in params])


def set_flat(params: list[Tensor], theta: Tensor) -> None:
    """Write the flat vector ``theta`` back into ``params`` (in place)."""
    i = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(theta[i:i + n].view_as(p))
            i += n


def add_flat(params: list[Tensor], d: Tensor, scale: float = 1.0) -> None:
    """``params += scale * d`` for a flat direction ``d``."""
    i = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.add_(d[i:i + n].view_as(p), alpha=scale)
            i += n


def unflatten(params: list[Tensor], v: Tensor) -> list[Tensor]:
    """Split a flat vector into tensors shaped like ``params``."""
    out, i = [], 0
    for p in params:
        out.append(v[i:i + p.numel()].view_as(p))
        i += p.numel()
    return out


def store_grad(params: list[Tensor], g: Tensor) -> None:
    """Leave the flat gradient ``g`` in ``p.grad`` so that users can inspect it as with any optimizer."""
    for p, gi in zip(params, unflatten(params, g.detach())):
        p.grad = gi.clone()


def require_closure(owner: str, closure, what: str) -> None:
    """``TypeError`` unless ``closure`` is callable; ``what`` says what the closure must do."""
    if closure is None or not callable(closure):
        raise TypeError(f"{owner}: step() needs a closure that {what} (got {closure!r})")


def call_closure(owner: str, closure) -> Tensor:
    """Run ``closure`` with gradients enabled and check it returned a scalar tensor attached to the graph."""
    require_closure(owner, closure, "re-evaluates the model and returns the loss")
    with torch.enable_grad():
        loss = closure()
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError(f"{owner}: the closure must return the loss as a scalar tensor, got {loss!r}")
    if not loss.requires_grad:
        raise ValueError(f"{owner}: the closure's loss does not depend on the parameters (requires_grad=False)")
    return loss.reshape(())


def loss_and_grad(owner: str, closure, params: list[Tensor], *, create_graph: bool) -> tuple[Tensor, Tensor]:
    """``(loss, g)`` with ``g`` the flat gradient; with ``create_graph`` it can be differentiated again."""
    loss = call_closure(owner, closure)
    with torch.enable_grad():
        try:
            grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
        except RuntimeError as e:  # typically: the closure already called backward() and freed the graph
            raise RuntimeError(f"{owner}: could not differentiate the closure's loss ({e}). The closure must "
                               f"return the loss *without* calling backward() on it.") from e
    g = torch.cat([(torch.zeros_like(p) if gi is None else gi).reshape(-1) for p, gi in zip(params, grads)])
    return loss, g


def hvp(g: Tensor, params: list[Tensor], v: Tensor) -> Tensor:
    r"""Pearlmutter's exact Hessian-vector product :math:`Hv = \nabla_\theta (g^\top v)` from a differentiable ``g``."""
    with torch.enable_grad():
        hv = torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if h is None else h).reshape(-1) for p, h in zip(params, hv)])


def dense_hessian(g: Tensor, params: list[Tensor]) -> Tensor:
    """The full Hessian, one Hessian-vector product per coordinate (small models only), symmetrized."""
    n = g.numel()
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    H = torch.stack([hvp(g, params, eye[k]) for k in range(n)])
    return 0.5 * (H + H.T)


def group_params(owner: str, param_groups, why: str = "the method couples all parameters through one "
                                                             "curvature matrix") -> list[Tensor]:
    """The parameters of the single param group a full-matrix method works on."""
    if len(param_groups) != 1:
        raise ValueError(f"{owner}: got {len(param_groups)} parameter groups; expected exactly 1 ({why})")
    return [p for p in param_groups[0]["params"]]
