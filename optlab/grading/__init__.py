"""Release and grade the course's homework, following nbgrader's authoring conventions.

An assignment is a folder ``assignments/NN_name/`` with the instructor's notebook ``source/NAME.ipynb``
(solutions between ``### BEGIN SOLUTION`` / ``### END SOLUTION``), the generated student version
``release/NAME.ipynb`` and the hidden checks ``checks.py`` (a list of :class:`Probe`, never released).

Grading runs each submitted notebook in its own process with a time limit; that process only reports
the values of the probes, and the grader, in its own process, compares them with the values the same
probes give on the instructor's notebook. See ``assignments/README.md`` for the workflow.
"""

from .compare import compare
from .execute import RunResult, run_notebook
from .grade import GradingError, Score, format_table, grade_assignment, write_csv
from .markers import strip_hidden_tests, strip_solutions
from .probes import Checks, Probe, load_checks
from .release import release_assignment, release_notebook

__all__ = [
    "Probe", "Checks", "load_checks", "compare", "run_notebook", "RunResult", "grade_assignment", "Score",
    "GradingError", "format_table", "write_csv", "release_assignment", "release_notebook",
    "strip_solutions", "strip_hidden_tests",
]
