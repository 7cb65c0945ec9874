"""Hidden checks of assignment 5 (never released): probes evaluated in the student's namespace.

Other shapes than the visible checks: (N, C) with several channels, (N, C, L) and (N, C, H, W) (the
statistics are over every axis but axis 1), a per-student 3-D input, a running variance that must be
the unbiased one, a backward pass through a non-constant upstream gradient on 2-D and 4-D inputs, the
Gram matrix of the whitened rows (the same for every correct whitening, whatever the signs and order of
the principal directions), a singular covariance, and the condition numbers of correlated data. The
probes whose answer needs no working code (inputs unchanged, ``ValueError``) require value probes.
"""

from optlab.grading import Probe

SETUP = "import numpy as np"

_X2 = "rng = np.random.default_rng(21)\nx = rng.normal(size=(7, 4)) * np.array([1.0, 3.0, 0.2, 5.0]) + np.array([0.0, -2.0, 1.0, 4.0])\n"
_X4 = "rng = np.random.default_rng(22)\nx = rng.normal(size=(3, 2, 4, 5)) * 2.0 + 1.5\n"
_CORR = ("rng = np.random.default_rng(23)\n"
         "X = rng.normal(size=(300, 3)) @ np.array([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [-1.0, 0.3, 0.1]]) + np.array([1.0, 5.0, -3.0])\n")

PROBES = [
    # 1. batchnorm_forward (4 points)
    Probe("forward_2d", _X2 + "batchnorm_forward(x, np.array([1.0, 0.5, 2.0, -1.0]), np.array([0.0, 1.0, -1.0, 3.0]))"),
    Probe("forward_4d", _X4 + "batchnorm_forward(x, np.array([2.0, 0.5]), np.array([1.0, -1.0]), eps=1e-3)"),
    Probe("forward_per_student",
          "rng = np.random.default_rng(seed)\nn, c, l = (int(k) for k in rng.integers(2, 6, size=3))\n"
          "batchnorm_forward(rng.normal(size=(n, c, l)) * 3 + 1, rng.normal(size=c), rng.normal(size=c))", seeded=True),
    Probe("forward_keeps_inputs",
          _X2 + "x0, g, b = x.copy(), np.ones(4), np.zeros(4)\nbatchnorm_forward(x, g, b)\n"
          "(bool(np.array_equal(x, x0)), g, b)", requires=("forward_2d", "forward_4d")),
    # 2. update_running and batchnorm_eval (4 points)
    Probe("running_statistics_4d", _X4 + "update_running(np.array([0.5, -0.5]), np.array([2.0, 1.0]), x, momentum=0.2)"),
    Probe("running_keeps_inputs",
          _X2 + "m, v = np.zeros(4), np.ones(4)\nupdate_running(m, v, x)\n(m, v)", requires=("running_statistics_4d",)),
    Probe("eval_2d", _X2 + "batchnorm_eval(x, np.array([1.0, 0.5, 2.0, -1.0]), np.array([0.0, 1.0, -1.0, 3.0]),\n"
          "               np.array([0.1, -2.0, 1.0, 4.0]), np.array([1.0, 9.0, 0.04, 25.0]))"),
    Probe("eval_4d", _X4 + "batchnorm_eval(x, np.array([2.0, 0.5]), np.array([1.0, -1.0]), np.array([1.0, 2.0]),\n"
          "               np.array([4.0, 0.25]), eps=1e-3)"),
    # 3. batchnorm_backward (4 points)
    Probe("backward_2d", _X2 + "dy = np.random.default_rng(31).normal(size=x.shape)\n"
          "batchnorm_backward(dy, x, np.array([1.0, 0.5, 2.0, -1.0]))", points=2),
    Probe("backward_4d", _X4 + "dy = np.random.default_rng(32).normal(size=x.shape)\n"
          "batchnorm_backward(dy, x, np.array([2.0, 0.5]), eps=1e-3)"),
    Probe("backward_per_student",
          "rng = np.random.default_rng(seed)\nn, c = (int(k) for k in rng.integers(3, 7, size=2))\n"
          "x = rng.normal(size=(n, c)) * 2\nbatchnorm_backward(rng.normal(size=(n, c)), x, rng.normal(size=c))", seeded=True),
    # 4. whitening and conditioning (5 points)
    Probe("hessian_condition_raw", _CORR + "hessian_condition(X)"),
    Probe("whiten_gram", _CORR + "Xw = whiten(X[:8])\nXw @ Xw.T", rtol=1e-6, atol=1e-8),
    Probe("whiten_rejects_singular",
          "X = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [0.0, 0.0]])\nwhiten(X)", requires=("whiten_gram",)),
    Probe("conditioning_correlated", _CORR + "conditioning(X)", points=2, rtol=1e-5),
]
