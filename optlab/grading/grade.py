"""Grade a folder of submitted notebooks: take them in safely, run each in a sandbox, compare, score.

Scoring happens here, in the grader's process: the expected values come from running the same probes
on the instructor's source notebook (also in a sandboxed child), and each probe earns its points when
the student's value matches within the probe's tolerance (:func:`optlab.grading.compare.compare`) and
the probes it ``requires`` earned theirs.

Before any child runs, every submission is taken in (:func:`intake`): symbolic links, hard links,
non-regular files, oversized files and unusable file names are refused (an ``invalid`` row, the batch
goes on), and each file is copied into a private folder and hashed. The hashes of the grader's code,
``checks.py`` and the source notebook (:func:`fingerprint`) are taken when the run starts and checked
again before the reference run, before every student and before the results are returned: a change
is a ``GradingError``. With a feedback folder, each student's record is written as soon as it is
graded, and a rerun skips students whose record has the same submission hash and the same
configuration (checks, source, grader code, limits).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import check, check_data, positive, positive_int
from .compare import compare, describe
from .execute import GradingError, RunResult, code_cells, run_notebook
from .markers import strip_hidden_tests
from .probes import Checks, load_checks, probe_key, student_seed
from .release import source_notebook
from .report import Score, clean_text, format_table, read_record, write_csv, write_feedback
from .sandbox import Limits, sandbox_problem

__all__ = ["GradingError", "Score", "format_table", "write_csv", "grade_assignment", "score_run", "intake",
           "fingerprint", "reference_values", "Submission"]

MAX_NOTEBOOK_MB = 8
_STUDENT = re.compile(r"^[\w@+-][\w.@+-]{0,99}$")
UNSANDBOXED = "NOT SANDBOXED (--no-sandbox): graded as trusted code"


@dataclass(frozen=True)
class Submission:
    """One file taken in: the student id, the private copy (``None`` if refused), its SHA-256 and, if
    refused, why."""

    student: str
    path: Path | None
    sha256: str
    problem: str | None = None


def intake(folder: str | Path, private: str | Path, *, max_bytes: int = MAX_NOTEBOOK_MB * 2**20) -> list[Submission]:
    """Take in every ``FOLDER/*.ipynb`` (file stem = student id) before anything runs: refuse symbolic
    and hard links, non-regular files, files over ``max_bytes`` and names that are not a plain student
    id; copy the rest into ``private`` (a folder only the grader uses) and hash them."""
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.name.endswith(".ipynb"):
            continue
        stem = entry.name[: -len(".ipynb")]
        student = stem if _STUDENT.match(stem) else clean_text(stem)[:100] or "?"
        problem = None if _STUDENT.match(stem) else (
            "the file name is not a usable student id (letters, digits, . _ @ + - only)")
        data = b""
        if problem is None:
            try:
                st = os.lstat(entry.path)
                if stat.S_ISLNK(st.st_mode):
                    raise OSError("it is a symbolic link; submit the notebook file itself")
                if not stat.S_ISREG(st.st_mode):
                    raise OSError("it is not a regular file")
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as f:
                    fst = os.fstat(f.fileno())
                    if not stat.S_ISREG(fst.st_mode) or fst.st_nlink != 1:
                        raise OSError("it is not a regular file with one name (a hard link?)")
                    data = f.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise OSError(f"it is larger than {max_bytes / 2**20:g} MiB")
            except OSError as exc:
                problem = f"refused: {exc.strerror or exc}"
        digest = hashlib.sha256(data).hexdigest() if problem is None else ""
        path = None
        if problem is None:
            path = Path(private) / entry.name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        out.append(Submission(student, path, digest, problem))
    return out


def fingerprint(assignment: str | Path) -> dict[str, str]:
    """SHA-256 of the grader's code (``optlab/grading/*.py``), ``checks.py`` and the source notebook."""
    files = sorted(Path(__file__).parent.glob("*.py"))
    files += [Path(assignment) / "checks.py", source_notebook(assignment)]
    out = {}
    for f in files:
        try:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
        except OSError:
            out[str(f)] = "missing"
    return out


def verify(assignment: str | Path, baseline: dict[str, str]) -> None:
    """``GradingError`` if a file of :func:`fingerprint` changed since ``baseline`` was taken."""
    now = fingerprint(assignment)
    changed = sorted(k for k in set(now) | set(baseline) if now.get(k) != baseline.get(k))
    if changed:
        raise GradingError(f"refusing to go on: {', '.join(changed)} changed since this grading run started")


def reference_values(assignment: str | Path, checks: Checks, *, timeout: float = 60.0, limits: Limits | None = None,
                     sandbox: bool = True, seeds=(0,)) -> dict[str, dict]:
    """Run the probes on the instructor's source notebook (hidden-test regions removed, as students
    see it), in the same kind of child as the students', and return the expected values by probe key
    (seeded probes once per seed); ``GradingError`` if the source does not run cleanly."""
    src = source_notebook(assignment)
    cells = [strip_hidden_tests(c, f"{src.name}") for c in code_cells(src)]
    run = run_notebook(cells, checks.probes, checks.setup, timeout=timeout, limits=limits, sandbox=sandbox,
                       seeds=seeds)
    if run.status != "ok":
        raise GradingError(f"the instructor notebook {src} did not run cleanly ({run.status}): "
                           f"{'; '.join(_run_notes(run, timeout)) or run.stderr_tail[-500:]}")
    for key, value in run.values.items():
        if value["kind"] in ("other", "invalid"):
            raise GradingError(f"probe {key!r} gives {describe(value)} on the instructor notebook; "
                               "a probe must return numbers, arrays, lists, dicts, str, bool or None, or raise")
    return run.values


def _run_notes(run: RunResult, timeout: float) -> list[str]:
    notes = [run.problem] if run.problem else []
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
              timeout: float, seed: int | None = None) -> Score:
    """Turn one run's values into points: full points per matching probe whose required probes also
    earned theirs, 0 otherwise, with reasons. ``seed`` is the student's (default: from ``student``)."""
    seed = student_seed(student) if seed is None else seed
    notes = _run_notes(run, timeout)
    points = {}
    for probe in checks.probes:
        key = probe_key(probe, seed)
        got = run.values.get(key)
        if got is None:
            points[probe.name] = 0.0
            continue  # the run note says why it never ran
        reason = compare(expected[key], got, rtol=probe.rtol, atol=probe.atol)
        points[probe.name] = 0.0 if reason else float(probe.points)
        if reason:
            notes.append(f"{probe.name}: {reason}")
        missing = [r for r in probe.requires if points[r] == 0]
        if points[probe.name] and missing:
            points[probe.name] = 0.0
            notes.append(f"{probe.name}: right, but counts only when the probes it requires earn their "
                         f"points too (not earned: {', '.join(missing)})")
    if not run.sandboxed:
        notes.insert(0, UNSANDBOXED)
    return Score(student, points, sum(points.values()), checks.max_points, run.status, notes,
                 manual=dict(checks.manual))


def _config(baseline: dict[str, str], timeout: float, limits: Limits, sandbox: bool) -> str:
    text = json.dumps({"files": {Path(k).name + "@" + str(i): v for i, (k, v) in enumerate(sorted(baseline.items()))},
                       "timeout": timeout, "limits": limits.rlimits(), "tmpfs": limits.tmpfs_mb,
                       "output": limits.output_mb, "sandbox": sandbox}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _invalid(sub: Submission, checks: Checks, note: str, sandbox: bool) -> Score:
    notes = ([] if sandbox else [UNSANDBOXED]) + [note]
    return Score(sub.student, {p.name: 0.0 for p in checks.probes}, 0.0, checks.max_points, "invalid", notes, sub.sha256,
                 dict(checks.manual))


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``1 <= i <= n`` (``ValueError`` otherwise)."""
    m = re.fullmatch(r"(\d+)/(\d+)", str(text).strip())
    check("grade", "shard", text, bool(m) and 1 <= int(m[1]) <= int(m[2]), "i/n with 1 <= i <= n, e.g. 2/4")
    return int(m[1]), int(m[2])


def grade_assignment(assignment: str | Path, submissions: str | Path, *, timeout: float = 60.0,
                     reference_timeout: float = 60.0, jobs: int = 1, limits: Limits | None = None,
                     sandbox: bool = True, feedback: str | Path | None = None, shard: tuple[int, int] = (1, 1),
                     max_notebook_mb: int = MAX_NOTEBOOK_MB, baseline: dict[str, str] | None = None) -> list[Score]:
    """Grade every ``SUBMISSIONS/*.ipynb`` (file stem = student id) against ``ASSIGNMENT``'s checks.

    Args:
        assignment: folder with ``source/NAME.ipynb`` and ``checks.py``.
        submissions: folder of submitted notebooks, one per student.
        timeout: wall-clock seconds allowed per submitted notebook (cells and probes together).
        reference_timeout: wall-clock seconds allowed to the instructor's notebook, run once for the
            expected values (its own limit, so that a short per-student limit cannot fail the
            reference run; a reference run that hits it is a ``GradingError``).
        jobs: how many notebooks run at once (>= 1).
        limits: each child's resource limits (default :class:`~optlab.grading.sandbox.Limits()`).
        sandbox: run every child in the bubblewrap sandbox; ``GradingError`` if this machine cannot.
            ``False`` grades without it (trusted code only; every row's notes then say so).
        feedback: a folder for per-student feedback (``STUDENT.txt``) and records (``STUDENT.json``);
            students whose record matches their submission and this configuration are not rerun.
        shard: ``(i, n)``: grade only the i-th of n interleaved slices of the sorted submissions (for
            spreading a class over machines; ``optlab-grade merge`` joins the feedback folders).
        max_notebook_mb: largest submission accepted, MiB.
        baseline: the :func:`fingerprint` taken when the run started (default: now).

    Returns the scores of this shard sorted by student id.
    """
    owner = "grade_assignment"
    positive_int(owner, "jobs", jobs)
    positive(owner, "timeout", timeout)
    positive(owner, "reference_timeout", reference_timeout)
    positive_int(owner, "max_notebook_mb", max_notebook_mb)
    limits = Limits() if limits is None else limits
    submissions = Path(submissions)
    check_data(owner, "submissions", submissions.is_dir(), f"{str(submissions)!r} is not a folder",
               "a folder of .ipynb files")
    check_data(owner, "submissions", any(submissions.glob("*.ipynb")), f"{submissions} holds no .ipynb file",
               "one notebook per student")
    if sandbox and sandbox_problem():
        raise GradingError(f"cannot sandbox the students' code: {sandbox_problem()}. Pass --no-sandbox "
                           "(sandbox=False) only to grade code you trust.")
    baseline = fingerprint(assignment) if baseline is None else baseline
    checks = load_checks(assignment)
    verify(assignment, baseline)
    config = _config(baseline, timeout, limits, sandbox)
    if feedback is not None:
        Path(feedback).mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="optlab-grade-submissions-"))
    try:
        taken = intake(submissions, private, max_bytes=max_notebook_mb * 2**20)
        i, n = shard
        taken = [s for k, s in enumerate(taken) if k % n == i - 1]
        done: dict[str, Score] = {}
        for sub in taken:
            rec = read_record(Path(feedback) / f"{sub.student}.json") if feedback and sub.path else None
            if rec and rec[1] == config and rec[0].sha256 == sub.sha256 and rec[0].student == sub.student:
                done[sub.student] = rec[0]
        todo = [s for s in taken if s.student not in done]
        runnable = [s for s in todo if s.path is not None]
        expected = {}
        if runnable:
            seeds = sorted({student_seed(s.student) for s in runnable})
            expected = reference_values(assignment, checks, timeout=reference_timeout, limits=limits,
                                        sandbox=sandbox, seeds=seeds)

        def one(sub: Submission) -> Score:
            verify(assignment, baseline)
            if sub.path is None:
                score = _invalid(sub, checks, sub.problem, sandbox)
            else:
                try:
                    cells = code_cells(sub.path)
                except ValueError as exc:
                    score = _invalid(sub, checks, str(exc)[:300], sandbox)
                else:
                    try:
                        run = run_notebook(cells, checks.probes, checks.setup, timeout=timeout, limits=limits,
                                           sandbox=sandbox, seeds=[student_seed(sub.student)])
                        score = score_run(sub.student, run, expected, checks, timeout)
                    except GradingError:
                        raise
                    except Exception as exc:  # noqa: BLE001 (one submission never stops the batch)
                        score = _invalid(sub, checks, f"the grader could not process this submission "
                                         f"({type(exc).__name__}: {str(exc)[:200]})", sandbox)
            score.sha256 = sub.sha256
            if feedback is not None and _STUDENT.match(sub.student):
                write_feedback(score, feedback, config)
            return score

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            scores = list(pool.map(one, todo))
        verify(assignment, baseline)
        return sorted([*done.values(), *scores], key=lambda s: s.student)
    finally:
        shutil.rmtree(private, ignore_errors=True)
