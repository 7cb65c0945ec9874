"""A widget's state as plain JSON numbers: what a grader reads from ``view.state.to_dict()``.

Every widget model returns a frozen dataclass that inherits :class:`WidgetState`. Its :meth:`to_dict`
turns the fields into what :func:`json.dumps` accepts with ``allow_nan=False``: numpy arrays become
(nested) lists, numpy scalars Python ``float``/``int``/``bool``, tuples lists, nested dataclasses and
dicts dicts -- and a non-finite number, which only a diverging run produces, becomes the string
``"diverged"`` (NaN, +-inf: the number is gone, the fact that it diverged is what a grader needs).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class S(WidgetState):
    ...     alpha: float
    ...     path: np.ndarray
    >>> S(np.float64(0.5), np.array([1.0, np.inf])).to_dict()
    {'alpha': 0.5, 'path': [1.0, 'diverged']}
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

DIVERGED = "diverged"  #: what a readout or ``to_dict()`` shows in place of a non-finite number


def plain(value):
    """``value`` as plain JSON data (see the module docstring); raises ``TypeError`` for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        if value.ndim and value.dtype.kind in "biuf" and bool(np.isfinite(value).all()):
            return value.tolist()  # already plain: Python ints/floats/bools, nothing to replace (fast for big arrays)
        return [plain(v) for v in value.tolist()] if value.ndim else plain(value.item())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return value if not isinstance(value, np.bool_) else bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else DIVERGED
    raise TypeError(f"plain: invalid value of type {type(value).__name__}; expected numbers, strings, "
                    "arrays, lists, dicts or dataclasses of them")


class WidgetState:
    """Mixin for a widget model's frozen dataclass: :meth:`to_dict` gives its fields as plain JSON data."""

    def to_dict(self) -> dict:
        """The fields as plain JSON data: lists, ``float``/``int``/``bool``/``str``; non-finite -> ``"diverged"``."""
        return plain(self)
