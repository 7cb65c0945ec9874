"""Fused single-pass step kernels, compiled with numba: the fast path of the first-order optimizers.

A step written with torch's element-wise operations reads and writes every state tensor once per
operation (Adam: six passes over memory). A fused kernel is one loop that reads each element of
:math:`\\theta`, :math:`g` and the state once, applies the whole update in registers and writes the
results back, spread over the cores (``numba.prange``). Each optimizer's module writes its loop next
to its readable kernel, as the same equations element by element, with :func:`fused_kernel`.

Rules that keep a fused kernel equal to torch's operations up to rounding:

- every scalar is passed in, already in the tensors' dtype (:func:`scalars`); the loop body has no
  float literal, which would promote float32 arithmetic to float64;
- each operation is written in the order torch's kernel evaluates it (``lerp``'s two branches,
  ``addcmul``'s ``value * t1 * t2``...).

The fused path is taken only where it applies (:func:`fusable`: CPU, float32/float64, dense and
contiguous, no aliasing between the parameter and its gradient) and numba is installed; otherwise
the optimizer steps with torch's in-place operations (the ``*_update_`` kernels). The tests hold both
to the readable reference kernels and to ``torch.optim``.

Reference: Lam, S. K., Pitrou, A., Seibert, S. (2015). Numba: a LLVM-based Python JIT compiler.
LLVM-HPC workshop, SC15.
"""

from __future__ import annotations

import contextlib
import importlib.util
import types

import numpy as np
import torch
from torch import Tensor

_NUMBA = importlib.util.find_spec("numba") is not None


_enabled = True


def available() -> bool:
    """Is numba installed (and the fused path not switched off by :func:`disabled`)?"""
    return _NUMBA and _enabled


@contextlib.contextmanager
def disabled():
    """Step with torch's in-place operations (the ``*_update_`` kernels) inside the block: lets the
    tests hold that path, too, to the reference kernels."""
    global _enabled
    saved, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = saved


def prange(*args):
    """``range`` when a loop runs as Python; ``numba.prange`` (iterations spread over the cores) once
    :func:`fused_kernel` compiles it."""
    return range(*args)


class fused_kernel:
    """Decorator: compile ``loop`` with ``numba.njit(parallel=True, cache=True)`` on its first call.

    Compiling lazily keeps ``import optlab.optim`` free of numba's start-up (half a second);
    ``cache=True`` keeps the machine code on disk, so a new process loads it instead of compiling again.
    """

    def __init__(self, loop):
        self.loop, self.compiled = loop, None

    def __call__(self, *args):
        if self.compiled is None:
            import numba
            f = self.loop
            loop = types.FunctionType(f.__code__, {**f.__globals__, "prange": numba.prange}, f.__name__,
                                      f.__defaults__, f.__closure__)
            loop.__qualname__, loop.__module__ = f.__qualname__, f.__module__
            self.compiled = numba.njit(parallel=True, cache=True, nogil=True)(loop)
        return self.compiled(*args)


def fusable(*tensors: Tensor | None) -> bool:
    """Can a fused kernel step these tensors (the parameter first, its gradient second, then state)?"""
    if not (_NUMBA and _enabled):
        return False
    p, g = tensors[0], tensors[1]
    dtype, shape = p.dtype, p.shape
    if dtype not in (torch.float32, torch.float64) or g.requires_grad:
        return False
    return all(t is None or (t.layout == torch.strided and t.is_cpu and t.dtype == dtype and t.shape == shape
                             and t.is_contiguous()) for t in tensors) and g.data_ptr() != p.data_ptr()


def arrays(*tensors: Tensor | None):
    """Flat numpy views sharing memory with ``tensors`` (``None`` becomes an empty array of the dtype)."""
    dtype = np.float32 if tensors[0].dtype == torch.float32 else np.float64
    return tuple(np.empty(0, dtype) if t is None else t.detach().numpy().ravel() for t in tensors)


def scalars(like: Tensor, *values: float):
    """``values`` as numpy scalars of ``like``'s dtype (what the tensors' arithmetic uses)."""
    cast = np.float32 if like.dtype == torch.float32 else np.float64
    return tuple(cast(v) for v in values)
