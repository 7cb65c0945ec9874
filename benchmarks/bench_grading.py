"""Grading at class scale: 100 generated submissions of assignment 1, sandbox on, and the sandbox's cost.

The submissions are a mix like a real class plus a few attackers: correct (the instructor's notebook),
wrong (momentum moves theta with the old velocity), crashing (the first cell raises), untouched (the
blank release), and hostile (an endless loop, a memory bomb, a process bomb, a disk bomb, a forged
result stream, a background process that tries to outlive its run, a reader of the course folder). It
prints the wall time of ``optlab-grade grade`` on them (the goal: at most 5 minutes with 2 jobs on 2
cores), the statuses, and the sandbox's overhead per child: the mean wall time of the same small
notebook run with and without bubblewrap, measured in the same run. Then one line per assignment: the
wall time of grading one submission (the instructor's solution: its cells and every probe, in the
sandbox; the goal is at most 30 s on 2 cores) and of the whole ``grade`` call for that one submission
(the reference run included).

Usage: python benchmarks/bench_grading.py [--jobs 2] [--timeout 30] [--repeats 20] [--only-assignments]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from optlab.grading import Probe, grade_assignment, load_checks, run_notebook, sandbox_problem
from optlab.grading.execute import code_cells
from optlab.grading.probes import student_seed
from optlab.grading.release import source_notebook

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "assignments" / "01_momentum"
SOURCE = ASSIGNMENT / "source" / "momentum.ipynb"
RELEASE = ASSIGNMENT / "release" / "momentum.ipynb"

HOSTILE = {
    "loop": "while True:\n    pass",
    "memory": "blocks = []\nwhile True:\n    blocks.append(bytearray(b'x' * 2**26))",
    "processes": "import os\nfor _ in range(500):\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '300'])",
    "disk": "for i in range(1000):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * 2**20 * 7)",
    "forge": "import os\nfor f in os.listdir('/proc/self/fd'):\n    try:\n"
             "        os.write(int(f), b'{\"event\": \"done\"}\\n')\n    except OSError:\n        pass",
    "background": "import subprocess\nsubprocess.Popen(['sleep', '300'], start_new_session=True)",
    "read": f"import json\ntry:\n    nb = json.load(open({str(SOURCE)!r}))\nexcept OSError:\n    nb = {{'cells': []}}\n"
            "for c in nb['cells']:\n    if c['cell_type'] == 'code':\n        exec(''.join(c['source']))",
}


def _nb(base: Path, edit=None, extra: str | None = None) -> str:
    nb = nbformat.read(base, as_version=4)
    if edit:
        for c in nb.cells:
            c.source = c.source.replace(*edit)
    if extra:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    return nbformat.writes(nb)


def make_class(folder: Path, n: int = 100) -> collections.Counter:
    """Write ``n`` submissions into ``folder``; return how many of each kind."""
    wrong = ("p_next = mu * p - alpha * grad\n    theta_next = theta + p_next",
             "theta_next = theta + p\n    p_next = mu * p - alpha * grad")
    kinds = {"correct": _nb(SOURCE), "wrong": _nb(SOURCE, edit=wrong),
             "crashing": _nb(SOURCE, edit=("import numpy as np", "raise RuntimeError('oops')\nimport numpy as np")),
             "untouched": _nb(RELEASE)}
    kinds.update({f"hostile_{k}": _nb(RELEASE, extra=code) for k, code in HOSTILE.items()})
    plan = ["correct"] * 45 + ["wrong"] * 25 + ["crashing"] * 12 + ["untouched"] * 11
    plan += [f"hostile_{k}" for k in HOSTILE]
    plan = (plan * (n // len(plan) + 1))[:n]
    for i, kind in enumerate(plan):
        (folder / f"s{i:03d}_{kind}.ipynb").write_text(kinds[kind], encoding="utf-8")
    return collections.Counter(plan)


def sandbox_overhead(repeats: int) -> tuple[float, float]:
    """Mean wall seconds of one small numpy notebook run in a child, with and without the sandbox."""
    cells, probes = ["import numpy as np\nx = np.arange(3.0)"], [Probe("x", "x")]
    times = {True: [], False: []}
    for _ in range(repeats):
        for sandbox in (True, False):
            t = time.perf_counter()
            run = run_notebook(cells, probes, timeout=60, sandbox=sandbox)
            times[sandbox].append(time.perf_counter() - t)
            assert run.status == "ok", run
    return statistics.mean(times[True]), statistics.mean(times[False])


def per_assignment() -> None:
    """One line per assignment: seconds to grade one submission (its child alone, and the whole call)."""
    for folder in sorted(p for p in (ROOT / "assignments").iterdir() if (p / "checks.py").is_file()):
        checks, src = load_checks(folder), source_notebook(folder)
        t = time.perf_counter()
        run = run_notebook(code_cells(src), checks.probes, checks.setup, timeout=120, seeds=[student_seed("s")])
        child = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "s.ipynb").write_bytes(src.read_bytes())
            t = time.perf_counter()
            (score,) = grade_assignment(folder, tmp, timeout=120)
            whole = time.perf_counter() - t
        print(f"  {folder.name:22s} one submission: {child:5.1f} s (status {run.status}); grade call for it, "
              f"reference run included: {whole:5.1f} s; {score.total:g}/{score.max_points:g} points"
              + (f" + {sum(score.manual.values()):g} manual" if score.manual else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--only-assignments", action="store_true", help="only the per-assignment lines")
    args = ap.parse_args()
    if sandbox_problem():
        sys.exit(f"no sandbox on this machine: {sandbox_problem()}")
    print("grading time per assignment (sandbox on):")
    per_assignment()
    if args.only_assignments:
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        plan = make_class(folder)
        t = time.perf_counter()
        scores = grade_assignment(ASSIGNMENT, folder, timeout=args.timeout, jobs=args.jobs)
        total = time.perf_counter() - t
    print(f"{len(scores)} submissions ({dict(plan)})")
    print(f"graded with the sandbox, --jobs {args.jobs}, --timeout {args.timeout:g}: {total:.1f} s "
          f"({total / len(scores):.2f} s per submission)")
    by_kind = collections.defaultdict(collections.Counter)
    for s in scores:
        by_kind[s.student.split("_", 1)[1]][f"{s.status} {s.total:g}/{s.max_points:g}"] += 1
    for kind in sorted(by_kind):
        print(f"  {kind:22s} {dict(by_kind[kind])}")
    with_sb, without = sandbox_overhead(args.repeats)
    print(f"one child (numpy notebook, mean of {args.repeats}): {with_sb * 1000:.0f} ms sandboxed, "
          f"{without * 1000:.0f} ms without: sandbox overhead {(with_sb - without) * 1000:.0f} ms per child")


if __name__ == "__main__":
    main()
