"""Fused step kernels, compiled with numba: the ``kernel="fused"`` path of the first-order optimizers.

A step written with torch's element-wise operations reads and writes every state tensor once per
operation (Adam: seven passes over memory). A fused kernel is a loop that reads each element of
:math:`\\theta`, :math:`g` and the state once, applies the update in registers and writes the results
back, spread over the cores (``numba.prange``) when the tensor is large. Each optimizer's module
writes its loops next to its readable kernel, as the same equations element by element, decorated
with :func:`fused_kernel`.

**Bit for bit as torch.** A fused kernel rounds exactly where ``torch.optim``'s for-loop rounds, so
both give the same bits. Per element, with ``s`` a Python scalar first rounded to the tensors' dtype
and :func:`fma` one rounding of :math:`a b + c`, ATen's CPU kernels compute

- ``a.add(b, alpha=s)`` as ``fma(b, s, a)`` (ATen's vectorised ``add`` is a fused multiply-add);
- ``a.addcmul(b, c, value=s)`` as ``fma(s * b, c, a)``;
- ``a.addcdiv(b, c, value=s)`` as ``a + (s * b) / c``;
- ``a.lerp(b, w)`` as :func:`lerp`: ``fma(w, b - a, a)`` if ``|w| < 0.5``, else ``fma(w - 1, b - a, b)``;
- ``a * s``, ``a / s``, ``a + s`` as one IEEE operation each (``a / s`` divides; it does not multiply
  by ``1 / s``);
- ``a.sqrt()`` with MKL's vector square root (``vsSqrt``/``vdSqrt``) on x86 builds of torch.

The last line is why no fused kernel takes a square root: MKL's root is not correctly rounded on every
CPU (on this project's AMD EPYC about one float32 root in five, and one float64 root in seventy, is
one ulp off ``np.sqrt``), so an optimizer that needs :math:`\\sqrt{v}` runs two loops with
``torch.sqrt`` between them, on memory the first loop has just brought into the cache. Everything
else follows from the list, with three rules: every scalar is passed in already in the tensors' dtype
(:func:`scalars`), since a float literal in the loop would promote float32 arithmetic to float64;
numba never contracts ``a * b + c`` into an FMA by itself (``fastmath`` stays off), so the loop
writes :func:`fma` exactly where torch has one; and division by zero gives ``inf``/``nan`` as in
torch (``error_model="numpy"``).

:func:`unavailable_reason` says when the fused path does not apply: numba missing, a tensor that is
not dense, contiguous, CPU, float32/float64, or a torch whose CPU arithmetic is not the list's (checked
once per process by :func:`torch_arithmetic_mismatch`). The optimizer then steps with
``kernel="inplace"`` and says so (see :class:`~optlab.optim._base.KernelOptimizer`).

Reference: Lam, S. K., Pitrou, A., Seibert, S. (2015). Numba: a LLVM-based Python JIT compiler.
LLVM-HPC workshop, SC15. IEEE 754-2008, section 5.4.1 (fusedMultiplyAdd).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import types
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

_NUMBA = importlib.util.find_spec("numba") is not None


def prange(*args):
    """``range`` when a loop runs as Python; ``numba.prange`` (iterations spread over the cores) once
    :func:`fused_kernel` compiles it."""
    return range(*args)


def fma(a, b, c):
    """:math:`a b + c` with one rounding to the dtype of the arguments (IEEE 754 fusedMultiplyAdd).

    In Python this computes the exact value and rounds it; in a :func:`fused_kernel` it is LLVM's
    ``llvm.fma`` (one instruction on any x86-64 CPU with FMA3).

    Example:
        >>> a, b = np.float64(1 + 2**-30), np.float64(1 - 2**-30)
        >>> fma(a, b, np.float64(-1.0)), a * b - 1.0  # the product 1 - 2**-60 rounds to 1 unless fused
        (np.float64(-8.673617379884035e-19), np.float64(0.0))
    """
    cast = type(a)
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    nearest = cast(float(exact))  # correctly rounded for float64; for float32 one of three neighbours
    if cast is np.float64:
        return nearest
    candidates = [np.nextafter(nearest, cast(-np.inf)), nearest, np.nextafter(nearest, cast(np.inf))]
    return min(candidates, key=lambda x: (abs(Fraction(float(x)) - exact), int(x.view(np.uint32)) & 1))


def lerp(start, end, w, w_minus_1):
    """``torch.lerp(start, end, w)`` rounded as ATen's CPU kernel: one :func:`fma` from the nearer end.

    .. math::
        \\operatorname{lerp}(a, b, w) = a + w (b - a) \\;\\text{ if } |w| < 1/2,
        \\qquad b + (w - 1)(b - a) \\;\\text{ otherwise}

    ``w_minus_1`` is :math:`w - 1` in the dtype of ``w`` (exact for :math:`w \\ge 1/2`), passed in so that
    the loop holds no float literal.
    """
    if abs(w) < 0.5:
        return fma(w, end - start, start)
    return fma(w_minus_1, end - start, end)


@functools.cache
def _numba_helpers() -> dict:
    """The compiled stand-ins of :func:`prange`, :func:`fma` and :func:`lerp` for :func:`fused_kernel`."""
    import numba
    from numba.extending import intrinsic

    @intrinsic
    def fma_intrinsic(typingctx, a, b, c):
        if not (isinstance(a, numba.types.Float) and a == b == c):
            return None  # no implicit casts: fma of mixed dtypes would round differently from torch
        return a(a, b, c), lambda context, builder, sig, args: builder.fma(*args)

    helpers = {"prange": numba.prange, "fma": fma_intrinsic}
    helpers["lerp"] = numba.njit(inline="always")(_with_globals(lerp, helpers))
    return helpers


def _with_globals(f, names: dict):
    """``f`` with ``names`` replacing its module's globals of the same name (the loop's code is unchanged)."""
    g = types.FunctionType(f.__code__, {**f.__globals__, **names}, f.__name__, f.__defaults__, f.__closure__)
    g.__qualname__, g.__module__ = f.__qualname__, f.__module__
    return g


GRAIN = 32768  # below this many elements a loop runs on one core (torch's own grain size, at::internal::GRAIN_SIZE)


class fused_kernel:
    """Decorator: compile ``loop`` with ``numba.njit(cache=True)`` on its first call.

    Compiling lazily keeps ``import optlab.optim`` free of numba's start-up (half a second);
    ``cache=True`` keeps the machine code on disk, so a new process loads it instead of compiling again.
    Arrays of :data:`GRAIN` elements or more run on every core (``parallel=True``); smaller ones on one,
    as torch does: waking threads for a small tensor costs more than it saves, a lot more on a busy machine.
    Call it with the arrays by position and the scalars by keyword (the loop's names for them).
    """

    def __init__(self, loop):
        self.loop, self.compiled, self.order = loop, {}, {}
        self.names = list(inspect.signature(loop).parameters)
        functools.update_wrapper(self, loop)

    def _scalar_order(self, n_arrays: int) -> tuple[str, ...]:
        """The loop's scalar names after its first ``n_arrays`` arguments."""
        order = self.order.get(n_arrays)
        if order is None:
            order = self.order[n_arrays] = tuple(self.names[n_arrays:])
        return order

    def _compiled(self, parallel: bool):
        """The loop compiled for many cores (``parallel``) or one, on first use."""
        import numba
        loop = _with_globals(self.loop, _numba_helpers())
        if not parallel:
            loop.__qualname__ += "_serial"  # its own entry in numba's on-disk cache
        compiled = self.compiled[parallel] = numba.njit(
            parallel=parallel, cache=True, nogil=True, error_model="numpy")(loop)
        return compiled

    def __call__(self, *arrays, **scalars):
        return self.bind(len(arrays), **scalars)(*arrays)

    def bind(self, n_arrays: int, **scalars) -> "BoundKernel":
        """The loop with its scalars fixed, to be called with its ``n_arrays`` arrays only: an optimizer
        that steps many tensors with the same scalars checks and orders them once per step."""
        order = self._scalar_order(n_arrays)
        try:
            values = tuple(scalars[name] for name in order)
        except KeyError:
            values = None
        if values is None or len(scalars) != len(order):
            raise TypeError(f"{self.loop.__name__}: got scalars {sorted(scalars)}; expected {sorted(order)}")
        return BoundKernel(self, values)


class BoundKernel:
    """A :class:`fused_kernel` with its scalars fixed (:meth:`fused_kernel.bind`); call it with the arrays."""

    __slots__ = ("kernel", "values")

    def __init__(self, kernel: fused_kernel, values: tuple):
        self.kernel, self.values = kernel, values

    def __call__(self, *arrays):
        parallel = arrays[0].shape[0] >= GRAIN
        compiled = self.kernel.compiled.get(parallel) or self.kernel._compiled(parallel)
        return compiled(*arrays, *self.values)


@functools.cache
def torch_arithmetic_mismatch() -> str | None:
    """Does this torch round as the table of the module docstring says? ``None`` if so, else what differs.

    Checked once per process on inputs whose fused and unfused results differ:
    :math:`(1 + \\delta)(1 - \\delta) - 1 = -\\delta^2` exactly, while the rounded product is 1. A torch
    without fused multiply-adds in its CPU kernels (a build for CPUs without FMA3) fails it.
    """
    for dtype, delta in ((torch.float32, 2.0**-15), (torch.float64, 2.0**-30)):
        n = 67  # one vectorised body and a scalar tail
        one = torch.ones(n, dtype=dtype)
        a, b, expected = one * (1 + delta), 1 - delta, -one * delta**2
        checks = {
            "a.add(b, alpha=s)": torch.add(-one, a, alpha=b),
            "a.addcmul(b, c, value=s)": torch.addcmul(-one, a, one * b, value=1),
            "a.lerp(b, w), |w| < 0.5": torch.lerp(-one, one * (3 + 4 * delta), (1 - delta) / 4),
            "a.lerp(b, w), |w| >= 0.5": torch.lerp(-one * (3 + 4 * delta), one, 1 - (1 - delta) / 4),
        }
        for op, got in checks.items():
            want = -expected if "|w| >=" in op else expected
            if not torch.equal(got, want):
                return (f"torch's {op} is not one fused multiply-add on this machine ({dtype}); the fused "
                        f"kernels would differ from torch.optim in the last bit")
    return None


def unavailable_reason(theta: Tensor, g: Tensor, *state: Tensor) -> str | None:
    """Why the fused kernels cannot step ``theta`` (gradient ``g``, per-element ``state``); ``None`` if they can.

    Asked on every step (a tensor may be replaced or moved between steps), so the common case, every
    tensor dense, CPU, contiguous and like ``theta``, is one short test per tensor.
    """
    if not _NUMBA:
        return "numba is not installed"
    dtype, shape = theta.dtype, theta.shape
    if dtype not in (torch.float32, torch.float64):
        return f"the parameter's dtype is {dtype} (the fused kernels take float32 and float64)"
    for name, t in (("parameter", theta), ("gradient", g), *(("state", s) for s in state)):
        if t.layout is torch.strided and t.is_cpu and t.dtype is dtype and t.shape == shape and t.is_contiguous():
            continue  # the common case, in one test
        if t.layout != torch.strided:
            return f"the {name} is sparse"
        if not t.is_cpu:
            return f"the {name} is on {t.device}"
        if t.dtype != dtype or t.shape != shape:
            return f"the {name} is {t.dtype} {tuple(t.shape)}, the parameter {dtype} {tuple(shape)}"
        return f"the {name} is not contiguous"
    if g.requires_grad:
        return "the gradient requires grad (a graph through the step is torch's differentiable=True)"
    if g.data_ptr() == theta.data_ptr():
        return "the gradient shares memory with the parameter"
    return torch_arithmetic_mismatch()


def arrays(*tensors: Tensor | None):
    """Flat numpy views sharing memory with ``tensors`` (``None`` becomes an empty array of the dtype)."""
    dtype = np.float32 if tensors[0].dtype == torch.float32 else np.float64
    return [np.empty(0, dtype) if t is None else (t.detach() if t.requires_grad else t).numpy().reshape(-1)
            for t in tensors]


class ArrayCache:
    """:func:`arrays` for the tensors of one parameter that live from step to step (the parameter, its
    state, scratch): each view is made once and reused, since making one costs about a microsecond. Not
    for the gradient: it is often a new tensor each step, and a view held here would keep the old one alive.

    Every call passes the same kinds of tensors in the same order. A view is reused while the tensor in
    its place is the same object on the same memory (``data_ptr``, dtype and shape as when the view was
    made), so ``p.data = ...``, a new state tensor or a new state (``load_state_dict``) gets a new view.
    The tensors must have passed :func:`unavailable_reason` (dense, contiguous, CPU) in this step; the
    cache holds the tensors of its last call and nothing older.

    Example:
        >>> cache, x = ArrayCache(), torch.zeros(3)
        >>> cache(x)[0] is cache(x)[0], cache(x)[0] is cache(x.clone())[0]
        (True, False)
    """

    def __init__(self):
        self.entries: list = []  # per place: (tensor, (data_ptr, dtype, shape), view)

    def __call__(self, *tensors: Tensor | None) -> list:
        if len(self.entries) != len(tensors):
            self.entries = [(None, None, None)] * len(tensors)
        views = []
        for i, t in enumerate(tensors):
            held, memory, view = self.entries[i]
            if t is None:
                view = np.empty(0, np.float32 if tensors[0].dtype == torch.float32 else np.float64)
            elif held is not t or memory != (t.data_ptr(), t.dtype, t.shape):
                view = arrays(t)[0]
                self.entries[i] = (t, (t.data_ptr(), t.dtype, t.shape), view)
            views.append(view)
        return views


def scalars(like: Tensor, **values: float) -> dict:
    """``values`` as numpy scalars of ``like``'s dtype, as torch rounds a Python scalar before using it."""
    cast = np.float32 if like.dtype == torch.float32 else np.float64
    return {k: cast(v) for k, v in values.items()}


def lerp_weight(like: Tensor, w: float) -> dict:
    """The scalars :func:`lerp` takes for weight ``w``: ``w`` and ``w - 1``, in ``like``'s dtype."""
    w = scalars(like, w=w)["w"]
    return {"w": w, "w_minus_1": w - 1}
