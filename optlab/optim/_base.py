"""The thin shell every first-order optimizer shares: ``torch.optim.Optimizer`` bookkeeping, no math.

A subclass names its state (:meth:`KernelOptimizer._init_state`) and takes one step on one tensor
(:meth:`KernelOptimizer._update`), calling its module's kernels. This class only does what torch's
optimizers do around the math: the closure, the parameter groups, skipping ``None`` gradients,
refusing sparse gradients where torch refuses them, choosing the kernel (``kernel=``: fused, in-place
or readable) and a scratch workspace that the fused and in-place kernels reuse from step to step.
"""

from __future__ import annotations

import os
import sys
import warnings

import torch
from torch import Tensor

from . import _fused
from ..errors import check


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
    r""":math:`\pm g + \lambda\theta` as torch.optim's for-loops compute it, in ``out`` when it differs from ``g``.

    ``-g`` if ``maximize``, then ``.add(theta, alpha=weight_decay)``: one rounding of
    :math:`\lambda\theta + g` (a fused multiply-add in ATen). The L2 term :math:`\lambda\theta` added to
    the gradient is the coupled weight decay of every torch.optim optimizer (AdamW's decoupled decay
    is applied to :math:`\theta` instead).
    """
    if maximize:
        g = torch.neg(g, out=out)
    if weight_decay != 0:
        g = torch.add(g, theta, alpha=weight_decay, out=out)
    return g


KERNELS = ("fused", "inplace", "reference")
_INTERNAL = (os.path.dirname(__file__), os.path.dirname(torch.__file__))


def _caller_stacklevel() -> int:
    """``stacklevel`` for a warning about the first frame outside optlab.optim and torch: the ``step`` call."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    return level


class KernelFallbackWarning(UserWarning):
    """An optimizer stepped a parameter with another kernel than the one asked for (see ``kernel_used``)."""


class KernelOptimizer(torch.optim.Optimizer):
    """Base of optlab's first-order optimizers: torch's optimizer protocol around per-tensor kernels.

    Subclasses set ``defaults`` exactly as their torch.optim counterpart does (same keys), name their
    per-element state tensors in ``elementwise_state``, implement ``_init_state(p, group, state)`` and
    ``_update(p, g, state, group, kernel)``, and may set ``supports_sparse = True`` when torch's
    counterpart accepts sparse gradients.

    Args:
        params: parameters or parameter groups.
        defaults: the hyper-parameters (torch's keys, including ``foreach``/``capturable``/... knobs).
        kernel: which implementation of the same equations takes the step, bit for bit the same
            arithmetic as ``torch.optim``'s for-loop in all three:

            - ``"fused"`` (default): the module's numba loops (one, or two around torch's square root), one
              pass over memory, one call for every tensor of the group (:meth:`_batch`,
              :mod:`optlab.optim._fused`);
            - ``"inplace"``: torch's in-place operations, one per term, on preallocated scratch;
            - ``"reference"``: the readable pure kernel (``adam_update``...), allocating new tensors.

            It is a hyper-parameter like ``lr``: kept in ``param_groups`` (a group may set its own),
            saved by ``state_dict()`` and restored by ``load_state_dict()`` (a torch.optim state dict,
            which has none, keeps the constructor's).

    Where the asked-for kernel cannot step a parameter, another takes it: ``"fused"`` falls back to
    ``"inplace"`` without numba, for tensors that are not dense, contiguous, CPU, float32/float64, or
    on a torch whose CPU arithmetic the fused loops do not reproduce
    (:func:`~optlab.optim._fused.unavailable_reason`); a sparse gradient always takes ``"reference"``.
    Each fallback raises a :class:`KernelFallbackWarning` once per optimizer and reason, and
    ``opt.kernel_used[p]`` says which kernel took the last step of ``p``.
    """

    supports_sparse = False
    needs = "gradient"  # step() reads p.grad (optlab.optim.closure)
    elementwise_state: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict, *, kernel: str = "fused"):
        name = type(self).__name__
        for knob in ("capturable", "differentiable", "fused"):
            if knob in defaults:
                check(name, knob, defaults[knob], not defaults[knob],
                      f"{knob}=False or None: optlab steps with its own kernels (kernel='fused', "
                      f"'inplace' or 'reference'), so torch's {knob} mode is not available "
                      f"(use torch.optim.{name} for it)")
        if "foreach" in defaults:
            check(name, "foreach", defaults["foreach"], defaults["foreach"] in (None, True, False),
                  "None, True or False (accepted for compatibility; choose the implementation with kernel=)")
        self._check_kernel(kernel)
        self.kernel_used: dict[Tensor, str] = {}
        super().__init__(params, {**defaults, "kernel": kernel})

    def _check_kernel(self, kernel) -> None:
        check(type(self).__name__, "kernel", kernel, kernel in KERNELS, " or ".join(map(repr, KERNELS)))

    def add_param_group(self, param_group: dict) -> None:
        if "kernel" in param_group:
            self._check_kernel(param_group["kernel"])
        super().add_param_group(param_group)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # also called by load_state_dict, with torch's groups if they are torch's
        for group in self.param_groups:
            group.setdefault("kernel", self.defaults["kernel"])
        self.__dict__.setdefault("kernel_used", {})

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

    def _kernel_for(self, p: Tensor, g: Tensor, state: dict, group: dict) -> str:
        """The kernel that steps ``p`` (gradient ``g``): the group's unless it cannot (then say so, once); kept
        in ``kernel_used``."""
        asked = group["kernel"]
        used, reason = asked, None
        if g.is_sparse:
            if asked != "reference":
                used, reason = "reference", "the gradient is sparse (only the readable kernel takes sparse tensors)"
        elif asked == "fused":
            state_tensors = [state[k] for k in self.elementwise_state if state.get(k) is not None]
            reason = _fused.unavailable_reason(p, g, *state_tensors)
            if reason is not None:
                used = "inplace"
        if reason is not None:
            warned = self.__dict__.setdefault("_fallbacks_warned", set())
            if (asked, reason) not in warned:
                warned.add((asked, reason))
                warnings.warn(f"{type(self).__name__}: kernel={asked!r} cannot step a parameter: {reason}; "
                              f"it steps with kernel={used!r} (same equations and rounding)",
                              KernelFallbackWarning, stacklevel=_caller_stacklevel())
        self.kernel_used[p] = used
        return used

    def _init_state(self, p: Tensor, group: dict, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _update(self, p: Tensor, g: Tensor, state: dict, group: dict, kernel: str) -> None:  # pragma: no cover
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
        self.__dict__["_group_step_values"] = {}
        batch = self.__dict__["_fused_batch"] = _fused.Batch()
        try:
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(p, group, state)
                g = p.grad
                self._update(p, g, state, group, self._kernel_for(p, g, state, group))
        finally:
            del self.__dict__["_group_step_values"], self.__dict__["_fused_batch"]
            batch.run()  # also when a later tensor raised: the ones before it are stepped, as one by one

    def _batch(self) -> "_fused.Batch | None":
        """The :class:`~optlab.optim._fused.Batch` of the group being stepped: a fused kernel adds its tensors
        there and the group's step runs them all in one call per loop at its end (``None`` outside a step)."""
        return self.__dict__.get("_fused_batch")

    def _once_per_group_step(self, key, make):
        """``make()``, made once in a group's step for ``key`` and shared by its tensors: e.g. a fused loop bound
        to the group's scalars in one dtype, checked and ordered once instead of once per tensor. ``key`` holds
        whatever the value depends on beyond the group's hyper-parameters (dtype, step count)."""
        values = self.__dict__.get("_group_step_values")
        if values is None:  # outside a group's step
            return make()
        value = values.get(key)
        if value is None:
            value = values[key] = make()
        return value
