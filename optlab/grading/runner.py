"""The child side of grading: run a notebook's code cells, then the probes, and report *values*.

This file is run as a script in a separate process (``python -I -B runner.py``, inside the sandbox of
:mod:`optlab.grading.sandbox` unless the instructor turned it off), never imported by the grader, so it
uses the standard library only: the child starts fast and imports numpy or torch only if the notebook
does. It never sees an expected answer and never decides a score; it only writes what happened, one
JSON object per line, to a pipe the grader opened and handed over as a file descriptor. Everything it
writes is treated by the grader as hostile data (:mod:`optlab.grading.protocol` validates it), since
the student's code runs in this same process and can write to that pipe too.

Job (JSON, read from stdin until EOF): ``{"cells": [str, ...], "setup": str, "probes": [{"name": str,
"code": str, "seed": int | null}, ...], "result_fd": int, "rlimits": {"RLIMIT_AS": int, ...},
"sys_path": [str, ...]}``.

Before any student code runs it sets the resource limits as hard limits (``rlimits``), puts
``sys_path`` first on ``sys.path`` (where the sandbox mounts optlab) and closes stdin.

Events written, in order: ``{"event": "start", "limits": {name: int | null}}`` (the limits set; null
where the platform refused one); per cell ``{"event": "cell", "index": i}`` when it starts and
``{"event": "cell_done", "index": i, "error": null | {...}}`` when it ends; per probe
``{"event": "probe", "name": ...}`` then ``{"event": "probe_done", "name": ..., "value": {...}}``;
finally ``{"event": "done"}``. A missing ``done`` means the process was killed or died.
Numbers are JSON numbers when finite, else the strings ``"nan"``, ``"inf"`` or ``"-inf"``.
"""

from __future__ import annotations

import ast
import json
import math
import os
import sys
import traceback

MAX_ITEMS = 100_000  # arrays larger than this are reported by type only
MAX_TEXT = 500  # characters kept of messages and reprs


class _Channel:
    """The result pipe (a file descriptor the grader opened); every event is one write of one line."""

    def __init__(self, fd: int):
        self._fd = fd
        os.set_inheritable(fd, False)  # processes the notebook starts do not get it

    def write(self, **event) -> None:
        data = (json.dumps(event, allow_nan=False) + "\n").encode("utf-8")
        while data:
            data = data[os.write(self._fd, data):]


def describe_error(exc: BaseException) -> dict:
    """An exception as plain data: its type name, message and the last frames of the student's code."""
    try:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<")]
        where = [f"{f.filename}, line {f.lineno}, in {f.name}"[:200] for f in frames[-3:]]
    except Exception:  # noqa: BLE001 (a hostile traceback)
        where = []
    try:
        message = str(exc)[:MAX_TEXT]
    except Exception:  # noqa: BLE001 (an exception whose __str__ raises)
        message = ""
    return {"kind": "error", "type": type(exc).__name__[:100], "message": message, "where": where}


def number(x: float):
    """A float as JSON: itself when finite, else ``"nan"``, ``"inf"`` or ``"-inf"``."""
    return x if math.isfinite(x) else ("nan" if math.isnan(x) else ("inf" if x > 0 else "-inf"))


def encode(value, depth: int = 0) -> dict:
    """A probe's value as JSON-able data, without importing numpy or torch.

    numbers -> ``number``; numpy/torch arrays -> ``array`` with ``lib``, ``shape``, ``dtype`` and flat
    ``data``; lists and tuples -> ``sequence``; dicts with string keys -> ``mapping``; anything else ->
    ``other`` with its type and a short repr.
    """
    if depth > 20:
        return {"kind": "other", "type": "deeply nested", "repr": ""}
    if value is None:
        return {"kind": "none"}
    if isinstance(value, bool):
        return {"kind": "bool", "value": value}
    if isinstance(value, (int, float)):
        return {"kind": "number", "value": number(float(value))}
    if isinstance(value, str):
        return {"kind": "str", "value": str.__str__(value)[:MAX_TEXT]}
    if isinstance(value, (list, tuple)):
        return {"kind": "sequence", "items": [encode(v, depth + 1) for v in value[:MAX_ITEMS]]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"kind": "mapping", "items": {k: encode(v, depth + 1) for k, v in value.items()}}
    lib = type(value).__module__.split(".")[0]
    if lib in ("numpy", "torch") and hasattr(value, "shape") and hasattr(value, "tolist"):
        shape = [int(n) for n in value.shape]
        size = 1
        for n in shape:
            size *= n
        dtype = str(value.dtype).rsplit(".", 1)[-1]  # torch's "torch.float64" -> "float64", as numpy's
        if size <= MAX_ITEMS and ("float" in dtype or "int" in dtype or "bool" in dtype):
            data = value.tolist()
            if lib == "numpy" and not shape:  # a numpy scalar is a number to the grader
                return {"kind": "number", "value": number(float(data))}
            flat = _flatten(data, len(shape))
            if len(flat) == size:
                return {"kind": "array", "lib": lib, "shape": shape, "dtype": dtype,
                        "data": [number(float(x)) for x in flat]}
    return {"kind": "other", "type": f"{type(value).__module__}.{type(value).__qualname__}",
            "repr": repr(value)[:MAX_TEXT]}


def _flatten(data, ndim: int) -> list:
    if ndim == 0:
        return [data]
    out = []
    for item in data:
        out.extend(_flatten(item, ndim - 1))
    return out


def magic_lines(source: str) -> list[int]:
    """Line numbers (1-based) of IPython magics (``%...``) or shell escapes (``!...``) at top level,
    except ``%matplotlib`` (harmless here: the child plots with the headless Agg backend)."""
    return [i for i, line in enumerate(source.splitlines(), 1)
            if line[:1] in ("%", "!") and not is_matplotlib_magic(line)]


def is_matplotlib_magic(line: str) -> bool:
    return line.startswith("%") and line.split()[0] == "%matplotlib"


def without_matplotlib_magic(source: str) -> str:
    """``source`` with each ``%matplotlib ...`` line replaced by ``pass`` (line numbers kept)."""
    return "\n".join("pass" if is_matplotlib_magic(line) else line for line in source.splitlines())


def run_code(source: str, namespace: dict, filename: str):
    """Execute ``source`` like a notebook cell; return the value of a final expression (else None)."""
    tree = ast.parse(source, filename, "exec")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102 (this *is* the sandboxed child)
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), filename, "eval"), namespace)  # noqa: S307


def run_cell(index: int, source: str, namespace: dict) -> dict | None:
    """Run one code cell; return ``None`` or the error as data. Magics are rejected, not run."""
    bad = magic_lines(source)
    if bad:
        return {"kind": "error", "type": "MagicNotSupported",
                "message": f"IPython magics and shell escapes cannot be graded (line {bad[0]}: "
                           f"{source.splitlines()[bad[0] - 1][:80]!r}); the cell was skipped",
                "where": []}
    try:
        run_code(without_matplotlib_magic(source), namespace, f"<cell {index}>")
    except BaseException as exc:  # noqa: BLE001 (SystemExit too: a cell may not end the run)
        return describe_error(exc)
    return None


def set_limits(rlimits: dict) -> dict:
    """Set each ``resource.RLIMIT_*`` of ``rlimits`` as soft and hard limit; return what was set
    (``None`` where the platform has no such limit or refused it: the start event reports that)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return {name: None for name in rlimits}
    done = {}
    for name, value in rlimits.items():
        try:
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))
            done[name] = int(value)
        except (AttributeError, ValueError, OSError):
            done[name] = None
    return done


def run_probe(probe: dict, namespace: dict, setup: str) -> dict:
    """One probe's value, in a copy of the namespace (probes cannot see each other's variables)."""
    scope = dict(namespace)
    if probe.get("seed") is not None:
        scope["seed"] = int(probe["seed"])
    try:
        run_code(setup, scope, "<setup>")
        value = run_code(probe["code"], scope, f"<probe {probe['name']}>")
    except BaseException as exc:  # noqa: BLE001
        return describe_error(exc)
    try:
        return encode(value)
    except BaseException as exc:  # noqa: BLE001 (a value whose shape, tolist or repr raises)
        return {"kind": "other", "type": "unencodable value", "repr": describe_error(exc)["type"]}


def main() -> None:
    job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    limits = set_limits(job.get("rlimits", {}))
    sys.path[:0] = job.get("sys_path", [])
    channel = _Channel(int(job["result_fd"]))
    channel.write(event="start", limits=limits)
    namespace = {"__name__": "__main__"}
    for i, source in enumerate(job["cells"], 1):
        channel.write(event="cell", index=i)
        channel.write(event="cell_done", index=i, error=run_cell(i, source, namespace))
    for probe in job["probes"]:
        channel.write(event="probe", name=probe["name"])
        value = run_probe(probe, namespace, job.get("setup", ""))
        try:
            channel.write(event="probe_done", name=probe["name"], value=value)
        except ValueError:  # a value json cannot write
            channel.write(event="probe_done", name=probe["name"],
                          value={"kind": "other", "type": "unencodable value", "repr": ""})
    channel.write(event="done")
    sys.stdout.flush()
    os._exit(0)  # skip the student's atexit handlers and lingering threads


if __name__ == "__main__":
    main()
