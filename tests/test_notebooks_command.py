"""`bash scripts/notebooks.sh [notebooks]`: re-execute lectures in place, never reinstalling the environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_reexecutes_in_place_with_this_checkouts_optlab_and_installs_nothing(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import optlab\nprint(optlab.__file__)"),
                nbformat.v4.new_code_cell("import sys\nprint('a')\nsys.stdout.flush()\nprint('b')"),
                nbformat.v4.new_code_cell("1 + 1")]
    path = tmp_path / "lecture.ipynb"
    nbformat.write(nb, path)
    # PYTHON=/bin/false: were scripts/env.sh sourced (the install path), it would stop at its Python check
    env = dict(os.environ, OPTLAB_VENV=sys.prefix, PYTHON="/bin/false", OPTLAB_NO_INSTALL="1")
    env.pop("PYTHONPATH", None)
    run = subprocess.run(["bash", str(ROOT / "scripts" / "notebooks.sh"), str(path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert f"{path} re-executed" in run.stdout
    cells = json.loads(path.read_text())["cells"]
    assert "".join(cells[0]["outputs"][0]["text"]).strip() == str(ROOT / "optlab" / "__init__.py")
    assert len(cells[1]["outputs"]) == 1 and "".join(cells[1]["outputs"][0]["text"]) == "a\nb\n", "prints merged"
    assert "".join(cells[2]["outputs"][0]["data"]["text/plain"]) == "2"
    assert all("execution" not in c["metadata"] for c in cells), "no timing metadata"
    assert "widgets" not in json.loads(path.read_text())["metadata"], "no widget state"


@pytest.mark.slow
def test_a_failing_notebook_fails_the_command(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("raise ValueError('broken lecture')")]
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    env = dict(os.environ, OPTLAB_VENV=sys.prefix, PYTHON="/bin/false")
    env.pop("PYTHONPATH", None)
    run = subprocess.run(["bash", str(ROOT / "scripts" / "notebooks.sh"), str(path)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode != 0 and "broken lecture" in run.stdout + run.stderr
