"""End to end, assignments 2 to 6: release, nbgrader compatibility, and grading typical submissions.

Each assignment has a registry of submissions built from its instructor notebook: the correct one
(full marks), the untouched release (0) and typical mistakes, each row stating the probes it must lose,
its exact total and a text its notes must hold. One batch per assignment is graded with the real
command (``python -m optlab.grading grade --jobs 2``) and the assertions read the CSV it writes.
Assignment 1 has its own file (``test_grading.py``) with the same structure.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from optlab.grading import load_checks, release_assignment, run_notebook
from optlab.grading.execute import code_cells
from optlab.grading.release import source_notebook

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
NAMES = sorted(p.name for p in ASSIGNMENTS.iterdir() if (p / "checks.py").is_file() and p.name != "01_momentum")


def _source(name: str):
    return nbformat.read(source_notebook(ASSIGNMENTS / name), as_version=4)


def _release_text(name: str) -> str:
    return (ASSIGNMENTS / name / "release" / source_notebook(ASSIGNMENTS / name).name).read_text(encoding="utf-8")


def edit(name: str, *replacements: tuple[str, str]) -> str:
    """The source notebook of ``name`` with each ``(old, new)`` replaced in the one code cell holding
    ``old`` (fails loudly if none or several do)."""
    nb = copy.deepcopy(_source(name))
    for old, new in replacements:
        hits = [c for c in nb.cells if c.cell_type == "code" and old in c.source]
        assert len(hits) == 1, f"{name}: expected one cell holding {old!r}, found {len(hits)}"
        hits[0].source = hits[0].source.replace(old, new)
    return nbformat.writes(nb)


@dataclass
class Case:
    """One kind of submission: how to build it, its status, the probes it loses, its exact total, and
    a text that must appear in its notes."""

    assignment: str
    student: str
    build: object  # () -> notebook text
    status: str
    loses: set
    total: float
    note: str = ""


CASES = [
    # --- 02: gradient descent dynamics ---------------------------------------------------------------
    Case("02_gd_dynamics", "correct", lambda: nbformat.writes(_source("02_gd_dynamics")), "ok", set(), 19),
    Case("02_gd_dynamics", "untouched", lambda: _release_text("02_gd_dynamics"), "errors",
         {p.name for p in load_checks(ASSIGNMENTS / "02_gd_dynamics").probes}, 0, "NotImplementedError"),
    # Scales theta0's own coordinates by the eigenvalues' factors, never rotating into the eigenbasis:
    # right on a diagonal A only. Zero steps give theta0 either way, and nothing is checked, so the
    # probes that need the values lose too. The second visible check (a non-diagonal A) catches it.
    Case("02_gd_dynamics", "no_eigenbasis",
         lambda: edit("02_gd_dynamics", ("    A = np.asarray(A, dtype=float)\n    if A.ndim != 2 or A.shape[0] != "
                                         "A.shape[1] or not np.allclose(A, A.T):\n        raise ValueError(f\"A must "
                                         "be a symmetric square matrix, got shape {A.shape}\")\n", ""),
                      ("return Q @ ((1.0 - alpha * lam) ** k * (Q.T @ np.asarray(theta0, dtype=float)))",
                       "return (1.0 - alpha * lam) ** k * np.asarray(theta0, dtype=float)")),
         "errors", {"gd_closed_form_rotated", "gd_closed_form_per_student", "gd_closed_form_zero_steps",
                    "gd_closed_form_keeps_inputs", "gd_closed_form_rejects_nonsymmetric"}, 13,
         "gd_closed_form_zero_steps: right, but counts only when the probes it requires earn their points too "
         "(not earned: gd_closed_form_rotated)"),
    # A loop of in-place steps on the caller's theta0: right values, but theta0 is changed.
    Case("02_gd_dynamics", "in_place",
         lambda: edit("02_gd_dynamics", ("    lam, Q = np.linalg.eigh(A)\n    return Q @ ((1.0 - alpha * lam) ** k * "
                                         "(Q.T @ np.asarray(theta0, dtype=float)))",
                                         "    theta = theta0\n    for _ in range(k):\n        theta -= alpha * A @ theta\n"
                                         "    return theta")),
         "errors", {"gd_closed_form_keeps_inputs"}, 18, "gd_closed_form_keeps_inputs: item 1: value differs"),
    # Compares alpha * lambda with == instead of np.isclose: 49 * (1/49) is 0.9999999999999999.
    Case("02_gd_dynamics", "exact_compare",
         lambda: edit("02_gd_dynamics", ("if np.isclose(x, 1.0):", "if x == 1.0:"), ("elif np.isclose(x, 2.0):", "elif x == 2.0:")),
         "ok", {"gd_regimes_float_boundary", "gd_regimes_rejects_nonpositive"}, 17,
         "gd_regimes_float_boundary: item 0: expected 'one step', got 'monotone'"),
    # The rate of the flat direction only: right while it is the slowest, wrong when the stiff one
    # oscillates more slowly, and blind to divergence.
    Case("02_gd_dynamics", "flat_direction_only",
         lambda: edit("02_gd_dynamics", ("rho = float(np.max(np.abs(1.0 - alpha * np.asarray(lambdas, dtype=float))))",
                                         "rho = float(abs(1.0 - alpha * np.min(lambdas)))")),
         "ok", {"steps_stiff_direction_limits", "steps_rejects_divergence"}, 17,
         "steps_stiff_direction_limits: value differs: expected 31, got 28"),
    # eta_max = 1/lambda_max (the limit of monotone decay, not of divergence).
    Case("02_gd_dynamics", "eta_monotone_limit",
         lambda: edit("02_gd_dynamics", ("return lam_max, 2.0 / lam_max", "return lam_max, 1.0 / lam_max")),
         "errors", {"linear_unit_two_gaussians_other_seed", "linear_unit_three_inputs", "linear_unit_rejects_1d"}, 16,
         "linear_unit_three_inputs: item 1: value differs"),
    # The widget set to the edge of divergence, 2 / lambda_max: the stiff direction no longer decays.
    Case("02_gd_dynamics", "widget_at_edge",
         lambda: edit("02_gd_dynamics", ("view.set(alpha=best_alpha(lambdas))", "view.set(alpha=2.0 / lambdas.max())")),
         "ok", {"widget_setting"}, 17, "widget_setting: item 0: value differs"),
    # --- 03: adaptive methods ---------------------------------------------------------------------------
    Case("03_adaptive", "correct", lambda: nbformat.writes(_source("03_adaptive")), "ok", set(), 17),
    Case("03_adaptive", "untouched", lambda: _release_text("03_adaptive"), "errors",
         {p.name for p in load_checks(ASSIGNMENTS / "03_adaptive").probes}, 0, "NotImplementedError"),
    # Adam without bias correction: every Adam value is off, so the probes that need them lose too.
    Case("03_adaptive", "no_bias_correction",
         lambda: edit("03_adaptive", ("m_hat = m / (1 - beta1 ** t)\n    v_hat = v / (1 - beta2 ** t)",
                                      "m_hat = m\n    v_hat = v")),
         "errors", {"adam_late_step", "adam_trajectory", "adam_per_student", "adam_rejects_t_zero",
                    "adam_keeps_inputs"}, 11,
         "adam_rejects_t_zero: right, but counts only when the probes it requires earn their points too "
         "(not earned: adam_late_step, adam_trajectory)"),
    # RMSprop updating the caller's r in place: right values, changed state.
    Case("03_adaptive", "rmsprop_in_place",
         lambda: edit("03_adaptive", ("    r = gamma * r + (1 - gamma) * g ** 2\n",
                                      "    r *= gamma\n    r += (1 - gamma) * g ** 2\n")),
         "ok", {"rmsprop_keeps_inputs"}, 16, "rmsprop_keeps_inputs: item 2: value differs"),
    # Rprop that still steps right after a sign change (no Rprop- skip, g_prev not reset).
    Case("03_adaptive", "rprop_no_skip",
         lambda: edit("03_adaptive", ("    g = np.where(s < 0, 0.0, g)\n", "")),
         "errors", {"rprop_mixed_signs", "rprop_trajectory", "rprop_step_size_bounds"}, 13,
         "rprop_mixed_signs: item 0: value differs"),
    # AdaGrad dividing by the accumulator *before* adding this gradient: the first step divides by eps.
    Case("03_adaptive", "adagrad_old_accumulator",
         lambda: edit("03_adaptive", ("    r = r + g ** 2\n    theta = theta - alpha * g / (np.sqrt(r) + eps)\n",
                                      "    theta = theta - alpha * g / (np.sqrt(r) + eps)\n    r = r + g ** 2\n")),
         "errors", {"adagrad_two_steps", "adagrad_trajectory", "adagrad_keeps_inputs"}, 14,
         "adagrad_trajectory: value differs"),
    # --- 04: curvature by hand ---------------------------------------------------------------------------
    Case("04_curvature", "correct", lambda: nbformat.writes(_source("04_curvature")), "ok", set(), 17),
    Case("04_curvature", "untouched", lambda: _release_text("04_curvature"), "errors",
         {p.name for p in load_checks(ASSIGNMENTS / "04_curvature").probes}, 0, "NotImplementedError"),
    # The first gradient without create_graph=True: the second backward raises, and everything built on
    # the exact product (the learning-rate recipe, the error curve) loses too.
    Case("04_curvature", "no_create_graph",
         lambda: edit("04_curvature", ("grads = torch.autograd.grad(loss, params, create_graph=True)",
                                       "grads = torch.autograd.grad(loss, params)")),
         "errors", {"exact_hvp_cubic", "exact_hvp_two_tensors", "exact_hvp_keeps_params", "max_learning_rate_other_net",
                    "fd_error_curve_cubic"}, 10, "exact_hvp_cubic: raised RuntimeError"),
    # Half a central difference: the forward difference divided by 2 delta.
    Case("04_curvature", "fd_half",
         lambda: edit("04_curvature", ("return (grad_fn(theta + delta * v) - grad_fn(theta)) / delta",
                                       "return (grad_fn(theta + delta * v) - grad_fn(theta)) / (2 * delta)")),
         "errors", {"fd_hvp_quadratic", "fd_hvp_cubic", "fd_hvp_rejects_zero_delta", "fd_error_curve_cubic"}, 12,
         "fd_hvp_cubic: value differs"),
    # The norm of Av instead of the Rayleigh quotient: right unless the dominant eigenvalue is negative.
    Case("04_curvature", "power_norm",
         lambda: edit("04_curvature", ("return float(v @ matvec(v))", "return float(matvec(v).norm())")),
         "ok", {"power_method_negative_dominant"}, 16, "power_method_negative_dominant: value differs: expected -6, got 6"),
    # The slide's "ignore this!": no f'' term, so the first layer's diagonal is the Gauss-Newton one.
    Case("04_curvature", "becker_lecun_no_f2",
         lambda: edit("04_curvature", ("d2a = d2h * f1 ** 2 + dh * f2", "d2a = d2h * f1 ** 2")),
         "ok", {"becker_lecun_first_layer", "becker_lecun_per_student"}, 14, "becker_lecun_first_layer: item 0: value differs"),
    # The first layer's diagonal transposed (inputs x hidden): the square visible check cannot tell.
    Case("04_curvature", "becker_lecun_transposed",
         lambda: edit("04_curvature", ("dW1, db1 = d2a.T @ X ** 2, d2a.sum(0)", "dW1, db1 = (X ** 2).T @ d2a, d2a.sum(0)")),
         "ok", {"becker_lecun_shapes_and_last_layer", "becker_lecun_first_layer", "becker_lecun_per_student"}, 13,
         "becker_lecun_first_layer: item 0: expected shape (4, 6), got shape (6, 4)"),
    # --- 05: normalization ----------------------------------------------------------------------------
    Case("05_normalization", "correct", lambda: nbformat.writes(_source("05_normalization")), "ok", set(), 17),
    Case("05_normalization", "untouched", lambda: _release_text("05_normalization"), "errors",
         {p.name for p in load_checks(ASSIGNMENTS / "05_normalization").probes}, 0, "NotImplementedError"),
    # The running variance from the biased (1/m) batch variance.
    Case("05_normalization", "running_biased_variance",
         lambda: edit("05_normalization", ("var_unbiased = x.var(axis=axes) * m / (m - 1)", "var_unbiased = x.var(axis=axes)")),
         "errors", {"running_statistics_4d", "running_keeps_inputs"}, 15, "running_statistics_4d: item 1: value differs"),
    # The backward pass without the variance's term: the visible checks (a constant dy, dx summing to 0)
    # cannot see it.
    Case("05_normalization", "backward_without_variance_term",
         lambda: edit("05_normalization", (" - x_hat * (dy * x_hat).mean(axis=axes, keepdims=True))", ")")),
         "ok", {"backward_2d", "backward_4d", "backward_per_student"}, 13, "backward_2d: item 0: value differs"),
    # Statistics over the batch axis only: right for (N, C), per position for (N, C, H, W).
    Case("05_normalization", "statistics_over_batch_axis_only",
         lambda: edit("05_normalization", ("    axes = (0,) + tuple(range(2, x.ndim))\n    mu = x.mean(axis=axes, keepdims=True)\n"
                                           "    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)\n"
                                           "    x_hat = (x - mu) / np.sqrt(var + eps)\n    return _channel",
                                           "    axes = (0,)\n    mu = x.mean(axis=axes, keepdims=True)\n"
                                           "    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)\n"
                                           "    x_hat = (x - mu) / np.sqrt(var + eps)\n    return _channel")),
         "ok", {"forward_4d", "forward_per_student", "forward_keeps_inputs"}, 14, "forward_4d: value differs"),
    # The forward pass normalizing the caller's array in place.
    Case("05_normalization", "forward_in_place",
         lambda: edit("05_normalization", ("    x_hat = (x - mu) / np.sqrt(var + eps)\n    return _channel(gamma, x.ndim) * x_hat",
                                           "    x -= mu\n    x /= np.sqrt(var + eps)\n    return _channel(gamma, x.ndim) * x")),
         "ok", {"forward_keeps_inputs"}, 16, "forward_keeps_inputs: item 0: expected True, got False"),
    # Decorrelation without the scaling: a rotation, not a whitening.
    Case("05_normalization", "whiten_without_scaling",
         lambda: edit("05_normalization", ("return Xc @ Q / np.sqrt(lam)", "return Xc @ Q")),
         "errors", {"whiten_gram", "whiten_rejects_singular", "conditioning_correlated"}, 13,
         "conditioning_correlated: key 'whitened': value differs"),
    # --- 06: saddles and Newton ----------------------------------------------------------------------
    Case("06_saddles_newton", "correct", lambda: nbformat.writes(_source("06_saddles_newton")), "ok", set(), 15),
    Case("06_saddles_newton", "untouched", lambda: _release_text("06_saddles_newton"), "errors",
         {p.name for p in load_checks(ASSIGNMENTS / "06_saddles_newton").probes}, 0, "NotImplementedError"),
    # "Saddle-free" Newton that divides by lambda, not |lambda|: plain Newton, attracted to the saddle.
    Case("06_saddles_newton", "saddle_free_without_abs",
         lambda: edit("06_saddles_newton", ("(Q.T @ g) / (np.abs(lam) + damping)", "(Q.T @ g) / (lam + damping)")),
         "errors", {"saddle_free_step_rotated", "saddle_free_step_damped", "saddle_free_step_keeps_inputs"}, 12,
         "saddle_free_step_rotated: value differs"),
    # Exact comparisons with 0: a rounding-error eigenvalue of a rotated matrix decides the answer.
    Case("06_saddles_newton", "classify_without_tolerance",
         lambda: edit("06_saddles_newton", ("pos, neg = np.any(lam > tol), np.any(lam < -tol)", "pos, neg = np.any(lam > 0), np.any(lam < 0)"),
                      ("if np.any(np.abs(lam) <= tol):", "if np.any(lam == 0):")),
         "ok", {"classify_zero_eigenvalues", "classify_rejects_nonsymmetric"}, 13, "classify_zero_eigenvalues: item 0"),
    # The gradient flow's escape time log(r/c0)/(alpha |lambda|) instead of the discrete steps' one.
    Case("06_saddles_newton", "predicted_by_gradient_flow",
         lambda: edit("06_saddles_newton", ("return float(np.log(radius / abs(c0)) / np.log(1 + alpha * abs(lam_min)))",
                                            "return float(np.log(radius / abs(c0)) / (alpha * abs(lam_min)))")),
         "errors", {"gd_escape_per_student", "gd_never_escapes", "predicted_escape_rejects_positive"}, 12,
         "gd_escape_per_student: item 1: value differs"),
    # The widget set to the exact damping, not to the slider's grid.
    Case("06_saddles_newton", "widget_off_the_grid",
         lambda: edit("06_saddles_newton", ("view.set(damping=np.floor(damping_for_escape(-1.0, 1.0, 1e-3, 10) / 0.05) * 0.05)",
                                            "view.set(damping=damping_for_escape(-1.0, 1.0, 1e-3, 10))")),
         "ok", {"widget_setting"}, 13, "widget_setting: item 1: value differs"),
]


def _grade(name: str, folder: Path, out: Path) -> dict[str, dict]:
    # generous limits: the widgets' assignments take about 10 s per notebook on an idle 2-core machine
    cmd = [sys.executable, "-m", "optlab.grading", "grade", str(ASSIGNMENTS / name), str(folder), "--out", str(out),
           "--timeout", "300", "--reference-timeout", "300", "--jobs", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Grades each assignment's batch once, on first use: ``graded(name) -> {student: csv row}``."""
    done: dict[str, dict] = {}

    def get(name: str) -> dict[str, dict]:
        if name not in done:
            folder = tmp_path_factory.mktemp(f"submissions_{name}")
            for case in CASES:
                if case.assignment == name:
                    (folder / f"{case.student}.ipynb").write_text(case.build(), encoding="utf-8")
            done[name] = _grade(name, folder, folder.parent / f"scores_{name}.csv")
        return done[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[f"{c.assignment}-{c.student}" for c in CASES])
def test_grade_submission(graded, case):
    checks = load_checks(ASSIGNMENTS / case.assignment)
    row = graded(case.assignment)[case.student]
    assert row["status"] == case.status, row["notes"]
    assert case.loses <= {p.name for p in checks.probes}
    for probe in checks.probes:
        want = 0.0 if probe.name in case.loses else probe.points
        assert float(row[probe.name]) == want, (probe.name, row["notes"])
    assert float(row["total"]) == case.total
    assert float(row["max"]) == checks.max_points
    for name, points in checks.manual:  # written answers: listed, never scored
        assert row[name] == "manual"
    assert float(row["manual_max"]) == sum(p for _, p in checks.manual)
    assert case.note in row["notes"]
    for name in case.loses:  # every lost point is explained
        assert name in row["notes"], (name, row["notes"])


def test_every_assignment_has_its_cases():
    for name in NAMES:
        kinds = [c.student for c in CASES if c.assignment == name]
        assert {"correct", "untouched"} <= set(kinds) and len(kinds) >= 5, (name, kinds)
        correct = next(c for c in CASES if c.assignment == name and c.student == "correct")
        assert correct.total == load_checks(ASSIGNMENTS / name).max_points
        assert 10 <= correct.total <= 20, (name, correct.total)


# --- release and the source ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_release_is_what_the_source_generates(name):
    path, up_to_date = release_assignment(ASSIGNMENTS / name, check=True)
    assert up_to_date, f"{path} is stale: run `optlab-grade release assignments/{name}`"


@pytest.mark.parametrize("name", NAMES)
def test_release_hides_solutions_and_lists_written_answers(name):
    source, release = _source(name), nbformat.reads(_release_text(name), as_version=4)
    text = "\n".join(c.source for c in release.cells)
    assert "### BEGIN" not in text and "### END" not in text and "Instructor-only" not in text
    checks = load_checks(ASSIGNMENTS / name)
    assert len(checks.manual) >= 1
    assert text.count("YOUR ANSWER HERE") == len(checks.manual)
    solved = sum("### BEGIN SOLUTION" in c.source for c in source.cells if c.cell_type == "code")
    assert sum("raise NotImplementedError()" in c.source for c in release.cells if c.cell_type == "code") == solved
    for cell in release.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert not (ASSIGNMENTS / name / "release" / "checks.py").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_source_runs_clean_and_release_raises_only_not_implemented(name):
    release = ASSIGNMENTS / name / "release" / source_notebook(ASSIGNMENTS / name).name
    run = run_notebook(code_cells(release), timeout=120)
    assert run.status == "errors"
    assert {e["type"] for e in run.cell_errors.values()} == {"NotImplementedError"}
    run = run_notebook(code_cells(source_notebook(ASSIGNMENTS / name)), timeout=120)
    assert run.status == "ok", run.cell_errors


# --- the reference solutions agree with the library -------------------------------------------------


def _solution_namespace(name: str) -> dict:
    """The namespace of the instructor notebook's graded cells (``skip-grading`` cells left out)."""
    ns: dict = {}
    for cell in code_cells(source_notebook(ASSIGNMENTS / name)):
        exec(compile(cell, f"<{name}>", "exec"), ns)  # noqa: S102 (the instructor's own notebook)
    return ns


def test_adaptive_reference_kernels_follow_optlab_optim_on_the_probes_quadratic():
    """The expected trajectories of assignment 3 are ``optlab.optim``'s (hence torch.optim's): the
    solution kernels and the library kernels, 60 steps on the probes' rotated quadratic."""
    import numpy as np
    import torch

    from optlab.optim import adagrad_update, adam_update, rmsprop_update, rprop_update

    ns = _solution_namespace("03_adaptive")
    probe = {p.name: p.code for p in load_checks(ASSIGNMENTS / "03_adaptive").probes}["adam_trajectory"]
    quad: dict = {"np": np}
    exec(probe.split("path = [theta]")[0].split("m = v")[0], quad)  # noqa: S102 (A and theta of the probe)
    A, theta0 = quad["A"], quad["theta"]
    T = torch.from_numpy
    mine = {"adagrad": (theta0, np.zeros(3)), "rmsprop": (theta0, np.zeros(3)),
            "adam": (theta0, np.zeros(3), np.zeros(3)), "rprop": (theta0, np.zeros(3), np.full(3, 0.1))}
    lib = {k: tuple(T(np.array(x, dtype=float)) for x in v) for k, v in mine.items()}
    for t in range(1, 61):
        mine["adagrad"] = ns["adagrad_step"](mine["adagrad"][0], A @ mine["adagrad"][0], mine["adagrad"][1], 0.2)
        lib["adagrad"] = adagrad_update(lib["adagrad"][0], T(A) @ lib["adagrad"][0], lib["adagrad"][1], t=t, alpha=0.2)
        mine["rmsprop"] = ns["rmsprop_step"](mine["rmsprop"][0], A @ mine["rmsprop"][0], mine["rmsprop"][1], 0.01, gamma=0.95)
        lib["rmsprop"] = rmsprop_update(lib["rmsprop"][0], T(A) @ lib["rmsprop"][0], lib["rmsprop"][1], alpha=0.01,
                                        gamma=0.95)[:2]
        th, m, v = mine["adam"]
        mine["adam"] = ns["adam_step"](th, A @ th, m, v, t, 0.05, beta2=0.99)
        th, m, v = lib["adam"]
        lib["adam"] = adam_update(th, T(A) @ th, m, v, t=t, alpha=0.05, beta2=0.99)[:3]
        mine["rprop"] = ns["rprop_step"](mine["rprop"][0], A @ mine["rprop"][0], *mine["rprop"][1:])
        lib["rprop"] = rprop_update(lib["rprop"][0], T(A) @ lib["rprop"][0], *lib["rprop"][1:])
        for k in mine:
            assert np.allclose(mine[k][0], lib[k][0].numpy(), rtol=1e-9, atol=1e-12), (k, t)
    assert not np.allclose(mine["adam"][0], theta0)  # the runs moved


def test_normalization_reference_follows_torch_on_the_probes_shapes():
    """Assignment 5's expected values are torch's batch norm (forward, running statistics, backward by
    autograd) on the probes' 2-D and 4-D inputs."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    ns = _solution_namespace("05_normalization")
    for shape, seed in (((7, 4), 21), ((3, 2, 4, 5), 22), ((5, 3, 6), 23)):
        rng = np.random.default_rng(seed)
        x, dy = rng.normal(size=shape) * 2 + 1, rng.normal(size=shape)
        c = shape[1]
        gamma, beta = rng.normal(size=c), rng.normal(size=c)
        xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
        rm, rv = torch.full((c,), 0.5, dtype=torch.float64), torch.full((c,), 2.0, dtype=torch.float64)
        y = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=0.2, eps=1e-3)
        y.backward(torch.tensor(dy))
        assert np.allclose(ns["batchnorm_forward"](x, gamma, beta, eps=1e-3), y.detach().numpy())
        assert np.allclose(np.concatenate(ns["update_running"](np.full(c, 0.5), np.full(c, 2.0), x, momentum=0.2)),
                           torch.cat([rm, rv]).numpy())
        for mine, ref in zip(ns["batchnorm_backward"](dy, x, gamma, eps=1e-3), (xt, gt, bt)):
            assert np.allclose(mine, ref.grad.numpy())


# --- nbgrader compatibility ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_momentum", *NAMES])
def test_nbgrader_generates_the_same_student_code(name, tmp_path):
    """``nbgrader generate_assignment`` accepts the source notebook and its student version's code cells
    are the ones ``optlab-grade release`` writes (nbgrader keeps the cells a hidden-test region empties,
    and may keep trailing blank lines: code is compared per non-empty cell, trailing blanks stripped)."""
    pytest.importorskip("nbgrader", reason="nbgrader (a dev dependency) is not installed")
    src = source_notebook(ASSIGNMENTS / name)
    course = tmp_path / "course"
    (course / "source" / name).mkdir(parents=True)
    shutil.copy(src, course / "source" / name / src.name)
    cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", name, "--force", "--no-db",
           f"--CourseDirectory.root={course}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=course)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    theirs = json.loads((course / "release" / name / src.name).read_text(encoding="utf-8"))
    ours = nbformat.reads(_release_text(name), as_version=4)

    def code(cells):
        out = []
        for c in cells:
            text = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            if c["cell_type"] == "code" and text.strip():
                out.append(text.rstrip())
        return out

    assert code(theirs["cells"]) == code(ours.cells)
