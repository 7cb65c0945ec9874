"""The thin shell every first-order optimizer shares: ``torch.optim.Optimizer`` bookkeeping, no math.

A subclass names its state (:meth:`KernelOptimizer._init_state`) and takes one step on one tensor
(:meth:`KernelOptimizer._update`), calling its module's kernels. This class only does what torch's
optimizers do around the math: the closure, the parameter groups, skipping ``None`` gradients,
refusing sparse gradients where torch refuses them, and a scratch workspace so the in-place fast
kernels allocate nothing per step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validate import check


def scalar_dtype() -> torch.dtype:
    """The dtype torch.optim uses for scalar state (``step``, ``mu_product``, ``eta``...).

    float64 when the default dtype is float64, float32 otherwise, as ``torch.optim`` does, so that
    optlab's state dicts and trajectories match torch's bit for bit.
    """
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def scalar_state(value: float) -> Tensor:
    """A 0-d tensor holding a scalar state entry, in :func:`scalar_dtype` (as torch stores it)."""
    return torch.tensor(float(value), dtype=scalar_dtype())


def as_scalar_state(t: Tensor) -> Tensor:
    """``t`` back in :func:`scalar_dtype`: ``load_state_dict`` casts such entries to the parameter's dtype."""
    return t if t.dtype == scalar_dtype() else t.to(scalar_dtype())


def value(x) -> float:
    """A hyper-parameter or 0-d tensor as a Python float (torch allows tensor learning rates)."""
    return float(x.item()) if isinstance(x, Tensor) else float(x)


def effective_grad(theta: Tensor, g: Tensor, *, maximize: bool, weight_decay: float, out: Tensor) -> Tensor:
    r"""``(-g if maximize else g) + weight_decay * theta``, written into ``out`` only when it differs from ``g``.

    The L2 term :math:`\lambda\theta` added to the gradient is the coupled weight decay of every
    torch.optim optimizer (AdamW's decoupled decay is applied to :math:`\theta` instead).
    """
    if weight_decay != 0:
        if maximize:
            return torch.mul(theta, weight_decay, out=out).sub_(g)
        return torch.add(g, theta, alpha=weight_decay, out=out)
    if maximize:
        return torch.neg(g, out=out)
    return g


class KernelOptimizer(torch.optim.Optimizer):
    """Base of optlab's first-order optimizers: torch's optimizer protocol around per-tensor kernels.

    Subclasses set ``defaults`` exactly as their torch.optim counterpart does (same keys), implement
    ``_init_state(p, group, state)`` and ``_update(p, g, state, group)``, and may set
    ``supports_sparse = True`` when torch's counterpart accepts sparse gradients.

    Args:
        params: parameters or parameter groups.
        defaults: the hyper-parameters (torch's keys, including ``foreach``/``capturable``/... knobs).
        reference: step with the readable pure kernel (allocating, slow) instead of the in-place fast
            kernel. Both compute the same equations; the tests hold the fast one to the reference.
    """

    supports_sparse = False
    needs = "gradient"  # step() reads p.grad (optlab.optim.closure)

    def __init__(self, params, defaults: dict, *, reference: bool = False):
        name = type(self).__name__
        for knob in ("capturable", "differentiable", "fused"):
            if knob in defaults:
                check(name, knob, defaults[knob], not defaults[knob],
                      f"{knob}=False or None: optlab steps with its own kernels, so torch's "
                      f"{knob} mode is not available (use torch.optim.{name} for it)")
        if "foreach" in defaults:
            check(name, "foreach", defaults["foreach"], defaults["foreach"] in (None, True, False),
                  "None, True or False (accepted for compatibility; optlab picks its own fast path)")
        check(name, "reference", reference, isinstance(reference, bool), "True or False")
        self.reference = reference
        super().__init__(params, defaults)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "reference": self.reference}  # the workspace is not state

    def __setstate__(self, state: dict) -> None:
        state.setdefault("reference", False)
        super().__setstate__(state)

    def _workspace(self, p: Tensor, slot: int = 0) -> Tensor:
        """A scratch tensor shaped like ``p`` (slot ``slot``), reused across steps; never part of the state.

        One flat buffer per (slot, dtype, device), as large as the largest parameter, viewed per
        parameter; the views are cached, so asking again costs a dictionary look-up.
        """
        views = self.__dict__.setdefault("_workspace_views", {})
        view = views.get((id(p), slot))  # any scratch of the right shape will do, so ids are safe keys
        if view is not None and view.dtype == p.dtype and view.shape == p.shape and view.device == p.device:
            return view
        buffers = self.__dict__.setdefault("_workspace_buffers", {})
        key = (slot, p.dtype, p.device)
        buf = buffers.get(key)
        if buf is None or buf.numel() < p.numel():
            largest = max(q.numel() for group in self.param_groups for q in group["params"])
            buf = torch.empty(max(largest, p.numel()), dtype=p.dtype, device=p.device)
            buffers[key] = buf
        view = views[(id(p), slot)] = buf[: p.numel()].view(p.shape)
        return view

    def _init_state(self, p: Tensor, group: dict, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _update(self, p: Tensor, g: Tensor, state: dict, group: dict) -> None:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        """Take one step; ``closure`` (optional) re-evaluates the model and returns the loss, which is returned."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if any(p.is_complex() for p in params):
                raise TypeError(f"{type(self).__name__}: complex parameters are not supported by optlab's kernels; "
                                f"expected real floating-point tensors (view them with torch.view_as_real)")
            if not self.supports_sparse and any(p.grad.is_sparse for p in params):
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients "
                                   f"(as torch.optim.{type(self).__name__}); use a dense gradient")
            if params:
                self._step_group(group, params)
        return loss

    def _step_group(self, group: dict, params: list[Tensor]) -> None:
        """Step the parameters of one group that have a gradient (a subclass may batch them)."""
        for p in params:
            state = self.state[p]
            if len(state) == 0:
                self._init_state(p, group, state)
            self._update(p, p.grad, state, group)
