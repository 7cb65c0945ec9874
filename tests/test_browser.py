"""The lecture's widget really responds in a browser: JupyterLab on 127.0.0.1, headless Chromium.

Restart Kernel and Run All Cells on a copy of the first lecture, move the learning-rate slider with the
keyboard, and check that what the page shows changed the way the model says it must. The server runs
with the course's Jupyter settings (scripts/jupyter/, as scripts/course.sh and Binder do). On a
failure the test prints a screenshot's path, every code cell's prompt and output, the browser
console and the end of the server log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from optlab.problems import gd_regimes

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
JUPYTER_CONFIG = ROOT / "scripts" / "jupyter"
LECTURE = "01_gradient_descent_on_a_quadratic.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KERNEL_STATUS_JS = """() => {
    const items = Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'));
    const item = items.find(e => / \\| /.test(e.textContent) && /kernel/i.test(e.textContent));
    return item ? item.textContent.split(' | ').pop().trim() : '';
}"""
PROMPTS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
    .map(p => p.textContent.trim())"""
CELLS_JS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(cell => ({
    prompt: cell.querySelector('.jp-InputPrompt').textContent.trim(),
    outputs: Array.from(cell.querySelectorAll('.jp-OutputArea-output')).map(o => o.innerText)}))"""
LOST_KERNEL = {"Unknown", "Disconnected", "Dead"}  # statuses the status bar shows for a lost connection


@dataclass(frozen=True)
class Lab:
    url: str
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of lectures/, with the course's settings, temporary Jupyter dirs, no token."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "lectures"
    shutil.copytree(ROOT / "lectures", root)
    # outputs cleared, so that an execution count on the last cell means this run reached it
    for path in root.glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        path.write_text(json.dumps(nb))
    env = dict(os.environ)
    for name in ["JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"]:
        env[name] = str(base / name.lower())
        Path(env[name]).mkdir()
    # the course's settings: kernel connections that survive a quick restart, no news pop-up
    env["JUPYTER_CONFIG_PATH"] = str(JUPYTER_CONFIG)
    # render every cell (no windowing), so the widget stays in the page wherever it is scrolled to
    settings = base / "user-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    # no autosave: after a reload the notebook is the cleared copy again, so execution counts prove a run
    (settings / "docmanager-extension").mkdir()
    (settings / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
    port = free_port()
    as_root = ["--allow-root"] if os.geteuid() == 0 else []  # CI runs as root
    log_path = base / "lab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         f"--LabApp.user_settings_dir={base / 'user-settings'}",
         *as_root],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield Lab(url, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    exe = os.environ.get("OPTLAB_CHROMIUM") or shutil.which("chromium")
    if not exe:
        pytest.fail("No Chromium found: install Debian's chromium (apt-get install -y chromium) "
                    "or set OPTLAB_CHROMIUM to a Chromium/Chrome binary.")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def shown_state(page):
    """What the widget's table shows: alpha, the lambdas, and each row's regime."""
    text = page.locator(".optlab-lr-regimes").inner_text()
    alpha = float(re.search(r"alpha = ([0-9.]+)", text).group(1))
    cells = page.evaluate("""() => Array.from(document.querySelectorAll('.optlab-lr-regimes table tr'))
        .slice(1).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))""")
    lambdas = [float(c[1]) for c in cells]
    regimes = [c[4].strip() for c in cells]
    return alpha, lambdas, regimes


def kernel_status(page) -> str:
    """The kernel status the status bar shows ('Idle', 'Busy', 'Unknown', ...), '' while there is none."""
    return page.evaluate(KERNEL_STATUS_JS)


def wait_for_idle_kernel(page, timeout: float) -> bool:
    """Whether the notebook is shown and its kernel reports Idle within timeout seconds."""
    try:
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout * 1000)
        page.wait_for_function(f"() => ({KERNEL_STATUS_JS})() === 'Idle'", timeout=timeout * 1000)
        return True
    except Exception:  # playwright's TimeoutError: the caller says what it saw
        return False


def wait_for_all_cells(page, timeout: float, lost_after: float = 15) -> str:
    """Wait until every code cell shows an execution count; '' when they do, else why the run is stuck.

    Stuck means: the status bar shows a lost kernel connection (Unknown, Disconnected, Dead) for
    lost_after seconds in a row, nothing started within 20 s, or the cells did not all finish in timeout.
    """
    start = time.time()
    lost_since = None
    while True:
        prompts = page.evaluate(PROMPTS_JS)
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            return ""
        status, now = kernel_status(page), time.time()
        lost_since = (lost_since or now) if status in LOST_KERNEL else None
        if lost_since is not None and now - lost_since > lost_after:
            return f"kernel status {status!r} for {now - lost_since:.0f} s, prompts {' '.join(prompts)}"
        if now - start > 20 and all(p == "[ ]:" for p in prompts):
            return f"nothing ran within 20 s (kernel status {status!r})"
        if now - start > timeout:
            return f"not finished after {timeout:.0f} s: kernel status {status!r}, prompts {' '.join(prompts)}"
        page.wait_for_timeout(250)


def restart_and_run_all(page, tries: int = 3, run_timeout: float = 45, budget: float = 150) -> None:
    """Kernel > Restart Kernel and Run All Cells until every cell has run, as a student would.

    When a run is stuck (see wait_for_all_cells), a student reloads the page and gives the command again;
    so does this, at most `tries` times in `budget` seconds. Fails naming what each try saw.
    """
    give_up = time.time() + budget
    seen = []
    for attempt in range(1, tries + 1):
        if attempt > 1:
            page.reload(timeout=90_000)
        if not wait_for_idle_kernel(page, timeout=max(1, min(30, give_up - time.time()))):
            seen.append(f"try {attempt}: the kernel was not Idle (status {kernel_status(page)!r})")
        else:
            page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
            page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click()
            page.locator(".jp-Dialog .jp-mod-accept").click()
            stuck = wait_for_all_cells(page, timeout=max(1, min(run_timeout, give_up - time.time())))
            if not stuck:
                if seen:
                    print(f"Restart and run all needed {attempt} tries: {'; '.join(seen)}")
                return
            seen.append(f"try {attempt}: {stuck}")
        if time.time() > give_up:
            break
    raise AssertionError(f"Restart Kernel and Run All Cells did not run every cell in {len(seen)} tries "
                         f"({budget:.0f} s at most): " + "; ".join(seen))


def report_failure(page, lab: Lab, folder: Path, console: list[str]) -> None:
    """Print what a reader of CI output needs: screenshot path, cells, browser console, server log tail."""
    shot = folder / "failure.png"
    try:
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
    except Exception as error:  # the page may be gone; the rest of the report still helps
        print(f"no screenshot ({type(error).__name__}: {error})")
    try:
        print(f"kernel status: {kernel_status(page)!r}")
        cells = page.evaluate(CELLS_JS)
        text = "\n".join(f"{c['prompt']} " + "\n    ".join(o[:600] for o in c["outputs"]) for c in cells)
        (folder / "cells.txt").write_text(text)
        print(f"code cells (prompt and outputs, also in {folder / 'cells.txt'}):\n{text}")
    except Exception as error:
        print(f"no cell outputs ({type(error).__name__}: {error})")
    print("browser console (last 40 lines):\n" + "\n".join(console[-40:]))
    print(f"server log {lab.log} (last 6000 characters):\n{lab.log.read_text()[-6000:]}")


def test_lecture_widget_responds_to_the_keyboard(lab, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console = []
    page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
    page.on("dialog", lambda dialog: dialog.accept())  # leave the page on reload despite unsaved outputs
    try:
        page.goto(f"{lab.url}/lab/tree/{LECTURE}", timeout=90_000)
        restart_and_run_all(page)
        page.locator(".optlab-lr-regimes").wait_for(timeout=60_000)
        alpha0, lambdas, regimes0 = shown_state(page)
        image0 = page.locator(".widget-image").first.get_attribute("src")
        assert regimes0 == gd_regimes(lambdas, alpha0)

        handle = page.locator(".widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        # press until the stiffest direction leaves monotone decay (alpha > 1/lambda_max)
        for _ in range(400):
            page.keyboard.press("ArrowRight")
            if shown_state(page)[0] * max(lambdas) > 1.05:
                break
        # the kernel answers each key press in turn: wait until the table has caught up with the slider
        readout = page.locator(".widget-slider .widget-readout").first
        deadline = time.time() + 15
        while abs(float(readout.inner_text()) - shown_state(page)[0]) > 1e-4 and time.time() < deadline:
            page.wait_for_timeout(200)
        alpha1, lambdas1, regimes1 = shown_state(page)
        page.screenshot(path=str(tmp_path / "after.png"), full_page=True)

        assert lambdas1 == lambdas
        assert alpha1 > alpha0, f"the keyboard did not move the slider (alpha {alpha0} -> {alpha1})"
        assert regimes1 == gd_regimes(lambdas, alpha1), "the table disagrees with the model"
        assert regimes1 != regimes0, "moving alpha past 1/lambda_max must change the stiffest regime"
        assert float(readout.inner_text()) == pytest.approx(alpha1, abs=1e-4), "slider readout and table disagree"
        page.wait_for_function(
            "src => document.querySelector('.widget-image').getAttribute('src') !== src", arg=image0,
            timeout=10_000)
    except BaseException:
        report_failure(page, lab, tmp_path, console)
        raise
    finally:
        page.close()
