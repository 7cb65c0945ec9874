"""NormalizationEffect and CurvatureExplorer really respond in a browser, to the keyboard.

The gallery (lectures/00_widgets.ipynb) runs once for the session (``gallery`` fixture, tests/conftest.py);
each test drives its widget with key presses and checks that the readout table shows the model's numbers
for the new setting, and that the figure was rendered again.
"""

from __future__ import annotations

import pytest
from browser_support import image_src, press, slider, wait_until

from optlab.widgets._view import number
from optlab.widgets.curvature_explorer import curvature_explorer_model, curvature_run
from optlab.widgets.normalization import input_normalization_model

pytestmark = pytest.mark.browser


def first_row(page, css_class: str) -> list[str]:
    """The cells of the first data row of the table in ``<div class=css_class>``."""
    return page.evaluate("""cls => { const tr = document.querySelectorAll(`.${cls} table tr`)[1];
        return tr ? Array.from(tr.cells).map(td => td.textContent.trim()) : []; }""", css_class)


def test_normalization_effect_transform_by_keyboard(gallery, tmp_path):
    with gallery.reporting(tmp_path) as page:
        box = page.locator(".optlab-widget-normalization")
        box.wait_for(timeout=60_000)
        # the gallery's last cell chose the badly scaled table, standardized
        wait_until(page, lambda: first_row(page, "optlab-norm-inputs")[:2] == ["badly scaled", "standardized"],
                   what="the gallery's setting shown")
        before = image_src(box)
        button = box.locator(".widget-toggle-button", has_text="raw").first
        button.scroll_into_view_if_needed()
        button.focus()
        page.keyboard.press("Enter")
        wait_until(page, lambda: first_row(page, "optlab-norm-inputs")[1] == "raw", what="the raw inputs shown")
        s = input_normalization_model("badly scaled", "raw")
        row = first_row(page, "optlab-norm-inputs")
        assert row[4] == number(s.kappa) and row[5] == number(s.alpha_star)
        assert row[7] == f"{s.steps_predicted:,}" and row[8] == f"{s.steps_run:,}"
        wait_until(page, lambda: image_src(box) != before, what="the figure rendered again")


def test_curvature_explorer_step_by_keyboard(gallery, tmp_path):
    run = curvature_run("mlp", "sgd", 0.5, None, steps=60, every=20)  # the gallery's run, for the expected numbers
    with gallery.reporting(tmp_path) as page:
        box = page.locator(".optlab-widget-curvature")
        box.wait_for(timeout=60_000)
        wait_until(page, lambda: first_row(page, "optlab-curv-step")[:1] == ["0"], what="step 0 shown")
        before = image_src(box)
        press(page, slider(box, "step").locator(".noUi-handle"), "ArrowRight", times=2)
        wait_until(page, lambda: first_row(page, "optlab-curv-step")[:1] == ["40"], what="step 40 shown")
        s = curvature_explorer_model(run, 40)
        row = first_row(page, "optlab-curv-step")
        assert float(row[2]) == pytest.approx(s.lambda_max, rel=1e-3)  # Lanczos, as the model computes it
        assert float(row[4]) == pytest.approx(s.alpha_max, rel=1e-3)
        assert float(row[1]) == pytest.approx(s.loss, rel=1e-3)
        wait_until(page, lambda: image_src(box) != before, what="the figure rendered again")
