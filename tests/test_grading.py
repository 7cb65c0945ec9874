"""End to end: release assignment 1, and grade a folder of submissions with the real command.

The submissions are built from the instructor's notebook, one per kind of student (a registry below):
each row says how its notebook differs from the source and which probes it must win or lose, for a
reason stated in the row. The grading runs ``python -m optlab.grading grade`` in a subprocess and the
assertions read the CSV it writes.
"""

from __future__ import annotations

import copy
import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from optlab.grading import load_checks, release_assignment, run_notebook
from optlab.grading.execute import code_cells
from optlab.grading.markers import BEGIN_SOLUTION, END_SOLUTION

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "assignments" / "01_momentum"
SOURCE = ASSIGNMENT / "source" / "momentum.ipynb"
RELEASE = ASSIGNMENT / "release" / "momentum.ipynb"
CHECKS = load_checks(ASSIGNMENT)
ALL = {p.name for p in CHECKS.probes}
STEP = {n for n in ALL if n.startswith("momentum_step_")}
TERMINAL = {n for n in ALL if n.startswith("terminal_velocity_")}
TRAJECTORY = {n for n in ALL if n.startswith("momentum_trajectory_")}


def _source():
    return nbformat.read(SOURCE, as_version=4)


def _edit(nb, old: str, new: str):
    """Replace ``old`` by ``new`` in the one code cell that holds it (fails loudly if none does)."""
    nb = copy.deepcopy(nb)
    hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
    assert len(hits) == 1, f"expected one cell holding {old!r}, found {len(hits)}"
    hits[0].source = hits[0].source.replace(old, new)
    return nb


def _insert_after(nb, marker: str, source: str):
    nb = copy.deepcopy(nb)
    i = next(i for i, c in enumerate(nb.cells) if marker in c.source)
    nb.cells.insert(i + 1, nbformat.v4.new_code_cell(source))
    return nb


STEP_SOLUTION = "p_next = mu * p - alpha * grad\n    theta_next = theta + p_next"


@dataclass
class Case:
    """One kind of submission: how to build it, the status it must get, and the probes it must win."""

    student: str
    build: object  # () -> notebook text
    status: str
    wins: set
    note: str = ""  # a text that must appear in the notes


CASES = [
    # The instructor's own solution wins everything.
    Case("correct", lambda: nbformat.writes(_source()), "ok", ALL),
    # Moves theta with the *old* velocity: every probe where theta moves loses; terminal_velocity does
    # not call momentum_step. The inputs are not modified and a 0-step trajectory is just theta0, but
    # those probes require the values to be right, so they lose too. The visible check of
    # momentum_step catches the bug, so a cell raises.
    Case("wrong_formula",
         lambda: nbformat.writes(_edit(_source(), STEP_SOLUTION,
                                       "theta_next = theta + p\n    p_next = mu * p - alpha * grad")),
         "errors", TERMINAL, "momentum_step_keeps_inputs: right, but counts only when the probes it requires earn their "
         "points too (not earned: momentum_step_from_rest, momentum_step_moving)"),
    # Right numbers but updates the caller's arrays in place: the visible checks cannot see it, the
    # hidden probe that looks at the inputs afterwards can.
    Case("in_place",
         lambda: nbformat.writes(_edit(_source(), STEP_SOLUTION + "\n    return theta_next, p_next",
                                       "p *= mu\n    p -= alpha * grad\n    theta += p\n    return theta, p")),
         "ok", ALL - {"momentum_step_keeps_inputs"}, "momentum_step_keeps_inputs: item 0"),
    # The first cell raises before numpy is imported: later cells still run (partial credit). The
    # momentum_step and terminal_velocity solutions use no module global, momentum_trajectory uses np.
    Case("crashing",
         lambda: nbformat.writes(_edit(_source(), "import numpy as np",
                                       "raise RuntimeError('broken set-up')\nimport numpy as np")),
         "errors", STEP | TERMINAL, "cell 1: RuntimeError: broken set-up"),
    # The release as handed out: every function raises NotImplementedError.
    Case("untouched", lambda: RELEASE.read_text(encoding="utf-8"), "errors", set(), "NotImplementedError"),
    # Not a notebook at all.
    Case("not_a_notebook", lambda: "print('hello')\n", "invalid", set(), "not a readable Jupyter notebook"),
]


def _grade(folder: Path, out: Path, timeout: float) -> tuple[dict[str, dict], str]:
    cmd = [sys.executable, "-m", "optlab.grading", "grade", str(ASSIGNMENT), str(folder), "--out", str(out),
           "--timeout", str(timeout), "--jobs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}, proc.stdout


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for case in CASES:
        (folder / f"{case.student}.ipynb").write_text(case.build(), encoding="utf-8")
    return _grade(folder, folder.parent / "scores.csv", timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.student for c in CASES])
def test_grade_submission(graded, case):
    rows, table = graded
    row = rows[case.student]
    assert row["status"] == case.status, row["notes"]
    for probe in CHECKS.probes:
        want = probe.points if probe.name in case.wins else 0.0
        assert float(row[probe.name]) == want, (probe.name, row["notes"])
    assert float(row["total"]) == sum(p.points for p in CHECKS.probes if p.name in case.wins)
    assert float(row["max"]) == CHECKS.max_points
    assert case.note in row["notes"]
    for name in ALL - case.wins:  # every lost point is explained, unless the whole run explains it
        assert name in row["notes"] or case.status in ("invalid",), (name, row["notes"])
    assert case.student in table


def test_table_lists_every_student_once(graded):
    rows, table = graded
    assert sorted(rows) == sorted(c.student for c in CASES)
    assert sum(line.startswith(tuple(c.student + " " for c in CASES)) for line in table.splitlines()) == len(CASES)


def survivors(token: str) -> list[int]:
    """Pids of live processes whose command line holds ``token`` (read from the host's /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if token.encode() in (d / "cmdline").read_bytes() and \
                    (d / "stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
                found.append(int(d.name))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            pass
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_never_ending_submission_times_out_and_its_processes_die(tmp_path):
    token = f"optlab-helper-{os.getpid()}-{tmp_path.name}"
    loop = (f"import subprocess, sys\n"
            f"helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {token!r}])\n"
            f"while True:\n    pass")
    folder = tmp_path / "subs"
    folder.mkdir()
    nb = _insert_after(_source(), "def terminal_velocity", loop)
    (folder / "never_ending.ipynb").write_text(nbformat.writes(nb), encoding="utf-8")
    rows, _ = _grade(folder, tmp_path / "scores.csv", timeout=4)
    row = rows["never_ending"]
    assert row["status"] == "timeout"
    assert float(row["total"]) == 0.0  # the probes run after the last cell, which was never reached
    loop_cell = 1 + [c.source for c in nb.cells if c.cell_type == "code"].index(loop)
    assert f"time limit of 4 s reached in cell {loop_cell}" in row["notes"]
    assert not survivors(token), "the submission's own child process outlived the time limit"


# --- release -------------------------------------------------------------------------------------


def test_release_is_what_the_source_generates():
    path, up_to_date = release_assignment(ASSIGNMENT, check=True)
    assert path == RELEASE
    assert up_to_date, "assignments/01_momentum/release is stale: run `optlab-grade release assignments/01_momentum`"


def test_release_check_command_fails_on_a_stale_release(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "momentum.ipynb").write_bytes(SOURCE.read_bytes())
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "momentum.ipynb").write_text("{}", encoding="utf-8")
    from optlab.grading.cli import main

    assert main(["release", str(tmp_path), "--check"]) == 1
    assert main(["release", str(tmp_path)]) == 0
    assert main(["release", str(tmp_path), "--check"]) == 0
    assert (tmp_path / "release" / "momentum.ipynb").read_bytes() == RELEASE.read_bytes()


def _solution_lines(text: str) -> list[str]:
    out, inside = [], False
    for line in text.splitlines():
        if line.strip() == BEGIN_SOLUTION:
            inside = True
        elif line.strip() == END_SOLUTION:
            inside = False
        elif inside and line.strip():
            out.append(line.strip())
    return out


def test_release_has_no_solution_no_hidden_test_and_no_output():
    source, release = _source(), nbformat.read(RELEASE, as_version=4)
    solutions = [s for c in source.cells for s in _solution_lines(c.source)]
    assert len(solutions) >= 10  # three functions and one written answer
    text = "\n".join(c.source for c in release.cells)
    assert not set(solutions) & {line.strip() for line in text.splitlines()}
    assert "### BEGIN" not in text and "### END" not in text
    assert "Instructor-only" in "\n".join(c.source for c in source.cells)
    assert "Instructor-only" not in text
    code = "\n".join(c.source for c in release.cells if c.cell_type == "code")
    assert code.count("raise NotImplementedError()") == 3 and text.count("YOUR ANSWER HERE") == 1
    for cell in release.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert release.metadata["optlab"]["generated"] is True
    assert not (ASSIGNMENT / "release" / "checks.py").exists()


def test_release_raises_not_implemented_and_source_passes_its_visible_checks():
    run = run_notebook(code_cells(RELEASE), timeout=120)
    assert run.status == "errors"
    assert {e["type"] for e in run.cell_errors.values()} == {"NotImplementedError"}
    visible = [i for i, src in enumerate(code_cells(RELEASE), 1) if src.startswith("# Visible checks")]
    assert len(visible) == 3 and set(visible) <= set(run.cell_errors)

    run = run_notebook(code_cells(SOURCE), timeout=120)
    assert run.status == "ok", run.cell_errors
