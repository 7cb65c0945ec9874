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

The last line is why no loop takes a square root itself: MKL's root is not correctly rounded on every
CPU (on this project's AMD EPYC about one float32 root in five, and one float64 root in seventy, is
one ulp off ``np.sqrt``). An optimizer that needs :math:`\\sqrt{v}` runs two loops with torch's root
between them (:class:`RootedLoops`): MKL's ``vmsSqrt``/``vmdSqrt`` called from the compiled code with
torch's arguments, block by block on memory the first loop has just brought into the cache, when this
torch exports them and they give ``torch.sqrt``'s bits (:func:`torch_root`), else ``torch.sqrt``
between two passes. Everything else follows from the list, with three rules: every scalar is passed
in already in the tensors' dtype (:func:`scalars`), since a float literal in the loop would promote
float32 arithmetic to float64;
numba never contracts ``a * b + c`` into an FMA by itself (``fastmath`` stays off), so the loop
writes :func:`fma` exactly where torch has one; and division by zero gives ``inf``/``nan`` as in
torch (``error_model="numpy"``).

**One call for many tensors.** A loop is written for one tensor; :meth:`BoundKernel.over` runs it over
the tensors of a whole parameter group in one compiled call: each tensor is cut into blocks of
:data:`CHUNK` elements, the blocks of all tensors are spread over the cores, and each block is the
loop on views of the block (made from the tensors' addresses). An optimizer collects its tensors in
a :class:`Batch` during a group's step and runs it at the end: one call per group instead of one per
tensor, which is what a model of many small tensors needs.

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
    from numba.extending import intrinsic, overload

    @intrinsic
    def fma_intrinsic(typingctx, a, b, c):
        if not (isinstance(a, numba.types.Float) and a == b == c):
            return None  # no implicit casts: fma of mixed dtypes would round differently from torch
        return a(a, b, c), lambda context, builder, sig, args: builder.fma(*args)

    @intrinsic
    def pointer(typingctx, address, like):
        """The integer ``address`` as a pointer to elements of ``like``'s dtype."""
        sig = numba.types.CPointer(like.dtype)(address, like)
        return sig, lambda context, builder, sig, args: builder.inttoptr(
            args[0], context.get_value_type(sig.return_type))

    @overload(_block_views)
    def block_views(addresses, t, lo, n, like, scratch):
        # one view per column of the address table: a tuple as long as the loop's list of arrays
        items = "".join(f"carray(pointer(address(addresses[{k}], t, lo, n, like, scratch), like), n), "
                        for k in range(len(addresses)))
        namespace = {"carray": numba.carray, "pointer": pointer, "address": helpers["address"]}
        exec(f"def views(addresses, t, lo, n, like, scratch):\n    return ({items})\n", namespace)
        return namespace["views"]

    @intrinsic
    def data_address(typingctx, array):
        """The address of an array's first element, as a signed integer (like the address tables)."""
        from llvmlite import ir

        def codegen(context, builder, sig, args):
            data = context.make_array(sig.args[0])(context, builder, args[0]).data
            return builder.ptrtoint(data, ir.IntType(64))

        return numba.types.int64(array), codegen

    @intrinsic
    def call_root(typingctx, function, threads, n, src, dst, mode):
        """``function(n, src, dst, mode)``: MKL's ``vm?Sqrt`` at the integer address ``function``, called
        with 32-bit ``n`` (MKL_INT), pointers ``src``/``dst`` (integer addresses) and the 64-bit ``mode``,
        on one thread: ``threads`` is MKL's ``MKL_Set_Num_Threads_Local``, set to 1 around the call (MKL
        would start threads of its own inside the loop's, and wait for them forever)."""
        from llvmlite import ir

        def codegen(context, builder, sig, args):
            address, set_threads, count, source, target, flags = args
            i32, i64, byte_pointer = ir.IntType(32), ir.IntType(64), ir.IntType(8).as_pointer()
            set_threads = builder.inttoptr(set_threads, ir.FunctionType(i32, [i32]).as_pointer())
            before = builder.call(set_threads, [ir.Constant(i32, 1)])
            fnty = ir.FunctionType(ir.VoidType(), [i32, byte_pointer, byte_pointer, i64])
            builder.call(builder.inttoptr(address, fnty.as_pointer()),
                         [builder.trunc(count, i32), builder.inttoptr(source, byte_pointer),
                          builder.inttoptr(target, byte_pointer), flags])
            builder.call(set_threads, [before])
            return context.get_dummy_value()

        return numba.types.void(function, threads, n, src, dst, mode), codegen

    helpers = {"prange": numba.prange, "fma": fma_intrinsic, "block_views": _block_views, "call_root": call_root,
               "data_address": data_address}
    for f in (lerp, _block_of, _address):
        helpers[f.__name__.lstrip("_")] = numba.njit(inline="always")(_with_globals(f, helpers))
    return helpers


def _block_views(addresses, t, lo, n, like, scratch):
    """In compiled code: numpy views of ``n`` elements from element ``lo`` of tensor ``t``, one per column
    of ``addresses`` (a tuple of integer arrays: the column's address of each tensor; see :func:`_address`
    for the block's scratch arrays, from address ``scratch``)."""
    raise NotImplementedError("only in compiled code (see _numba_helpers)")


def _with_globals(f, names: dict):
    """``f`` with ``names`` replacing its module's globals of the same name (the loop's code is unchanged)."""
    g = types.FunctionType(f.__code__, {**f.__globals__, **names}, f.__name__, f.__defaults__, f.__closure__)
    g.__qualname__, g.__module__ = f.__qualname__, f.__module__
    return g


GRAIN = 32768  # below this many elements a loop runs on one core (torch's own grain size, at::internal::GRAIN_SIZE)


CHUNK = 16384  # elements per block in BoundKernel.over: a block of every array of a loop fits in a core's L2 cache


def _block_of(c, starts, sizes):
    """Block ``c`` of the tensors: (tensor, first element, length); ``starts[t]`` is the number of blocks
    of the tensors before ``t``, ``sizes[t]`` its length."""
    t = np.searchsorted(starts, c, side="right") - 1
    lo = (c - starts[t]) * CHUNK
    return t, lo, min(CHUNK, sizes[t] - lo)


def _address(column, t, lo, n, like, scratch):
    """The address of element ``lo`` of tensor ``t`` in an address-table column; ``-k - 1`` is the block's
    scratch array ``k`` (``n`` elements each, from address ``scratch``), 0 an array the loop does not read."""
    start = column[t]
    if start < 0:
        return scratch + (-start - 1) * n * like.itemsize
    return start + lo * like.itemsize


def _over_blocks(addresses, sizes, starts, like, values):
    """LOOP on every block of every tensor (compiled per loop by :meth:`fused_kernel.driver`)."""
    for c in prange(starts[-1]):
        t, lo, n = block_of(c, starts, sizes)  # noqa: F821 - the compiled helpers (_numba_helpers)
        LOOP(*block_views(addresses, t, lo, n, like, 0), *values)  # noqa: F821 - set by fused_kernel.driver


def _over_blocks_rooted(first, roots, second, sizes, starts, like, first_values, second_values, root, threads, mode,
                        scratches):
    """Per block: FIRST, then torch's root from the block of ``roots[2k]`` into that of ``roots[2k + 1]`` for
    each k, then SECOND; ``scratches`` arrays of the block's length are its scratch (see :func:`_address`)."""
    for c in prange(starts[-1]):
        t, lo, n = block_of(c, starts, sizes)  # noqa: F821
        scratch = np.empty(scratches * n, like.dtype)  # freed at the block's end: the next block reuses the memory
        mine = data_address(scratch)  # noqa: F821
        FIRST(*block_views(first, t, lo, n, like, mine), *first_values)  # noqa: F821 - set by RootedLoops.over
        for k in range(0, len(roots), 2):
            call_root(root, threads, n, address(roots[k], t, lo, n, like, mine),  # noqa: F821
                      address(roots[k + 1], t, lo, n, like, mine), mode)
        SECOND(*block_views(second, t, lo, n, like, mine), *second_values)  # noqa: F821


def _root_call(function, threads, n, src, dst, mode):
    call_root(function, threads, n, src, dst, mode)  # noqa: F821


def _compile_driver(template, loops: dict, parallel: bool):
    """``template`` compiled with ``loops`` (name -> :class:`fused_kernel`) as its serial loops.

    numba's on-disk cache knows a function by its name and its own file: the name carries a digest of
    the loops' source, so that a changed loop in another file is compiled again, not loaded stale.
    """
    import hashlib

    import numba
    names = {**_numba_helpers(), **{name: kernel.compiled() for name, kernel in loops.items()}}
    f = _with_globals(template, names)
    source = "".join(inspect.getsource(kernel.loop) for kernel in loops.values())
    f.__qualname__ = "_".join([template.__name__, *(kernel.loop.__name__ for kernel in loops.values()),
                               hashlib.sha1(source.encode()).hexdigest()[:12]]) + ("" if parallel else "_serial")
    return numba.njit(parallel=parallel, cache=True, nogil=True, error_model="numpy")(f)


class fused_kernel:
    """Decorator: a loop over one tensor's elements, compiled with ``numba.njit(cache=True)`` on first use.

    Compiling lazily keeps ``import optlab.optim`` free of numba's start-up (half a second);
    ``cache=True`` keeps the machine code on disk, so a new process loads it instead of compiling again.
    :meth:`bind` fixes its scalars by keyword (the loop's names for them) and :meth:`BoundKernel.over`
    runs it over many tensors. A call of :data:`GRAIN` elements or more in all runs on every core;
    a smaller one on one, as torch does: waking threads for little work costs more than it saves, a
    lot more on a busy machine.
    """

    def __init__(self, loop):
        self.loop, self.serial, self.order, self.drivers = loop, None, {}, {}
        self.names = list(inspect.signature(loop).parameters)
        functools.update_wrapper(self, loop)

    def _scalar_order(self, n_arrays: int) -> tuple[str, ...]:
        """The loop's scalar names after its first ``n_arrays`` arguments."""
        order = self.order.get(n_arrays)
        if order is None:
            order = self.order[n_arrays] = tuple(self.names[n_arrays:])
        return order

    def compiled(self):
        """The loop compiled for one core (its ``prange`` a plain range): the body each block of a driver calls."""
        if self.serial is None:
            import numba
            loop = _with_globals(self.loop, _numba_helpers())
            loop.__qualname__ += "_serial"  # its own entry in numba's on-disk cache
            self.serial = numba.njit(cache=True, nogil=True, error_model="numpy")(loop)
        return self.serial

    def driver(self, parallel: bool):
        """The loop over blocks of many tensors (:meth:`BoundKernel.over`), compiled on first use."""
        driver = self.drivers.get(parallel)
        if driver is None:
            driver = self.drivers[parallel] = _compile_driver(_over_blocks, {"LOOP": self}, parallel)
        return driver

    def bind(self, n_arrays: int, **scalars) -> "BoundKernel":
        """The loop with its scalars fixed, to run on its ``n_arrays`` arrays only: an optimizer that steps
        many tensors with the same scalars checks and orders them once per step."""
        order = self._scalar_order(n_arrays)
        try:
            values = tuple(scalars[name] for name in order)
        except KeyError:
            values = None
        if values is None or len(scalars) != len(order):
            raise TypeError(f"{self.loop.__name__}: got scalars {sorted(scalars)}; expected {sorted(order)}")
        return BoundKernel(self, values)


class BoundKernel:
    """A :class:`fused_kernel` with its scalars fixed (:meth:`fused_kernel.bind`); :meth:`over` runs it."""

    __slots__ = ("kernel", "values")

    def __init__(self, kernel: fused_kernel, values: tuple):
        self.kernel, self.values = kernel, values

    def over(self, sets: list[tuple], at: tuple[int, ...] | None = None, blocks: "Blocks | None" = None) -> None:
        """The loop on each tuple of tensors in ``sets`` (the loop's arrays, in its order; ``None`` for an
        array it does not read), all in one compiled call: the tensors' blocks spread over the cores.

        ``at``: the positions in each tuple that are the loop's arrays (all, by default). The tensors of
        a call are dense, contiguous CPU tensors of one dtype (:func:`unavailable_reason`), the ones of a
        tuple of one length.
        """
        blocks = blocks or Blocks(sets)
        addresses, = blocks.addresses(at or range(len(sets[0])))
        self.kernel.driver(blocks.parallel)(addresses, blocks.sizes, blocks.starts, blocks.like, self.values)


class Blocks:
    """The tensors of a :meth:`BoundKernel.over` call cut into blocks of :data:`CHUNK` elements: per
    tensor its length and its number of blocks, the addresses of its arrays, and whether the call is
    large enough (:data:`GRAIN` elements in all) to wake every core. Plain Python until the few numpy
    arrays the compiled call takes: a step of one small tensor must stay cheap."""

    __slots__ = ("sets", "sizes", "starts", "like", "parallel")
    LIKE = {torch.float32: np.empty(0, np.float32), torch.float64: np.empty(0, np.float64)}

    def __init__(self, sets: list[tuple]):
        self.sets = sets
        sizes = [s[0].numel() for s in sets]
        starts, total = [0], 0
        for n in sizes:
            starts.append(starts[-1] + -(-n // CHUNK))
            total += n
        self.sizes, self.starts = np.array(sizes, np.int64), np.array(starts, np.int64)
        self.like = self.LIKE[sets[0][0].dtype]
        self.parallel = total >= GRAIN

    def addresses(self, *ats) -> tuple:
        """Per tuple of positions in ``ats``: per position, the address of that array of every tensor (0 for
        ``None``, ``-k - 1`` for ``SCRATCH[k]``), as rows of one table."""
        table = np.array([[_marker(s[k]) if s[k] is None or type(s[k]) is Scratch else s[k].data_ptr()
                           for s in self.sets] for at in ats for k in at], np.int64)
        rows, out = tuple(table), []
        for at in ats:
            out.append(rows[:len(at)])
            rows = rows[len(at):]
        return tuple(out)


class Scratch:
    """Marks a scratch array in a tuple of :meth:`RootedLoops.over`: ``SCRATCH[k]``, memory of the tensor's
    length that the loops and the root may write and read back within the step (it holds nothing before
    or after)."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __repr__(self):
        return f"SCRATCH[{self.index}]"


SCRATCH = tuple(Scratch(k) for k in range(4))


def _marker(t) -> int:
    """The address-table entry of ``None`` (an array the loop does not read: 0) and of ``SCRATCH[k]`` (-k - 1)."""
    return 0 if t is None else -t.index - 1


class RootedLoops:
    """Two bound loops with torch's square root between them, over many tensors in one call.

    Per tuple of tensors: ``first`` on the tensors at positions ``first_at``, then ``t[dst] = sqrt(t[src])``
    for each pair ``(src, dst)`` in ``root_at`` (the same position for a root in place), then ``second``
    on ``second_at``. :data:`SCRATCH` entries of a tuple are scratch; ``None`` an array the loops do
    not read (a state the options do not keep).

    With :func:`torch_root` this runs block by block in one compiled call, so the root reads what the
    first loop has just written while it is in the cache, and the scratch is a block's length;
    without it, ``torch.sqrt`` runs between two :meth:`BoundKernel.over` calls (the same bits, three
    passes over memory, scratch as large as the tensors).
    """

    drivers: dict = {}  # (first kernel, second kernel, parallel) -> compiled, shared by every RootedLoops

    def __init__(self, first: BoundKernel, first_at: tuple[int, ...], root_at: tuple[tuple[int, int], ...],
                 second: BoundKernel, second_at: tuple[int, ...]):
        self.first, self.first_at, self.root_at = first, first_at, root_at
        self.second, self.second_at = second, second_at

    def over(self, sets: list[tuple]) -> None:
        """Both loops and the root on each tuple of ``sets`` (see :meth:`BoundKernel.over`)."""
        root = torch_root(sets[0][0].dtype)
        if root is None:
            sets = [tuple(torch.empty_like(s[0]) if type(t) is Scratch else t for t in s) for s in sets]
            blocks = Blocks(sets)
            self.first.over(sets, self.first_at, blocks)
            for s in sets:
                for src, dst in self.root_at:
                    torch.sqrt(s[src], out=s[dst])
            self.second.over(sets, self.second_at, blocks)
            return
        blocks = Blocks(sets)
        key = (self.first.kernel, self.second.kernel, blocks.parallel)
        driver = self.drivers.get(key)
        if driver is None:
            driver = self.drivers[key] = _compile_driver(
                _over_blocks_rooted, {"FIRST": self.first.kernel, "SECOND": self.second.kernel}, blocks.parallel)
        first, roots, second = blocks.addresses(self.first_at, [k for pair in self.root_at for k in pair],
                                                self.second_at)
        driver(first, roots, second,
               blocks.sizes, blocks.starts, blocks.like, self.first.values, self.second.values, *root, VML_MODE,
               1 + max((t.index for t in sets[0] if type(t) is Scratch), default=-1))


class Batch:
    """The fused calls of one group's step: :meth:`add` collects each call's tensors under its bound loop,
    :meth:`run` runs every loop once over all of them (:meth:`BoundKernel.over`, :meth:`RootedLoops.over`).

    A loop bound to the same scalars is the same object for every tensor of a step (see
    ``KernelOptimizer._once_per_group_step``), so a group of one dtype makes one call per loop.
    Nothing may read a tensor added here before :meth:`run`.
    """

    __slots__ = ("calls",)

    def __init__(self):
        self.calls: dict = {}  # id(loop) -> (loop, tensor tuples)

    def add(self, loop: "BoundKernel | RootedLoops", *tensors: Tensor | None) -> None:
        entry = self.calls.get(id(loop))
        if entry is None:
            self.calls[id(loop)] = (loop, [tensors])
        else:
            entry[1].append(tensors)

    def run(self) -> None:
        calls, self.calls = self.calls, {}
        for loop, sets in calls.values():
            loop.over(sets)


VML_MODE = 0x2 | 0x100 | 0x140000  # VML_HA | VML_ERRMODE_IGNORE | VML_FTZDAZ_OFF, as ATen calls MKL (ATen/cpu/vml.h)


@functools.cache
def torch_root(dtype: torch.dtype) -> tuple[int, int] | None:
    """The addresses of the square root torch's CPU ``sqrt`` computes with and of MKL's
    ``MKL_Set_Num_Threads_Local`` (:class:`RootedLoops` calls the root on one thread), or ``None``.

    On x86 builds torch links MKL into ``libtorch_cpu`` and exports its ``vmsSqrt``/``vmdSqrt``; ATen
    calls them with :data:`VML_MODE`. Used only if it gives ``torch.sqrt``'s bits here (checked once per
    process and dtype: zeros of both signs, denormals, inf, nan, negatives and random magnitudes, in
    blocks of odd lengths, and one element at a time).
    """
    if not _NUMBA or dtype not in (torch.float32, torch.float64):
        return None
    import ctypes
    import os
    try:
        lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
        name = "vmsSqrt" if dtype == torch.float32 else "vmdSqrt"
        address = tuple(ctypes.cast(getattr(lib, f), ctypes.c_void_p).value
                        for f in (name, "MKL_Set_Num_Threads_Local"))
    except (OSError, AttributeError):
        return None
    import numba
    call = numba.njit(cache=True)(_with_globals(_root_call, _numba_helpers()))
    info = torch.finfo(dtype)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(4099, generator=g, dtype=torch.float64)
         * 10.0 ** torch.randint(-30, 30, (4099,), generator=g)).to(dtype)
    x[:12] = torch.tensor([0.0, -0.0, info.tiny, info.tiny / 3, info.smallest_normal / 1024, info.max, float("inf"),
                           float("-inf"), float("nan"), -1.0, -info.tiny / 3, 2.0], dtype=dtype)
    out = torch.full_like(x, 7.0)
    lo = 0
    for n in (1, 2, 3, 5, 8, 13, 31, 64, 1000, 2977):  # 4104 > 4099: the last block is the rest
        n = min(n, x.numel() - lo)
        call(*address, n, x.data_ptr() + lo * x.element_size(), out.data_ptr() + lo * x.element_size(), VML_MODE)
        lo += n
    bits = torch.int32 if dtype == torch.float32 else torch.int64
    alone = torch.cat([torch.sqrt(x[i:i + 1]) for i in range(64)])  # a one-element tensor may take another path
    same = (torch.equal(out.view(bits), torch.sqrt(x).view(bits))
            and torch.equal(out[:64].view(bits), alone.view(bits)))
    return address if same else None


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
    for t in (theta, g, *state):  # the common case: one test per tensor
        if not (t.layout is torch.strided and t.is_cpu and t.dtype is dtype and t.shape == shape
                and t.is_contiguous()):
            return _why_not(theta, g, state)
    if g.requires_grad:
        return "the gradient requires grad (a graph through the step is torch's differentiable=True)"
    if g.data_ptr() == theta.data_ptr():
        return "the gradient shares memory with the parameter"
    return torch_arithmetic_mismatch()


def _why_not(theta: Tensor, g: Tensor, state: tuple) -> str:
    """What :func:`unavailable_reason` says of the first tensor not dense, CPU, contiguous and like ``theta``."""
    dtype, shape = theta.dtype, theta.shape
    for name, t in (("parameter", theta), ("gradient", g), *(("state", s) for s in state)):
        if t.layout != torch.strided:
            return f"the {name} is sparse"
        if not t.is_cpu:
            return f"the {name} is on {t.device}"
        if t.dtype != dtype or t.shape != shape:
            return f"the {name} is {t.dtype} {tuple(t.shape)}, the parameter {dtype} {tuple(shape)}"
        if not t.is_contiguous():
            return f"the {name} is not contiguous"
    raise AssertionError("_why_not: every tensor is dense, CPU, contiguous and like the parameter")


def scalars(like: Tensor, **values: float) -> dict:
    """``values`` as numpy scalars of ``like``'s dtype, as torch rounds a Python scalar before using it."""
    cast = np.float32 if like.dtype == torch.float32 else np.float64
    return {k: cast(v) for k, v in values.items()}


def lerp_weight(like: Tensor, w: float) -> dict:
    """The scalars :func:`lerp` takes for weight ``w``: ``w`` and ``w - 1``, in ``like``'s dtype."""
    w = scalars(like, w=w)["w"]
    return {"w": w, "w_minus_1": w - 1}


def run(loop: "BoundKernel | RootedLoops", *tensors: Tensor | None, batch: Batch | None = None) -> None:
    """``loop`` on ``tensors``: now, or, given the group step's ``batch``, with the group's other tensors
    when the step ends (:class:`Batch`)."""
    if batch is None:
        loop.over([tensors])
    else:
        batch.add(loop, *tensors)
