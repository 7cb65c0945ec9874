"""Execute every lecture in a fresh kernel and print its wall time and the kernel's peak memory.

The budget of a lecture (Binder, a student's laptop): it executes in at most 60 s and its kernel's peak
resident memory stays at most 1 GB. Each notebook of ``lectures/`` (or the paths given) runs in a new
``python3`` kernel started for it, with the lecture folder as working directory, exactly as
``bash scripts/notebooks.sh`` re-executes them; the notebooks on disk are not changed.

Printed per lecture: the wall time from starting the kernel to the end of the last cell, the time spent in
the cells, the three slowest cells, the kernel's CPU time and its peak resident set size (``getrusage`` read
inside the kernel by one extra cell after the lecture's own), with a verdict against the budget (wall time
and peak RSS). On a machine shared with other jobs the wall time grows with the load; the CPU time does
not. The exit code is 1 if a lecture fails or exceeds the budget.

Run from the repository root (so that the kernel imports this checkout's optlab)::

    PYTHONPATH=$PWD python benchmarks/bench_lectures.py [lectures/02_the_landscape.ipynb ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 60.0
BUDGET_BYTES = 1 << 30  # 1 GiB
# ru_maxrss is in kilobytes on Linux and in bytes on macOS
PEAK_RSS_CELL = ("import resource, sys\n"
                 "_use = resource.getrusage(resource.RUSAGE_SELF)\n"
                 "print('PEAK_RSS_BYTES', _use.ru_maxrss if sys.platform == 'darwin' else _use.ru_maxrss * 1024)\n"
                 "print('CPU_SECONDS', _use.ru_utime + _use.ru_stime)")


def cell_seconds(cell) -> float:
    """The execution time nbclient recorded in the cell's metadata (0 if it has none)."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def bench(path: Path, timeout: int = 600) -> dict:
    """Execute ``path`` in a fresh kernel; returns wall and cell seconds, the slowest cells and the peak RSS."""
    nb = nbformat.read(path, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_RSS_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})
    t0 = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - t0
    peak = cpu = None
    for out in nb.cells[-1].get("outputs", []):
        for line in out.get("text", "").splitlines():
            if line.startswith("PEAK_RSS_BYTES"):
                peak = int(line.split()[1])
            elif line.startswith("CPU_SECONDS"):
                cpu = float(line.split()[1])
    times = [(cell_seconds(c), i) for i, c in enumerate(nb.cells[:n_cells]) if c.cell_type == "code"]
    return {"wall": wall, "cells": sum(t for t, _ in times), "slowest": sorted(times, reverse=True)[:3],
            "peak_rss": peak, "cpu": cpu}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every lectures/*.ipynb")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "lectures").glob("*.ipynb"))
    print(f"budget per lecture: {BUDGET_SECONDS:.0f} s, {BUDGET_BYTES / 2**30:.0f} GiB peak RSS (fresh kernel)")
    print(f"{'lecture':45s} {'wall s':>7s} {'cells s':>8s} {'kernel CPU s':>13s} {'peak RSS MiB':>13s}  verdict   "
          f"slowest cells (index: s)")
    results, ok = {}, True
    for path in paths:
        try:
            r = bench(path)
        except Exception as exc:  # a failing lecture is a result: report it and go on
            print(f"{path.name:45s} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            ok = False
            continue
        within = r["wall"] <= BUDGET_SECONDS and r["peak_rss"] is not None and r["peak_rss"] <= BUDGET_BYTES
        ok &= within
        slow = ", ".join(f"{i}: {t:.1f}" for t, i in r["slowest"])
        rss = "?" if r["peak_rss"] is None else f"{r['peak_rss'] / 2**20:.0f}"
        verdict = "ok" if within else "OVER"
        cpu = "?" if r["cpu"] is None else f"{r['cpu']:.1f}"
        print(f"{path.name:45s} {r['wall']:7.1f} {r['cells']:8.1f} {cpu:>13s} {rss:>13s}  {verdict:7s}   {slow}")
        results[path.name] = r
    own = resource.getrusage(resource.RUSAGE_SELF)
    print(f"(this process: {own.ru_utime + own.ru_stime:.1f} s CPU; the kernels are separate processes)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
