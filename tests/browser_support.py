"""What the browser tests share: one JupyterLab server and one headless Chromium for the whole session.

``tests/conftest.py`` turns :func:`start_lab` and :func:`launch_browser` into the session fixtures
``lab`` and ``browser``, and opens the widget gallery once as the session fixture ``gallery`` (a
:class:`NotebookPage`); every browser test file reuses them, so the server, the browser and the
gallery's kernel start once per run. The server runs with the course's Jupyter settings
(scripts/jupyter/, as scripts/course.sh and Binder do) on a copy of lectures/ with outputs cleared.
On a failure, :func:`report_failure` prints a screenshot's path, every code cell's prompt and output,
the browser console and the end of the server log.
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
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JUPYTER_CONFIG = ROOT / "scripts" / "jupyter"
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


@contextmanager
def start_lab(base: Path):
    """A JupyterLab server on a copy of lectures/ in ``base``, with the course's settings, temporary Jupyter
    dirs, no token; stopped when the ``with`` block ends."""
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


@contextmanager
def launch_browser():
    """Headless Chromium (Debian's, or OPTLAB_CHROMIUM) under playwright; closed when the ``with`` block ends."""
    from playwright.sync_api import sync_playwright

    exe = os.environ.get("OPTLAB_CHROMIUM") or shutil.which("chromium")
    if not exe:
        pytest.fail("No Chromium found: install Debian's chromium (apt-get install -y chromium) "
                    "or set OPTLAB_CHROMIUM to a Chromium/Chrome binary.")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


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




@dataclass
class NotebookPage:
    """A notebook open in the browser after Restart Kernel and Run All Cells, with its console log."""

    page: object  #: playwright's Page
    lab: Lab
    console: list = field(default_factory=list)

    @contextmanager
    def reporting(self, folder: Path):
        """On an exception inside the block, print :func:`report_failure`'s report (saved in ``folder``)."""
        try:
            yield self.page
        except BaseException:
            report_failure(self.page, self.lab, folder, self.console)
            raise


@contextmanager
def open_notebook(browser, lab: Lab, name: str, folder: Path, run_timeout: float = 45, budget: float = 150):
    """Open lectures/``name`` in a new page, restart its kernel and run every cell (each try given
    ``run_timeout`` seconds, all tries ``budget``: see :func:`restart_and_run_all`); close the page after."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    notebook = NotebookPage(page, lab)
    page.on("console", lambda m: notebook.console.append(f"[{m.type}] {m.text}"))
    page.on("dialog", lambda dialog: dialog.accept())  # leave the page on reload despite unsaved outputs
    try:
        with notebook.reporting(folder):
            # ?reset: a fresh workspace, so no notebook opened by an earlier page comes back in another tab
            page.goto(f"{lab.url}/lab/tree/{name}?reset", timeout=90_000)
            restart_and_run_all(page, run_timeout=run_timeout, budget=budget)
        yield notebook
    finally:
        page.close()


def wait_until(page, condition, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition()`` every 100 ms until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        page.wait_for_timeout(100)


def slider(box, description: str):
    """The ipywidgets slider labelled ``description`` inside the locator ``box``."""
    label = box.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
    return box.locator(".widget-slider", has=label).first


def image_src(box) -> str:
    """The ``src`` (the rendered PNG) of the first figure image inside the locator ``box``."""
    return box.locator(".widget-image").first.get_attribute("src")


def press(page, handle, key: str, times: int = 1) -> None:
    """Focus a slider's handle and press ``key`` (e.g. "ArrowRight", "PageUp", "End") ``times`` times."""
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(times):
        page.keyboard.press(key)
