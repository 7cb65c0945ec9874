"""The machinery every widget shares: plain state, coalesced renders, set(), readouts, palette."""

import json
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from optlab.widgets import LearningRateRegimes
from optlab.widgets._palette import MARK_STYLES, SERIES_COLORS, mark_style, series_style
from optlab.widgets._state import DIVERGED, WidgetState, plain
from optlab.widgets._view import LatestOnly, html_table, number


@dataclass(frozen=True)
class Inner(WidgetState):
    ratio: np.float32


@dataclass(frozen=True)
class Outer(WidgetState):
    alpha: float
    steps: np.int64
    path: np.ndarray
    labels: tuple
    inner: Inner
    flag: np.bool_


def test_to_dict_gives_plain_json_numbers():
    s = Outer(alpha=0.1, steps=np.int64(7), path=np.array([[1.0, np.nan], [np.inf, -np.inf]]),
              labels=("a", 2), inner=Inner(np.float32(0.25)), flag=np.bool_(True))
    d = s.to_dict()
    assert d == {"alpha": 0.1, "steps": 7, "path": [[1.0, DIVERGED], [DIVERGED, DIVERGED]], "labels": ["a", 2],
                 "inner": {"ratio": 0.25}, "flag": True}
    assert type(d["steps"]) is int and type(d["inner"]["ratio"]) is float and type(d["flag"]) is bool
    json.dumps(d, allow_nan=False)  # raises on anything that is not plain JSON


def test_plain_rejects_objects_it_cannot_represent():
    with pytest.raises(TypeError, match="object"):
        plain({"x": object()})


def test_latest_only_renders_the_newest_waiting_item_after_a_running_render():
    started, release, seen = threading.Event(), threading.Event(), []

    def render(item):
        seen.append(item)
        if item == 1:
            started.set()
            assert release.wait(10)

    queue = LatestOnly(render, background=True)
    queue.submit(1)
    assert started.wait(10)
    for item in [2, 3, 4]:  # arrive while 1 renders: only the newest survives
        queue.submit(item)
    release.set()
    assert queue.wait(10)
    assert seen == [1, 4]
    assert queue.rendered == 2


def test_latest_only_inline_does_not_nest_a_render_submitted_from_a_render():
    depth, seen = [0], []
    queue = None

    def render(item):
        depth[0] += 1
        seen.append((item, depth[0]))
        if item == "first":
            queue.submit("second")
        depth[0] -= 1

    queue = LatestOnly(render, background=False)
    queue.submit("first")
    assert seen == [("first", 1), ("second", 1)]


def test_latest_only_reports_a_failed_background_render(capsys):
    def render(item):
        raise RuntimeError(f"cannot draw {item}")

    queue = LatestOnly(render, background=True)
    queue.submit("x")
    with pytest.raises(RuntimeError, match="cannot draw x"):
        queue.wait(10)
    assert "cannot draw x" in capsys.readouterr().err


def test_number_says_diverged_instead_of_nan():
    assert number(0.123456) == "0.1235"
    assert number(np.float64(2.0), ".2f") == "2.00"
    assert [number(x) for x in (np.nan, np.inf, -np.inf, None)] == [DIVERGED] * 4


def test_html_table_escapes_cells_and_keeps_header_html():
    out = html_table(["&alpha;", "b"], [["<1>", "2"]], css_class="optlab-x", caption="<b>c</b>")
    assert out.startswith("<div class='optlab-x'>") and "<b>c</b>" in out
    assert "&alpha;</th>" in out and "&lt;1&gt;</td>" in out
    assert out.count("<td") == 2 and out.count("<th") == 2


def test_series_never_differ_by_colour_alone():
    styles = [series_style(i) for i in range(len(SERIES_COLORS))]
    for key in ["color", "marker", "linestyle"]:
        values = [repr(s[key]) for s in styles]
        assert len(set(values)) == len(values), key
    assert {m["color"] for m in MARK_STYLES}.isdisjoint(SERIES_COLORS)
    assert len({repr(mark_style(i)["linestyle"]) for i in range(len(MARK_STYLES))}) == len(MARK_STYLES)


def test_set_runs_the_control_path_and_rejects_without_changing_anything():
    view = LearningRateRegimes([0.5, 2.0])
    changes = []
    view.controls["alpha"].observe(lambda c: changes.append(c["new"]), names="value")
    image = view._fig.image.value
    view.set(alpha=0.75)
    assert changes == [0.75] and view.controls["alpha"].value == 0.75
    assert view.state.alpha == 0.75 and view._fig.image.value != image
    limit = view.controls["alpha"].max
    for bad, match in [(dict(alpha=limit * 1.01), "range"), (dict(alpha=-0.1), "range"),
                       (dict(alpha=float("nan")), "alpha=nan"), (dict(alpha="big"), "alpha='big'"),
                       (dict(beta=0.1), "parameter='beta'; expected one of 'alpha'")]:
        with pytest.raises(ValueError, match=match):
            view.set(**bad)
        assert view.state.alpha == 0.75 and view.controls["alpha"].value == 0.75


class BackgroundRegimes(LearningRateRegimes):
    background_render = True  # as inside a kernel


def test_background_renders_end_on_the_newest_state():
    view = BackgroundRegimes([0.5, 2.0, 4.0])
    reference = LearningRateRegimes([0.5, 2.0, 4.0])
    for alpha in np.linspace(0.05, 0.6, 12):
        view.controls["alpha"].value = float(alpha)  # state and table follow at once
        assert view.state.alpha == float(alpha)
    assert view.wait(30)
    reference.set(alpha=view.state.alpha)
    assert view._renders.rendered <= 12
    assert view._fig.image.value == reference._fig.image.value


def test_png_bytes_decodes_to_the_figure_buffer():
    import io

    from PIL import Image

    view = LearningRateRegimes([0.5, 2.0])
    png = view._fig.png()
    decoded = np.asarray(Image.open(io.BytesIO(png)))
    np.testing.assert_array_equal(decoded, np.asarray(view._fig.figure.canvas.buffer_rgba()))
    assert png == view._fig.image.value  # what the widget shows


def _tiled_figure():
    from optlab.widgets._figure import FigureImage

    fig = FigureImage(ncols=2, figsize=(6.0, 2.5))
    left, right = fig.axes
    left.plot([0, 1], [0, 1])
    right.plot([0, 1], [1, 10])
    moving = right.plot([0.5], [5], "o")[0]
    fig.animate([moving])
    fig.show_background({left: "a", right: 1})
    return fig, left, right


def _full_draw(fig) -> bytes:
    fig.redraw_background()
    return fig.png()


def test_tiles_give_the_pixels_of_a_full_draw():
    fig, left, right = _tiled_figure()
    fig.png()
    assert fig._cells  # the two axes are apart: each has a tile
    right.set_ylim(0, 20)
    right.set_title("wider limits")
    fig.show_background({left: "a", right: 2})  # only the right panel changed
    tiled = fig.png()
    assert len(fig._tiles) == 3  # both first tiles and the new right one
    assert tiled == _full_draw(fig)
    right.set_ylim(0, 11)
    right.set_title("")
    fig.show_background({left: "a", right: 1})  # back to the first right panel: its tile is pasted
    assert fig.png() == _full_draw(fig)


def test_tiles_fall_back_to_a_full_draw_when_an_axes_draws_outside_its_tile():
    fig, left, right = _tiled_figure()
    fig.png()
    right.set_ylabel("a label far too long for the gap between the panels " * 2, labelpad=40)
    fig.show_background({left: "a", right: 2})
    drawn = fig.png()
    assert drawn == _full_draw(fig)
