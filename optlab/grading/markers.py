"""nbgrader's authoring markers, applied to one cell's text.

The instructor writes one notebook. In code cells, the lines between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` are the solution: the student version replaces them with ``# YOUR CODE HERE`` and
``raise NotImplementedError()`` at the marker's indentation (in markdown cells, with
``YOUR ANSWER HERE``). Lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are removed.
The markers follow nbgrader's conventions (Jupyter Development Team, nbgrader, 2015-); the code is ours.
"""

from __future__ import annotations

from ..errors import data_error, one_of

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


def _replace_regions(source: str, begin: str, end: str, replacement, where: str) -> str:
    """Replace each ``begin``..``end`` region (markers included) by the ``replacement`` lines at the
    marker's indentation; errors name ``where`` (the notebook and cell) and the line."""
    out: list[str] = []
    inside_since = None
    indent = ""
    for n, line in enumerate(source.splitlines(), 1):
        mark = line.strip()
        if mark == begin:
            if inside_since is not None:
                raise data_error(where, "markers", f"{begin!r} on line {n} inside the region opened on line "
                                 f"{inside_since}", f"{end!r} first")
            inside_since, indent = n, line[: len(line) - len(line.lstrip())]
        elif mark == end:
            if inside_since is None:
                raise data_error(where, "markers", f"{end!r} on line {n} without a {begin!r} before it",
                                 f"{begin!r} ... {end!r} pairs")
            inside_since = None
            out.extend(indent + r if r else "" for r in replacement)
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise data_error(where, "markers", f"{begin!r} on line {inside_since} is never closed", f"{end!r} after it")
    return "\n".join(out)


def strip_solutions(source: str, cell_type: str = "code", where: str = "cell") -> str:
    """The student's version of a cell: every solution region replaced by a stub.

    Code: ``# YOUR CODE HERE`` and ``raise NotImplementedError()``; markdown: ``YOUR ANSWER HERE``.
    Raises ``ValueError`` (naming ``where`` and the line) for unbalanced or nested markers.
    """
    one_of(where, "cell_type", cell_type, ("code", "markdown"))
    stub = ["# YOUR CODE HERE", "raise NotImplementedError()"] if cell_type == "code" else ["YOUR ANSWER HERE"]
    return _replace_regions(source, BEGIN_SOLUTION, END_SOLUTION, stub, where)


def strip_hidden_tests(source: str, where: str = "cell") -> str:
    """A cell without its hidden-test regions (markers included); trailing blank lines are dropped."""
    return _replace_regions(source, BEGIN_HIDDEN, END_HIDDEN, [], where).rstrip()


def has_markers(source: str) -> bool:
    """Whether any marker text is left in ``source``, also a mistyped one (``## BEGIN SOLUTION``, or a
    marker that is not alone on its line): after release that means a solution may have leaked."""
    return any(word in source for word in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS",
                                           "END HIDDEN TESTS"))
