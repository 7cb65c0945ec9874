"""Hidden tests as *probes*: named pieces of code whose values the grader compares from outside.

An assignment's ``checks.py`` (never released) defines ``PROBES``, a list of :class:`Probe`, and
optionally ``SETUP``, code run before every probe (e.g. ``import numpy as np``). Each probe runs in the
student's namespace inside the child process, which reports only the value of its last expression;
the same probe run on the instructor's source notebook gives the expected value. No expected answer
ever reaches the student's process.
"""

from __future__ import annotations

import ast
import importlib.util
import re
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

    Reference: the probe-and-compare design follows nbgrader's split between solution cells and
    hidden tests (Jupyter Development Team, nbgrader, 2015-), with the tests moved out of the
    student's process.
    """

    name: str
    code: str
    points: float = 1.0
    rtol: float = 1e-6
    atol: float = 1e-9

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


@dataclass(frozen=True)
class Checks:
    """The hidden checks of one assignment: the probes and the setup code run before each."""

    probes: tuple[Probe, ...]
    setup: str = ""

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
    spec = importlib.util.spec_from_file_location(f"_optlab_checks_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probes = getattr(module, "PROBES", None)
    check(str(path), "PROBES", probes, isinstance(probes, (list, tuple)) and bool(probes)
          and all(isinstance(p, Probe) for p in probes), "a non-empty list of optlab.grading.Probe")
    names = [p.name for p in probes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise data_error(str(path), "PROBES", f"probe names repeated: {dupes}", "unique probe names")
    setup = getattr(module, "SETUP", "")
    check(str(path), "SETUP", setup, isinstance(setup, str), "a string of Python code")
    return Checks(tuple(probes), setup)
