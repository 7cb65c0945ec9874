"""Hidden checks of assignment 3 (never released): probes evaluated in the student's namespace.

Each kernel is probed on one or two hand-picked steps (other numbers than the visible checks), on a
trajectory of many steps on a rotated 3-D quadratic (the reference solution follows ``optlab.optim``
and ``torch.optim``; the source notebook shows the agreement), and on edge cases: a late Adam step where
the bias correction still matters, ``t = 0``, Rprop's step sizes at their bounds, inputs left unchanged.
The probes whose answer needs no working code (inputs unchanged, ``ValueError`` raised) require the
function's value probes; one Adam probe draws its inputs from the student's seed.
"""

from optlab.grading import Probe

SETUP = "import numpy as np"

# A rotated, ill-conditioned 3-D quadratic: J = theta^T A theta / 2, gradient A theta.
_A = ("Q, _ = np.linalg.qr(np.array([[2.0, -1.0, 0.3], [0.5, 1.0, 1.5], [-1.0, 0.2, 1.0]]))\n"
      "A = Q @ np.diag([0.2, 1.0, 20.0]) @ Q.T\n"
      "theta = np.array([1.0, -1.5, 0.5])\n")


def _path(init: str, step: str, k: int) -> str:
    return (_A + init + "path = [theta]\n"
            f"for t in range(1, {k + 1}):\n    {step}\n    path.append(theta)\nnp.array(path)")


PROBES = [
    # 1. adagrad_step (3 points)
    Probe("adagrad_two_steps",
          "theta, r = adagrad_step(np.array([0.5, -1.0, 2.0]), np.array([-1.0, 0.5, 4.0]), np.array([1.0, 0.0, 9.0]), 0.3)\n"
          "adagrad_step(theta, np.array([0.5, 0.5, -1.0]), r, 0.3, eps=1e-3)"),
    Probe("adagrad_trajectory", _path("r = np.zeros(3)\n", "theta, r = adagrad_step(theta, A @ theta, r, 0.2)", 40)),
    Probe("adagrad_keeps_inputs",
          "theta, g, r = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([1.0, 1.0])\n"
          "adagrad_step(theta, g, r, 0.1)\n(theta, g, r)", requires=("adagrad_two_steps", "adagrad_trajectory")),
    # 2. rmsprop_step (3 points)
    Probe("rmsprop_step_values",
          "rmsprop_step(np.array([0.5, -1.0, 2.0]), np.array([-1.0, 0.5, 4.0]), np.array([0.2, 0.0, 3.0]), 0.05, gamma=0.9)"),
    Probe("rmsprop_trajectory", _path("r = np.zeros(3)\n", "theta, r = rmsprop_step(theta, A @ theta, r, 0.01, gamma=0.95)", 60)),
    Probe("rmsprop_keeps_inputs",
          "theta, g, r = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([1.0, 1.0])\n"
          "rmsprop_step(theta, g, r, 0.1)\n(theta, g, r)", requires=("rmsprop_step_values", "rmsprop_trajectory")),
    # 3. adam_step (6 points)
    Probe("adam_late_step",
          "adam_step(np.array([0.5, -1.0, 2.0]), np.array([-1.0, 0.5, 4.0]), np.array([0.3, -0.1, 1.0]),\n"
          "          np.array([0.5, 0.02, 4.0]), 5, 0.01, beta1=0.8, beta2=0.99)"),
    Probe("adam_trajectory",
          _path("m = v = np.zeros(3)\n", "theta, m, v = adam_step(theta, A @ theta, m, v, t, 0.05, beta2=0.99)", 60),
          points=2),
    Probe("adam_per_student",
          "rng = np.random.default_rng(seed)\ntheta, g, m = rng.normal(size=(3, 4))\nv = rng.uniform(0.1, 2.0, size=4)\n"
          "adam_step(theta, g, m, v, int(rng.integers(1, 20)), float(rng.uniform(0.001, 0.1)))", seeded=True),
    Probe("adam_rejects_t_zero", "adam_step(np.ones(2), np.ones(2), np.zeros(2), np.zeros(2), 0, 0.1)",
          requires=("adam_late_step", "adam_trajectory")),
    Probe("adam_keeps_inputs",
          "theta, g, m, v = np.array([1.0, 2.0]), np.array([0.5, -1.0]), np.array([0.1, 0.1]), np.array([1.0, 1.0])\n"
          "adam_step(theta, g, m, v, 3, 0.1)\n(theta, g, m, v)", requires=("adam_late_step", "adam_trajectory")),
    # 4. rprop_step (4 points)
    Probe("rprop_mixed_signs",
          "rprop_step(np.array([0.0, 1.0, -1.0, 2.0]), np.array([-2.0, 0.5, 3.0, 0.0]),\n"
          "           np.array([-1.0, -0.5, 0.0, 1.0]), np.array([0.2, 0.4, 0.3, 0.1]), eta_minus=0.3, eta_plus=1.5)"),
    Probe("rprop_trajectory",
          _path("g_prev, delta = np.zeros(3), np.full(3, 0.1)\n",
                "theta, g_prev, delta = rprop_step(theta, A @ theta, g_prev, delta)", 40), points=2),
    Probe("rprop_step_size_bounds",
          "rprop_step(np.zeros(3), np.array([1.0, -1.0, 2.0]), np.array([2.0, 1.0, 0.5]), np.array([45.0, 1.5e-6, 49.0]))",
          requires=("rprop_mixed_signs",)),
    # 5. bias correction (1 point)
    Probe("first_step_without_correction", "first_step_without_correction(0.002, 0.8, 0.99)"),
]
