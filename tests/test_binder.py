"""binder/ holds what repo2docker needs to launch the course with a CPU build of torch."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


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


def test_readme_badge_opens_the_lectures_in_jupyterlab():
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\[!\[Binder\]\([^)]*\)\]\((https://mybinder\.org/v2/[^)]*)\)", readme)
    assert badge, "README needs a Binder badge"
    assert "urlpath=lab/tree/lectures" in badge.group(1)
