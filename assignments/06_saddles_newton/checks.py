"""Hidden checks of assignment 6 (never released): probes evaluated in the student's namespace.

Other matrices than the visible checks: rotated 3-D and 4-D Hessians, a saddle with a zero eigenvalue
(still a saddle), eigenvalues inside and outside the tolerance, damped steps, an escape from a
rotated saddle and a per-student random one, a Hessian without negative curvature (never escapes),
``lam_min >= 0`` and an impossible escape (``ValueError``). The widget probe reads
``view.state.to_dict()`` after the student's own ``view.set(damping=...)`` on ``SaddleFlow``. Probes
whose answer needs no working code (``ValueError``, ``None``, inputs unchanged) require value probes.
"""

from optlab.grading import Probe

SETUP = "import numpy as np"

_ROT3 = "Q, _ = np.linalg.qr(np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0], [2.0, 0.3, -1.0]]))\n"
_ROT4 = ("Q, _ = np.linalg.qr(np.array([[1.0, 0.2, 0.0, 1.0], [0.0, 1.0, 2.0, -1.0], [2.0, 0.0, 1.0, 0.5],"
         " [0.3, 1.0, 1.0, 0.0]]))\n")

PROBES = [
    # 1. classify (3 points)
    Probe("classify_rotated",
          _ROT3 + "[classify(Q @ np.diag(d) @ Q.T) for d in ([3.0, -0.5, 1.0], [-1.0, -2.0, -0.1], [0.2, 1.0, 4.0])]"),
    Probe("classify_zero_eigenvalues",
          _ROT3 + "[classify(Q @ np.diag(d) @ Q.T, tol=1e-6) for d in ([2.0, 0.0, 1.0], [-2.0, 0.0, 1.0], [1e-7, -1.0, -2.0],"
          " [1e-5, 1.0, 2.0])]"),
    Probe("classify_rejects_nonsymmetric", "classify(np.array([[1.0, 2.0], [0.0, -1.0]]))",
          requires=("classify_rotated", "classify_zero_eigenvalues")),
    # 2. newton_step and saddle_free_step (5 points)
    Probe("newton_step_rotated", _ROT4 + "H = Q @ np.diag([-2.0, 0.5, 1.0, 3.0]) @ Q.T\n"
          "newton_step(np.array([1.0, -1.0, 0.5, 2.0]), np.array([0.3, 0.2, -1.0, 0.4]), H)"),
    Probe("newton_step_damped", _ROT4 + "H = Q @ np.diag([-2.0, 0.5, 1.0, 3.0]) @ Q.T\n"
          "newton_step(np.array([1.0, -1.0, 0.5, 2.0]), np.array([0.3, 0.2, -1.0, 0.4]), H, damping=0.7)"),
    Probe("saddle_free_step_rotated", _ROT4 + "H = Q @ np.diag([-2.0, 0.5, 1.0, 3.0]) @ Q.T\n"
          "saddle_free_step(np.array([1.0, -1.0, 0.5, 2.0]), np.array([0.3, 0.2, -1.0, 0.4]), H)"),
    Probe("saddle_free_step_damped", _ROT3 + "H = Q @ np.diag([-0.1, 0.0, 2.0]) @ Q.T\n"
          "saddle_free_step(np.array([0.5, 0.5, -0.5]), np.array([1.0, -0.5, 0.25]), H, damping=0.4)"),
    Probe("saddle_free_step_keeps_inputs",
          "theta, g, H = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([[1.0, 0.5], [0.5, -2.0]])\n"
          "saddle_free_step(theta, g, H, 0.1)\n(theta, g, H)",
          requires=("saddle_free_step_rotated", "saddle_free_step_damped")),
    # 3. gd_escape_steps and predicted_escape (4 points)
    Probe("gd_escape_rotated", _ROT3 + "H = Q @ np.diag([2.0, -0.3, 1.0]) @ Q.T\n"
          "gd_escape_steps(H, 1e-4 * Q[:, 1] + Q[:, 0], 0.2, radius=0.8)"),
    Probe("gd_escape_per_student",
          "rng = np.random.default_rng(seed)\nQ, _ = np.linalg.qr(rng.normal(size=(3, 3)))\n"
          "lam = np.array([-rng.uniform(0.2, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0)])\n"
          "H = Q @ np.diag(lam) @ Q.T\nc0 = float(rng.uniform(1e-5, 1e-2))\n"
          "[gd_escape_steps(H, c0 * Q[:, 0] + Q[:, 1], 0.3), predicted_escape(float(lam[0]), 0.3, c0)]", seeded=True),
    Probe("gd_never_escapes", "gd_escape_steps(np.diag([1.0, 0.5]), np.array([0.1, 0.1]), 0.1, max_steps=500)",
          requires=("gd_escape_rotated", "gd_escape_per_student")),
    Probe("predicted_escape_rejects_positive", "predicted_escape(0.5, 0.1, 1e-3)",
          requires=("gd_escape_per_student",)),
    # 4. damping_for_escape and the widget setting (3 points)
    Probe("damping_for_escape_values", "[damping_for_escape(-2.0, 0.5, 1e-4, 25), damping_for_escape(-0.5, 1.5, 1e-2, 8, radius=1.0)]"),
    Probe("widget_setting",
          "s = view.state.to_dict()\nsf = [r for r in s['runs'] if r['method'] == 'saddle_free'][0]\n"
          "[s['surface'], s['damping'], sf['escape_step'], sf['predicted_escape']]", points=2),
]
