"""One error format across optlab: every bad argument raises the same exception type with a message that
names who raised it, the argument, its value and what was expected (``optlab.errors``).

One table of calls with a bad value, each with the exception and the start of its message; then the
same conditions across functions, which must read the same.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import optlab.curvature as oc
import optlab.landscape as ol
import optlab.nn as onn
import optlab.problems as op
from optlab import errors, plot
from optlab.grading import Probe, grade_assignment, run_notebook
from optlab.grading.markers import strip_solutions
from optlab.curvature.lanczos import lanczos_top_eigenpair, ritz_error_bound

DT = torch.float64


def _model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).to(DT)
    g = torch.Generator().manual_seed(0)
    return model, nn.MSELoss(), (torch.randn(6, 3, generator=g, dtype=DT), torch.randn(6, 2, generator=g, dtype=DT))


MODEL, LOSS, DATA = _model_and_data()
P = sum(p.numel() for p in MODEL.parameters())  # 26
A = torch.diag(torch.tensor([3.0, 1.0, -2.0], dtype=DT))

# (call, exception, how the message starts); every message then continues with "; expected ..."
ROWS = [
    # curvature: iteration caps, tolerances, seeds, choices
    (lambda: oc.top_eigenvalue(A, max_iter=2.5), ValueError, "top_eigenvalue: invalid max_iter=2.5"),
    (lambda: oc.top_eigenvalue(A, max_iter=0), ValueError, "top_eigenvalue: invalid max_iter=0"),
    (lambda: oc.top_eigenvalue(A, tol=-1.0), ValueError, "top_eigenvalue: invalid tol=-1.0"),
    (lambda: oc.top_eigenvalue(A, tol=math.nan), ValueError, "top_eigenvalue: invalid tol=nan"),
    (lambda: oc.top_eigenvalue(A, seed=1.5), ValueError, "top_eigenvalue: invalid seed=1.5"),
    (lambda: oc.top_eigenvalue(A, which="largest"), ValueError, "top_eigenvalue: invalid which='largest'"),
    (lambda: oc.top_eigenvalue(A, method="arnoldi"), ValueError, "top_eigenvalue: invalid method='arnoldi'"),
    (lambda: oc.top_eigenvalue(torch.ones(2, 3)), ValueError, "top_eigenvalue: invalid op_or_tensor of shape (2, 3)"),
    (lambda: oc.top_eigenvalue([[1.0, 2.0], [0.0, 1.0]]), ValueError, "top_eigenvalue: invalid op_or_tensor: it is not "
                                                                          "symmetric"),
    (lambda: oc.top_eigenvalue("not a matrix"), TypeError, "top_eigenvalue: invalid op_or_tensor of type str"),
    (lambda: oc.top_eigenvalues(A, 4), ValueError, "top_eigenvalues: invalid k=4"),
    (lambda: oc.top_eigenvalues(A, 2, max_iter=-3), ValueError, "top_eigenvalues: invalid max_iter=-3"),
    (lambda: oc.lanczos(A, 2, num_steps=1), ValueError, "lanczos: invalid num_steps=1"),
    (lambda: oc.lanczos(A, 1, num_steps=4), ValueError, "lanczos: invalid num_steps=4"),
    (lambda: oc.lanczos(A, 1, which="top"), ValueError, "lanczos: invalid which='top'"),
    (lambda: oc.spectral_density(A, num_steps=0), ValueError, "spectral_density: invalid num_steps=0"),
    (lambda: oc.spectral_density(A, num_probes=0), ValueError, "spectral_density: invalid num_probes=0"),
    (lambda: oc.spectral_density(A, sigma=-0.1), ValueError, "spectral_density: invalid sigma=-0.1"),
    (lambda: oc.condition_number(oc.HessianOperator(MODEL, LOSS, DATA), num_steps=0), ValueError,
     "condition_number: invalid num_steps=0"),
    (lambda: lanczos_top_eigenpair(A, tol=-1), ValueError,
     "lanczos_top_eigenpair: invalid tol=-1"),
    (lambda: oc.hutchinson_diagonal(A, num_samples=0), ValueError, "hutchinson_diagonal: invalid num_samples=0"),
    (lambda: oc.exact_diagonal(A, chunk=0), ValueError, "exact_diagonal: invalid chunk=0"),
    (lambda: oc.classify_eigenvalues([1.0, 2.0], tol=-1e-3), ValueError, "classify_eigenvalues: invalid tol=-0.001"),
    (lambda: oc.classify_eigenvalues([]), ValueError, "classify_eigenvalues: invalid eigenvalues:"),
    (lambda: oc.stochastic_top_eigenvalue(MODEL, LOSS, DATA, gamma=0.0), ValueError,
     "stochastic_top_eigenvalue: invalid gamma=0.0"),
    (lambda: oc.stochastic_top_eigenvalue(MODEL, LOSS, DATA, alpha=-0.1), ValueError,
     "stochastic_top_eigenvalue: invalid alpha=-0.1"),
    (lambda: oc.stochastic_top_eigenvalue(MODEL, LOSS, DATA, num_passes=0), ValueError,
     "stochastic_top_eigenvalue: invalid num_passes=0"),
    (lambda: oc.max_learning_rate(-1.0), ValueError, "max_learning_rate: invalid lambda_max=-1.0"),
    (lambda: oc.max_learning_rate(0.5, tol=1e-3), ValueError, "max_learning_rate: invalid power_kwargs={'tol': 0.001}"),
    (lambda: ritz_error_bound(0.1, 0.5, 0.0), ValueError, "ritz_error_bound: invalid gap=0.0"),
    # curvature: models, data, vectors
    (lambda: oc.hvp(MODEL, LOSS, DATA, torch.ones(P + 1, dtype=DT)), ValueError, "hvp: invalid v of shape (27,)"),
    (lambda: oc.hvp(MODEL, LOSS, DATA, torch.ones(P, dtype=DT), method="magic"), ValueError,
     "hvp: invalid method='magic'"),
    (lambda: oc.finite_difference_hvp(MODEL, LOSS, DATA, torch.ones(3, dtype=DT)), ValueError,
     "finite_difference_hvp: invalid v of shape (3,)"),
    (lambda: oc.finite_difference_hvp(MODEL, LOSS, DATA, torch.ones(P, dtype=DT), alpha=0.0), ValueError,
     "finite_difference_hvp: invalid alpha=0.0"),
    (lambda: oc.finite_difference_hessian(MODEL, LOSS, DATA, scheme="backward"), ValueError,
     "finite_difference_hessian: invalid scheme='backward'"),
    (lambda: oc.loss_hvp(lambda: MODEL[0].weight.sum() ** 2, [MODEL[0].weight], torch.ones(5, dtype=DT)), ValueError,
     "loss_hvp: invalid v of shape (5,)"),
    (lambda: oc.HessianOperator(MODEL, LOSS, DATA) @ torch.ones(3, dtype=DT), ValueError,
     "HessianOperator @ v: invalid v of shape (3,)"),
    (lambda: oc.HessianOperator(MODEL, LOSS, DATA) @ [1.0], TypeError, "HessianOperator @ v: invalid v of type list"),
    (lambda: oc.HessianOperator(MODEL, LOSS, DATA, cache_graph="yes"), ValueError,
     "HessianOperator: invalid cache_graph='yes'"),
    (lambda: oc.HessianOperator(MODEL, LOSS, DATA[0]), TypeError, "HessianOperator: invalid data of type Tensor"),
    (lambda: oc.HessianOperator(MODEL, LOSS, []), ValueError, "HessianOperator: invalid data: it is empty"),
    (lambda: oc.HessianOperator(MODEL, LOSS, (DATA[0], DATA[1][:-1])), ValueError,
     "HessianOperator: invalid data: batch 0 has 6 input samples and 5 targets"),
    (lambda: oc.HessianOperator(MODEL, LOSS, DATA, params=[torch.zeros(2)]), ValueError,
     "HessianOperator: invalid params[0]: requires_grad=False"),
    (lambda: oc.HessianOperator("model", LOSS, DATA), TypeError, "HessianOperator: invalid model of type str"),
    (lambda: oc.HessianOperator(nn.Sequential(nn.Linear(3, 2), nn.Dropout()).to(DT), LOSS, DATA, method="r-op"),
     ValueError, "HessianOperator: invalid method='r-op'"),
    (lambda: oc.hvp(MODEL, nn.MSELoss(reduction="none"), DATA, torch.ones(P, dtype=DT)), ValueError,
     "HessianOperator: invalid value of loss_fn of shape (6, 2)"),
    (lambda: oc.becker_lecun_diagonal(nn.Bilinear(3, 3, 2), LOSS, DATA), TypeError,
     "becker_lecun_diagonal: invalid model of type Bilinear"),
    (lambda: oc.becker_lecun_diagonal(nn.Sequential(nn.Linear(3, 2), nn.Softmax(1)).to(DT), LOSS, DATA), TypeError,
     "becker_lecun_diagonal: invalid model: unsupported layer Softmax"),
    (lambda: oc.becker_lecun_diagonal(MODEL, LOSS, DATA, keep_f2="yes"), ValueError,
     "becker_lecun_diagonal: invalid keep_f2='yes'"),
    (lambda: oc.diagonal_hessian(MODEL, LOSS, DATA, "diagonal"), ValueError, "diagonal_hessian: invalid method='diagonal'"),
    (lambda: oc.directional_curvature(A, torch.zeros(3, dtype=DT)), ValueError, "directional_curvature: invalid d: it is "
                                                                               "the zero vector"),
    (lambda: oc.directional_curvature(A, [1.0, 2.0]), ValueError, "directional_curvature: invalid d of shape (2,)"),
    (lambda: oc.optimal_step(A, [1.0, 0.0, 0.0, 0.0]), ValueError, "optimal_step: invalid g of shape (4,)"),
    (lambda: oc.classify_critical_point(A, gradient=[1.0, 1.0, 1.0]), ValueError,
     "classify_critical_point: invalid gradient: its norm"),
    (lambda: oc.RBF(0, 2), ValueError, "RBF: invalid in_features=0"),
    (lambda: oc.RBF(3, 2)(torch.zeros(4, 2)), ValueError, "RBF: invalid input of shape (4, 2)"),
    (lambda: oc.MatrixOperator(torch.ones(2, 3)), ValueError, "MatrixOperator: invalid A of shape (2, 3)"),
    # problems
    (lambda: op.gd_factors([1.0], alpha=-0.1, k=2), ValueError, "gd_factors: invalid alpha=-0.1"),
    (lambda: op.gd_factors([1.0], alpha=0.1, k=2.5), ValueError, "gd_factors: invalid k=2.5"),
    (lambda: op.gd_factors([], alpha=0.1, k=2), ValueError, "gd_factors: invalid lambdas of shape (0,)"),
    (lambda: op.gd_rate([1.0, math.nan], 0.1), ValueError, "gd_rate: invalid lambdas=[1.0, nan]"),
    (lambda: op.best_alpha([1.0, -1.0]), ValueError, "best_alpha: invalid lambdas:"),
    (lambda: op.Quadratic([1.0, 2.0], Q=[[1.0, 1.0], [0.0, 1.0]]), ValueError, "Quadratic: invalid Q:"),
    (lambda: op.Quadratic([1.0, 2.0], Q=np.eye(3)), ValueError, "Quadratic: invalid Q of shape (3, 3)"),
    (lambda: op.Quadratic([1.0, 2.0], angle=0.1, Q=np.eye(2)), ValueError, "Quadratic: invalid angle=0.1"),
    (lambda: op.Quadratic([1.0, 2.0], theta_star=[[0.0, 0.0]]), ValueError, "Quadratic: invalid theta_star of shape (1, 2)"),
    (lambda: op.Quadratic.ravine(0.5), ValueError, "Quadratic.ravine: invalid kappa=0.5"),
    (lambda: op.random_rotation(0), ValueError, "random_rotation: invalid n=0"),
    (lambda: op.TwoGaussians(n=99), ValueError, "two_gaussians_data: invalid n=99"),
    (lambda: op.TwoGaussians(c=-1), ValueError, "TwoGaussians: invalid c=-1"),
    (lambda: op.rosenbrock_surface(b=0), ValueError, "rosenbrock_surface: invalid b=0"),
    (lambda: op.LinearChain(0), ValueError, "LinearChain: invalid depth=0"),
    (lambda: op.FactoredLinear(n_samples=3), ValueError, "FactoredLinear: invalid n_samples=3"),
    (lambda: op.saxe_mode_strength(1.0, s=-1.0, u0=0.1), ValueError, "saxe_mode_strength: invalid s=-1.0"),
    (lambda: op.badly_scaled(n=2), ValueError, "badly_scaled_table: invalid n=2"),
    (lambda: op.load_digits_data(test_fraction=1.5), ValueError, "load_digits_data: invalid test_fraction=1.5"),
    (lambda: op.mlp(activation="gelu"), ValueError, "mlp: invalid activation='gelu'"),
    (lambda: op.mlp(sizes=(64,)), ValueError, "mlp: invalid sizes=(64,)"),
    (lambda: op.standardize(np.ones((4, 2))), ValueError, "standardize: invalid X: features [0, 1] are constant"),
    (lambda: op.whiten(np.ones(3)), ValueError, "whiten: invalid X of shape (3,)"),
    (lambda: op.whiten(np.random.default_rng(0).normal(size=(5, 2)), kind="zzz"), ValueError,
     "whiten: invalid kind='zzz'"),
    (lambda: op.center(np.random.default_rng(0).normal(size=(5, 2)))[1](np.zeros((2, 3))), ValueError,
     "AffineTransform('center'): invalid X of shape (2, 3)"),
    (lambda: op.tiny_net_loss(np.zeros(3), [0.5], [0.5]), ValueError, "tiny_net_loss: invalid theta of shape (3,)"),
    # landscape
    (lambda: ol.linear_path(float, [0.0, 1.0], [1.0]), ValueError, "linear_path: invalid theta1 of shape (1,)"),
    (lambda: ol.linear_path(float, [0.0], [1.0], alphas=[math.nan]), ValueError, "linear_path: invalid alphas=[nan]"),
    (lambda: ol.plane_through([0.0, 0.0], [1.0, 0.0], [2.0, 0.0]), ValueError, "plane_through: invalid theta2: the "
                                                                             "three points are collinear"),
    (lambda: ol.plane_grid(float, "plane"), TypeError, "plane_grid: invalid plane of type str"),
    (lambda: ol.projection_residual(np.zeros((2, 3)), [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), ValueError,
     "projection_residual: invalid theta1: it coincides with theta0"),
    (lambda: ol.model_loss_function(MODEL, LOSS, DATA, bn_mode="test"), ValueError,
     "model_loss_function: invalid bn_mode='test'"),
    (lambda: ol.model_loss_function(MODEL, LOSS, DATA)(torch.zeros(5)), ValueError, "loss_at: invalid theta of shape (5,)"),
    (lambda: ol.random_direction("model"), TypeError, "random_direction: invalid model of type str"),
    (lambda: ol.random_direction(MODEL, seed=-1), ValueError, "random_direction: invalid seed=-1"),
    # grading
    (lambda: run_notebook(["x = 1"], timeout=0), ValueError, "run_notebook: invalid timeout=0"),
    (lambda: run_notebook(["x = 1"], timeout=math.inf), ValueError, "run_notebook: invalid timeout=inf"),
    (lambda: run_notebook("x = 1"), TypeError, "run_notebook: invalid cells of type str"),
    (lambda: grade_assignment(".", ".", jobs=0), ValueError, "grade_assignment: invalid jobs=0"),
    (lambda: grade_assignment(".", ".", reference_timeout=-1.0), ValueError,
     "grade_assignment: invalid reference_timeout=-1.0"),
    (lambda: Probe("a", "1", points=0), ValueError, "Probe 'a': invalid points=0"),
    (lambda: Probe("two words", "1"), ValueError, "Probe: invalid name='two words'"),
    (lambda: strip_solutions("### BEGIN SOLUTION\n", where="nb, cell 3"), ValueError, "nb, cell 3: invalid markers:"),
    (lambda: strip_solutions("x", "raw"), ValueError, "cell: invalid cell_type='raw'"),
    # nn
    (lambda: onn.BatchNorm1d(0), ValueError, "BatchNorm1d: invalid num_features=0"),
    (lambda: onn.BatchNorm2d(3, eps=-1.0), ValueError, "BatchNorm2d: invalid eps=-1.0"),
    (lambda: onn.BatchNorm1d(3, momentum=1.5), ValueError, "BatchNorm1d: invalid momentum=1.5"),
    (lambda: onn.BatchNorm1d(3)(torch.zeros(4, 5)), ValueError, "BatchNorm1d: invalid input of shape (4, 5)"),
    (lambda: onn.BatchNorm1d(3)([1.0]), TypeError, "BatchNorm1d: invalid input of type list"),
    (lambda: onn.batch_norm(torch.zeros(4, 3), running_mean=torch.zeros(3), running_var=torch.ones(3), momentum=None),
     ValueError, "batch_norm: invalid num_batches_tracked=0"),
    (lambda: onn.GroupNorm(4, 6), ValueError, "GroupNorm: invalid num_groups=4"),
    (lambda: onn.group_norm(torch.zeros(2, 6, 3), 4), ValueError, "group_norm: invalid num_groups=4"),
    (lambda: onn.LayerNorm((3, 0)), ValueError, "LayerNorm: invalid normalized_shape=(3, 0)"),
    (lambda: onn.layer_norm(torch.zeros(4, 6), (5,)), ValueError, "layer_norm: invalid input of shape (4, 6)"),
    (lambda: onn.InstanceNorm2d(-2), ValueError, "InstanceNorm2d: invalid num_features=-2"),
    (lambda: onn.instance_norm(torch.zeros(4, 3)), ValueError, "instance_norm: invalid input of shape (4, 3)"),
    # plot
    (lambda: plot.contour([0.0, 1.0], [0.0], np.zeros((2, 2))), ValueError, "contour: invalid Z of shape (2, 2)"),
    (lambda: plot.loss_curves([1.0]), TypeError, "loss_curves: invalid curves of type list"),
    (lambda: plot.spectrum([]), ValueError, "spectrum: invalid eigenvalues of shape (0,)"),
]


@pytest.mark.parametrize("call, error, start", ROWS, ids=[start for _, _, start in ROWS])
def test_bad_argument_names_the_value_and_what_was_expected(call, error, start):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert type(info.value) is error, message
    assert message.startswith(start), message
    assert "; expected " in message[len(start):], message


# the same condition, whoever checks it, gives the same exception and the same "expected" text
SAME = {
    "iteration cap": ("a positive integer", [
        lambda: oc.top_eigenvalue(A, max_iter=0), lambda: oc.top_eigenvalues(A, 1, max_iter=0),
        lambda: lanczos_top_eigenpair(A, max_iter=0),
        lambda: oc.stochastic_top_eigenvalue(MODEL, LOSS, DATA, num_passes=0)]),
    "tolerance": ("a finite number >= 0", [
        lambda: oc.top_eigenvalue(A, tol=-1.0), lambda: oc.top_eigenvalues(A, 1, tol=-1.0),
        lambda: oc.classify_eigenvalues([1.0], tol=-1.0), lambda: op.gd_regime(0.1, 1.0, rtol=-1.0),
        lambda: Probe("a", "1", rtol=-1.0)]),
    "seed": ("an integer >= 0", [
        lambda: oc.top_eigenvalue(A, seed=-1), lambda: oc.lanczos(A, seed=-1),
        lambda: oc.hutchinson_diagonal(A, seed=-1), lambda: ol.random_direction(MODEL, seed=-1)]),
    "step": ("None or a finite number > 0", [
        lambda: oc.finite_difference_hvp(MODEL, LOSS, DATA, torch.ones(P, dtype=DT), alpha=-1.0),
        lambda: oc.finite_difference_hessian(MODEL, LOSS, DATA, delta=-1.0),
        lambda: oc.stochastic_top_eigenvalue(MODEL, LOSS, DATA, alpha=-1.0)]),
    "epsilon": ("a finite number >= 0", [
        lambda: onn.BatchNorm1d(3, eps=-1.0), lambda: onn.LayerNorm(3, eps=-1.0), lambda: onn.GroupNorm(1, 3, eps=-1.0),
        lambda: onn.InstanceNorm1d(3, eps=-1.0), lambda: op.whiten(np.eye(3), eps=-1.0)]),
}


@pytest.mark.parametrize("condition", list(SAME))
def test_one_condition_reads_the_same_everywhere(condition):
    expected, calls = SAME[condition]
    for call in calls:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).endswith(f"; expected {expected}"), str(info.value)


def test_a_wrong_shaped_vector_reads_the_same_everywhere():
    calls = [lambda: oc.hvp(MODEL, LOSS, DATA, torch.ones(3, dtype=DT)),
             lambda: oc.finite_difference_hvp(MODEL, LOSS, DATA, torch.ones(3, dtype=DT)),
             lambda: oc.HessianOperator(MODEL, LOSS, DATA) @ torch.ones(3, dtype=DT),
             lambda: oc.directional_curvature(A, torch.ones(2, dtype=DT)),
             lambda: ol.linear_path(float, [0.0, 1.0], [1.0]),
             lambda: oc.RBF(3, 2)(torch.zeros(4, 2))]
    for call in calls:
        with pytest.raises(ValueError, match=r"^[\w.' @()]+: invalid \w+ of shape \([\d, ]*\); expected "):
            call()


def test_the_optimizers_raise_in_the_same_format():
    """The optimizers' hyper-parameter checks are optlab.errors' checks: same condition, same message."""
    import optlab.optim as oo

    w = torch.zeros(2, requires_grad=True)
    cases = [(lambda: oo.SGD([w], lr=-1.0), errors.non_negative, ("SGD", "lr", -1.0)),
             (lambda: oo.Adam([w], betas=(1.5, 0.9)), errors.in_unit_interval, ("Adam", "betas[0]", 1.5)),
             (lambda: oo.Newton([w], damping=-2.0), errors.non_negative, ("Newton", "damping", -2.0))]
    for build, check, args in cases:
        with pytest.raises(ValueError) as raised:
            check(*args)
        with pytest.raises(ValueError) as got:
            build()
        assert str(got.value) == str(raised.value)

def test_no_silent_fallbacks_stay_hidden():
    # the fallbacks that remain are observable
    op_ = oc.HessianOperator(MODEL, LOSS, DATA)
    assert op_.method == "r-op" and op_.batched_columns is True
    assert oc.ggn_diagonal_method(MODEL) == "layer-wise"
    assert oc.ggn_diagonal_method(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2))) == "jacobians"
