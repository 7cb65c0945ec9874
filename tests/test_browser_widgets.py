"""The gallery's widgets respond to the keyboard in a real browser, and show the model's numbers.

The gallery (lectures/00_widgets.ipynb) is run once for the session (``gallery`` in tests/conftest.py);
each test presses keys on its widget's sliders and waits until the readouts shown equal the model
computed here from the slider values shown -- the page's numbers against optlab's, not against
numbers written in the test.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from browser_support import image_src, press, slider, wait_until

from optlab.widgets import lr_regimes_model, momentum_model
from optlab.widgets._view import number
from optlab.widgets.lr_regimes import regimes_table_html

pytestmark = pytest.mark.browser


def table(box, css_class: str) -> list[list[str]]:
    """The text of each data row's cells in the table ``<div class=css_class>`` inside ``box``."""
    return box.locator(f".{css_class} table").first.evaluate(
        "t => Array.from(t.rows).slice(1).map(tr => Array.from(tr.cells).map(td => td.textContent.trim()))")


def readout(control) -> float:
    return float(control.locator(".widget-readout").inner_text())


def test_lr_regimes_keyboard_end_and_pagedown(gallery, tmp_path):
    with gallery.reporting(tmp_path) as page:
        box = page.locator(".optlab-widget-lr-regimes")
        box.wait_for(timeout=60_000)
        alpha_slider = slider(box, "α")
        lambdas = [float(row[1]) for row in table(box, "optlab-lr-regimes")]

        def shown_matches_model() -> bool:  # the page's cells are the library's table of the model's state
            html = regimes_table_html(lr_regimes_model(lambdas, readout(alpha_slider)))
            expected = [[unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
                        for row in re.findall(r"<tr>(.*?)</tr>", html)]
            expected = [row for row in expected if row]
            return table(box, "optlab-lr-summary") + table(box, "optlab-lr-regimes") == expected

        wait_until(page, shown_matches_model, what="the first table to match the model")
        image0 = image_src(box)
        handle = alpha_slider.locator(".noUi-handle")
        press(page, handle, "End")  # the slider's end: 2.5/lambda_max, the stiffest direction diverges
        wait_until(page, lambda: readout(alpha_slider) == pytest.approx(2.5 / max(lambdas), rel=1e-3),
                   what="End moving alpha to the slider's end")
        wait_until(page, shown_matches_model, what="the tables to follow End")
        assert "divergence" in [row[4] for row in table(box, "optlab-lr-regimes")]
        assert "never" in table(box, "optlab-lr-summary")[0][-1]
        at_end = readout(alpha_slider)
        press(page, handle, "PageDown")  # five steps of 1/10 of 1/lambda_max
        wait_until(page, lambda: readout(alpha_slider) == pytest.approx(at_end - 0.5 / max(lambdas), abs=1e-3),
                   what="PageDown moving alpha by five steps")
        wait_until(page, shown_matches_model, what="the tables to follow PageDown")
        wait_until(page, lambda: image_src(box) != image0, what="the figure to be redrawn")


def test_momentum_keyboard_home_and_pageup(gallery, tmp_path):
    with gallery.reporting(tmp_path) as page:
        box = page.locator(".optlab-widget-momentum")
        box.wait_for(timeout=60_000)
        sliders = {name: slider(box, desc) for name, desc in
                   [("alpha", "α"), ("mu", "μ"), ("lam", "λ"), ("g", "g"), ("sigma", "σ")]}

        def shown() -> dict:
            return {row[0]: row[1] for row in table(box, "optlab-momentum-readouts")}

        def shown_matches_model() -> bool:
            s = momentum_model(**{name: readout(c) for name, c in sliders.items()})
            rows = shown()
            return (rows["regime"] == s.regime and rows["rate max|r|"] == number(s.rate, ".4f")
                    and rows["critical μ*"] == number(s.mu_critical, ".4f")
                    and rows["terminal velocity p∞"] == number(s.terminal)
                    and rows["steps to 90% of p∞"] == str(s.steps_90)
                    and rows["velocity variance, predicted"] == number(s.var_predicted, ".4g"))

        wait_until(page, shown_matches_model, timeout=30, what="the first readouts to match the model")
        image0 = image_src(box)
        mu_handle = sliders["mu"].locator(".noUi-handle")
        press(page, mu_handle, "Home")  # mu = 0: plain gradient descent, overdamped at alpha*lambda = 0.1
        wait_until(page, lambda: readout(sliders["mu"]) == 0.0, what="Home moving mu to 0")
        wait_until(page, shown_matches_model, what="the readouts to follow Home")
        assert shown()["regime"] == "overdamped"
        press(page, mu_handle, "PageUp", times=10)  # 10 x 5 steps of 0.01: mu = 0.5 > mu* = (1 - sqrt(0.1))^2
        wait_until(page, lambda: readout(sliders["mu"]) == pytest.approx(0.5), what="PageUp moving mu to 0.5")
        wait_until(page, shown_matches_model, what="the readouts to follow PageUp")
        rows = shown()
        assert rows["regime"] == "underdamped" and rows["rate max|r|"] == rows["√μ"]
        wait_until(page, lambda: image_src(box) != image0, what="the figure to be redrawn")
