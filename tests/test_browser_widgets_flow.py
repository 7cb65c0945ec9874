"""SaddleFlow and OptimizerRace really respond in a browser: the widget gallery in JupyterLab, keyboard only.

The gallery (``lectures/00_widgets.ipynb``) is run once for the session (``tests/conftest.py``); its last
cell leaves SaddleFlow on the saddle (epsilon 1e-3, damping 0) and the race on the ravine at step 25. Each
test presses keys on a control and checks that the table the page shows is the model's for the new setting.
"""

from __future__ import annotations

import re

import pytest
from browser_support import press, slider, wait_until

from optlab.widgets import race_model, saddle_flow_model

pytestmark = pytest.mark.browser

ROWS_JS = """cls => Array.from(document.querySelectorAll('.' + cls + ' table tr')).slice(1)
    .map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))"""


def rows(page, css_class: str) -> list[list[str]]:
    return page.evaluate(ROWS_JS, css_class)


def test_saddle_flow_alpha_from_the_keyboard_changes_the_escape_readout(gallery, tmp_path):
    with gallery.reporting(tmp_path) as page:
        box = page.locator(".widget-vbox", has=page.locator(".optlab-saddle-flow")).last
        before = rows(page, "optlab-saddle-flow")
        assert before[0][1] == "lr=0.1", before[0]
        handle = slider(box, "alpha (GD, mom.)").locator(".noUi-handle")
        press(page, handle, "ArrowRight", 5)  # five steps of 0.02: alpha 0.1 -> 0.2
        wait_until(page, lambda: rows(page, "optlab-saddle-flow")[0][1] == "lr=0.2", what="the table to show lr=0.2")
        gd, momentum, newton, free = rows(page, "optlab-saddle-flow")
        s = saddle_flow_model("saddle", epsilon=1e-3, lr=0.2, damping=0.0)
        model = s.run("gd")
        assert gd[3] == f"{model.predicted_escape:.1f}" == "34.1"  # log(0.5/1e-3)/log(1.2)
        assert gd[4] == str(model.escape_step) == "35"
        assert gd[6] == model.status
        assert momentum[1] == "lr=0.2, momentum=0.5" and momentum[4] == str(s.run("momentum").escape_step)
        assert newton[6] == s.run("newton").status and newton[6].startswith("attracted")


def test_optimizer_race_step_button_from_the_keyboard_advances_the_race(gallery, tmp_path):
    with gallery.reporting(tmp_path) as page:
        box = page.locator(".widget-vbox", has=page.locator(".optlab-race")).last
        caption = page.locator(".optlab-race")
        assert re.search(r"step 25 of 200", caption.inner_text())
        button = box.locator("button", has_text="Step +5")
        button.scroll_into_view_if_needed()
        button.focus()
        page.keyboard.press("Enter")
        page.keyboard.press("Space")
        wait_until(page, lambda: "step 35 of 200" in caption.inner_text(), what="the race to reach step 35")
        s = race_model("ravine", ["SGD", "Momentum", "Newton"], step=35)
        shown = rows(page, "optlab-race")
        assert [r[0] for r in shown] == ["SGD", "Momentum", "Newton"]
        for row, c in zip(shown, s.contestants):
            assert row[2] == f"{c.loss:.4g}" and row[4] == c.status
        assert f"lowest loss: {s.leader}" in caption.inner_text()
