"""Plot helpers draw exactly the numbers they are given (checked on the artists' data, not pixels)."""

from __future__ import annotations

import matplotlib.pyplot as plt  # only to check that no global figure is created
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from optlab import plot
from optlab.landscape import linear_path, plane_grid, plane_through
from optlab.problems import Quadratic, rosenbrock_surface, saddle_surface
from optlab.trajectory import run


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before, "a helper opened a pyplot figure"


def _traj():
    q = Quadratic([1.0, 10.0], angle=0.5)
    return q, run(q.objective(), lambda p: torch.optim.SGD(p, lr=0.15), steps=15)


def test_contour_draws_the_grid_with_log_levels():
    q = Quadratic([1.0, 10.0], angle=0.5)
    xs, ys = np.linspace(-2, 2, 30), np.linspace(-1, 1, 20)
    Z = q.grid(xs, ys)
    cs = plot.contour(xs, ys, Z, levels=12, log=True)
    assert isinstance(cs.axes.figure, Figure)
    lv = np.asarray(cs.levels)
    assert len(lv) == 12
    np.testing.assert_allclose(lv[[0, -1]], [Z[Z > 0].min(), Z.max()], rtol=1e-12)
    np.testing.assert_allclose(np.diff(np.log(lv)), np.log(lv[1] / lv[0]), rtol=1e-9)  # geometric
    with pytest.raises(ValueError, match="expected"):
        plot.contour(xs, ys, Z.T)
    with pytest.raises(ValueError, match="positive"):
        plot.contour(xs, ys, -np.ones_like(Z), log=True)


def test_surface_contour_marks_the_minima():
    s = rosenbrock_surface()
    cs, mins = plot.surface_contour(s, n=41, log=True)
    np.testing.assert_allclose(np.column_stack(mins.get_data()), s.minima)
    assert plot.surface_contour(saddle_surface(), n=11)[1] is None  # no minimum to mark


def test_trajectory_line_is_the_recorded_parameters():
    q, t = _traj()
    ax = plot.new_axes()
    plot.surface_contour(q, ax=ax, n=21)
    line = plot.trajectory(t, ax=ax)
    np.testing.assert_array_equal(line.get_xdata(), t.thetas[:, 0])
    np.testing.assert_array_equal(line.get_ydata(), t.thetas[:, 1])
    assert line.get_label() == t.name
    with pytest.raises(ValueError, match="steps, n"):
        plot.trajectory(np.zeros((3, 1)))


def test_loss_curves_on_a_log_axis():
    _, t = _traj()
    lines = plot.loss_curves({"gd": t, "half": t.losses / 2})
    assert lines[0].axes.get_yscale() == "log"
    np.testing.assert_array_equal(lines[0].get_ydata(), t.losses)
    np.testing.assert_array_equal(lines[1].get_ydata(), t.losses / 2)
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(len(t.losses)))
    assert [ln.get_label() for ln in lines] == ["gd", "half"]
    with pytest.raises(ValueError, match="'neg'"):
        plot.loss_curves({"neg": np.array([1.0, -1.0])})
    assert plot.loss_curves({"neg": np.array([1.0, -1.0])}, log=False)[0].axes.get_yscale() == "linear"
    with pytest.raises(TypeError, match="dict"):
        plot.loss_curves([t])


def test_spectrum_is_sorted_and_picks_its_scale():
    lam = np.array([0.3, 5.0, 1.0, 40.0])
    line = plot.spectrum(lam)
    np.testing.assert_array_equal(line.get_ydata(), [40.0, 5.0, 1.0, 0.3])
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4])
    assert line.axes.get_yscale() == "log"
    assert plot.spectrum([2.0, -1.0]).axes.get_yscale() == "symlog"
    with pytest.raises(ValueError, match="at least one"):
        plot.spectrum([])


def test_landscape_slices():
    q = Quadratic([1.0, 4.0, 9.0])
    loss_at = lambda th: float(q(th.numpy()))  # noqa: E731
    path = linear_path(loss_at, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])
    line, ends = plot.line_path(path)
    np.testing.assert_array_equal(line.get_xdata(), path.alphas)
    np.testing.assert_array_equal(line.get_ydata(), path.losses)
    assert [e.get_xdata()[0] for e in ends] == [0.0, 1.0]
    s = plane_grid(loss_at, plane_through([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]))
    cs, mark = plot.plane_slice(s)
    np.testing.assert_allclose(np.column_stack(mark.get_data()), s.plane.points)
    assert cs.axes is mark.axes
