"""Every Python source of the repository compiles without a warning.

An invalid escape in a plain string (``"\\,"`` or ``"\\text"`` in a docstring) is only a warning, and
``"\\t"`` silently becomes a tab: compiled with warnings as errors, both fail here.
"""

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ["optlab", "tests", "benchmarks", "assignments", "scripts"]
                 for p in (ROOT / folder).rglob("*.py"))


def test_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert {"optlab/__init__.py", "tests/conftest.py", "assignments/01_momentum/checks.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_compiles_without_warnings(path):
    source = path.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(source, str(path), "exec")


def test_an_invalid_escape_fails_here():
    with warnings.catch_warnings(), pytest.raises(SyntaxError, match="invalid escape sequence"):
        warnings.simplefilter("error")
        compile('def f():\n    """(2/\\text{numel})\\,I"""\n', "<docstring>", "exec")
