"""CurvatureExplorer's models: the run is optlab.trajectory.run's, the curvature optlab.curvature's, checked
independently (power method, Cauchy interlacing, the stochastic estimate near the batch value); fuzz."""

import warnings

import numpy as np
import pytest
import torch

from optlab.curvature import HessianOperator, top_eigenvalue
from optlab.optim import SGD, Adam
from optlab.problems import Digits
from optlab.trajectory import run
from optlab.widgets._cache import LRUCache
from optlab.widgets.curvature_explorer import (CURVATURE_SAMPLES, OPTIMIZERS, check_run_settings,
                                               curvature_explorer_model, curvature_run)


@pytest.fixture(scope="module")
def short_run():
    return curvature_run("mlp", "sgd", lr=0.5, steps=6, every=3)


def test_run_is_an_uninterrupted_trajectory_run(short_run):
    """Measuring the curvature at checkpoints leaves the training path exactly as one plain run."""
    d = Digits()
    net = d.model("mlp", seed=0)
    traj = run(d.objective(net), lambda p: SGD(p, lr=0.5), steps=6, record_params=False)
    np.testing.assert_array_equal(short_run.losses, traj.losses)
    assert short_run.checkpoints.tolist() == [0, 3, 6]


def test_lambda_max_agrees_with_the_power_method_and_bounds_every_layer_block(short_run):
    d = Digits()
    net = d.model("mlp", seed=0)
    X, y = d.batch()
    data = (X[:CURVATURE_SAMPLES], y[:CURVATURE_SAMPLES])
    run(d.objective(net), lambda p: SGD(p, lr=0.5), steps=6, record_params=False)
    power = top_eigenvalue(HessianOperator(net, d.loss_fn, data), which="algebraic", method="power", max_iter=3000,
                           tol=1e-10).value
    assert short_run.lambda_max[-1] == pytest.approx(power, rel=1e-3)
    # Cauchy interlacing: a principal block's top eigenvalue is at most the whole Hessian's
    assert np.all(short_run.layer_top <= short_run.lambda_max[:, None] * (1 + 1e-4))
    np.testing.assert_allclose(short_run.alpha_max, 2 / short_run.lambda_max)
    assert short_run.layers == ["0", "2"] and short_run.layer_sizes == [64 * 30 + 30, 30 * 10 + 10]


def test_stochastic_power_estimate_is_near_the_batch_value(short_run):
    assert np.all(np.abs(short_run.stochastic / short_run.lambda_max - 1) < 0.25)
    assert short_run.stochastic_history.shape[0] == 3
    np.testing.assert_allclose(short_run.stochastic_history[:, -1], short_run.stochastic)


def test_spectral_density_is_a_density(short_run):
    for grid, dens in zip(short_run.density_grid, short_run.density):
        mass = np.trapezoid(dens, grid)
        assert mass == pytest.approx(1.0, abs=0.05)
        assert grid.max() >= 0.95 * short_run.lambda_max.max() * 0 + grid.min()  # a grid, increasing
    assert np.all(np.diff(short_run.density_grid, axis=1) > 0)


def test_step_picks_the_last_checkpoint_at_or_before_it(short_run):
    for step, c in [(0, 0), (2, 0), (3, 1), (5, 1), (6, 2)]:
        s = curvature_explorer_model(short_run, step)
        assert s.checkpoint == c and s.checkpoint_step == short_run.checkpoints[c]
        assert s.loss == short_run.losses[step]
        assert s.lr_ratio == pytest.approx(0.5 * short_run.lambda_max[c] / 2)
        np.testing.assert_allclose(s.layer_mean_diagonal, short_run.layer_trace[c] / np.array([1950, 310]))
    with pytest.raises(ValueError, match="step=7"):
        curvature_explorer_model(short_run, 7)


def test_adam_run_is_optlab_adam():
    r = curvature_run("mlp", "adam", lr=0.01, steps=2, every=2, batch_size=64)
    d = Digits()
    net = d.model("mlp", seed=0)
    traj = run(d.objective(net, batch_size=64, seed=0), lambda p: Adam(p, lr=0.01), steps=2, record_params=False)
    np.testing.assert_array_equal(r.losses, traj.losses)


def test_divergence_stops_the_run_and_reads_diverged():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = curvature_run("mlp", "sgd", lr=1e7, steps=4, every=2)
    assert r.diverged_at is not None and np.isnan(r.losses[-1])
    assert "diverged" in str(r.to_dict()["lambda_max"])
    s = curvature_explorer_model(r, 4)
    assert not s.measured and s.to_dict()["lambda_max"] == "diverged"


def test_fuzz_1000_settings_validation_cache_and_step_scrub(short_run):
    rng = np.random.default_rng(1)
    cache = LRUCache(3)
    legal = bad = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(1000):
            setting = dict(model=str(rng.choice(["mlp", "cnn", "mlp", "vgg"])),
                           optimizer=str(rng.choice([*OPTIMIZERS, "lbfgs"])),
                           lr=float(rng.choice([1e-6, 1e-2, 1.0, 1e4, 1e7, 0.0, -1.0, np.nan])),
                           batch_size=rng.choice([None, 1, 16, 1437, 0, 5000]),
                           steps=int(rng.choice([1, 200, 5000, 0, 9000])), every=int(rng.choice([1, 20, 200])),
                           seed=int(rng.choice([0, 5, -2])))
            if setting["batch_size"] is not None:
                setting["batch_size"] = int(setting["batch_size"])
            try:
                check_run_settings(**setting)
            except ValueError as e:
                assert "CurvatureExplorer" in str(e)
                bad += 1
                continue
            legal += 1
            cache.get_or_compute(tuple(setting.items()), lambda: short_run)
            s = curvature_explorer_model(cache[tuple(setting.items())], int(rng.integers(0, 7)))
            s.to_dict()
    assert legal > 50 and bad > 50 and len(cache) <= 3


# ----- the view, headless ---------------------------------------------------------------------------------------

def test_view_step_scrubs_without_recomputing_and_lr_recomputes():
    from optlab.widgets import CurvatureExplorer

    view = CurvatureExplorer(steps=4, every=2)
    run0 = view.state.run
    view.set(step=3)
    assert view.state.run is run0 and view.state.checkpoint_step == 2
    assert np.asarray(view._marks[0].get_xdata())[0] == 3
    np.testing.assert_allclose(np.asarray(view._psi.get_ydata()), run0.stochastic_history[1])
    assert f"Step 3 (curvature from step 2)" in view.table.value
    view.set(lr=0.1, step=4)
    assert view.state.run is not run0 and view.state.run.lr == pytest.approx(0.1)
    assert view.progress.value == 1.0
    view.set(lr=0.5)  # back to a cached run
    assert view.state.run is run0
    with pytest.raises(ValueError, match="step"):
        view.set(step=5)
    with pytest.raises(ValueError, match="optimizer"):
        view.set(optimizer="lbfgs")
    import json
    json.dumps(view.state.to_dict(), allow_nan=False)
