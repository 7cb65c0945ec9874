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
import math
import re
from dataclasses import dataclass
from pathlib import Path

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
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"Probe name must be an identifier like 'momentum_step_first', got {self.name!r}")
        if not isinstance(self.code, str) or not self.code.strip():
            raise ValueError(f"Probe {self.name!r}: code must be a non-empty string, got {self.code!r}")
        tree = ast.parse(self.code, f"<probe {self.name}>")  # a SyntaxError names the probe
        if not tree.body or not isinstance(tree.body[-1], ast.Expr):
            raise ValueError(f"Probe {self.name!r}: the last statement must be an expression (its value "
                             f"is what gets compared), got code {self.code!r}")
        for field in ("points", "rtol", "atol"):
            v = getattr(self, field)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > 0 if field == "points" else v >= 0)
            if not ok:
                raise ValueError(f"Probe {self.name!r}: {field} must be a finite number "
                                 f"{'> 0' if field == 'points' else '>= 0'}, got {v!r}")


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
        raise ValueError(f"no hidden checks: expected a file {path}")
    spec = importlib.util.spec_from_file_location(f"_optlab_checks_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probes = getattr(module, "PROBES", None)
    if not isinstance(probes, (list, tuple)) or not probes or not all(isinstance(p, Probe) for p in probes):
        raise ValueError(f"{path}: PROBES must be a non-empty list of optlab.grading.Probe, got {probes!r}")
    names = [p.name for p in probes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path}: probe names must be unique, repeated: {dupes}")
    setup = getattr(module, "SETUP", "")
    if not isinstance(setup, str):
        raise ValueError(f"{path}: SETUP must be a string of Python code, got {setup!r}")
    return Checks(tuple(probes), setup)
