"""The lecture's widget really responds in a browser: JupyterLab on 127.0.0.1, headless Chromium.

Restart Kernel and Run All Cells on a copy of the first lecture, move the learning-rate slider with the
keyboard, and check that what the page shows changed the way the model says it must. The server and the
browser are the session's (``tests/conftest.py``, ``tests/browser_support.py``), shared with every
browser test file.
"""

from __future__ import annotations

import time

import pytest
from browser_support import open_notebook

from optlab.problems import gd_regimes

pytestmark = pytest.mark.browser
LECTURE = "01_gradient_descent_on_a_quadratic.ipynb"


def table_cells(page, css_class: str) -> list[list[str]]:
    """The text of every data row's cells in the widget table ``<div class=css_class>``."""
    return page.evaluate("""cls => Array.from(document.querySelectorAll(`.${cls} table tr`))
        .slice(1).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))""", css_class)


def shown_state(page):
    """What the widget's tables show: alpha, the lambdas, and each row's regime."""
    alpha = float(table_cells(page, "optlab-lr-summary")[0][0])
    cells = table_cells(page, "optlab-lr-regimes")
    lambdas = [float(c[1]) for c in cells]
    regimes = [c[4] for c in cells]
    return alpha, lambdas, regimes


def test_lecture_widget_responds_to_the_keyboard(lab, browser, tmp_path):
    with open_notebook(browser, lab, LECTURE, tmp_path) as notebook, notebook.reporting(tmp_path) as page:
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
