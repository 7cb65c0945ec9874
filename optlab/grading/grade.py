"""Grade a folder of submitted notebooks: run each in isolation, compare its probe values, score.

Scoring happens here, in the grader's process: the expected values come from running the same probes
on the instructor's source notebook (also in a child process), and each probe earns its points when
the student's value matches within the probe's tolerance (:func:`optlab.grading.compare.compare`).
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import check_data, positive, positive_int
from .compare import compare, describe
from .execute import RunResult, code_cells, run_notebook
from .markers import strip_hidden_tests
from .probes import Checks, load_checks
from .release import source_notebook


class GradingError(RuntimeError):
    """The assignment itself cannot be graded (e.g. the instructor's notebook fails to run)."""


@dataclass
class Score:
    """One student's row: points per probe, total, status (``ok``/``errors``/``timeout``/``crashed``/
    ``invalid``) and the notes that explain every lost point."""

    student: str
    points: dict[str, float]
    total: float
    max_points: float
    status: str
    notes: list[str] = field(default_factory=list)


def reference_values(assignment: str | Path, checks: Checks, *, timeout: float = 60.0) -> dict[str, dict]:
    """Run the probes on the instructor's source notebook (hidden-test regions removed, as students
    see it) and return the expected values; ``GradingError`` if the source does not run cleanly."""
    src = source_notebook(assignment)
    cells = [strip_hidden_tests(c, f"{src.name}") for c in code_cells(src)]
    run = run_notebook(cells, checks.probes, checks.setup, timeout=timeout)
    if run.status != "ok":
        raise GradingError(f"the instructor notebook {src} did not run cleanly ({run.status}): "
                           f"{'; '.join(_run_notes(run, timeout)) or run.stderr_tail[-500:]}")
    for probe in checks.probes:
        value = run.values[probe.name]
        if value["kind"] == "other":
            raise GradingError(f"probe {probe.name!r} gives {describe(value)} on the instructor notebook; "
                               "a probe must return numbers, arrays, lists, dicts, str, bool or None, or raise")
    return run.values


def _run_notes(run: RunResult, timeout: float) -> list[str]:
    notes = []
    errors = sorted(run.cell_errors.items())
    for index, err in errors[:3]:
        message = f": {err['message']}" if err["message"] else ""
        notes.append(f"cell {index}: {err['type']}{message}"[:200])
    if len(errors) > 3:
        notes.append(f"{len(errors) - 3} more cells raised")
    if run.status == "timeout":
        notes.append(f"time limit of {timeout:g} s reached in {run.stopped_in}; what had not finished scores 0")
    elif run.status == "crashed":
        notes.append(f"the process died in {run.stopped_in} (exit code {run.returncode})")
    return notes


def score_run(student: str, run: RunResult, expected: dict[str, dict], checks: Checks,
              timeout: float) -> Score:
    """Turn one run's values into points: full points per matching probe, 0 otherwise, with reasons."""
    notes = _run_notes(run, timeout)
    points = {}
    for probe in checks.probes:
        got = run.values.get(probe.name)
        if got is None:
            points[probe.name] = 0.0
            continue  # the run note says why it never ran
        reason = compare(expected[probe.name], got, rtol=probe.rtol, atol=probe.atol)
        points[probe.name] = 0.0 if reason else float(probe.points)
        if reason:
            notes.append(f"{probe.name}: {reason}")
    return Score(student, points, sum(points.values()), checks.max_points, run.status, notes)


def grade_assignment(assignment: str | Path, submissions: str | Path, *, timeout: float = 60.0,
                     reference_timeout: float = 60.0, jobs: int = 1) -> list[Score]:
    """Grade every ``SUBMISSIONS/*.ipynb`` (file stem = student id) against ``ASSIGNMENT``'s checks.

    Args:
        assignment: folder with ``source/NAME.ipynb`` and ``checks.py``.
        submissions: folder of submitted notebooks, one per student.
        timeout: wall-clock seconds allowed per submitted notebook (cells and probes together).
        reference_timeout: wall-clock seconds allowed to the instructor's notebook, run once for the
            expected values (its own limit, so that a short per-student limit cannot fail the
            reference run; a reference run that hits it is a ``GradingError``).
        jobs: how many notebooks run at once (>= 1).

    Returns the scores sorted by student id.
    """
    owner = "grade_assignment"
    positive_int(owner, "jobs", jobs)
    positive(owner, "timeout", timeout)
    positive(owner, "reference_timeout", reference_timeout)
    submissions = Path(submissions)
    check_data(owner, "submissions", submissions.is_dir(), f"{str(submissions)!r} is not a folder",
               "a folder of .ipynb files")
    files = sorted(submissions.glob("*.ipynb"))
    check_data(owner, "submissions", bool(files), f"{submissions} holds no .ipynb file", "one notebook per student")
    checks = load_checks(assignment)
    expected = reference_values(assignment, checks, timeout=reference_timeout)

    def one(path: Path) -> Score:
        try:
            cells = code_cells(path)
        except ValueError as exc:
            zero = {p.name: 0.0 for p in checks.probes}
            return Score(path.stem, zero, 0.0, checks.max_points, "invalid", [str(exc)[:200]])
        run = run_notebook(cells, checks.probes, checks.setup, timeout=timeout)
        return score_run(path.stem, run, expected, checks, timeout)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, files))


def _fmt(x: float) -> str:
    return f"{x:g}"


def format_table(scores: list[Score]) -> str:
    """The score table as aligned text: a legend numbering the probes, then one row per student with
    the points per probe, total/max, status and notes (the CSV has the probes' full names)."""
    if not scores:
        return "(no submissions)"
    names = list(scores[0].points)
    legend = [f"#{i}: {n}" for i, n in enumerate(names, 1)]
    header = ["student", *(f"#{i}" for i in range(1, len(names) + 1)), "total", "status", "notes"]
    rows = [[s.student, *(_fmt(s.points[n]) for n in names), f"{_fmt(s.total)}/{_fmt(s.max_points)}",
             s.status, "; ".join(s.notes)] for s in scores]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["probes: " + ", ".join(legend), ""]
    for r in [header, *rows]:
        lines.append(("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1]).rstrip())
    return "\n".join(lines)


def write_csv(scores: list[Score], path: str | Path) -> None:
    """The score table as CSV: ``student, <probe>..., total, max, status, notes``."""
    names = list(scores[0].points) if scores else []
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", *names, "total", "max", "status", "notes"])
        for s in scores:
            w.writerow([s.student, *(_fmt(s.points[n]) for n in names), _fmt(s.total), _fmt(s.max_points),
                        s.status, "; ".join(s.notes)])
