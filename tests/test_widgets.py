"""Widgets: the pure model against the math, and the view driven by setting its controls (no browser)."""

import numpy as np
import pytest

from optlab.problems import REGIMES, gd_regimes
from optlab.widgets import LearningRateRegimes, lr_regimes_model


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
