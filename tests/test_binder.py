"""binder/ holds what repo2docker needs to launch the course with a CPU build of torch."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
LECTURE = "01_gradient_descent_on_a_quadratic.ipynb"
ANNOUNCEMENTS = "@jupyterlab/apputils-extension:announcements"


def requirement_lines():
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def test_requirements_install_nothing_local():
    for line in requirement_lines():
        assert not re.match(r"^(-e|--editable)\b", line), f"editable install in binder/requirements.txt: {line}"
        assert not re.match(r"^(\.|/|file:)", line), f"local path in binder/requirements.txt: {line}"


def test_torch_is_pinned_to_a_cpu_build():
    lines = requirement_lines()
    torch = [ln for ln in lines if re.match(r"^torch\b", ln)]
    assert len(torch) == 1, f"exactly one torch requirement expected, got {torch}"
    assert re.fullmatch(r"torch==\d+\.\d+\.\d+\+cpu", torch[0]), f"torch must be pinned to a +cpu build: {torch[0]}"
    assert any(ln.startswith(("--extra-index-url", "--index-url")) and "/whl/cpu" in ln for ln in lines), \
        "the CPU wheel index must be named so the +cpu build resolves"


def test_runtime_dependencies_match_the_package():
    """Everything optlab needs at run time is in binder/requirements.txt (postBuild installs with --no-deps)."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ]", d)[0].lower() for d in deps}
    have = {re.split(r"[<>=!~ +]", ln)[0].lower() for ln in requirement_lines() if not ln.startswith("-")}
    assert names <= have, f"missing from binder/requirements.txt: {sorted(names - have)}"


def test_postbuild_installs_the_package_without_deps_and_stops_on_error():
    text = (BINDER / "postBuild").read_text().splitlines()
    code = [ln.strip() for ln in text if ln.strip() and not ln.startswith("#")]
    assert code[0] == "set -e", f"postBuild must start with 'set -e', starts with {code[0]!r}"
    assert any(re.search(r"pip install --no-deps \.$", ln) for ln in code), "postBuild must pip install --no-deps ."
    assert (BINDER / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_python_version_is_given():
    text = (BINDER / "runtime.txt").read_text().strip()
    assert re.fullmatch(r"python-3\.(1[0-9])", text), f"runtime.txt must name python-3.X (>= 3.10), got {text!r}"


def workdir_default(script: Path) -> str:
    """The working folder a script uses when OPTLAB_WORKDIR is unset: ``${OPTLAB_WORKDIR:-$ROOT/NAME}``."""
    found = re.findall(r'\$\{OPTLAB_WORKDIR:-\$ROOT/([^}]+)\}', script.read_text())
    assert len(found) == 1, f"{script.name} must name its working folder once as ${{OPTLAB_WORKDIR:-$ROOT/...}}"
    return found[0]


def test_start_syncs_the_working_folder_then_runs_the_server():
    start = BINDER / "start"
    code = [ln.strip() for ln in start.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert start.stat().st_mode & 0o111, "start must be executable"
    assert any("python -m optlab.course sync" in ln for ln in code), "start must sync lectures/ into work/"
    assert code[-1] == 'exec "$@"', "start must end by running the server's command: exec \"$@\""
    assert workdir_default(start) == workdir_default(ROOT / "scripts" / "course.sh"), \
        "Binder and scripts/course.sh must serve the same working folder"


def test_readme_badge_opens_the_working_folder_in_jupyterlab():
    """The badge is the one place the Binder link is written: a fork changes that line only."""
    readme = (ROOT / "README.md").read_text()
    badges = re.findall(r"\[!\[Binder\]\([^)]*\)\]\((https://mybinder\.org/v2/[^)]*)\)", readme)
    assert len(badges) == 1, f"README needs one Binder badge, has {len(badges)}"
    url = re.fullmatch(r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/[\w./-]+\?urlpath=lab/tree/([\w.-]+)", badges[0])
    assert url, f"the badge must link Binder's v2/gh/OWNER/REPO/REF?urlpath=lab/tree/FOLDER: {badges[0]}"
    work = workdir_default(BINDER / "start")
    assert url.group(1) == work, f"the badge opens {url.group(1)}/, binder/start syncs the lectures into {work}/"
    assert f"/{work}/" in (ROOT / ".gitignore").read_text().split(), f"git must ignore the working folder {work}/"
    elsewhere = [rel for rel in repository_files() if rel not in {"README.md", "tests/test_binder.py"}
                 and "https://mybinder.org/v2/gh/" in (ROOT / rel).read_text(errors="replace")]
    assert not elsewhere, f"the Binder link is written outside README.md's badge: {elsewhere}"


def repository_files() -> list:
    """The files repo2docker would see: what git tracks or would track (no .venv/, no work/)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [rel for rel in listed if rel and (ROOT / rel).is_file()]


def repository_copy(dest: Path) -> Path:
    for rel in repository_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.mark.slow
def test_binder_environment_runs_lecture_1(tmp_path):
    """Build the environment as repo2docker does, start it as Binder does, and run lecture 1 in it.

    A fresh venv; ``pip install -r binder/requirements.txt`` with this machine's pip settings (its local
    wheels come first; PIP_RETRIES=0 so an unreachable PyTorch index costs a warning, not minutes);
    ``binder/postBuild`` from the repository's root; then ``binder/start`` with a command that executes
    the lecture in the working folder it has just made.
    """
    repo = repository_copy(tmp_path / "repo")
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "OPTLAB_WORKDIR"}}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", PIP_RETRIES="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    for var in ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"]:
        env[var] = str(tmp_path / var.lower())
    times = {}

    def step(name, cmd, timeout):
        t0 = time.time()
        run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
        times[name] = round(time.time() - t0)
        assert run.returncode == 0, f"{name} failed:\n{(run.stdout + run.stderr)[-4000:]}"
        return run

    try:
        step("venv", [sys.executable, "-m", "venv", str(venv)], 120)
        step("pip install -r binder/requirements.txt",
             ["python", "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], 600)
        step("binder/postBuild", ["./binder/postBuild"], 300)
        step("binder/start + nbconvert --execute", ["./binder/start", "jupyter", "nbconvert", "--to", "notebook",
                                                    "--execute", "--output", "executed.ipynb", f"work/{LECTURE}"], 600)
        print("binder build and run, seconds:", times)
        check = subprocess.run(["python", "-c", "import torch, optlab; print(torch.__version__, optlab.__file__)"],
                               cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
        page_config = json.loads((venv / "etc" / "jupyter" / "labconfig" / "page_config.json").read_text())
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 1.9 GB
    assert check.startswith("2.13.0+cpu ") and str(venv) in check, check
    assert (repo / "work" / LECTURE).read_bytes() == (repo / "lectures" / LECTURE).read_bytes()
    executed = json.loads((repo / "work" / "executed.ipynb").read_text())
    outputs = [o for cell in executed["cells"] for o in cell.get("outputs", [])]
    assert outputs and not [o for o in outputs if o["output_type"] == "error"]
    assert any("Run this cell to use the widget" in "".join(o.get("data", {}).get("text/plain", ""))
               for o in outputs), "the lecture's widget did not display"
    assert page_config["disabledExtensions"].get(ANNOUNCEMENTS), "postBuild must turn the news pop-up off"
