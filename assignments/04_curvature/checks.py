"""Hidden checks of assignment 4 (never released): probes evaluated in the student's namespace.

Other functions than the visible checks (a cubic in 3-D, a softplus coupling), another digits
architecture and seed for the learning-rate recipe, a symmetric matrix whose dominant eigenvalue is
negative (the Rayleigh quotient keeps its sign; a norm ratio loses it), Becker-LeCun on other widths and
on a per-student random net (its first-layer entries need the f'' term), and the finite-difference
error on a function and deltas of the truncation regime (rtol 1e-4: rounding differs between correct
implementations only below 1e-7 of the value). Probes that need no working code (``ValueError``,
inputs unchanged) require the function's value probes.
"""

from optlab.grading import Probe

SETUP = "import numpy as np\nimport torch\ntorch.set_default_dtype(torch.float64)"

_CUBIC = ("def cubic(th):\n    return (th ** 3).sum() + th[0] * th[1] * th[2] + torch.nn.functional.softplus(th[0] - th[2])\n")
_CUBIC_GRAD = _CUBIC + ("def cubic_grad(th):\n    th = th.detach().requires_grad_(True)\n"
                        "    return torch.autograd.grad(cubic(th), th)[0]\n")
_NET = ("gen = torch.Generator().manual_seed({seed})\n"
        "W1, b1 = torch.randn({h}, {d}, generator=gen), torch.randn({h}, generator=gen)\n"
        "W2, b2 = torch.randn({k}, {h}, generator=gen), torch.randn({k}, generator=gen)\n"
        "X, Y = torch.randn({n}, {d}, generator=gen), torch.randn({n}, {k}, generator=gen)\n")

PROBES = [
    # 1. fd_hvp (3 points)
    Probe("fd_hvp_quadratic",
          "A = torch.tensor([[4.0, -1.0, 0.5], [-1.0, 2.0, 0.0], [0.5, 0.0, 1.0]])\n"
          "fd_hvp(lambda th: A @ th, torch.tensor([0.3, -0.7, 1.1]), torch.tensor([1.0, 2.0, -1.0]), 1e-3)", rtol=1e-8),
    Probe("fd_hvp_cubic", _CUBIC_GRAD + "fd_hvp(cubic_grad, torch.tensor([0.5, -1.0, 0.25]), torch.tensor([0.2, 0.4, -0.6]), 1e-3)",
          rtol=1e-9),
    Probe("fd_hvp_rejects_zero_delta", _CUBIC_GRAD + "fd_hvp(cubic_grad, torch.ones(3), torch.ones(3), 0.0)",
          requires=("fd_hvp_quadratic", "fd_hvp_cubic")),
    # 2. exact_hvp (3 points)
    Probe("exact_hvp_cubic", _CUBIC + "th = torch.tensor([0.5, -1.0, 0.25], requires_grad=True)\n"
          "exact_hvp(lambda: cubic(th), [th], torch.tensor([0.2, 0.4, -0.6]))"),
    Probe("exact_hvp_two_tensors",
          "a = torch.tensor([[1.0, 2.0], [0.5, -1.0]], requires_grad=True)\nb = torch.tensor([0.3, -0.2], requires_grad=True)\n"
          "exact_hvp(lambda: torch.tanh(a @ b).pow(2).sum() + (a ** 2).sum() * b.sum(), [a, b],\n"
          "          torch.tensor([1.0, -1.0, 0.5, 2.0, 0.1, 0.3]))"),
    Probe("exact_hvp_keeps_params",
          "a = torch.tensor([1.0, 2.0], requires_grad=True)\nexact_hvp(lambda: (a ** 3).sum(), [a], torch.ones(2))\n"
          "(a.detach(), a.requires_grad, a.grad is None)", requires=("exact_hvp_cubic", "exact_hvp_two_tensors")),
    # 3. power_method (3 points)
    Probe("power_method_symmetric",
          "Q, _ = torch.linalg.qr(torch.tensor([[1.0, 2.0, 0.0, 1.0], [0.0, 1.0, 3.0, -1.0], [2.0, 0.0, 1.0, 1.0],"
          " [1.0, 1.0, 1.0, 0.0]]))\nA = Q @ torch.diag(torch.tensor([0.5, -2.0, 7.0, 3.0])) @ Q.T\n"
          "power_method(lambda v: A @ v, 4, iters=200, seed=3)"),
    Probe("power_method_negative_dominant",
          "Q, _ = torch.linalg.qr(torch.tensor([[2.0, 1.0, 0.0], [1.0, -1.0, 1.0], [0.0, 1.0, 3.0]]))\n"
          "A = Q @ torch.diag(torch.tensor([-6.0, 1.0, 2.5])) @ Q.T\npower_method(lambda v: A @ v, 3, iters=200)"),
    Probe("power_method_operator", "power_method(lambda v: torch.cumsum(torch.cumsum(v, 0).flip(0), 0).flip(0), 6, iters=300)",
          rtol=1e-5),
    # 4. max_learning_rate (2 points)
    Probe("max_learning_rate_other_net",
          "from optlab.problems.digits import load_digits_data, mlp\n"
          "d = load_digits_data(n=200, seed=4)\n"
          "max_learning_rate(mlp((64, 12, 10), activation='tanh', seed=5), torch.nn.CrossEntropyLoss(), d.X_train, d.y_train)",
          points=2, rtol=1e-5),
    # 5. becker_lecun_2layer (4 points)
    Probe("becker_lecun_shapes_and_last_layer",
          _NET.format(seed=11, h=5, d=3, k=2, n=7) + "dW1, db1, dW2, db2 = becker_lecun_2layer(W1, b1, W2, b2, X, Y)\n"
          "(list(dW1.shape), list(db1.shape), dW2, db2)"),
    Probe("becker_lecun_first_layer",
          _NET.format(seed=12, h=4, d=6, k=3, n=9) + "becker_lecun_2layer(W1, b1, W2, b2, X, Y)[:2]", points=2),
    Probe("becker_lecun_per_student",
          "s = seed % 1000\n" + _NET.format(seed="s", h=3, d=2, k=2, n=5) + "becker_lecun_2layer(W1, b1, W2, b2, X, Y)",
          seeded=True),
    # 6. fd_error_curve (2 points)
    Probe("fd_error_curve_cubic",
          _CUBIC + "fd_error_curve(cubic, torch.tensor([0.5, -1.0, 0.25]), torch.tensor([0.2, 0.4, -0.6]),\n"
          "               [1e-1, 1e-2, 1e-3, 1e-4, 1e-5])", points=2, rtol=1e-4),
]
