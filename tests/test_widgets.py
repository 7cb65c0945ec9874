"""Widgets: the pure model against the math, and the view driven by setting its controls (no browser)."""

import numpy as np
import pytest

from optlab.problems import REGIMES, gd_regimes
from optlab.widgets import LearningRateRegimes, lr_regimes_model
from widget_checks import assert_no_nan_shown


def rotated_quadratic(lambdas, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(lambdas), len(lambdas))))
    return Q @ np.diag(lambdas) @ Q.T, Q


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.45, 0.7, 0.95])
def test_model_factors_are_gradient_descent_in_the_eigenbasis(alpha):
    lambdas = np.array([0.3, 1.0, 2.5, 4.0])
    A, Q = rotated_quadratic(lambdas)
    theta = np.random.default_rng(1).standard_normal(4)
    coords0 = Q.T @ theta
    state = lr_regimes_model(lambdas, alpha, k_max=25)
    for k in range(26):
        expected = state.factors[:, k] * coords0
        np.testing.assert_allclose(Q.T @ theta, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())
        theta = theta - alpha * (A @ theta)  # one plain GD step on J = 1/2 theta' A theta


def test_model_marks_and_rate():
    s = lr_regimes_model([0.5, 2.0, 4.0], alpha=0.3)
    assert s.alpha_monotone == pytest.approx(1 / 4.0)
    assert s.alpha_max == pytest.approx(2 / 4.0)
    assert s.rate == pytest.approx(max(abs(1 - 0.3 * lam) for lam in [0.5, 2.0, 4.0]))


@pytest.mark.parametrize("x, label", [
    (0.4, "monotone decay"), (1.0, "one-step convergence"), (1.5, "oscillating decay"),
    (2.0, "oscillation without decay"), (2.7, "divergence"),
])
def test_regime_labels_follow_alpha_lambda(x, label):
    lam = 3.0
    assert gd_regimes([lam], x / lam) == [label]
    assert label in REGIMES


def test_regime_of_flat_and_negative_curvature():
    assert gd_regimes([0.0, -1.0], 0.1) == ["flat: no change", "growth (negative curvature)"]


@pytest.mark.parametrize("bad, match", [
    (dict(lambdas=[], alpha=0.1), "non-empty"),
    (dict(lambdas=[1.0, np.nan], alpha=0.1), "finite"),
    (dict(lambdas=[1.0], alpha=-0.1), "alpha"),
    (dict(lambdas=[-1.0, -2.0], alpha=0.1), "positive largest eigenvalue"),
])
def test_model_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        lr_regimes_model(**bad)


# One row per widget: how to build it, which control to move, and what the state must then say.
WIDGETS = [
    pytest.param(
        lambda: LearningRateRegimes([0.5, 2.0, 4.0]),
        "slider",
        0.375,  # alpha*lambda = 0.1875, 0.75, 1.5
        lambda s: s.regimes == ["monotone decay", "monotone decay", "oscillating decay"] and s.alpha == 0.375,
        id="lr_regimes",
    ),
]


@pytest.mark.parametrize("make, control, value, expect", WIDGETS)
def test_moving_a_control_updates_state_table_and_figure(make, control, value, expect):
    view = make()
    png_before, html_before = view._fig.image.value, view.table.value
    artists_before = list(view._fig.axes[0].get_lines())
    getattr(view, control).value = value
    assert expect(view.state)
    assert view.table.value != html_before and view._fig.image.value != png_before
    # the figure is updated in place: same artists, carrying the model's numbers
    assert view._fig.axes[0].get_lines() == artists_before
    for line, row in zip(view._lines, view.state.factors):
        np.testing.assert_array_equal(line.get_ydata(), row)
    for label in view.state.regimes:
        assert label in view.table.value


def test_lr_regimes_view_labels_every_regime_across_the_slider():
    view = LearningRateRegimes([1.0], alpha_limit=2.5)
    seen = set()
    for a in [0.5, 1.0, 1.5, 2.0, 2.4]:
        view.slider.value = a
        seen.update(view.state.regimes)
    assert seen == {"monotone decay", "one-step convergence", "oscillating decay",
                    "oscillation without decay", "divergence"}


def test_lr_regimes_view_rejects_alpha_beyond_its_slider():
    with pytest.raises(ValueError, match="alpha_limit"):
        LearningRateRegimes([1.0], alpha=3.0, alpha_limit=2.5)


# ----- LearningRateRegimes grown up ----------------------------------------------------------------------

def sgd_steps_to_shrink(lambdas, alpha, factor=1e-6, steps=400):
    """The first k with |theta_k| <= factor |theta_0| on a real optlab SGD run from theta_0 = 1 (None: not reached)."""
    import torch

    from optlab.optim import SGD
    from optlab.problems import Quadratic
    from optlab.trajectory import run

    traj = run(Quadratic(lambdas).objective(torch.ones(len(lambdas), dtype=torch.float64)),
               lambda p: SGD(p, lr=alpha), steps, explode=None)
    norms = np.linalg.norm(traj.thetas, axis=1)
    reached = np.flatnonzero(norms <= factor * norms[0])
    return int(reached[0]) if reached.size else None


@pytest.mark.parametrize("lambdas, alpha", [([1.0, 4.0], 0.4), ([1.0, 4.0], 0.1), ([0.3, 1.0, 2.5], 0.7),
                                            ([2.0], 0.5), ([0.5, 1.0, 3.0], 0.3)])
def test_steps_to_shrink_predicted_from_rho_and_measured_on_an_sgd_run(lambdas, alpha):
    s = lr_regimes_model(lambdas, alpha)
    rho = max(abs(1 - alpha * lam) for lam in lambdas)
    assert s.rate == pytest.approx(rho)
    expected = 1 if rho == 0 else int(np.ceil(np.log(1e-6) / np.log(rho)))
    assert s.steps_predicted == expected and rho ** expected <= 1e-6 < rho ** (expected - 1)
    assert s.steps_measured == sgd_steps_to_shrink(lambdas, alpha)


def test_divergent_and_stalled_settings_never_shrink():
    assert lr_regimes_model([1.0, 4.0], 0.6).steps_measured is None  # alpha*lambda_max = 2.4: diverges
    s = lr_regimes_model([0.0, 4.0], 0.1)  # a flat direction never moves
    assert (s.steps_predicted, s.steps_measured, s.kappa, s.alpha_best) == (None, None, None, None)
    assert sgd_steps_to_shrink([1.0, 4.0], 0.6, steps=200) is None


def test_best_alpha_and_condition_number():
    s = lr_regimes_model([0.5, 2.0, 4.0], alpha=0.1)
    assert s.alpha_best == pytest.approx(2 / 4.5) and s.kappa == pytest.approx(8.0)
    at_best = lr_regimes_model([0.5, 2.0, 4.0], alpha=s.alpha_best)
    assert at_best.rate == pytest.approx((8 - 1) / (8 + 1))  # (kappa - 1)/(kappa + 1)


def test_from_model_takes_the_networks_top_hessian_eigenvalues():
    import torch

    from optlab.curvature import hessian
    from optlab.problems import Digits

    digits = Digits(n=120)
    model = digits.model("mlp", sizes=(64, 4, 10))
    view = LearningRateRegimes.from_model(model, digits.loss_fn, digits.batch(), k=3, num_steps=None)
    dense = torch.linalg.eigvalsh(hessian(model, digits.loss_fn, digits.batch())).numpy()
    np.testing.assert_allclose(view.state.lambdas, np.sort(dense)[-3:], rtol=1e-6, atol=1e-9)
    assert view.state.alpha_max == pytest.approx(2 / dense.max(), rel=1e-6)
    assert "Hessian eigenvalues of Sequential" in view.widget.children[0].value


def test_slider_step_is_one_tenth_of_one_over_lambda_max_and_the_ends_are_legal():
    view = LearningRateRegimes([0.2, 1.0, 4.0])
    slider = view.controls["alpha"]
    assert slider.step == pytest.approx(0.25 / 10) and slider.max == pytest.approx(2.5 * 0.25)
    view.set(alpha=slider.min + 10 * slider.step)  # ten arrow-key presses from 0: exactly 1/lambda_max
    assert view.state.regimes[-1] == "one-step convergence"
    view.set(alpha=slider.max)  # the slider's end: divergence, shown as such
    s = view.state
    assert s.diverged and s.steps_measured is None and "divergence" in view.table.value
    assert_no_nan_shown(view.table.value)
    assert "never" in view.table.value
    # the alpha line stays inside the frame at the slider's end
    ax_a = view._fig.axes[1]
    assert ax_a.get_xlim()[1] > slider.max > ax_a.get_xlim()[0]
    assert view._alpha_mark.get_xdata()[0] == slider.max


def test_log_scale_slider_and_its_range():
    view = LearningRateRegimes([0.2, 1.0, 4.0], log_alpha=True)
    slider = view.controls["alpha"]
    assert type(slider).__name__ == "FloatLogSlider" and view._fig.axes[1].get_xscale() == "log"
    view.set(alpha=0.3)
    assert view.state.alpha == 0.3
    with pytest.raises(ValueError, match=r"alpha=0\.001; expected a number in \[0\.00625, 0\.625\]"):
        view.set(alpha=0.001)
    with pytest.raises(ValueError, match="alpha=0.0"):
        LearningRateRegimes([1.0], alpha=0.0, log_alpha=True)


def test_figure_look_legend_outside_marks_not_coloured_like_series_mathtext():
    from optlab.widgets._palette import SERIES_COLORS

    view = LearningRateRegimes([0.2, 1.0, 4.0])
    fig = view._fig.figure
    fig.canvas.draw()
    legend = fig.legends[0]
    box = legend.get_window_extent()
    for ax in view._fig.axes:  # no curve can cross a legend that lies outside every axes
        assert not box.overlaps(ax.get_window_extent())
    styles = [(line.get_color(), line.get_marker(), line.get_linestyle()) for line in view._lines]
    for i in range(3):  # each series differs from the others in colour, marker and line style
        assert all(styles[i][j] != styles[k][j] for k in range(3) if k != i for j in range(3))
    marks = [line for line in view._fig.axes[1].get_lines() if len(set(line.get_xdata())) == 1]
    assert len(marks) == 4  # 1/lambda_max, alpha*, 2/lambda_max and the current alpha
    assert all(m.get_color() not in SERIES_COLORS for m in marks if m is not view._alpha_mark)
    assert view._alpha_mark.get_zorder() < min(m.get_zorder() for m in marks if m is not view._alpha_mark)
    labels = [ax.get_ylabel() for ax in view._fig.axes] + [t.get_text() for t in legend.get_texts()]
    assert all("$" in label for label in labels)


def test_table_has_one_cell_per_value():
    view = LearningRateRegimes([0.5, 2.0])
    view.set(alpha=0.2)
    html = view.table.value
    import re

    rows = re.findall(r"<tr>(.*?)</tr>", html)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows]
    cells = [c for c in cells if c]
    assert cells[0][:2] == ["0.2", "0.5"] and cells[0][-2:] == [str(view.state.steps_predicted),
                                                              str(view.state.steps_measured)]
    assert cells[1] == ["1", "0.5", "0.1", "+0.9", "monotone decay"]
    assert cells[2] == ["2", "2", "0.4", "+0.6", "monotone decay"]


def test_lr_regimes_fuzz_1000_settings_no_exception_no_warning():
    import json
    import warnings

    rng = np.random.default_rng(12)
    rendered = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for case in range(8):
            n = int(rng.integers(1, 7))
            scale = 10.0 ** rng.uniform(-6, 6)
            lambdas = rng.uniform(-0.5, 1.0, n) * scale
            lambdas[0] = scale  # a positive largest eigenvalue
            if case % 4 == 0:
                lambdas[-1] = 0.0
            view = LearningRateRegimes(lambdas, log_alpha=bool(case % 2), k_max=int(rng.integers(1, 200)))
            slider = view.controls["alpha"]
            low, high = (slider.base ** slider.min, slider.base ** slider.max) if case % 2 else (0.0, slider.max)
            refresh = view._fig.refresh
            view._fig.refresh = lambda: None  # render one setting in ten: the point is exceptions and warnings
            for j in range(125):
                alpha = [low, high][j] if j < 2 else float(rng.uniform(low, high))
                if j % 10 == 0:
                    refresh()
                    rendered += 1
                view.set(alpha=alpha)
                assert_no_nan_shown(view.table.value)
                json.dumps(view.state.to_dict(), allow_nan=False)
            assert view.state.alpha == alpha
    assert rendered == 8 * 13
