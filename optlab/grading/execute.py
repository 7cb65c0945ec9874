"""The grader's side of running a notebook: start the child, enforce the limits, read its values.

The student's code runs in its own process (:mod:`optlab.grading.runner`, ``python -I -B``), inside
the bubblewrap sandbox of :mod:`optlab.grading.sandbox` (``sandbox=False`` runs it without, for
trusted code only). The job (cells and probe code) goes in on the child's stdin; the results come
back through a pipe the grader opened and handed over as a file descriptor (no path the child could
replace), read with a byte cap (``Limits.output_mb``). The child's stdout is discarded and the tail of
its stderr kept as a diagnostic. At the time limit, or when the child has ended, the grader kills
bubblewrap (and with it the sandbox's PID namespace: every process the notebook started) and the
child's process group. Nothing the child writes is trusted: :mod:`optlab.grading.protocol` checks
the stream, and :mod:`optlab.grading.grade` decides.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import check_type, data_error, positive
from .protocol import read_stream
from .sandbox import LIB_DIR, RUNNER_PATH, WORK_DIR, Limits, PidsCgroup, sandbox_command, sandbox_problem

RUNNER = Path(__file__).with_name("runner.py")
STDERR_TAIL = 4000


class GradingError(RuntimeError):
    """The assignment itself cannot be graded (the instructor's notebook fails to run, no sandbox, the
    grader's files changed during the run...)."""


@dataclass
class RunResult:
    """What happened when one notebook ran (plain data; no verdict).

    ``status`` is ``"ok"`` (every cell and probe ran), ``"errors"`` (ran to the end, some cells
    raised), ``"timeout"`` (killed at the time limit), ``"crashed"`` (the process died by itself) or
    ``"invalid"`` (its result stream broke the protocol or the byte cap: ``problem`` says how; nothing
    it reported counts). ``cell_errors`` maps a 1-based code-cell index to the error as data;
    ``values`` maps probe keys to validated values (only probes that finished); ``stopped_in`` says
    where a killed or crashed run was; ``limits`` are the resource limits the child reported setting
    (``None`` for one the platform refused).
    """

    status: str
    cell_errors: dict[int, dict] = field(default_factory=dict)
    values: dict[str, dict] = field(default_factory=dict)
    stopped_in: str | None = None
    seconds: float = 0.0
    returncode: int | None = None
    stderr_tail: str = ""
    limits: dict[str, int | None] = field(default_factory=dict)
    problem: str | None = None
    sandboxed: bool = True


SKIP_TAG = "skip-grading"


def code_cells(path: str | Path, *, skip_tag: str | None = SKIP_TAG) -> list[str]:
    """The code cells' sources of a notebook file, in order (``ValueError`` if it is not a notebook).

    Cells tagged ``skip_tag`` (default ``"skip-grading"``: demos that need nothing graded, e.g. a cell
    that imports torch to compare with the library) are left out; ``skip_tag=None`` keeps every cell.
    Read as plain JSON: full nbformat validation would cost the grader a second per notebook.
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
        out = []
        for c in nb["cells"]:
            tags, src = c.get("metadata", {}).get("tags", []), c["source"]
            if isinstance(src, list) and all(isinstance(line, str) for line in src):
                src = "".join(src)
            if not isinstance(src, str) or not isinstance(tags, list):
                raise TypeError("a cell's source is not text (a string or a list of strings)")
            if c["cell_type"] == "code" and not (skip_tag and skip_tag in tags):
                out.append(src)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise data_error("code_cells", "path", f"{Path(path).name} is not a readable Jupyter notebook "
                         f"({type(exc).__name__}: {str(exc)[:200]})", "a notebook file (nbformat 4 JSON)") from None
    return out


def child_command(runner: Path = RUNNER) -> list[str]:
    """The child's command line (isolated mode: no PYTHONPATH, no user site, no bytecode written)."""
    return [sys.executable, "-I", "-B", str(runner)]


def child_env(workdir: str) -> dict[str, str]:
    """A minimal environment: no inherited secrets or PYTHON* settings, one thread, a headless plot backend."""
    return {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": workdir,
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run_notebook(cells: list[str], probes=(), setup: str = "", *, timeout: float = 60.0,
                 limits: Limits | None = None, sandbox: bool = True, seeds=(0,)) -> RunResult:
    """Run code cells then probes in a child process with a wall-clock limit of ``timeout`` seconds.

    Args:
        cells: code-cell sources, run in order in one namespace (a cell that raises is recorded and
            the next cell still runs; IPython magics are recorded as errors and skipped).
        probes: :class:`~optlab.grading.probes.Probe` objects evaluated after the cells.
        setup: code run before each probe, in the probe's copy of the namespace.
        timeout: seconds of wall time for the whole run (> 0).
        limits: the child's resource limits (default :class:`~optlab.grading.sandbox.Limits()`).
        sandbox: run inside bubblewrap (``GradingError`` if this machine cannot); ``False`` is for
            trusted code only.
        seeds: the seeds a seeded probe is evaluated with, each under the key ``name@seed``
            (:func:`~optlab.grading.probes.probe_key`); unseeded probes run once under their name.
    """
    from .probes import job_probes

    positive("run_notebook", "timeout", timeout)
    check_type("run_notebook", "cells", cells,
               isinstance(cells, (list, tuple)) and all(isinstance(c, str) for c in cells), "a list of source strings")
    limits = Limits() if limits is None else limits
    entries = job_probes(probes, seeds)
    if sandbox and sandbox_problem():
        raise GradingError(f"cannot sandbox the child: {sandbox_problem()}")
    result_r, result_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="optlab-grade-", ignore_cleanup_errors=True) as tmp:
        if sandbox:
            cmd = sandbox_command(child_command(Path(RUNNER_PATH)), RUNNER, limits, env=child_env(WORK_DIR))
            workdir, cwd, sys_path = WORK_DIR, tmp, [LIB_DIR]
        else:
            cmd, workdir, cwd, sys_path = child_command(), tmp, tmp, []
        job = {"cells": list(cells), "setup": setup, "probes": entries, "result_fd": result_w,
               "rlimits": limits.rlimits(), "sys_path": sys_path}
        cgroup = PidsCgroup.make(limits.processes) if sandbox else None
        if cgroup:
            cmd = cgroup.entered_by(cmd)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(workdir), stdin=subprocess.PIPE,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(result_w,),
                                    start_new_session=True)
        finally:
            os.close(result_w)
        try:
            data, stderr, timed_out, overflow = _collect(proc, json.dumps(job).encode("utf-8"), result_r,
                                                         start + timeout, limits.output_mb * 2**20)
        finally:
            _kill_group(proc)
            os.close(result_r)
            if cgroup:
                cgroup.remove()
        seconds = time.monotonic() - start
    result = _summarize(data, len(cells), [e["name"] for e in entries], timed_out, proc.returncode, seconds,
                        stderr.decode("utf-8", "replace"))
    if overflow:
        result.status, result.values, result.cell_errors = "invalid", {}, {}
        result.problem = f"wrote more than {limits.output_mb} MiB of results (the limit); nothing it reported counts"
    result.sandboxed = sandbox
    return result


def _feed(proc: subprocess.Popen, job: bytes) -> None:
    try:
        proc.stdin.write(job)
        proc.stdin.close()
    except (BrokenPipeError, OSError, ValueError):  # the child died before reading its job
        pass


def _collect(proc: subprocess.Popen, job: bytes, result_r: int, deadline: float, cap: int):
    """Feed the job, then read the result pipe (up to ``cap`` bytes) and stderr (its tail) until the
    child has ended and the pipes are drained, the deadline passes, or the cap is exceeded."""
    threading.Thread(target=_feed, args=(proc, job), daemon=True).start()
    chunks: list[bytes] = []
    size = 0
    stderr = b""
    timed_out = overflow = False
    os.set_blocking(result_r, False)
    os.set_blocking(proc.stderr.fileno(), False)
    with selectors.DefaultSelector() as sel:
        sel.register(result_r, selectors.EVENT_READ, "result")
        sel.register(proc.stderr.fileno(), selectors.EVENT_READ, "stderr")
        ended_at = None
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = ended_at is None
                break
            if ended_at is None and proc.poll() is not None:
                ended_at = now
            if ended_at is not None and now - ended_at > 1.0:
                break  # the child has ended; whatever still holds the pipes open gets killed below
            for key, _ in sel.select(timeout=min(0.1, deadline - now)):
                try:
                    chunk = os.read(key.fd, 1 << 16)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fd)
                elif key.data == "result":
                    size += len(chunk)
                    if size > cap:
                        overflow = True
                        break
                    chunks.append(chunk)
                else:
                    stderr = (stderr + chunk)[-STDERR_TAIL:]
            if overflow:
                break
    while not overflow:  # what the child wrote just before it ended
        try:
            chunk = os.read(result_r, 1 << 16)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        size += len(chunk)
        overflow = size > cap
        chunks.append(chunk)
    return b"".join(chunks), stderr, timed_out, overflow


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the child and everything it started, then reap it.

    In the sandbox, killing bubblewrap ends its PID namespace and so every process in it; the process
    group kill covers the run without a sandbox (a process that left the group with ``setsid`` is
    out of its reach there: ``sandbox=False`` is for trusted code)."""
    for kill in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
        try:
            kill()
        except (ProcessLookupError, PermissionError):  # ended already (macOS says EPERM for a zombie group)
            pass
    proc.wait()
    if proc.stderr:
        proc.stderr.close()


def _summarize(data: bytes, n_cells: int, names: list[str], timed_out: bool, returncode, seconds: float,
               stderr_tail: str) -> RunResult:
    result = RunResult(status="crashed", seconds=seconds, returncode=returncode, stderr_tail=stderr_tail)
    events, problem = read_stream(data, n_cells, names)
    current = None
    for kind, key, fields in events:
        if kind == "start":
            result.limits = fields["limits"]
        elif kind == "cell":
            current = f"cell {key}"
        elif kind == "cell_done":
            current = None
            if fields["error"]:
                result.cell_errors[key] = fields["error"]
        elif kind == "probe":
            current = f"probe {key}"
        elif kind == "probe_done":
            current = None
            result.values[key] = fields["value"]
        elif kind == "done":
            result.status = "errors" if result.cell_errors else "ok"
            return result
    if problem:
        return RunResult(status="invalid", seconds=seconds, returncode=returncode, stderr_tail=stderr_tail,
                         problem=f"its result stream broke the protocol ({problem}); nothing it reported counts")
    result.status = "timeout" if timed_out else "crashed"
    result.stopped_in = current or ("start-up" if not events else "between steps")
    return result
