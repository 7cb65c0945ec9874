"""The child side of grading: run a notebook's code cells, then the probes, and report *values*.

This file is run as a script in a separate process (``python -I runner.py JOB.json``), never imported
by the grader, so it uses the standard library only: the child starts fast and imports numpy or torch
only if the notebook does. It never sees an expected answer and never decides a score; it only writes
what happened, one JSON object per line, to the result file named in the job. The grader
(:mod:`optlab.grading.execute`) reads that file after the process has ended or been killed.

Job (JSON): ``{"cells": [str, ...], "setup": str, "probes": [{"name": str, "code": str}, ...],
"result_path": str, "max_file_bytes": int}``.

Events written, in order: ``{"event": "start", "pid": ..., "file_size_limit": int | null}``; per cell
``{"event": "cell", "index": i}`` when it starts and ``{"event": "cell_done", "index": i, "error":
null | {...}}`` when it ends; per probe
``{"event": "probe", "name": ...}`` then ``{"event": "probe_done", "name": ..., "value": {...}}``;
finally ``{"event": "done"}``. A missing ``done`` means the process was killed or died.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import traceback

MAX_ITEMS = 100_000  # arrays larger than this are reported by type only
MAX_TEXT = 500  # characters kept of messages and reprs


class _Channel:
    """The result file, opened before any student code runs; every line is flushed at once."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open for the run)

    def write(self, **event) -> None:
        self._file.write(json.dumps(event) + "\n")
        self._file.flush()


def describe_error(exc: BaseException) -> dict:
    """An exception as plain data: its type name, message and the last frames of the student's code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<")]
    where = [f"{f.filename}, line {f.lineno}, in {f.name}" for f in frames[-3:]]
    return {"kind": "error", "type": type(exc).__name__, "message": str(exc)[:MAX_TEXT], "where": where}


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
        return {"kind": "number", "value": float(value)}
    if isinstance(value, str):
        return {"kind": "str", "value": value[:MAX_TEXT]}
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
        dtype = str(value.dtype)
        if size <= MAX_ITEMS and ("float" in dtype or "int" in dtype or "bool" in dtype):
            data = value.tolist()
            if lib == "numpy" and not shape:  # a numpy scalar is a number to the grader
                return {"kind": "number", "value": float(data)}
            flat = _flatten(data, len(shape))
            return {"kind": "array", "lib": lib, "shape": shape, "dtype": dtype,
                    "data": [float(x) for x in flat]}
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


def limit_file_size(limit: int) -> int | None:
    """Forbid files larger than ``limit`` bytes; return the limit set, or ``None`` where the platform
    cannot set one (no ``resource`` module, or a hard limit below ``limit``): the start event reports
    it, so the grader sees a run without the guard."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    except (ValueError, OSError):
        return None
    return limit


def main(job_path: str) -> None:
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    os.unlink(job_path)  # the student's code need not find the probes' code on disk
    channel = _Channel(job["result_path"])
    channel.write(event="start", pid=os.getpid(), file_size_limit=limit_file_size(int(job["max_file_bytes"])))
    namespace = {"__name__": "__main__"}
    for i, source in enumerate(job["cells"], 1):
        channel.write(event="cell", index=i)
        channel.write(event="cell_done", index=i, error=run_cell(i, source, namespace))
    for probe in job["probes"]:
        channel.write(event="probe", name=probe["name"])
        scope = dict(namespace)  # probes cannot see each other's variables
        try:
            run_code(job.get("setup", ""), scope, "<setup>")
            value = encode(run_code(probe["code"], scope, f"<probe {probe['name']}>"))
        except BaseException as exc:  # noqa: BLE001
            value = describe_error(exc)
        channel.write(event="probe_done", name=probe["name"], value=value)
    channel.write(event="done")
    sys.stdout.flush()
    os._exit(0)  # skip the student's atexit handlers and lingering threads


if __name__ == "__main__":
    main(sys.argv[1])
