"""The README's second command: `bash scripts/test.sh [paths] [pytest args]`.

Run with ``--collect-only -q``: pytest lists what it would run, and runs nothing.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_test_sh(*args):
    """Run scripts/test.sh on the environment running this test (never reinstalling it)."""
    env = dict(os.environ, OPTLAB_VENV=sys.prefix, OPTLAB_NO_INSTALL="1", OPTLAB_CHROMIUM="/bin/true")
    env.pop("PYTHONPATH", None)
    run = subprocess.run(["bash", str(ROOT / "scripts" / "test.sh"), *args], env=env, capture_output=True,
                         text=True, timeout=600)
    return run.returncode, run.stdout + run.stderr


def collected(out: str) -> list:
    return [line for line in out.splitlines() if "::" in line]


def test_paths_given_run_only_those_paths():
    rc, out = run_test_sh("tests/test_binder.py", "lectures", "--collect-only", "-q")
    assert rc == 0, out[-3000:]
    items = collected(out)
    assert {item.split("::")[0] for item in items} == {
        "tests/test_binder.py", *(p.relative_to(ROOT).as_posix() for p in (ROOT / "lectures").glob("*.ipynb"))}
    assert any(item.startswith("lectures/") and "::Cell " in item for item in items), "nbval must be on"


def test_pytest_options_pass_through():
    rc, out = run_test_sh("tests/test_binder.py", "-k", "python_version", "--collect-only", "-q")
    assert rc == 0, out[-3000:]
    assert collected(out) == ["tests/test_binder.py::test_python_version_is_given"]


def test_no_path_runs_everything():
    rc, out = run_test_sh("--collect-only", "-q")
    assert rc == 0, out[-3000:]
    roots = {item.split("/")[0] for item in collected(out)}
    assert roots == {"optlab", "tests", "lectures", "assignments"}, roots
    items = collected(out)
    assert any(item.startswith("optlab/") for item in items), "the docstring examples (doctest) must be on"
    assert any(item.startswith("assignments/") and "/source/" in item for item in items)
    assert not any("/release/" in item.split("::")[0] for item in items), "student versions have no solutions"


def test_collecting_nothing_fails():
    rc, out = run_test_sh("tests/test_binder.py", "-k", "no_such_test_anywhere")
    assert rc == 5, out[-3000:]
    assert "collected no test" in out
