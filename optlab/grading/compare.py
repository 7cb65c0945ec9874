"""Decide, in the grader's process, whether a value a student's code produced matches the reference.

Values arrive as the plain data written by :mod:`optlab.grading.runner` and checked by
:mod:`optlab.grading.protocol` (``kind`` plus fields; a value that failed the check is
``{"kind": "invalid", "problem": ...}`` and never matches).
"""

from __future__ import annotations

import math

_NAMES = {"number": "a number", "array": "an array", "sequence": "a list or tuple", "mapping": "a dict",
          "bool": "a bool", "str": "a string", "none": "None", "error": "an exception", "other": "an object"}


def describe(value: dict) -> str:
    """A short human description of an encoded value, for the notes column."""
    kind = value.get("kind")
    if kind == "invalid":
        return f"an invalid value ({value['problem']})"[:200]
    if kind == "error":
        message = f": {value['message']}" if value["message"] else ""
        return f"raised {value['type']}{message}"[:160]
    if kind == "array":
        lib = "numpy array" if value["lib"] == "numpy" else "torch tensor"
        return f"a {lib} of shape {tuple(value['shape'])}"
    if kind == "other":
        return f"an object of type {value['type']}"
    if kind == "number":
        return f"the number {value['value']!r}"
    return _NAMES.get(kind, repr(kind))


def compare(expected: dict, got: dict, *, rtol: float, atol: float) -> str | None:
    """``None`` when ``got`` matches ``expected``, else the reason it does not (one line).

    Numbers and arrays match when ``|got - expected| <= atol + rtol * |expected|`` elementwise (NaN
    matches NaN); arrays must also have the same library (numpy vs torch) and shape; lists and tuples
    match elementwise; an expected exception matches an exception of the same type name.
    """
    kind = expected["kind"]
    if got.get("kind") == "invalid":
        return describe(got)
    if kind == "error":
        if got["kind"] == "error" and got["type"] == expected["type"]:
            return None
        return f"expected {expected['type']} to be raised, got {describe(got)}"
    if got["kind"] == "error":
        return describe(got)
    if kind == "number":
        if got["kind"] != "number":
            return f"expected a number, got {describe(got)}"
        return _close([expected["value"]], [got["value"]], rtol, atol)
    if kind == "array":
        if got["kind"] != "array" or got["lib"] != expected["lib"]:
            return f"expected {describe(expected)}, got {describe(got)}"
        if got["shape"] != expected["shape"] or len(got["data"]) != len(expected["data"]):
            return f"expected shape {tuple(expected['shape'])}, got shape {tuple(got['shape'])}"
        return _close(expected["data"], got["data"], rtol, atol)
    if kind == "sequence":
        if got["kind"] != "sequence" or len(got["items"]) != len(expected["items"]):
            n = len(expected["items"])
            return f"expected a list or tuple of {n} item{'s' * (n != 1)}, got {describe(got)}" + (
                f" of {len(got['items'])}" if got["kind"] == "sequence" else "")
        for i, (e, g) in enumerate(zip(expected["items"], got["items"])):
            reason = compare(e, g, rtol=rtol, atol=atol)
            if reason:
                return f"item {i}: {reason}"
        return None
    if kind == "mapping":
        if got["kind"] != "mapping" or set(got["items"]) != set(expected["items"]):
            return f"expected a dict with keys {sorted(expected['items'])}, got {describe(got)}"
        for k in sorted(expected["items"]):
            reason = compare(expected["items"][k], got["items"][k], rtol=rtol, atol=atol)
            if reason:
                return f"key {k!r}: {reason}"
        return None
    if kind in ("bool", "str", "none"):
        if got["kind"] == kind and got.get("value") == expected.get("value"):
            return None
        return f"expected {expected.get('value')!r}, got {describe(got) if got['kind'] != kind else repr(got['value'])}"
    return f"the reference value ({describe(expected)}) cannot be compared; fix the probe"


def _close(expected: list[float], got: list[float], rtol: float, atol: float) -> str | None:
    worst, where = 0.0, None
    for i, (e, g) in enumerate(zip(expected, got)):
        if math.isnan(e) and math.isnan(g):
            continue
        if math.isinf(e) or math.isinf(g):
            if e == g:
                continue
            return f"expected {e!r} at position {i}, got {g!r}"
        err = abs(g - e)
        if math.isnan(err) or err > atol + rtol * abs(e):
            excess = math.inf if math.isnan(err) else err
            if excess >= worst:
                worst, where = excess, (i, e, g)
    if where is None:
        return None
    i, e, g = where
    at = f" at position {i}" if len(expected) > 1 else ""
    return f"value differs{at}: expected {e:.6g}, got {g:.6g}"
