"""MomentumExplorer: the closed forms against brute force and optlab.optim.SGD, the view headless, a fuzz."""

import json
import math
import warnings

import numpy as np
import pytest
import torch

from optlab.problems import (MOMENTUM_REGIMES, critical_momentum, heavy_ball_discriminant, heavy_ball_path,
                             heavy_ball_rate, heavy_ball_regime, heavy_ball_roots, nesterov_path,
                             noisy_plane_velocities, plane_velocities, stationary_velocity_variance,
                             steps_to_fraction, terminal_velocity)
from optlab.widgets import MomentumExplorer, momentum_model
from widget_checks import assert_no_nan_shown

SETTINGS = [(0.1, 0.9, 1.0), (0.25, 0.25, 1.0), (0.5, 0.1, 1.0), (0.3, 0.6, 4.0), (1.0, 0.0, 1.5), (0.05, 0.99, 2.0),
            (0.6, 0.2, 3.0)]  # (alpha, mu, lambda): every regime but divergence
DIVERGENT = [(0.9, 0.2, 3.0), (1.0, 0.5, 3.5)]  # alpha*lambda > 2(1 + mu)


# ----- the closed forms ----------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, mu, g", [(0.1, 0.9, 1.0), (0.5, 0.0, -2.0), (0.01, 0.99, 0.3)])
def test_plane_velocity_is_the_recursion_and_tends_to_the_terminal_velocity(alpha, mu, g):
    p, expected = 0.0, [0.0]
    for _ in range(3000):
        p = mu * p - alpha * g  # the slides' update with a constant gradient
        expected.append(p)
    np.testing.assert_allclose(plane_velocities(alpha, mu, g, 3000), expected, rtol=1e-10, atol=1e-14)
    assert expected[-1] == pytest.approx(terminal_velocity(alpha, mu, g), rel=1e-9)


@pytest.mark.parametrize("mu", [0.0, 0.3, 0.5, 0.9, 0.95, 0.99])
def test_steps_to_90_percent_brute_force_and_the_ln10_estimate(mu):
    k = steps_to_fraction(mu, 0.9)
    assert 1 - mu ** k >= 0.9 and (k == 1 or 1 - mu ** (k - 1) < 0.9)
    if mu > 0:  # -ln(mu) >= 1 - mu: the estimate ln 10/(1 - mu) is an upper bound, tight as mu -> 1
        assert k <= np.log(10) / (1 - mu) + 1
    if mu >= 0.9:
        assert k == pytest.approx(np.log(10) / (1 - mu), rel=0.06)


@pytest.mark.parametrize("alpha, mu, lam", SETTINGS + [(1.0, 0.2, 3.0)])
def test_roots_solve_the_characteristic_equation(alpha, mu, lam):
    r1, r2 = heavy_ball_roots(alpha, mu, lam)
    for r in (r1, r2):
        assert abs(r * r - (1 + mu - alpha * lam) * r + mu) < 1e-12
    assert abs(r1 * r2 - mu) < 1e-12 and abs(r1 + r2 - (1 + mu - alpha * lam)) < 1e-12
    assert abs(r1) >= abs(r2)


@pytest.mark.parametrize("alpha, mu, lam", [(0.1, 0.81, 1.0), (0.3, 0.6, 4.0), (0.05, 0.99, 2.0), (0.2, 0.5, 1.0)])
def test_complex_roots_give_the_rate_sqrt_mu_not_2_sqrt_mu(alpha, mu, lam):
    assert heavy_ball_discriminant(alpha, mu, lam) < 0
    assert heavy_ball_rate(alpha, mu, lam) == pytest.approx(math.sqrt(mu), rel=1e-12)
    assert heavy_ball_regime(alpha, mu, lam) == "underdamped"


@pytest.mark.parametrize("alpha, mu, lam", SETTINGS + [(1.0, 0.2, 3.0), (1.0, 0.0, 2.0)])
def test_the_path_decays_at_the_rate_max_root(alpha, mu, lam):
    theta, p = heavy_ball_path(alpha, mu, lam, 1.0, 600)
    rate = heavy_ball_rate(alpha, mu, lam)
    state = np.hypot(theta, p)  # (theta_k, theta_k - theta_{k-1}) shrinks like rate^k (up to k for a double root)
    if rate < 1e-3 or state[300] < 1e-250:
        assert state[300] < 1e-100
        return
    measured = (state[600] / state[300]) ** (1 / 300)
    assert measured == pytest.approx(rate, rel=0.03)


def test_critical_momentum_is_where_the_discriminant_vanishes_and_splits_the_regimes():
    for x in [0.04, 0.25, 0.64, 1.0, 1.44, 2.25]:
        alpha, lam = x, 1.0
        mu_star = critical_momentum(alpha, lam)
        assert abs(heavy_ball_discriminant(alpha, mu_star, lam)) < 1e-12
        for mu in np.linspace(0, 0.99, 34):
            regime = heavy_ball_regime(alpha, mu, lam)
            diverges = x > 2 * (1 + mu)
            assert (regime == "divergent") == diverges
            if not diverges and abs(mu - mu_star) > 1e-9:
                assert regime == ("underdamped" if mu > mu_star else "overdamped"), (x, mu)
    assert set(MOMENTUM_REGIMES) >= {"overdamped", "critically damped", "underdamped", "divergent"}


@pytest.mark.parametrize("alpha, mu, sigma", [(0.1, 0.9, 0.5), (0.5, 0.0, 1.0), (0.05, 0.95, 2.0), (0.2, 0.5, 0.1)])
def test_stationary_velocity_variance_predicted_and_measured_on_a_seeded_run(alpha, mu, sigma):
    predicted = stationary_velocity_variance(alpha, mu, sigma)
    assert predicted == pytest.approx(alpha ** 2 * sigma ** 2 * sum(mu ** (2 * j) for j in range(5000)))
    p = noisy_plane_velocities(alpha, mu, 1.0, sigma, 40_000, seed=3)
    assert p[5000:].var() == pytest.approx(predicted, rel=0.1)
    assert p[5000:].mean() == pytest.approx(terminal_velocity(alpha, mu, 1.0), abs=4 * math.sqrt(predicted))
    state = momentum_model(alpha, mu, sigma=sigma)
    assert state.var_predicted == pytest.approx(predicted)
    assert state.var_measured == pytest.approx(predicted, rel=0.15)


# ----- conventions: optlab.optim.SGD and torch.optim.SGD give the model's paths ------------------------------

def torch_sgd_path(alpha, mu, lam, steps, nesterov):
    theta = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=alpha, momentum=mu, nesterov=nesterov)
    out = [1.0]
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * lam * theta ** 2).sum().backward()
        opt.step()
        out.append(theta.item())
    return np.array(out)


@pytest.mark.parametrize("alpha, mu, lam", SETTINGS + DIVERGENT)
def test_torch_form_is_the_slides_form_with_p_equal_minus_alpha_b(alpha, mu, lam):
    s = momentum_model(alpha, mu, lam)
    theta, p = heavy_ball_path(alpha, mu, lam, 1.0, 40)
    assert s.diverged == ((alpha, mu, lam) in DIVERGENT)
    np.testing.assert_array_equal(s.theta_slides, theta)
    np.testing.assert_allclose(s.theta_torch, theta, rtol=1e-12, atol=1e-14)  # optlab.optim.SGD
    np.testing.assert_allclose(torch_sgd_path(alpha, mu, lam, 40, False), theta, rtol=1e-12, atol=1e-14)
    assert s.deviation < 1e-12


@pytest.mark.parametrize("alpha, mu, lam", [x for x in SETTINGS + DIVERGENT if x[1] > 0])
def test_torch_nesterov_iterates_are_the_look_ahead_points(alpha, mu, lam):
    s = momentum_model(alpha, mu, lam)
    theta, p = nesterov_path(alpha, mu, lam, 1.0, 40)
    np.testing.assert_array_equal(s.lookahead_nesterov, theta + mu * p)
    np.testing.assert_allclose(s.theta_torch_nesterov, theta + mu * p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(torch_sgd_path(alpha, mu, lam, 40, True), theta + mu * p, rtol=1e-12, atol=1e-14)
    assert not np.allclose(theta, theta + mu * p)  # the translation matters: the raw Nesterov theta differs
    assert s.deviation_nesterov < 1e-12


# ----- the view -------------------------------------------------------------------------------------------

def test_view_set_moves_sliders_and_updates_state_readouts_and_artists():
    view = MomentumExplorer()
    image, html = view._fig.image.value, view.readouts.value
    view.set(alpha=0.25, lam=1.0, mu=0.25)
    s = view.state
    assert (s.alpha, s.mu, s.lam) == (0.25, 0.25, 1.0) and view.controls["mu"].value == 0.25
    assert s.regime == "critically damped" and s.rate == pytest.approx(0.5)
    assert view._fig.image.value != image and view.readouts.value != html
    assert "critically damped" in view.readouts.value and f"{s.mu_critical:.4f}" in view.readouts.value
    np.testing.assert_array_equal(view._quad_line.get_ydata(), s.theta)
    np.testing.assert_allclose(view._plane_line.get_ydata(), 1 - 0.25 ** s.k_plane)
    assert view._k90.get_xdata()[0] == s.steps_90
    assert list(view._point.get_xdata()) == [0.25] and list(view._point.get_ydata()) == [0.25]
    np.testing.assert_array_equal(view._conv[1].get_ydata(), s.theta_torch)


def test_regime_map_is_computed_once(monkeypatch):
    import optlab.widgets.momentum as module

    view = MomentumExplorer()
    calls = []
    original = module.heavy_ball_rate_grid
    monkeypatch.setattr(module, "heavy_ball_rate_grid", lambda *a: calls.append(np.size(a[0])) or original(*a))
    image = view._fig.axes[2].images[0]
    data = image.get_array().copy()
    for mu in [0.1, 0.5, 0.95]:
        view.set(mu=mu)
    assert all(n == 1 for n in calls) and len(calls) == 3  # only the scalar rate of each setting
    assert view._fig.axes[2].images[0] is image
    np.testing.assert_array_equal(image.get_array(), data)


@pytest.mark.parametrize("kwargs, match", [
    (dict(mu=1.0), r"mu=1\.0; expected a number in \[0, 1\)"),
    (dict(alpha=-0.1), r"alpha=-0\.1"),
    (dict(lam=0.0), r"lam=0\.0; expected a finite number > 0"),
    (dict(sigma=-1.0), r"sigma=-1\.0"),
    (dict(alpha=1.5), r"alpha=1\.5; expected a number in \[0, 1\] \(the slider's range\)"),
    (dict(g=0.0), r"g=0\.0"),
])
def test_bad_settings_raise_naming_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MomentumExplorer(**kwargs)
    view = MomentumExplorer()
    before = view.state
    with pytest.raises(ValueError, match=match.split(";")[0].replace(r"\.0", r"\.0")):
        view.set(**kwargs)
    assert view.state is before


def test_divergent_setting_is_shown_as_divergent():
    view = MomentumExplorer()
    view.set(alpha=1.0, lam=4.0, mu=0.0)
    s = view.state
    assert s.regime == "divergent" and s.diverged and s.rate > 1
    assert "divergent" in view.readouts.value
    assert_no_nan_shown(view.readouts.value)
    json.dumps(s.to_dict(), allow_nan=False)


def test_momentum_fuzz_1000_settings_no_exception_no_warning():
    rng = np.random.default_rng(7)
    view = MomentumExplorer()
    refresh, rendered = view._fig.refresh, 0
    view._fig.refresh = lambda: None  # render one setting in twenty (the renders are benchmarked elsewhere)
    names = list(view.controls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(1000):
            params = {}
            for name in names:
                c = view.controls[name]
                choice = rng.integers(4)
                params[name] = float(c.min if choice == 0 else c.max if choice == 1 else
                                     round(rng.uniform(c.min, c.max) / c.step) * c.step if choice == 2
                                     else rng.uniform(c.min, c.max))
                params[name] = min(max(params[name], c.min), c.max)
            view.set(**params)
            if i % 20 == 0:
                refresh()
                rendered += 1
            assert_no_nan_shown(view.readouts.value)
            d = view.state.to_dict()
            json.dumps(d, allow_nan=False)
            assert d["regime"] in MOMENTUM_REGIMES
    assert rendered == 50
