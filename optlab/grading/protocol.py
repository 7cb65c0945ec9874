"""The grader's reading of a child's result stream: hostile bytes in, validated plain data out.

The student's code runs in the process that writes the stream, so every byte may be forged. This module
accepts only the exact event sequence the runner writes for the job it was given (``start``; ``cell``
and ``cell_done`` for cells 1..n in order; ``probe`` and ``probe_done`` for the job's probes in order;
``done``), each event with exactly its fields, and each value against a strict schema:

=========  =====================================================================================
kind       fields
=========  =====================================================================================
none       --
bool       ``value``: true/false
number     ``value``: a finite JSON number or ``"nan"``, ``"inf"``, ``"-inf"``
str        ``value``: a string of at most :data:`MAX_TEXT` characters
array      ``lib`` (``numpy``/``torch``), ``shape`` (at most 32 sizes >= 0), ``dtype`` (a short
           name), ``data``: numbers, exactly as many as the product of the shape
sequence   ``items``: values; ``mapping``: ``items``: string keys -> values
error      ``type`` (a short name), ``message`` (text), ``where`` (at most 3 short texts)
other      ``type``, ``repr`` (texts)
=========  =====================================================================================

with at most :data:`MAX_DEPTH` levels and :data:`MAX_NODES` numbers and nodes per value. A stream that
breaks the sequence ends there: the run is ``invalid`` and scores 0. A value that breaks the schema
becomes ``{"kind": "invalid", "problem": ...}``: that probe scores 0. Either way a note says why, and the
batch goes on.
"""

from __future__ import annotations

import json
import math
import re

MAX_TEXT = 1000
MAX_DEPTH = 24
MAX_NODES = 2_000_000
MAX_DIMS = 32
_DTYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class ProtocolError(ValueError):
    """The child's output is not what the protocol allows (the message says what and where)."""


def _reject_constant(name: str):
    raise ProtocolError(f"the JSON constant {name} is not allowed (non-finite numbers are strings)")


def _text(x, limit: int, what: str) -> str:
    if not isinstance(x, str):
        raise ProtocolError(f"{what} is a {type(x).__name__}, not a string")
    if len(x) > limit:
        raise ProtocolError(f"{what} has {len(x)} characters (at most {limit})")
    return x


def _number(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise ProtocolError(f"{what} is a {type(x).__name__}, not a number")
    if isinstance(x, str):
        if x not in _NON_FINITE:
            raise ProtocolError(f"{what} is the string {x[:20]!r}, not a number")
        return _NON_FINITE[x]
    try:
        f = float(x)
    except OverflowError:
        raise ProtocolError(f"{what} is too large for a float") from None
    if not math.isfinite(f):
        raise ProtocolError(f"{what} is not finite")
    return f


def _fields(obj, required: set[str], what: str) -> dict:
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} is a {type(obj).__name__}, not an object")
    if set(obj) != required:
        raise ProtocolError(f"{what} has fields {sorted(map(str, obj))[:10]}, expected {sorted(required)}")
    return obj


def error_value(obj, what: str = "error") -> dict:
    """An encoded exception (``kind: error``), checked and copied."""
    _fields(obj, {"kind", "type", "message", "where"}, what)
    if obj["kind"] != "error":
        raise ProtocolError(f"{what} has kind {str(obj['kind'])[:20]!r}, expected 'error'")
    where = obj["where"]
    if not isinstance(where, list) or len(where) > 3:
        raise ProtocolError(f"{what}.where is not a list of at most 3 texts")
    return {"kind": "error", "type": _text(obj["type"], 100, f"{what}.type"),
            "message": _text(obj["message"], MAX_TEXT, f"{what}.message"),
            "where": [_text(w, 200, f"{what}.where") for w in where]}


_FIELDS = {"none": set(), "bool": {"value"}, "number": {"value"}, "str": {"value"},
           "array": {"lib", "shape", "dtype", "data"}, "sequence": {"items"}, "mapping": {"items"},
           "other": {"type", "repr"}}


def value(obj, depth: int = 0, budget: list[int] | None = None) -> dict:
    """An encoded probe value checked against the schema above and copied (numbers as floats);
    ``ProtocolError`` on the first problem."""
    budget = [MAX_NODES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise ProtocolError(f"the value has more than {MAX_NODES} parts")
    if depth > MAX_DEPTH:
        raise ProtocolError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        raise ProtocolError("a value is not an object with a kind")
    kind = obj["kind"]
    if kind == "error":
        return error_value(obj, "the exception")
    if kind not in _FIELDS:
        raise ProtocolError(f"unknown kind {kind[:20]!r}")
    _fields(obj, _FIELDS[kind] | {"kind"}, f"a {kind} value")
    if kind == "none":
        return {"kind": "none"}
    if kind == "bool":
        if not isinstance(obj["value"], bool):
            raise ProtocolError("a bool value is not true or false")
        return {"kind": "bool", "value": obj["value"]}
    if kind == "number":
        return {"kind": "number", "value": _number(obj["value"], "a number")}
    if kind == "str":
        return {"kind": "str", "value": _text(obj["value"], MAX_TEXT, "a string value")}
    if kind == "other":
        return {"kind": "other", "type": _text(obj["type"], 300, "an object's type"),
                "repr": _text(obj["repr"], MAX_TEXT, "an object's repr")}
    if kind == "array":
        if obj["lib"] not in ("numpy", "torch"):
            raise ProtocolError(f"an array's lib is {str(obj['lib'])[:20]!r}, not 'numpy' or 'torch'")
        shape = obj["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
                isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_NODES for n in shape):
            raise ProtocolError(f"an array's shape is not a list of at most {MAX_DIMS} sizes >= 0")
        size = math.prod(shape)
        data = obj["data"]
        if not isinstance(data, list) or len(data) != size:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise ProtocolError(f"an array of shape {tuple(shape)} has data of length {got}, expected {size}")
        budget[0] -= size
        if budget[0] < 0:
            raise ProtocolError(f"the value has more than {MAX_NODES} parts")
        dtype = obj["dtype"]
        if not isinstance(dtype, str) or not _DTYPE.match(dtype):
            raise ProtocolError("an array's dtype is not a short name")
        return {"kind": "array", "lib": obj["lib"], "shape": list(shape), "dtype": dtype,
                "data": [_number(x, "an array element") for x in data]}
    items = obj["items"]
    if kind == "sequence":
        if not isinstance(items, list):
            raise ProtocolError("a sequence's items are not a list")
        return {"kind": "sequence", "items": [value(v, depth + 1, budget) for v in items]}
    if not isinstance(items, dict):
        raise ProtocolError("a mapping's items are not an object")
    return {"kind": "mapping", "items": {_text(k, MAX_TEXT, "a key"): value(v, depth + 1, budget)
                                         for k, v in items.items()}}


def _event(line: bytes, n: int) -> dict:
    try:
        ev = json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except ProtocolError as exc:
        raise ProtocolError(f"line {n}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"line {n} is not JSON ({type(exc).__name__})") from None
    if not isinstance(ev, dict) or not isinstance(ev.get("event"), str):
        raise ProtocolError(f"line {n} is not an event object")
    return ev


def _expected(n_cells: int, names: list[str]):
    yield "start", None
    for i in range(1, n_cells + 1):
        yield "cell", i
        yield "cell_done", i
    for name in names:
        yield "probe", name
        yield "probe_done", name
    yield "done", None


_EVENT_FIELDS = {"start": {"event", "limits"}, "cell": {"event", "index"}, "cell_done": {"event", "index", "error"},
                 "probe": {"event", "name"}, "probe_done": {"event", "name", "value"}, "done": {"event"}}


def read_stream(data: bytes, n_cells: int, names: list[str]) -> tuple[list[tuple[str, object, dict]], str | None]:
    """Parse the bytes a child wrote for a job of ``n_cells`` cells and probes ``names``.

    Returns ``(events, problem)``: the valid events in order as ``(kind, index or name, fields)`` and,
    if the stream broke the protocol, what went wrong (``None`` if it did not). A last line without
    its newline (cut by a kill) is dropped, not a violation.
    """
    lines = data.split(b"\n")[:-1]
    expected = _expected(n_cells, names)
    events = []
    for n, line in enumerate(lines, 1):
        try:
            kind, key = next(expected, (None, None))
            if kind is None:
                raise ProtocolError(f"line {n} comes after the done event")
            ev = _event(line, n)
            if ev["event"] != kind:
                raise ProtocolError(f"line {n} is a {ev['event'][:20]!r} event where {kind!r} was due")
            _fields(ev, _EVENT_FIELDS[kind], f"line {n}")
            if kind in ("cell", "cell_done") and (type(ev["index"]) is not int or ev["index"] != key):
                raise ProtocolError(f"line {n}: cell index {str(ev['index'])[:20]} where {key} was due")
            if kind in ("probe", "probe_done") and ev["name"] != key:
                raise ProtocolError(f"line {n}: probe {str(ev['name'])[:40]!r} where {key!r} was due")
            fields: dict = {}
            if kind == "start":
                limits = ev["limits"]
                if not isinstance(limits, dict) or len(limits) > 20 or not all(
                        isinstance(k, str) and (v is None or type(v) is int) for k, v in limits.items()):
                    raise ProtocolError(f"line {n}: the limits are not names mapped to integers or null")
                fields["limits"] = dict(limits)
            elif kind == "cell_done":
                fields["error"] = None if ev["error"] is None else error_value(ev["error"], f"line {n}: the error")
            elif kind == "probe_done":
                try:
                    fields["value"] = value(ev["value"])
                except ProtocolError as exc:
                    fields["value"] = {"kind": "invalid", "problem": str(exc)[:200]}
        except ProtocolError as exc:
            return events, str(exc)[:300]
        events.append((kind, key, fields))
    return events, None
