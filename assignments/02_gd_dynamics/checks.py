"""Hidden checks of assignment 2 (never released): probes evaluated in the student's namespace.

The inputs differ from the visible checks: rotated (non-diagonal) matrices, where forgetting to rotate
back from the eigenbasis shows; eigenvalues exactly on the regime boundaries; a learning rate where the
stiff direction, not the flat one, sets the number of steps; the two-Gaussian data of other seeds and a
3-D unit. Probes whose answer needs no working code (inputs unchanged, ``ValueError`` raised, zero
steps give ``theta0``) require the probes of the function's values. The widget probe reads
``view.state.to_dict()`` after the student's own ``view.set(alpha=...)``.
"""

from optlab.grading import Probe

SETUP = "import numpy as np"

_ROTATED = ("Q, _ = np.linalg.qr(np.array([[1.0, 2.0, 0.5], [-0.3, 1.0, 2.0], [0.7, -1.2, 1.0]]))\n"
            "A = Q @ np.diag([0.5, 2.0, 9.0]) @ Q.T\n")

PROBES = [
    # 1. gd_closed_form (5 points)
    Probe("gd_closed_form_rotated", _ROTATED + "gd_closed_form(A, np.array([1.0, -2.0, 0.5]), 0.2, 7)", points=2),
    Probe("gd_closed_form_per_student",
          "rng = np.random.default_rng(seed)\nB = rng.normal(size=(4, 4))\nA = B @ B.T + 0.5 * np.eye(4)\n"
          "gd_closed_form(A, rng.normal(size=4), float(1.0 / np.linalg.eigvalsh(A)[-1]), int(rng.integers(3, 30)))",
          seeded=True),
    Probe("gd_closed_form_zero_steps", _ROTATED + "gd_closed_form(A, np.array([3.0, 1.0, -1.0]), 0.2, 0)",
          requires=("gd_closed_form_rotated",)),
    Probe("gd_closed_form_keeps_inputs",
          _ROTATED + "A0, theta0 = A.copy(), np.array([1.0, 2.0, 3.0])\ngd_closed_form(A, theta0, 0.1, 5)\n"
          "(bool(np.array_equal(A, A0)), theta0)", requires=("gd_closed_form_rotated",)),
    Probe("gd_closed_form_rejects_nonsymmetric",
          "gd_closed_form(np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2), 0.1, 3)",
          requires=("gd_closed_form_rotated",)),
    # 2. gd_regimes (3 points)
    Probe("gd_regimes_boundaries", "gd_regimes([0.5, 2.0, 4.0, 5.0, 1.5], 0.5)"),
    Probe("gd_regimes_float_boundary", "gd_regimes(np.array([49.0, 98.0, 10.0, 60.0]), 1.0 / 49.0)"),
    Probe("gd_regimes_rejects_nonpositive", "gd_regimes([1.0, 0.0], 0.1)",
          requires=("gd_regimes_boundaries", "gd_regimes_float_boundary")),
    # 3. condition_number and steps_to_tolerance (4 points)
    Probe("condition_number_rotated", _ROTATED + "condition_number(A)"),
    Probe("steps_flat_direction_limits", "steps_to_tolerance([0.2, 1.0, 3.0], 0.3, 1e-4)"),
    Probe("steps_stiff_direction_limits", "steps_to_tolerance([0.5, 4.0], 0.45, 1e-3)"),
    Probe("steps_rejects_divergence", "steps_to_tolerance([1.0, 10.0], 0.25, 1e-3)",
          requires=("steps_flat_direction_limits", "steps_stiff_direction_limits")),
    # 4. linear_unit_curvature (3 points)
    Probe("linear_unit_two_gaussians_other_seed",
          "from optlab.problems.two_gaussians import two_gaussians_data\n"
          "linear_unit_curvature(two_gaussians_data(n=60, seed=7)[0])"),
    Probe("linear_unit_three_inputs",
          "rng = np.random.default_rng(3)\nlinear_unit_curvature(rng.normal(size=(40, 3)) + np.array([1.0, 0.0, -0.5]))"),
    Probe("linear_unit_rejects_1d", "linear_unit_curvature(np.ones(5))",
          requires=("linear_unit_two_gaussians_other_seed", "linear_unit_three_inputs")),
    # 5. best_alpha and the widget setting (3 points)
    Probe("best_alpha_three_directions", "best_alpha(np.array([4.0, 0.25, 1.0]))"),
    Probe("widget_setting", "s = view.state.to_dict()\n[s['alpha'], s['rate'], s['regimes'], s['diverged']]",
          points=2),
]
