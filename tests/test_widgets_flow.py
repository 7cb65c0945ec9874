"""SaddleFlow and OptimizerRace: models against closed forms and optlab.optim runs, views headless, fuzz."""

from __future__ import annotations

import html
import json
import math
import warnings

import numpy as np
import pytest
import torch

from optlab.optim import SGD, Adam, newton_direction, saddle_free_direction
from optlab.problems import saddle_surface
from optlab.trajectory import run
from optlab.widgets import OptimizerRace, SaddleFlow, race_model, saddle_flow_model
from optlab.widgets._palette import series_style
from optlab.widgets.race import RACE_OPTIMIZERS, RACE_SURFACES, REACHED, default_hyper
from optlab.widgets.saddle_flow import (ESCAPE_RADIUS, FIELDS, METHODS, SADDLE_SURFACES, WINDOW, flow_directions,
                                        flow_fields, growth_factor, saddle_spec)


# --------------------------------------------------------------------------- SaddleFlow: the model


@pytest.mark.parametrize("lr, eps", [(0.1, 1e-3), (0.2, 1e-6), (0.5, 1e-2), (1.0, 1e-8)])
def test_gd_on_the_saddle_is_the_closed_form_and_escapes_when_predicted(lr, eps):
    # x_k = (1 - lr)^k, y_k = eps (1 + lr)^k: escape at the first k with eps (1 + lr)^k >= r
    s = saddle_flow_model("saddle", x0=1.0, y0=0.0, epsilon=eps, lr=lr, steps=200)
    gd = s.run("gd")
    k = np.arange(len(gd.path))
    np.testing.assert_allclose(gd.path[:, 0], (1 - lr) ** k, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(gd.path[:, 1], eps * (1 + lr) ** k, rtol=1e-9)
    predicted = math.log(ESCAPE_RADIUS / eps) / math.log(1 + lr)
    assert gd.predicted_escape == pytest.approx(predicted)
    assert gd.escape_step == math.ceil(predicted)
    assert s.flow_escape_time == pytest.approx(math.log(ESCAPE_RADIUS / eps) / 1.0)


def test_saddle_paths_are_optlab_optimizer_runs():
    s = saddle_flow_model("quartic_saddle", x0=0.8, y0=0.1, epsilon=1e-2, lr=0.2, momentum=0.7, steps=30)
    objective = saddle_spec("quartic_saddle")[1].objective(s.theta0)
    t = run(objective, lambda p: SGD(p, lr=0.2, momentum=0.7), 30)
    np.testing.assert_array_equal(s.run("momentum").path, t.thetas)


@pytest.mark.parametrize("method, hyper", [
    ("saddle_free", dict(lr=1.0, damping=0.0)), ("saddle_free", dict(lr=0.5, damping=0.3)),
    ("newton", dict(lr=1.0, damping=2.0)), ("newton", dict(lr=0.5, damping=0.0)),
])
def test_newton_family_multiplies_the_escaping_component_by_the_predicted_factor(method, hyper):
    s = saddle_flow_model("saddle", x0=1.0, y0=0.0, epsilon=1e-6, newton_lr=hyper["lr"], damping=hyper["damping"],
                          steps=5)
    r = s.run(method)
    lam = -1.0  # along y
    expected = abs(1 - hyper["lr"] * lam / ((abs(lam) if method == "saddle_free" else lam) + hyper["damping"]))
    assert r.growth == pytest.approx(expected)
    np.testing.assert_allclose(r.path[1:4, 1] / r.path[0:3, 1], expected, rtol=1e-9)


def test_undamped_newton_jumps_onto_the_saddle_and_saddle_free_newton_escapes():
    s = saddle_flow_model("saddle", epsilon=1e-3, newton_lr=1.0, damping=0.0, steps=40)
    newton, free = s.run("newton"), s.run("saddle_free")
    np.testing.assert_allclose(newton.path[1], [0.0, 0.0], atol=1e-15)  # -H^-1 g lands on the critical point
    assert newton.status.startswith("attracted to the saddle") and newton.predicted_escape is None
    assert free.growth == pytest.approx(2.0) and free.escape_step == math.ceil(math.log(500) / math.log(2))


def test_momentum_factor_is_the_heavy_ball_root_and_matches_the_run():
    lr, mu = 0.1, 0.6
    rho = growth_factor("momentum", -1.0, lr=lr, momentum=mu)
    assert rho**2 - (1 + mu + lr) * rho + mu == pytest.approx(0.0, abs=1e-12)
    s = saddle_flow_model("saddle", x0=0.0, y0=0.0, epsilon=1e-9, lr=lr, momentum=mu, steps=120)
    y = s.run("momentum").path[:, 1]
    assert y[100] / y[99] == pytest.approx(rho, rel=1e-6)  # the other root has died out


@pytest.mark.parametrize("name, eigenvalues, kind", [
    ("saddle", [-1.0, 1.0], "saddle"), ("quartic_saddle", [-1.0, 1.0], "saddle"),
    ("linear_net", [-2.0, 2.0], "saddle"), ("monkey_saddle", [0.0, 0.0], "degenerate"),
    ("deep_chain", [0.0, 0.0], "degenerate"),
])
def test_saddle_readouts_are_the_closed_form_hessians(name, eigenvalues, kind):
    s = saddle_flow_model(name, steps=2)
    np.testing.assert_allclose(s.saddle_eigenvalues, eigenvalues, atol=1e-12)
    assert s.saddle_kind == kind
    assert s.saddle_signs == tuple("-" if v < 0 else "+" if v > 0 else "0" for v in eigenvalues)
    if kind == "degenerate":
        assert s.flow_escape_time is None and all(r.predicted_escape is None for r in s.runs)
    else:  # epsilon pushes along the eigenvector of lambda_min
        _, Q = np.linalg.eigh(saddle_spec(name)[1].hessian(s.saddle))
        assert abs(float(Q[:, 0] @ s.direction)) == pytest.approx(1.0)


def test_start_readouts_classify_only_critical_points():
    s = saddle_flow_model("linear_net", x0=0.0, y0=0.0, epsilon=0.0, steps=3)
    assert s.start_kind == "saddle" and s.start_grad_norm == 0.0
    assert all(r.status.startswith("attracted") for r in s.runs)  # nothing moves at a critical point
    s = saddle_flow_model("linear_net", x0=1.0, y0=0.5, steps=3)
    assert s.start_kind.startswith("not critical (|g| = ")
    np.testing.assert_allclose(s.start_eigenvalues, np.linalg.eigvalsh(saddle_spec("linear_net")[1].hessian(s.theta0)))


def test_flow_directions_are_the_optimizers_directions():
    pts = np.random.default_rng(0).uniform(-1.4, 1.4, (12, 2))
    for name in SADDLE_SURFACES:
        surf = saddle_spec(name)[1]
        g, H = surf.derivatives(pts)
        fields = flow_directions(g, H)
        for i in range(len(pts)):
            gt, Ht = torch.tensor(g[i]), torch.tensor(H[i])
            np.testing.assert_allclose(fields["gradient"][0][i], -g[i])
            if fields["newton"][1][i]:
                np.testing.assert_allclose(fields["newton"][0][i], newton_direction(gt, Ht).numpy(), rtol=1e-8,
                                           atol=1e-10)
                np.testing.assert_allclose(fields["saddle_free"][0][i], saddle_free_direction(gt, Ht).numpy(),
                                           rtol=1e-8, atol=1e-10)


def test_flow_fields_are_unit_arrows_on_the_window_and_zero_where_undefined():
    ff = flow_fields("linear_net")
    assert ff.xs[0] == WINDOW[0][0] and ff.xs[-1] == WINDOW[0][1]
    for name in FIELDS:
        U, V = ff.directions[name]
        norms = np.hypot(U, V)
        np.testing.assert_allclose(norms[ff.defined[name]], 1.0)
        assert np.all(norms[~ff.defined[name]] == 0.0)
    assert flow_fields("linear_net") is ff  # computed once


@pytest.mark.parametrize("kwargs, match", [
    (dict(surface="bowl"), "surface"), (dict(epsilon=-1e-3), "epsilon"), (dict(lr=11.0), "lr"),
    (dict(momentum=1.0), "momentum"), (dict(steps=0), "steps"), (dict(steps=2.5), "steps"),
    (dict(x0=2.0), "x0"), (dict(y0=float("nan")), "y0"), (dict(damping="big"), "damping"),
])
def test_saddle_model_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        saddle_flow_model(**kwargs)


def _non_finite(d, path=""):
    """Where ``to_dict()`` put "diverged" in place of a non-finite number."""
    if isinstance(d, dict):
        return [p for k, v in d.items() for p in _non_finite(v, f"{path}.{k}")]
    if isinstance(d, list):
        return [p for i, v in enumerate(d) for p in _non_finite(v, f"{path}[{i}]")]
    return [path] if d == "diverged" else []


def _json(state) -> dict:
    d = state.to_dict()
    json.dumps(d, allow_nan=False)
    return d


@pytest.mark.slow
def test_saddle_model_fuzz_1000_settings_no_exception_no_warning():
    rng = np.random.default_rng(12)
    extremes = dict(x0=WINDOW[0], y0=WINDOW[1], epsilon=(0.0, 1.0), lr=(0.0, 10.0), momentum=(0.0, 0.999),
                    newton_lr=(0.0, 10.0), damping=(0.0, 100.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(1000):
            kw = {}
            for name, (low, high) in extremes.items():
                u = rng.random()
                kw[name] = low if u < 0.1 else high if u < 0.2 else float(low + (high - low) * rng.random() ** 3)
            kw["steps"] = 200 if i % 100 == 0 else 1 if i % 3 else int(rng.integers(1, 8))  # the extremes, some between
            s = saddle_flow_model(str(rng.choice(SADDLE_SURFACES)), **kw)
            d = _json(s)
            for r, rd in zip(s.runs, d["runs"]):
                assert np.all(np.isfinite(r.path)) and math.isfinite(r.final_loss)
                if _non_finite(rd):  # a non-finite number is shown only where the run says why
                    assert _non_finite(rd) == [".growth"] and r.growth == math.inf, (_non_finite(rd), r.status)


# --------------------------------------------------------------------------- OptimizerRace: the model


def test_race_paths_are_the_optimizers_runs_revealed_step_by_step():
    s = race_model("rosenbrock", ["SGD", "Adam"], hyper={"Adam": {"lr": 0.02}}, step=37, horizon=60)
    surf = saddle_surface() if False else None  # noqa: F841  (kept simple: the race's own surface below)
    from optlab.widgets.race import race_surface

    obj = race_surface("rosenbrock").objective()
    t = run(obj, lambda p: Adam(p, lr=0.02), 60)
    np.testing.assert_array_equal(s.contestant("Adam").path, t.thetas[:38])
    np.testing.assert_array_equal(s.contestant("Adam").losses, t.losses[:38])
    assert s.contestant("SGD").hyper == {"lr": RACE_SURFACES["rosenbrock"].sgd_lr}


def test_race_on_the_ravine_newton_wins_in_one_step_and_sgd_follows_the_closed_form():
    from optlab.widgets.race import race_surface

    q = race_surface("ravine")
    lr = 0.03
    s = race_model("ravine", ["SGD", "Newton"], hyper={"SGD": {"lr": lr}, "Newton": {"damping": 0.0}}, step=25)
    np.testing.assert_allclose(s.contestant("SGD").path, q.gd_iterates(lr, 25), rtol=1e-10, atol=1e-12)
    assert s.contestant("Newton").status == "reached the minimum at step 1" and s.leader == "Newton"
    assert s.contestant("Newton").distance < REACHED


def test_race_reports_divergence_and_refusals_in_words():
    s = race_model("ravine", ["SGD"], hyper={"SGD": {"lr": 0.5}}, step=200)  # lr > 2/lambda_max = 0.08
    c = s.contestant("SGD")
    assert c.status.startswith("diverged at step") and np.all(np.isfinite(c.path))
    assert s.leader is None
    s = race_model("saddle", ["SDLM", "Adam"], step=50)  # SDLM's diagonal must be >= 0; the saddle's is not
    assert s.contestant("SDLM").status.startswith("stopped at step 0: SDLM")
    assert s.contestant("Adam").distance is None  # the saddle has no minimum
    assert _json(s)["contestants"][0]["status"].startswith("stopped")


@pytest.mark.parametrize("kwargs, match", [
    (dict(surface="himmelblau"), "surface"), (dict(optimizers=[]), "optimizers"),
    (dict(optimizers=["SGD", "SGD"]), "optimizers"), (dict(optimizers=["LBFGS"]), "optimizer"),
    (dict(optimizers="SGD"), "optimizers"), (dict(step=201), "step"), (dict(horizon=0), "horizon"),
    (dict(optimizers=["SGD"], hyper={"Adam": {"lr": 0.1}}), "hyper"),
    (dict(optimizers=["SGD"], hyper={"SGD": {"momentum": 0.5}}), "knob"),
    (dict(optimizers=["SGD"], hyper={"SGD": {"lr": 0.0}}), "SGD.lr"),
])
def test_race_model_rejects_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        race_model(**kwargs)


@pytest.mark.slow
def test_race_model_fuzz_1000_settings_no_exception_no_warning():
    rng = np.random.default_rng(3)
    labels = tuple(RACE_OPTIMIZERS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(1000):
            surface = str(rng.choice(tuple(RACE_SURFACES)))
            chosen = [str(x) for x in rng.choice(labels, size=int(rng.integers(1, 4)), replace=False)]
            hyper = {}
            for label in chosen:
                for name, (low, high, log) in RACE_OPTIMIZERS[label].knobs.items():
                    u = rng.random()
                    value = low if u < 0.15 else high if u < 0.3 else (
                        float(np.exp(rng.uniform(np.log(low), np.log(high)))) if log else float(rng.uniform(low, high)))
                    hyper.setdefault(label, {})[name] = value
            horizon = 200 if i % 100 == 0 else 1 if i % 3 else int(rng.integers(1, 8))
            s = race_model(surface, chosen, hyper=hyper, step=int(rng.integers(0, horizon + 1)), horizon=horizon)
            _json(s)
            for c in s.contestants:
                assert np.all(np.isfinite(c.path)) and math.isfinite(c.loss), c.status


def test_every_contestant_has_its_own_colour_marker_and_line_style():
    view = OptimizerRace("ravine", list(RACE_OPTIMIZERS)[:6], horizon=3)
    looks = [(view._paths[c.label].get_color(), view._paths[c.label].get_marker(),
              str(view._paths[c.label]._unscaled_dash_pattern))  # the dash pattern itself
             for c in view.state.contestants]
    for k in range(3):  # six contestants differ in colour, in marker and in line style
        assert len({lk[k] for lk in looks}) == 6, looks
    for c in view.state.contestants:  # the loss line and the head look like the path
        assert view._loss_lines[c.label].get_color() == view._paths[c.label].get_color()
        assert view._heads[c.label].get_marker() == view._paths[c.label].get_marker()
    pairs = {(series_style(i)["color"], series_style(i)["marker"]) for i in range(len(RACE_OPTIMIZERS))}
    assert len(pairs) == len(RACE_OPTIMIZERS)  # all of them at once: colour and marker together differ


# --------------------------------------------------------------------------- the views, headless


@pytest.fixture(scope="module")
def saddle_view():
    return SaddleFlow(steps=60)


def test_saddle_view_controls_update_state_table_and_artists(saddle_view):
    view = saddle_view
    png, table0 = view._fig.image.value, view.table.value
    view.set(lr=0.3, damping=0.0)
    s = view.state
    assert s.lr == 0.3 and s.damping == 0.0 and view.controls["lr"].value == 0.3
    assert view.table.value != table0 and view._fig.image.value != png
    for r in s.runs:
        np.testing.assert_array_equal(view._paths[r.method].get_xydata(), r.path)
        assert html.escape(r.status) in view.table.value
    assert f"{s.run('gd').predicted_escape:.1f}" in view.table.value
    view.controls["newton_lr"].value = 0.5  # moving the control is the same path
    assert view.state.newton_lr == 0.5 and view.state.run("newton").hyper == {"lr": 0.5, "damping": 0.0}
    _json(view.state)


def test_saddle_view_surface_brings_its_start_fields_toggle_and_bad_values_change_nothing(saddle_view):
    view = saddle_view
    view.set(surface="linear_net")
    assert (view.state.x0 if hasattr(view.state, "x0") else view.state.start[0]) == pytest.approx(math.sqrt(0.5))
    assert view._contours["linear_net"].get_visible() and not view._contours["saddle"].get_visible()
    view.field_toggles["newton"].value = True
    assert view._quivers["linear_net", "newton"].get_visible()
    assert not view._quivers["saddle", "newton"].get_visible()
    view.controls["surface"].value = "quartic_saddle"  # the dropdown also brings the start
    np.testing.assert_allclose(view.state.start, saddle_spec("quartic_saddle")[0].start)
    before = view.state
    for bad in [dict(lr=2.5), dict(epsilon=0.0), dict(steps=15.5), dict(surface="bowl"), dict(colour=1)]:
        with pytest.raises(ValueError):
            view.set(**bad)
        assert view.state is before


def test_saddle_view_fuzz_extremes_of_every_control():
    view = SaddleFlow(steps=10)
    rng = np.random.default_rng(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(12):
            kw = {}
            for name in ["x0", "y0", "lr", "momentum", "newton_lr", "damping"]:
                c = view.controls[name]
                kw[name] = float(rng.choice([c.min, c.max, round(float(rng.uniform(c.min, c.max)) / c.step) * c.step]))
                kw[name] = min(max(kw[name], c.min), c.max)
            kw["epsilon"] = float(10.0 ** rng.choice([-8, 0, -3]))
            kw["surface"] = str(rng.choice(SADDLE_SURFACES))
            view.set(**kw)
            assert "nan" not in view.table.value.lower()
            _json(view.state)


@pytest.fixture(scope="module")
def race_view():
    return OptimizerRace("ravine", ["SGD", "Momentum", "Newton"], horizon=60)


def test_race_view_step_reset_and_artists(race_view):
    view = race_view
    view.reset_button.click()
    assert view.state.step == 0
    view.step_button.click()
    view.step_button.click()
    s = view.state
    assert s.step == 2 * view.step_size and view.controls["step"].value == s.step == view.play.value
    for c in s.contestants:
        assert len(c.path) == min(s.step, c.finished_at if c.status.startswith(("diverged", "stopped")) else 99) + 1
        np.testing.assert_array_equal(view._paths[c.label].get_xydata(), c.path)
        assert view._paths[c.label].get_visible() and html.escape(c.status) in view.table.value
    assert not view._paths["Adam"].get_visible()
    view.set(step=60)
    view.step_button.click()  # bounded: Step never passes the horizon
    assert view.state.step == 60
    view.reset_button.click()
    assert view.state.step == 0 and all(len(c.path) == 1 for c in view.state.contestants)


def test_race_view_knobs_optimizers_and_hyper(race_view):
    view = race_view
    view.set(step=30)
    view.edit.value = "Momentum"
    view.knobs[0].value = 0.5  # the second knob of Momentum is its momentum
    assert view.knobs[0].description == "momentum"
    assert view.state.contestant("Momentum").hyper["momentum"] == 0.5
    view.set(hyper={"SGD": {"lr": 0.05}})
    assert view.state.contestant("SGD").hyper == {"lr": 0.05}
    view.set(optimizers=("SGD", "Adam"))
    assert [c.label for c in view.state.contestants] == ["SGD", "Adam"]
    assert view._paths["Adam"].get_visible() and not view._paths["Newton"].get_visible()
    assert view.state.contestant("SGD").hyper == {"lr": 0.05}  # kept
    before = view.state
    for bad in [dict(hyper={"Newton": {"lr": 1.0}}), dict(hyper={"SGD": {"lr": 100.0}}), dict(step=61),
                dict(optimizers=("SGD", "nope"))]:
        with pytest.raises(ValueError):
            view.set(**bad)
        assert view.state is before
    view.set(surface="rosenbrock")  # a new surface brings its default settings
    assert view.state.contestant("SGD").hyper == default_hyper("SGD", "rosenbrock")
    _json(view.state)


@pytest.mark.parametrize("make, settings", [
    (lambda: SaddleFlow(steps=20), [dict(surface="deep_chain"), dict(steps=40), dict(lr=0.3),
                                    dict(surface="saddle", steps=20)]),
    (lambda: OptimizerRace("ravine", ["SGD", "Adam"]), [dict(surface="beale"), dict(optimizers=("SGD", "Newton")),
                                                       dict(step=30), dict(surface="ravine", optimizers=("SGD", "Adam"))]),
])
def test_views_redraw_only_the_panel_that_changed_with_the_pixels_of_a_full_draw(make, settings):
    view = make()
    for values in settings:
        view.set(**values)
        shown = view._fig.image.value
        assert view._fig._cells  # the panels are tiled
        view._fig.redraw_background()
        assert view._fig.png() == shown
