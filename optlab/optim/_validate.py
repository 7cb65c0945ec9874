"""Hyper-parameter checks shared by the optimizers: every error names the value and what was expected."""

from __future__ import annotations

import math


def check(owner: str, name: str, value, ok: bool, expected: str) -> None:
    """Raise ``ValueError`` naming ``owner``'s parameter ``name``, its ``value`` and what was ``expected``."""
    if not ok:
        raise ValueError(f"{owner}: invalid {name}={value!r}; expected {expected}")


def non_negative(owner: str, name: str, value) -> None:
    """``value`` must be a finite number >= 0 (a learning rate, an epsilon, a weight decay...)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok and hasattr(value, "numel") and value.numel() == 1:  # a 0-d tensor learning rate
        v = float(value)
        ok = math.isfinite(v) and v >= 0
    check(owner, name, value, ok, "a finite number >= 0")


def in_unit_interval(owner: str, name: str, value, *, closed_right: bool = False) -> None:
    """``value`` must lie in [0, 1) (or [0, 1] with ``closed_right``), e.g. a beta or a momentum."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (0.0 <= value <= 1.0 if closed_right else 0.0 <= value < 1.0)
    check(owner, name, value, ok, "a number in [0, 1]" if closed_right else "a number in [0, 1)")


def positive_int_or_none(owner: str, name: str, value) -> None:
    """``value`` must be ``None`` or an integer > 0 (e.g. an iteration cap)."""
    ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)
    check(owner, name, value, ok, "None or a positive integer")
