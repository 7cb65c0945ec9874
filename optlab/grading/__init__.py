"""Release and grade the course's homework, following nbgrader's authoring conventions.

An assignment is a folder ``assignments/NN_name/`` with the instructor's notebook ``source/NAME.ipynb``
(solutions between ``### BEGIN SOLUTION`` / ``### END SOLUTION``), the generated student version
``release/NAME.ipynb`` and the hidden checks ``checks.py`` (a list of :class:`Probe`, never released).

Grading runs each submitted notebook in its own process, inside a bubblewrap sandbox with resource
limits (:mod:`optlab.grading.sandbox`) and a time limit; that process only reports the values of the
probes, the grader validates them as hostile data (:mod:`optlab.grading.protocol`) and, in its own
process, compares them with the values the same probes give on the instructor's notebook. See
``assignments/README.md`` for the workflow.
"""

from .compare import compare
from .execute import GradingError, RunResult, run_notebook
from .grade import grade_assignment
from .markers import strip_hidden_tests, strip_solutions
from .probes import Checks, Probe, load_checks, student_seed
from .release import release_assignment, release_notebook
from .report import Score, format_table, merge_records, write_csv
from .sandbox import Limits, sandbox_problem

__all__ = [
    "Probe", "Checks", "load_checks", "student_seed", "compare", "run_notebook", "RunResult", "grade_assignment",
    "Score", "GradingError", "format_table", "write_csv", "merge_records", "release_assignment",
    "release_notebook", "strip_solutions", "strip_hidden_tests", "Limits", "sandbox_problem",
]
