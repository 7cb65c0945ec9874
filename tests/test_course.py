"""optlab.course: the students' working folder, synced from lectures/ without losing their edits."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary

from optlab.course import MANIFEST, SyncError, sync

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def jupyter_data_dir(tmp_path, monkeypatch):
    """Trust signatures go to a temporary Jupyter data folder, not the user's."""
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    return tmp_path / "jupyter-data"


def notebook(text: str) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(text, outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": "<b>saved output</b>"})])])
    return nbformat.writes(nb)


@pytest.fixture
def course(tmp_path):
    src = tmp_path / "lectures"
    src.mkdir()
    (src / "01_a.ipynb").write_text(notebook("a = 1"))
    (src / "02_b.ipynb").write_text(notebook("b = 2"))
    (src / "data").mkdir()
    (src / "data" / "table.csv").write_text("x,y\n1,2\n")
    (src / ".ipynb_checkpoints").mkdir()
    (src / ".ipynb_checkpoints" / "01_a-checkpoint.ipynb").write_text(notebook("old"))
    return src, tmp_path / "work"


def files(folder: Path) -> set:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_first_start_copies_every_lecture(course):
    src, dst = course
    report = sync(src, dst)
    assert report.copied == ["01_a.ipynb", "02_b.ipynb", "data/table.csv"]
    assert files(dst) == {"01_a.ipynb", "02_b.ipynb", "data/table.csv", MANIFEST}
    for rel in report.copied:
        assert (dst / rel).read_bytes() == (src / rel).read_bytes()


def test_edits_survive_a_resync(course):
    src, dst = course
    sync(src, dst)
    (dst / "01_a.ipynb").write_text(notebook("a = 'my answer'"))
    (dst / "02_b.ipynb").unlink()  # deleted: missing, so copied again
    report = sync(src, dst)
    assert "my answer" in (dst / "01_a.ipynb").read_text()
    assert report.copied == ["02_b.ipynb"] and not report.replaced and not report.beside
    assert not (dst / "01_a.updated.ipynb").exists()


def test_unchanged_course_changes_nothing(course):
    src, dst = course
    sync(src, dst)
    before = {rel: (dst / rel).stat().st_mtime_ns for rel in files(dst) if rel != MANIFEST}
    report = sync(src, dst)
    assert not (report.copied or report.replaced or report.beside) and report.lines() == []
    assert {rel: (dst / rel).stat().st_mtime_ns for rel in before} == before


def test_changed_lecture_goes_beside_an_edited_copy(course):
    src, dst = course
    sync(src, dst)
    (dst / "01_a.ipynb").write_text(notebook("a = 'my answer'"))
    (src / "01_a.ipynb").write_text(notebook("a = 'fixed by the course'"))
    report = sync(src, dst)
    assert report.beside == {"01_a.ipynb": "01_a.updated.ipynb"}
    assert "my answer" in (dst / "01_a.ipynb").read_text()
    assert (dst / "01_a.updated.ipynb").read_bytes() == (src / "01_a.ipynb").read_bytes()
    assert any("01_a.updated.ipynb" in line for line in report.lines())
    # said once: the next start leaves both alone, even when the student deleted the new version
    (dst / "01_a.updated.ipynb").unlink()
    assert sync(src, dst).lines() == []
    # a second change of the course: offered again; an edited earlier offer is kept
    (dst / "01_a.updated.ipynb").write_text(notebook("my notes on the first fix"))
    (src / "01_a.ipynb").write_text(notebook("a = 'fixed again'"))
    report = sync(src, dst)
    assert report.beside == {"01_a.ipynb": "01_a.updated-2.ipynb"}
    assert "my notes" in (dst / "01_a.updated.ipynb").read_text()
    assert "my answer" in (dst / "01_a.ipynb").read_text()


def test_unedited_copy_follows_the_course(course):
    src, dst = course
    sync(src, dst)
    (src / "02_b.ipynb").write_text(notebook("b = 'fixed by the course'"))
    report = sync(src, dst)
    assert report.replaced == ["02_b.ipynb"] and not report.beside
    assert (dst / "02_b.ipynb").read_bytes() == (src / "02_b.ipynb").read_bytes()


def test_adopting_the_new_version_settles_it(course):
    src, dst = course
    sync(src, dst)
    (dst / "01_a.ipynb").write_text(notebook("a = 'my answer'"))
    (src / "01_a.ipynb").write_text(notebook("a = 'fixed'"))
    sync(src, dst)
    (dst / "01_a.updated.ipynb").replace(dst / "01_a.ipynb")
    assert sync(src, dst).lines() == []
    (src / "01_a.ipynb").write_text(notebook("a = 'fixed again'"))
    assert sync(src, dst).replaced == ["01_a.ipynb"]  # the adopted copy was unchanged: it follows


def test_copy_without_a_manifest_is_treated_as_the_students(course):
    src, dst = course
    dst.mkdir()
    (dst / "01_a.ipynb").write_text(notebook("a = 'mine, from before the manifest'"))
    report = sync(src, dst)
    assert report.beside == {"01_a.ipynb": "01_a.updated.ipynb"} and "mine" in (dst / "01_a.ipynb").read_text()


def test_written_notebooks_are_trusted(course):
    src, dst = course
    notary = NotebookNotary()
    sync(src, dst.with_name("untrusted"), trust=False)
    assert not notary.check_signature(nbformat.read(dst.with_name("untrusted") / "01_a.ipynb", as_version=4))
    sync(src, dst)
    for rel in ["01_a.ipynb", "02_b.ipynb"]:
        assert notary.check_signature(nbformat.read(dst / rel, as_version=4)), rel


@pytest.mark.parametrize("case", ["missing source", "source is a file", "working folder is a file",
                                  "working folder inside the source", "bad manifest"])
def test_bad_paths_name_the_path(course, case):
    src, dst = course
    if case == "missing source":
        src, bad = src.parent / "no_such_folder", src.parent / "no_such_folder"
    elif case == "source is a file":
        src = bad = src / "01_a.ipynb"
    elif case == "working folder is a file":
        dst.write_text("x")
        bad = dst
    elif case == "working folder inside the source":
        dst = bad = src / "work"
    else:
        dst.mkdir()
        (dst / MANIFEST).write_text("{not json")
        bad = dst / MANIFEST
    with pytest.raises(SyncError, match=str(bad).replace("\\", "\\\\")):
        sync(src, dst)


def test_command_line(course):
    src, dst = course
    cmd = [sys.executable, "-m", "optlab.course", "sync", str(src), str(dst)]
    env = {"PYTHONPATH": str(ROOT), "JUPYTER_DATA_DIR": str(dst.parent / "jupyter-data"), "PATH": ""}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert "copied 01_a.ipynb" in first.stdout
    assert json.loads((dst / MANIFEST).read_text())["files"]["01_a.ipynb"]["copied"]
    bad = subprocess.run(cmd[:-2] + [str(src / "nope"), str(dst)], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and str(src / "nope") in bad.stderr and "Traceback" not in bad.stderr
