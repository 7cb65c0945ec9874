"""NormalizationEffect's models against closed forms, dense Hessians and optlab.optim runs; its fuzz tests."""

import math
import warnings

import numpy as np
import pytest
import torch

from optlab.optim import SGD
from optlab.problems import Digits, center, correlated_cloud_data, decorrelate, standardize, whiten
from optlab.problems.base import Objective
from optlab.trajectory import run
from optlab.widgets._cache import LRUCache
from optlab.widgets.normalization import (DATASETS, NORMS, TRANSFORM_NAMES, check_layer_settings,
                                          input_normalization_model, layer_normalization_model, transformed_inputs)


def dense_least_squares_hessian(X, t):
    """The Hessian of 1/(2N) sum (w'x - t)^2 by autograd (not from the formula)."""
    X, t = torch.tensor(X), torch.tensor(t)
    return torch.autograd.functional.hessian(lambda w: 0.5 * ((X @ w - t) ** 2).mean(), torch.zeros(X.shape[1],
                                             dtype=torch.float64)).numpy()


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("transform", list(TRANSFORM_NAMES))
def test_eigenvalues_are_the_dense_hessians_and_kappa_their_ratio(dataset, transform):
    s = input_normalization_model(dataset, transform)
    X, t = transformed_inputs(dataset, transform)
    H = dense_least_squares_hessian(X, t)
    np.testing.assert_allclose(H, X.T @ X / len(X), rtol=1e-10, atol=1e-12 * np.abs(H).max())  # the second moments
    expected = np.sort(np.linalg.eigvalsh(H))[::-1]
    np.testing.assert_allclose(s.eigenvalues, expected, rtol=1e-7, atol=1e-9 * expected[0])
    assert s.kappa == pytest.approx(expected[0] / expected[-1], rel=1e-6)
    assert s.alpha_star == pytest.approx(2 / (expected[0] + expected[-1]), rel=1e-9)
    assert s.rate == pytest.approx((s.kappa - 1) / (s.kappa + 1), rel=1e-6, abs=1e-9)


def test_kappa_of_each_transform_in_closed_form():
    X, t = correlated_cloud_data()
    C = np.cov(X.T, bias=True)
    lam_c = np.linalg.eigvalsh(C)
    r = C[0, 1] / np.sqrt(C[0, 0] * C[1, 1])
    kappa = {k: input_normalization_model("correlated cloud", k).kappa for k in TRANSFORM_NAMES}
    raw = np.linalg.eigvalsh(C + np.outer(X.mean(0), X.mean(0)))  # second moments = covariance + mean mean'
    assert kappa["raw"] == pytest.approx(raw[1] / raw[0], rel=1e-9)
    assert kappa["centered"] == pytest.approx(lam_c[1] / lam_c[0], rel=1e-9)
    assert kappa["decorrelated"] == pytest.approx(kappa["centered"], rel=1e-9)  # a rotation keeps the spectrum
    assert kappa["standardized"] == pytest.approx((1 + abs(r)) / (1 - abs(r)), rel=1e-9)  # correlation matrix
    assert kappa["whitened"] == pytest.approx(1.0, abs=1e-9)
    assert kappa["raw"] > kappa["centered"] > kappa["whitened"]  # what the slide promises, on this cloud


@pytest.mark.parametrize("dataset,transform", [("correlated cloud", "raw"), ("correlated cloud", "standardized"),
                                               ("non-centered", "centered"), ("two gaussians", "raw"),
                                               ("badly scaled", "standardized")])
def test_gd_path_and_steps_to_1e6_match_an_sgd_run(dataset, transform):
    s = input_normalization_model(dataset, transform)
    X, t = (torch.tensor(a) for a in transformed_inputs(dataset, transform))
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    objective = Objective([w], lambda: 0.5 * ((X @ w - t) ** 2).mean(), name="least squares")
    traj = run(objective, lambda p: SGD(p, lr=s.alpha_star), steps=s.steps_run + 5, explode=None)
    w_star = np.linalg.lstsq(X.numpy(), t.numpy(), rcond=None)[0]
    err = np.linalg.norm(traj.thetas - w_star, axis=1)
    first = int(np.argmax(err <= 1e-6 * err[0]))
    assert err[first] <= 1e-6 * err[0] and first == s.steps_run
    np.testing.assert_allclose(s.path, traj.thetas[:len(s.path)], atol=1e-9 * np.abs(w_star).max())
    assert s.steps_predicted == math.ceil(math.log(1e-6) / math.log(s.rate) - 1e-12)
    assert s.steps_run <= s.steps_predicted  # the worst direction bounds every direction


def test_digits_path_is_the_runs_extreme_eigen_coordinates():
    s = input_normalization_model("digits", "standardized")
    X, t = transformed_inputs("digits", "standardized")
    lam, Q = np.linalg.eigh(X.T @ X / len(X))
    w_star = np.linalg.lstsq(X, t, rcond=None)[0]
    Xt, tt = torch.tensor(X), torch.tensor(t)
    w = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    traj = run(Objective([w], lambda: 0.5 * ((Xt @ w - tt) ** 2).mean()), lambda p: SGD(p, lr=s.alpha_star), steps=40)
    coords = (traj.thetas - w_star) @ Q[:, [-1, 0]]  # along lambda_max, lambda_min
    signs = np.sign(coords[0] * s.path[0])
    np.testing.assert_allclose(s.path[:41] * signs, coords, atol=1e-8)
    assert s.plane == "eigen" and s.points_are_principal and s.points.shape == (len(X), 2)


def test_raw_inputs_need_orders_of_magnitude_more_steps():
    raw, std = (input_normalization_model("badly scaled", k) for k in ("raw", "standardized"))
    assert raw.kappa > 1e9 and std.kappa < 2
    assert raw.steps_run > 1e10 and std.steps_run < 10


def test_transforms_are_optlab_problems_transforms():
    X, _ = correlated_cloud_data()
    for name, fn in [("centered", center), ("standardized", standardize), ("decorrelated", decorrelate),
                     ("whitened", whiten)]:
        np.testing.assert_array_equal(transformed_inputs("correlated cloud", name)[0], fn(X)[0])


def test_inputs_fuzz_every_setting_no_exception_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dataset in DATASETS:
            for transform in TRANSFORM_NAMES:
                s = input_normalization_model(dataset, transform)
                d = s.to_dict()
                assert np.all(np.isfinite(s.path)) and np.all(np.isfinite(s.grid_loss))
                assert isinstance(d["kappa"], float)


@pytest.mark.parametrize("bad", [dict(dataset="mnist"), dict(transform="zca")])
def test_inputs_bad_values_name_themselves(bad):
    with pytest.raises(ValueError, match=repr(list(bad.values())[0])):
        input_normalization_model(**bad)


# ----- layers ---------------------------------------------------------------------------------------------------

def test_layers_statistics_closed_forms_and_batch_dependence():
    cache = {}
    states = {n: layer_normalization_model("mlp", n, lr=0.3, batch_size=8, steps=3, cache=cache) for n in NORMS}
    for norm in ("batch", "layer", "group"):  # gamma = 1, beta = 0 at init: mean 0, spread 1 (up to eps)
        s = states[norm]
        np.testing.assert_allclose(s.act_mean[1, 0], 0.0, atol=1e-12)
        np.testing.assert_allclose(s.act_std[1, 0], 1.0, atol=2e-3)
    np.testing.assert_allclose(states["instance"].act_std[1, 0], 0.0, atol=1e-12)  # one value per instance
    for norm in ("none", "layer", "instance", "group"):  # no batch statistics: no batch noise, no train/eval gap
        assert states[norm].batch_noise[1] == pytest.approx(0.0, abs=1e-12)
        assert states[norm].train_eval_gap[1] == pytest.approx(0.0, abs=1e-12)
    bn = states["batch"]
    assert bn.batch_noise[1] > 1e-3 and abs(bn.train_eval_gap[1]) > 1e-4
    assert bn.batch_noise[0] == pytest.approx(0.0, abs=1e-12)  # the plain net
    big = layer_normalization_model("mlp", "batch", lr=0.3, batch_size=256, steps=3, cache=cache)
    assert big.batch_noise[1] < bn.batch_noise[1] / 3  # bigger batches: the batch matters less
    assert np.all(bn.alpha_max == 2 / bn.lambda_max)


def test_layers_cnn_in_float32_shows_the_same_closed_forms_and_batch_dependence():
    """The CNN (CNN_CHANNELS, float32): normalized pre-activations at init, no batch noise and no train/eval gap
    without batch statistics, both with BatchNorm; the small-batch noise probe uses more samples than the big one."""
    from optlab.widgets import normalization as N

    cache = {}
    states = {n: layer_normalization_model("cnn", n, lr=0.3, batch_size=8, steps=3, cache=cache)
              for n in ("batch", "layer", "group")}
    net = cache[("problem", "cnn")].model("cnn", channels=N.CNN_CHANNELS)
    assert next(net.parameters()).dtype == torch.float32 and N.DTYPES["cnn"] == "float32"
    for norm, s in states.items():
        assert s.layers == ["hidden 1", "hidden 2"]
        np.testing.assert_allclose(s.act_mean[1, 0], 0.0, atol=1e-5)
        np.testing.assert_allclose(s.act_std[1, 0], 1.0, atol=1e-2)
        assert s.lambda_max[1] > 0 and np.isfinite(s.losses).all()
    for norm in ("layer", "group"):
        assert states[norm].batch_noise[1] == pytest.approx(0.0, abs=1e-6)
        assert states[norm].train_eval_gap[1] == pytest.approx(0.0, abs=1e-5)
    bn = states["batch"]
    assert bn.batch_noise[0] == pytest.approx(0.0, abs=1e-6) and bn.batch_noise[1] > 1e-3
    assert abs(bn.train_eval_gap[1]) > 1e-4
    calls = []
    counting = lambda x: calls.append(len(x)) or torch.zeros(len(x), 10)  # noqa: E731
    X = torch.zeros(400, 64)
    for batch_size, samples in [(8, 16), (128, 8), (256, 4)]:
        calls.clear()
        N._batch_noise(counting, X, batch_size, seed=0)
        assert len(calls) == 8 * samples and set(calls) == {batch_size}


def test_layers_losses_are_the_hand_written_sgd_loop():
    s = layer_normalization_model("mlp", "group", lr=0.4, batch_size=16, steps=6, seed=1)
    d = Digits()
    X, y = d.batch()
    for i, norm in enumerate([None, "group"]):
        net = d.model("mlp", seed=1, norm=norm)
        opt = torch.optim.SGD(net.parameters(), lr=0.4)
        g = torch.Generator().manual_seed(1)
        losses = []
        for _ in range(7):
            idx = torch.randperm(len(X), generator=g)[:16]
            opt.zero_grad()
            loss = d.loss_fn(net(X[idx]), y[idx])
            losses.append(float(loss.detach()))
            loss.backward()
            opt.step()
        np.testing.assert_allclose(s.losses[i], losses, rtol=1e-12)


def test_layers_huge_lr_diverges_and_says_so():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = layer_normalization_model("mlp", "none", lr=1e6, batch_size=2, steps=5)
    assert s.diverged_at[0] is not None
    d = s.to_dict()
    assert d["train_loss"][0] == "diverged"


def test_layers_cache_trains_the_plain_net_once():
    cache = LRUCache(8)
    layer_normalization_model("mlp", "layer", lr=0.3, batch_size=8, steps=2, cache=cache)
    misses = cache.misses
    layer_normalization_model("mlp", "group", lr=0.3, batch_size=8, steps=2, cache=cache)
    keys = [k for k in cache if k[0] == "net"]
    assert len(keys) == 3 and ("net", "mlp", "none", 0.3, 8, 2, 0) in keys
    assert misses == 0 or cache.misses >= misses  # get_or_compute not used here; the keys are what counts


def test_layer_settings_fuzz_1000_validation_paths_and_a_few_real_runs():
    rng = np.random.default_rng(0)
    cache = LRUCache(4)
    legal = bad = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(1000):
            setting = dict(model=str(rng.choice(["mlp", "cnn", "mlp", "cnn", "rnn"])),
                           norm=str(rng.choice([*NORMS, "weight"])),
                           lr=float(rng.choice([1e-6, 1e-3, 0.5, 1e3, 1e8, 1e-6, 1e8, -1.0, np.nan, np.inf])),
                           batch_size=int(rng.choice([2, 16, 256, 1024, 2, 1024, 0, 1, 2000])),
                           steps=int(rng.choice([1, 50, 5000, 1, 5000, 0, 6000])), seed=int(rng.choice([0, 3, 0, -1])))
            try:
                check_layer_settings(**setting)
            except ValueError as e:
                assert any(repr(v) in str(e) or str(v) in str(e) for v in setting.values())
                bad += 1
                continue
            legal += 1
            key = tuple(setting.values())
            cache.get_or_compute(key, lambda: key)  # the view's caching path: bounded, never raising
            assert len(cache) <= 4
    assert legal > 50 and bad > 50
    # a few real, tiny runs at the extremes of every control
    for model, norm, lr, bs in [("mlp", "batch", 1e-6, 2), ("mlp", "instance", 1e3, 1024), ("cnn", "group", 1e8, 2),
                                ("mlp", "layer", 1e-3, 1024)]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            s = layer_normalization_model(model, norm, lr=lr, batch_size=bs, steps=1)
        s.to_dict()


# ----- the view, headless ---------------------------------------------------------------------------------------

def test_view_inputs_controls_state_table_and_artists():
    from optlab.widgets import NormalizationEffect

    view = NormalizationEffect(steps=3)
    view.set(dataset="non-centered", transform="centered")
    s = view.state.inputs
    expected = input_normalization_model("non-centered", "centered")
    assert s.kappa == expected.kappa and view.state.part == "inputs" and view.state.layers is None
    assert f"{expected.steps_run:,}" in view.table.value and "non-centered, centered inputs" in view.table.value
    np.testing.assert_allclose(np.asarray(view._path.get_xydata()), expected.path)
    np.testing.assert_allclose(view._points.get_offsets(), expected.points)
    assert "kappa" in view._figs["inputs"].axes[1].get_title() or "\\kappa" in view._figs["inputs"].axes[1].get_title()
    png = view._figs["inputs"].image.value
    view.set(transform="whitened")
    assert view._figs["inputs"].image.value != png  # rendered again
    assert view.controls["transform"].value == "whitened"
    view.set(transform="centered")
    assert view._figs["inputs"].image.value == png  # a setting seen before: its picture again
    import json
    json.dumps(view.state.to_dict(), allow_nan=False)


def test_view_layers_part_uses_the_cache_and_the_progress_bar():
    from optlab.widgets import NormalizationEffect

    view = NormalizationEffect(part="layers", norm="layer", lr=0.3, batch_size=8, steps=3)
    s = view.state.layers
    assert view._boxes["inputs"].layout.display == "none" and view._boxes["layers"].layout.display == ""
    assert view.progress.value == 1.0 and view.progress.description == "ready"
    misses = len(view._cache)
    view.set(norm="group")
    assert len(view._cache) == misses + 2  # the group-norm net and its init; the plain net was cached
    view.set(norm="layer")
    assert view.state.layers.lambda_max.tolist() == s.lambda_max.tolist()
    heights = [b.get_height() for b in view._spread_bars[3]]
    assert heights[0] == pytest.approx(s.act_std[1, 1, 0])
    assert view._diagram.get_array().reshape(6, 6)[:, 3].sum() == 6  # layer norm: one sample, every channel
    assert "layer norm (averaging over C, H, W)" in view.table.value
    with pytest.raises(ValueError, match="lr"):
        view.set(lr=1e3)  # beyond the slider
    with pytest.raises(ValueError, match="batch_size"):
        view.set(batch_size=3)
    assert view.state.layers.norm == "layer"  # a rejected set changes nothing


def test_view_fuzz_random_control_settings_small_net():
    """1000 random control settings of the view (the torch part on a 1-step run; inputs part every setting)."""
    from optlab.widgets import NormalizationEffect

    view = NormalizationEffect(steps=1, batch_size=2, cache_size=64)
    # artists are updated, but not rasterized: the point is exceptions and warnings (rendering is tested above)
    view._figs["inputs"].png = lambda: b""
    view._figs["layers"].refresh = lambda: None
    rng = np.random.default_rng(3)
    lrs = [1e-3, 100.0, 0.5, 1e-3, 100.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(1000):
            part = "layers" if i % 100 == 0 else "inputs"  # 10 torch settings (1-step runs); the rest cached
            view.set(part=part, dataset=str(rng.choice(DATASETS)), transform=str(rng.choice(list(TRANSFORM_NAMES))),
                     model="mlp", norm=str(rng.choice(NORMS)), lr=float(rng.choice(lrs)),
                     batch_size=int(rng.choice([2, 256])))
            view.state.to_dict()
    assert len(view._cache) <= 64
