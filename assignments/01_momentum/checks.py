"""Hidden checks of assignment 1 (never released): probes evaluated in the student's namespace.

Each probe's value is computed in the student's process and compared, by the grader, with the value
the same code gives on the instructor's notebook (source/momentum.ipynb). The inputs differ from the
visible checks, use numpy arrays (the assignment asks for numpy, so a torch result does not match),
and include a step with mu = 0 (plain gradient descent) and a check that inputs are not modified.

The probes whose answer needs no working code (the inputs come back unchanged, ValueError is raised,
zero steps give theta0) require the probes of the function's values; momentum_step_per_student draws
its inputs from the student's seed, so its expected value differs from student to student.
"""

from optlab.grading import Probe

SETUP = "import numpy as np"

PROBES = [
    # 1. momentum_step (7 points)
    Probe("momentum_step_from_rest",
          "momentum_step(np.array([1.0, -2.0, 0.5]), np.zeros(3), np.array([0.3, -1.0, 2.0]), alpha=0.05, mu=0.9)"),
    Probe("momentum_step_moving",
          "momentum_step(np.array([0.4, -1.2, 2.0, 0.0]), np.array([0.1, -0.3, 0.05, 0.2]),\n"
          "              np.array([1.5, -0.2, 0.7, -2.5]), alpha=0.03, mu=0.95)", points=2),
    Probe("momentum_step_floats", "momentum_step(2.0, -0.5, 1.0, alpha=0.2, mu=0.5)"),
    Probe("momentum_step_mu_zero_is_gd",
          "momentum_step(np.array([1.0, 3.0]), np.array([5.0, -5.0]), np.array([2.0, -1.0]), alpha=0.25, mu=0.0)"),
    Probe("momentum_step_keeps_inputs",
          "theta, p, grad = np.array([1.0, 2.0]), np.array([0.5, -0.5]), np.array([1.0, 1.0])\n"
          "momentum_step(theta, p, grad, alpha=0.1, mu=0.9)\n"
          "(theta, p, grad)", requires=("momentum_step_from_rest", "momentum_step_moving")),
    Probe("momentum_step_per_student",
          "rng = np.random.default_rng(seed)\n"
          "theta, p, grad = rng.normal(size=(3, 5))\n"
          "momentum_step(theta, p, grad, alpha=float(rng.uniform(0.01, 0.2)), mu=float(rng.uniform(0.5, 0.99)))",
          seeded=True),
    # 2. terminal_velocity (4 points)
    Probe("terminal_velocity_float", "terminal_velocity(0.02, 0.8, 3.0)"),
    Probe("terminal_velocity_array", "terminal_velocity(0.1, 0.5, np.array([1.0, -2.0, 0.0]))"),
    Probe("terminal_velocity_rejects_mu_one", "terminal_velocity(0.1, 1.0, 1.0)",
          requires=("terminal_velocity_float", "terminal_velocity_array")),
    Probe("terminal_velocity_rejects_negative_mu", "terminal_velocity(0.1, -0.1, 1.0)",
          requires=("terminal_velocity_float", "terminal_velocity_array")),
    # 3. momentum_trajectory (4 points)
    Probe("momentum_trajectory_short", "momentum_trajectory(-2.0, 3.0, 0.1, 0.6, 5)"),
    Probe("momentum_trajectory_ravine", "momentum_trajectory(1.0, 50.0, 0.03, 0.9, 60)", points=2),
    Probe("momentum_trajectory_no_steps", "momentum_trajectory(1.5, 1.0, 0.1, 0.9, 0)",
          requires=("momentum_trajectory_short",)),
]
