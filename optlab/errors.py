"""Argument checks shared by optlab: every error names who raised it, the argument, its value and what
was expected.

Four message forms, one per kind of mistake, so the same mistake reads the same everywhere:

==================  ==================================================================  ==============
mistake             message                                                              exception
==================  ==================================================================  ==============
a bad value         ``{owner}: invalid {name}={value!r}; expected {expected}``           ``ValueError``
a wrong kind        ``{owner}: invalid {name} of type {type}; expected {expected}``      ``TypeError``
a wrong shape       ``{owner}: invalid {name} of shape {shape}; expected {expected}``    ``ValueError``
data that fails     ``{owner}: invalid {name}: {problem}; expected {expected}``          ``ValueError``
==================  ==================================================================  ==============

The first is the format of the optimizers' hyper-parameter checks (``optlab.optim``), as in
``torch.optim``. A hyper-parameter of the wrong numeric type (``max_iter=2.5``, ``tol="small"``) is a
bad value, hence a ``ValueError``; ``TypeError`` is for an argument that is not the kind of object
expected at all (a model that is not a ``torch.nn.Module``, data that is not a pair of tensors).

Each form comes as a check (``check``, ``check_type``, ``check_shape``, ``check_data``: raise if not
``ok``) and as the exception itself (``value_error``, ``type_error``, ``shape_error``, ``data_error``:
``raise shape_error(...)`` where the condition is tested anyway, e.g. in a loop). The helpers after them
fix the ``expected`` text of the common conditions (an iteration cap, a tolerance, a seed, a choice
among names), so that one condition has one message. This module imports nothing from optlab, numpy
or torch: a shape is any sequence of ints, anything ``numbers.Real`` is a number (a 0-d tensor counts
where noted).

Example:
    >>> positive_int("top_eigenvalue", "max_iter", 2.5)
    Traceback (most recent call last):
    ...
    ValueError: top_eigenvalue: invalid max_iter=2.5; expected a positive integer
"""

from __future__ import annotations

import math
import numbers


# ----- the four forms: as exceptions (``raise shape_error(...)`` where a check sits in a loop) ----------

def value_error(owner: str, name: str, value, expected: str) -> ValueError:
    """``{owner}: invalid {name}={value!r}; expected {expected}``."""
    return ValueError(f"{owner}: invalid {name}={value!r}; expected {expected}")


def type_error(owner: str, name: str, value, expected: str) -> TypeError:
    """``{owner}: invalid {name} of type {type}; expected {expected}``."""
    return TypeError(f"{owner}: invalid {name} of type {type(value).__name__}; expected {expected}")


def shape_error(owner: str, name: str, shape, expected: str) -> ValueError:
    """``{owner}: invalid {name} of shape {shape}; expected {expected}``."""
    return ValueError(f"{owner}: invalid {name} of shape {tuple(shape)}; expected {expected}")


def data_error(owner: str, name: str, problem: str, expected: str, error: type = ValueError) -> Exception:
    """``{owner}: invalid {name}: {problem}; expected {expected}`` (``error=TypeError`` where the problem is
    the kind of thing found, e.g. a layer a method does not support)."""
    return error(f"{owner}: invalid {name}: {problem}; expected {expected}")


# ----- the four forms: as checks -------------------------------------------------------------------------

def check(owner: str, name: str, value, ok: bool, expected: str) -> None:
    """Raise ``ValueError`` naming ``owner``'s parameter ``name``, its ``value`` and what was ``expected``."""
    if not ok:
        raise value_error(owner, name, value, expected)


def check_type(owner: str, name: str, value, ok: bool, expected: str) -> None:
    """Raise ``TypeError`` naming ``owner``'s argument ``name``, the type of ``value`` and what was ``expected``."""
    if not ok:
        raise type_error(owner, name, value, expected)


def check_shape(owner: str, name: str, shape, ok: bool, expected: str) -> None:
    """Raise ``ValueError`` naming ``owner``'s array ``name``, its ``shape`` and the shape ``expected``."""
    if not ok:
        raise shape_error(owner, name, shape, expected)


def check_data(owner: str, name: str, ok: bool, problem: str, expected: str, error: type = ValueError) -> None:
    """Raise ``ValueError`` (or ``error``) for data ``name`` that fails a check: what is wrong with it
    (``problem``) and what was ``expected``."""
    if not ok:
        raise data_error(owner, name, problem, expected, error)


# ----- what counts as a number -------------------------------------------------------------------------

def is_number(value) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    return is_number(value) and math.isfinite(value)


# ----- common conditions, one message each ---------------------------------------------------------------

def non_negative(owner: str, name: str, value) -> None:
    """``value`` must be a finite number >= 0 (a learning rate, an epsilon, a tolerance...); a 0-d tensor
    counts as a number."""
    ok = _is_finite_number(value) and value >= 0
    if not ok and hasattr(value, "numel") and value.numel() == 1:  # a 0-d tensor learning rate
        v = float(value)
        ok = math.isfinite(v) and v >= 0
    check(owner, name, value, ok, "a finite number >= 0")


def positive(owner: str, name: str, value, *, none_ok: bool = False) -> None:
    """``value`` must be a finite number > 0 (a step, a width), or ``None`` (the default) if ``none_ok``."""
    ok = (none_ok and value is None) or (_is_finite_number(value) and value > 0)
    check(owner, name, value, ok, ("None or " if none_ok else "") + "a finite number > 0")


def finite(owner: str, name: str, value) -> None:
    """``value`` must be a finite number."""
    check(owner, name, value, _is_finite_number(value), "a finite number")


def in_unit_interval(owner: str, name: str, value, *, closed_right: bool = False) -> None:
    """``value`` must lie in [0, 1) (or [0, 1] with ``closed_right``), e.g. a beta or a momentum."""
    ok = is_number(value) and (0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0)
    check(owner, name, value, ok, "a number in [0, 1]" if closed_right else "a number in [0, 1)")


def in_interval(owner: str, name: str, value, low: float, high: float, *, open_low: bool = False,
                open_high: bool = False) -> None:
    """``value`` must lie between ``low`` and ``high`` (each end included unless ``open_low``/``open_high``)."""
    ok = is_number(value) and (low < value if open_low else low <= value) and (
        value < high if open_high else value <= high)
    interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    check(owner, name, value, ok, f"a number in {interval}")


def positive_int(owner: str, name: str, value) -> None:
    """``value`` must be an integer > 0 (an iteration cap, a number of samples, a size)."""
    check(owner, name, value, is_integer(value) and value > 0, "a positive integer")


def positive_int_or_none(owner: str, name: str, value) -> None:
    """``value`` must be ``None`` or an integer > 0 (e.g. an iteration cap)."""
    ok = value is None or (is_integer(value) and value > 0)
    check(owner, name, value, ok, "None or a positive integer")


def non_negative_int(owner: str, name: str, value) -> None:
    """``value`` must be an integer >= 0 (a seed, a number of steps)."""
    check(owner, name, value, is_integer(value) and value >= 0, "an integer >= 0")


def int_in_range(owner: str, name: str, value, low: int, high: int | None = None) -> None:
    """``value`` must be an integer in ``[low, high]`` (``high=None``: no upper bound)."""
    ok = is_integer(value) and value >= low and (high is None or value <= high)
    check(owner, name, value, ok, f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}")


def one_of(owner: str, name: str, value, choices) -> None:
    """``value`` must be one of ``choices`` (names, or ``None``)."""
    choices = tuple(choices)
    ok = any(value is c or (type(value) is type(c) and value == c) for c in choices)
    check(owner, name, value, ok, "one of " + ", ".join(repr(c) for c in choices))


def boolean(owner: str, name: str, value) -> None:
    """``value`` must be ``True`` or ``False`` (not a number or a string that reads like one)."""
    check(owner, name, value, isinstance(value, bool), "True or False")
