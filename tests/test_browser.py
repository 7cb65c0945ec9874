"""The lecture's widget really responds in a browser: JupyterLab on 127.0.0.1, headless Chromium.

Restart Kernel and Run All Cells on a copy of the first lecture, move the learning-rate slider with the
keyboard, and check that what the page shows changed the way the model says it must.
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
from pathlib import Path

import pytest

from optlab.problems import gd_regimes

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
LECTURE = "01_gradient_descent_on_a_quadratic.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab_url(tmp_path_factory):
    """A JupyterLab server on a copy of lectures/, with temporary Jupyter dirs and no token."""
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
    # no news pop-up over the notebook (it would also try to reach the network)
    labconfig = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig"
    labconfig.mkdir()
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    # render every cell (no windowing), so the widget stays in the page wherever it is scrolled to
    settings = base / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = free_port()
    as_root = ["--allow-root"] if os.geteuid() == 0 else []  # CI runs as root
    log = open(base / "lab.log", "w")
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
                    pytest.fail(f"JupyterLab did not start:\n{(base / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
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


def restart_and_run_all(page, tries: int = 3) -> None:
    """Kernel > Restart Kernel and Run All Cells, as a student would.

    Right after the page opens, JupyterLab sometimes restarts the kernel but runs nothing (the session
    is still settling); then the first cell's prompt stays empty, and the command is given again.
    """
    first_prompt = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").first
    for attempt in range(tries):
        page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
        page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").click()
        page.locator(".jp-Dialog .jp-mod-accept").click()
        try:
            page.wait_for_function(
                "el => /\\[(\\*|\\d+)\\]/.test(el.textContent)", arg=first_prompt.element_handle(),
                timeout=20_000)
            return
        except Exception:
            if attempt == tries - 1:
                raise


def test_lecture_widget_responds_to_the_keyboard(lab_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{lab_url}/lab/tree/{LECTURE}", timeout=90_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)

        restart_and_run_all(page)
        # every cell has run when the last code cell shows its execution count
        page.wait_for_function(
            """() => { const p = document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt');
                       return p.length > 0 && /\\[\\d+\\]/.test(p[p.length - 1].textContent); }""",
            timeout=180_000)
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
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'failure.png'}")
        print("prompts:", page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt").all_inner_texts())
        print("errors:", page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']")
              .all_inner_texts())
        raise
    finally:
        page.close()
