"""Hidden tests as *probes*: named pieces of code whose values the grader compares from outside.

An assignment's ``checks.py`` (never released) defines ``PROBES``, a list of :class:`Probe`, and
optionally ``SETUP``, code run before every probe (e.g. ``import numpy as np``). Each probe runs in the
student's namespace inside the child process, which reports only the value of its last expression;
the same probe run on the instructor's source notebook gives the expected value. No expected answer
ever reaches the student's process.

Written answers are not probes: a markdown cell of the source notebook marked as nbgrader marks a
manually graded answer (cell metadata ``nbgrader: {solution: true, grade: true, grade_id, points}``)
is a *manual item* (:func:`manual_items`). The grade report lists it as ``manual`` with its points;
it never enters the automatic total.

Two options close the shortcuts a value-only check leaves open:

- ``requires``: a probe whose answer can be produced without a working solution (the function raises
  ``ValueError``; the inputs are unchanged afterwards) counts only when the probes it names also
  earned their points, i.e. when the function also computes the right values.
- ``seeded``: the probe's code sees a variable ``seed``, an integer derived from the student id
  (:func:`student_seed`), and draws its inputs from it. The expected value is computed for each
  student's seed, so values leaked by a classmate do not transfer.
"""

from __future__ import annotations

import ast
import hashlib
import re
import types
from dataclasses import dataclass
from pathlib import Path

from ..errors import check, data_error, non_negative, positive

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Probe:
    """One hidden check: ``code`` (statements, the last one an expression) worth ``points``.

    Args:
        name: an identifier, unique within the assignment (a column of the score table).
        code: Python run in a copy of the student's namespace; the value of its final expression is
            what gets compared. If the instructor's solution raises, the student must raise the same
            exception type.
        points: the points awarded when the value matches (> 0).
        rtol, atol: tolerance for numbers and arrays: ``|got - expected| <= atol + rtol * |expected|``.
        requires: names of earlier probes of the same assignment that must also earn their points for
            this one to count (e.g. "raises ValueError" requires a probe of the function's values).
        seeded: the code sees ``seed``, an integer in ``[0, 2**32)`` derived from the student id
            (:func:`student_seed`); draw the probe's inputs from it, e.g.
            ``rng = np.random.default_rng(seed)``. The expected value is computed per student.

    Reference: the probe-and-compare design follows nbgrader's split between solution cells and
    hidden tests (Jupyter Development Team, nbgrader, 2015-), with the tests moved out of the
    student's process.
    """

    name: str
    code: str
    points: float = 1.0
    rtol: float = 1e-6
    atol: float = 1e-9
    requires: tuple[str, ...] = ()
    seeded: bool = False

    def __post_init__(self):
        check("Probe", "name", self.name, isinstance(self.name, str) and bool(_NAME.match(self.name)),
              "an identifier like 'momentum_step_first'")
        owner = f"Probe {self.name!r}"
        check(owner, "code", self.code, isinstance(self.code, str) and bool(self.code.strip()), "a non-empty string")
        tree = ast.parse(self.code, f"<probe {self.name}>")  # a SyntaxError names the probe
        check(owner, "code", self.code, bool(tree.body) and isinstance(tree.body[-1], ast.Expr),
              "code whose last statement is an expression (its value is what gets compared)")
        positive(owner, "points", self.points)
        non_negative(owner, "rtol", self.rtol)
        non_negative(owner, "atol", self.atol)
        requires = (self.requires,) if isinstance(self.requires, str) else self.requires
        check(owner, "requires", self.requires, isinstance(requires, (list, tuple))
              and all(isinstance(r, str) and _NAME.match(r) and r != self.name for r in requires),
              "a tuple of other probes' names")
        object.__setattr__(self, "requires", tuple(requires))
        check(owner, "seeded", self.seeded, isinstance(self.seeded, bool), "True or False")


@dataclass(frozen=True)
class Checks:
    """The hidden checks of one assignment: the probes, the setup code run before each, and the
    written answers graded by hand (``manual``: ``(grade_id, points)`` pairs, never auto-scored)."""

    probes: tuple[Probe, ...]
    setup: str = ""
    manual: tuple[tuple[str, float], ...] = ()

    @property
    def max_points(self) -> float:
        return float(sum(p.points for p in self.probes))


def load_checks(assignment: str | Path) -> Checks:
    """Read ``ASSIGNMENT/checks.py`` (instructor code, trusted) and return its :class:`Checks`.

    Raises ``ValueError`` if the file is missing, ``PROBES`` is not a non-empty list of
    :class:`Probe`, or two probes share a name.
    """
    path = Path(assignment) / "checks.py"
    if not path.is_file():
        raise data_error("load_checks", "assignment", f"{str(assignment)!r} has no hidden checks",
                         f"a file {path}")
    module = types.ModuleType(f"_optlab_checks_{abs(hash(str(path)))}")
    module.__file__ = str(path)
    exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)  # noqa: S102 (instructor code)
    probes = getattr(module, "PROBES", None)
    check(str(path), "PROBES", probes, isinstance(probes, (list, tuple)) and bool(probes)
          and all(isinstance(p, Probe) for p in probes), "a non-empty list of optlab.grading.Probe")
    names = [p.name for p in probes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise data_error(str(path), "PROBES", f"probe names repeated: {dupes}", "unique probe names")
    for i, p in enumerate(probes):
        late = [r for r in p.requires if r not in names[:i]]
        if late:
            raise data_error(str(path), "PROBES", f"probe {p.name!r} requires {late}, which are not probes "
                             "listed before it", "requires naming earlier probes")
    setup = getattr(module, "SETUP", "")
    check(str(path), "SETUP", setup, isinstance(setup, str), "a string of Python code")
    from .release import source_notebook

    manual = manual_items(source_notebook(assignment)) if (Path(assignment) / "source").is_dir() else ()
    clash = sorted({m for m, _ in manual} & set(names))
    if clash:
        raise data_error(str(path), "PROBES", f"names {clash} are both probes and manually graded answers",
                         "distinct names")
    return Checks(tuple(probes), setup, manual)


def manual_items(notebook: str | Path) -> tuple[tuple[str, float], ...]:
    """The manually graded written answers of a source notebook, as ``(grade_id, points)`` in order.

    A markdown cell is one when its metadata says so the way nbgrader marks a "manually graded answer":
    ``{"nbgrader": {"solution": true, "grade": true, "grade_id": "...", "points": N}}``. ``ValueError``
    for such a cell without an identifier ``grade_id`` or with points that are not > 0, or for a
    repeated ``grade_id``.
    """
    import json

    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    out: list[tuple[str, float]] = []
    for i, cell in enumerate(nb["cells"], 1):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] != "markdown" or not (meta.get("solution") and meta.get("grade")):
            continue
        where = f"{Path(notebook).name}, cell {i}"
        grade_id, points = meta.get("grade_id"), meta.get("points")
        check(where, "grade_id", grade_id, isinstance(grade_id, str) and bool(_NAME.match(grade_id)),
              "an identifier like 'why_mu_below_one'")
        positive(where, "points", points)
        if grade_id in [m for m, _ in out]:
            raise data_error(where, "grade_id", f"{grade_id!r} is used twice", "one grade_id per answer")
        out.append((grade_id, float(points)))
    return tuple(out)


def student_seed(student: str) -> int:
    """The seed of a student's seeded probes: the first 4 bytes of SHA-256 of the student id."""
    return int.from_bytes(hashlib.sha256(student.encode("utf-8")).digest()[:4], "big")


def probe_key(probe: Probe, seed: int) -> str:
    """The key of a probe's value: its name, plus ``@seed`` for a seeded probe."""
    return f"{probe.name}@{seed}" if probe.seeded else probe.name


def job_probes(probes, seeds) -> list[dict]:
    """The probes as the child's job lists them: each unseeded probe once, each seeded probe once per
    seed (so that one reference run computes every student's expected value)."""
    out = []
    for p in probes:
        for seed in (sorted(set(seeds)) if p.seeded else [None]):
            out.append({"name": p.name if seed is None else f"{p.name}@{seed}", "code": p.code, "seed": seed})
    return out
