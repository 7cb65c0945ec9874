"""The grader's side of running a notebook: start the child, enforce the time limit, read the values.

The student's code runs in its own process (:mod:`optlab.grading.runner`, started with ``python -I`` in
an empty working directory, its own session and a minimal environment). The grader kills the child's
whole process group when the time limit is reached, and afterwards in any case. Results come back
through a file with a random name that the grader created; the child's stdout is discarded and its
stderr is kept only as a diagnostic. Nothing the child writes is trusted as a verdict: it reports
values, and :mod:`optlab.grading.grade` decides.

The child is one command line (:func:`child_command`), so a later hardening (another user, a
container, seccomp, no network) can wrap it without changing the protocol.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import check_type, data_error, positive, positive_int

RUNNER = Path(__file__).with_name("runner.py")


@dataclass
class RunResult:
    """What happened when one notebook ran (plain data; no verdict).

    ``status`` is ``"ok"`` (every cell and probe ran), ``"errors"`` (ran to the end, some cells
    raised), ``"timeout"`` (killed at the time limit) or ``"crashed"`` (the process died by itself).
    ``cell_errors`` maps a 1-based code-cell index to the error as data; ``values`` maps probe names to
    encoded values (only probes that finished); ``stopped_in`` says where a killed or crashed run was.
    ``file_size_limit`` is the largest file the child could write, in bytes, or ``None`` where the
    platform has no such limit (no ``resource`` module) or the child never reported it.
    """

    status: str
    cell_errors: dict[int, dict] = field(default_factory=dict)
    values: dict[str, dict] = field(default_factory=dict)
    stopped_in: str | None = None
    seconds: float = 0.0
    returncode: int | None = None
    stderr_tail: str = ""
    file_size_limit: int | None = None


SKIP_TAG = "skip-grading"


def code_cells(path: str | Path, *, skip_tag: str | None = SKIP_TAG) -> list[str]:
    """The code cells' sources of a notebook file, in order (``ValueError`` if it is not a notebook).

    Cells tagged ``skip_tag`` (default ``"skip-grading"``: demos that need nothing graded, e.g. a cell
    that imports torch to compare with the library) are left out; ``skip_tag=None`` keeps every cell.
    Read as plain JSON: full nbformat validation would cost the grader a second per notebook.
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        cells = nb["cells"]
        sources = [(c["cell_type"], c.get("metadata", {}).get("tags", []), c["source"]) for c in cells]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise data_error("code_cells", "path", f"{path} is not a readable Jupyter notebook "
                         f"({type(exc).__name__}: {str(exc)[:200]})", "a notebook file (nbformat 4 JSON)") from None
    return ["".join(src) if isinstance(src, list) else str(src) for kind, tags, src in sources
            if kind == "code" and not (skip_tag and skip_tag in tags)]


def child_command(job_path: Path) -> list[str]:
    """The command line of the child process (isolated mode: no PYTHONPATH, no user site)."""
    return [sys.executable, "-I", str(RUNNER), str(job_path)]


def child_env(workdir: Path) -> dict[str, str]:
    """A minimal environment: no inherited secrets or PYTHON* settings, one thread, a headless plot backend."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), "TMPDIR": str(workdir),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(workdir),
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run_notebook(cells: list[str], probes=(), setup: str = "", *, timeout: float = 60.0,
                 max_file_bytes: int = 64 * 2**20) -> RunResult:
    """Run code cells then probes in a child process with a wall-clock limit of ``timeout`` seconds.

    Args:
        cells: code-cell sources, run in order in one namespace (a cell that raises is recorded and
            the next cell still runs; IPython magics are recorded as errors and skipped).
        probes: :class:`~optlab.grading.probes.Probe` objects evaluated after the cells.
        setup: code run before each probe, in the probe's copy of the namespace.
        timeout: seconds of wall time for the whole run (> 0).
        max_file_bytes: largest file the child may write (guards the disk against runaway output);
            enforced where the platform has ``resource.RLIMIT_FSIZE``, see ``RunResult.file_size_limit``.
    """
    positive("run_notebook", "timeout", timeout)
    positive_int("run_notebook", "max_file_bytes", max_file_bytes)
    check_type("run_notebook", "cells", cells,
               isinstance(cells, (list, tuple)) and all(isinstance(c, str) for c in cells), "a list of source strings")
    with tempfile.TemporaryDirectory(prefix="optlab-grade-", ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        workdir = tmp / "work"
        workdir.mkdir()
        result_path = tmp / f"results-{secrets.token_hex(16)}.jsonl"
        job_path = tmp / "job.json"
        job = {"cells": list(cells), "setup": setup, "result_path": str(result_path),
               "probes": [{"name": p.name, "code": p.code} for p in probes], "max_file_bytes": max_file_bytes}
        job_path.write_text(json.dumps(job), encoding="utf-8")
        stderr_path = tmp / "stderr.txt"
        start = time.monotonic()
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(child_command(job_path), cwd=workdir, env=child_env(workdir),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                    start_new_session=True)
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)
        seconds = time.monotonic() - start
        events = _read_events(result_path)
        with open(stderr_path, "rb") as f:
            f.seek(max(0, stderr_path.stat().st_size - 2000))
            stderr_tail = f.read().decode("utf-8", "replace")
    return _summarize(events, timed_out, proc.returncode, seconds, stderr_tail)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started (its session's process group), then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group has ended (macOS says EPERM for one of zombies)
        pass
    proc.wait()


def _read_events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by the kill
    return events


def _summarize(events: list[dict], timed_out: bool, returncode, seconds: float, stderr_tail: str) -> RunResult:
    result = RunResult(status="crashed", seconds=seconds, returncode=returncode, stderr_tail=stderr_tail)
    current = None
    for ev in events:
        kind = ev.get("event")
        if kind == "start":
            result.file_size_limit = ev.get("file_size_limit")
        elif kind == "cell":
            current = f"cell {ev['index']}"
        elif kind == "cell_done":
            current = None
            if ev.get("error"):
                result.cell_errors[int(ev["index"])] = ev["error"]
        elif kind == "probe":
            current = f"probe {ev['name']}"
        elif kind == "probe_done":
            current = None
            result.values[ev["name"]] = ev["value"]
        elif kind == "done":
            result.status = "errors" if result.cell_errors else "ok"
            return result
    result.status = "timeout" if timed_out else "crashed"
    result.stopped_in = current or ("start-up" if not events else "between steps")
    return result
