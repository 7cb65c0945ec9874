r"""Lanczos iteration: extreme eigenvalues, the spectrum, and its density (stochastic Lanczos quadrature).

Lanczos builds an orthonormal basis :math:`Q_m = [q_1 \dots q_m]` of the Krylov space
:math:`\{q_1, Hq_1, \dots, H^{m-1}q_1\}` in which :math:`H` is tridiagonal:

.. math::

    H q_j = \beta_{j-1} q_{j-1} + \alpha_j q_j + \beta_j q_{j+1}, \qquad
    T_m = Q_m^\top H Q_m = \operatorname{tridiag}(\beta, \alpha, \beta)

The eigenvalues of :math:`T_m` (Ritz values) converge first to the extreme eigenvalues of :math:`H`,
much faster than the power method. Here every new vector is re-orthogonalized against all previous
ones (full re-orthogonalization), which keeps the Ritz values free of spurious copies.

Stochastic Lanczos quadrature estimates the spectral density
:math:`\phi(t) = \frac1n\sum_i \delta(t - \lambda_i)`: for a random unit :math:`q_1`, the eigenpairs
:math:`(\theta_k, u_k)` of :math:`T_m` give the quadrature nodes :math:`\theta_k` and weights
:math:`\tau_k = u_k[1]^2`, and :math:`\phi \approx \frac1{S}\sum_s \sum_k \tau_k^{(s)}\, g_\sigma(t - \theta_k^{(s)})`
with a Gaussian kernel :math:`g_\sigma`.

References:
    Lanczos, C. (1950). An iteration method for the solution of the eigenvalue problem of linear
    differential and integral operators. J. Res. Nat. Bur. Standards 45.
    Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 10.1.
    Ghorbani, B., Krishnan, S., Xiao, Y. (2019). An investigation into neural net optimization via
    Hessian eigenvalue density. ICML.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ._operator import as_operator
from .power import random_unit_vector

WHICH = ("magnitude", "algebraic", "smallest")


class LanczosResult(NamedTuple):
    """``values`` (k,), ``vectors`` (n, k) Ritz pairs, and ``steps`` (the Krylov dimension used)."""

    values: Tensor
    vectors: Tensor
    steps: int


class SpectralDensity(NamedTuple):
    """``grid`` and ``density`` on it, and the quadrature ``nodes`` and ``weights`` (one row per probe)."""

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor


def _check_int(name, v, lo, hi=None):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name}={v!r}; expected an integer >= {lo}" + (f" and <= {hi}" if hi is not None else ""))


def lanczos_tridiagonal(matvec, q1: Tensor, num_steps: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Run ``num_steps`` Lanczos steps from ``q1``; return :math:`\alpha` (m,), :math:`\beta` (m-1,) and :math:`Q` (n, m).

    Stops early (smaller ``m``) when the Krylov space is exhausted (:math:`\beta_j \approx 0`).
    """
    n = q1.shape[0]
    Q = torch.zeros(n, num_steps, dtype=q1.dtype, device=q1.device)
    alphas, betas = [], []
    q = q1 / q1.norm()
    for j in range(num_steps):
        Q[:, j] = q
        w = matvec(q)
        a = w @ q
        alphas.append(a)
        # full re-orthogonalization (twice is enough, Kahan-Parlett)
        for _ in range(2):
            w = w - Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        b = w.norm()
        if j == num_steps - 1:
            break
        if b <= 1e-10 * max(1.0, float(abs(a))):
            break
        betas.append(b)
        q = w / b
    m = len(alphas)
    return torch.stack(alphas), (torch.stack(betas[:m - 1]) if m > 1 else q1.new_zeros(0)), Q[:, :m]


def _tridiag(alpha: Tensor, beta: Tensor) -> Tensor:
    return torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)


def lanczos(op_or_tensor, k: int = 1, *, which: str = "algebraic", num_steps: int | None = None,
            seed: int = 0) -> LanczosResult:
    r"""Top-``k`` eigenpairs of a symmetric operator or matrix by Lanczos with full re-orthogonalization.

    .. math::

        T_m = Q_m^\top H Q_m, \qquad T_m u = \theta u \;\Rightarrow\; H (Q_m u) \approx \theta\, (Q_m u)

    Args:
        op_or_tensor: a curvature operator or a plain symmetric matrix.
        k: number of eigenpairs.
        which: ``"algebraic"`` (largest :math:`\lambda`), ``"smallest"``, or ``"magnitude"`` (largest :math:`|\lambda|`).
        num_steps: Krylov dimension :math:`m` (default ``min(n, max(2k + 20, 40))``); with ``m = n`` the
            result is exact up to rounding.
        seed: seed of the random start vector.

    Returns:
        ``LanczosResult(values, vectors, steps)``, values sorted in the order of ``which``.

    Reference: Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 10.1.
    """
    if which not in WHICH:
        raise ValueError(f"which={which!r}; expected one of {WHICH}")
    op = as_operator(op_or_tensor, "op_or_tensor")
    n = op.shape[0]
    _check_int("k", k, 1, n)
    m = min(n, max(2 * k + 20, 40)) if num_steps is None else num_steps
    _check_int("num_steps", m, k, n)
    with torch.no_grad():
        alpha, beta, Q = lanczos_tridiagonal(lambda v: op @ v, random_unit_vector(n, op.dtype, op.device, seed), m)
        theta, U = torch.linalg.eigh(_tridiag(alpha, beta))
    key = {"algebraic": -theta, "smallest": theta, "magnitude": -theta.abs()}[which]
    order = torch.argsort(key)[:k]
    return LanczosResult(theta[order], Q @ U[:, order], alpha.shape[0])


def spectral_density(op_or_tensor, *, num_probes: int = 10, num_steps: int = 80, grid: Tensor | None = None,
                     num_points: int = 500, sigma: float | None = None, seed: int = 0) -> SpectralDensity:
    r"""Eigenvalue density :math:`\phi(t) = \frac1n\sum_i\delta(t-\lambda_i)` by stochastic Lanczos quadrature.

    .. math::

        \phi(t) \approx \frac1S \sum_{s=1}^S \sum_{k=1}^m \tau_k^{(s)}\, \frac{1}{\sigma\sqrt{2\pi}}
            \exp\!\Big(-\frac{(t - \theta_k^{(s)})^2}{2\sigma^2}\Big)

    Args:
        op_or_tensor: a curvature operator or a plain symmetric matrix.
        num_probes: :math:`S`, the number of random start vectors.
        num_steps: :math:`m`, Lanczos steps per probe (capped at ``n``).
        grid: points :math:`t` (default: ``num_points`` points spanning the nodes, with a margin).
        sigma: kernel width (default: 1% of the node range).
        seed: seed of the first probe (probe ``s`` uses ``seed + s``).

    Returns:
        ``SpectralDensity(grid, density, nodes, weights)``; the weights of each probe sum to 1.

    Reference: Ghorbani, B., Krishnan, S., Xiao, Y. (2019). An investigation into neural net optimization
    via Hessian eigenvalue density. ICML.
    """
    op = as_operator(op_or_tensor, "op_or_tensor")
    n = op.shape[0]
    _check_int("num_probes", num_probes, 1)
    _check_int("num_steps", num_steps, 1)
    _check_int("num_points", num_points, 2)
    if sigma is not None and not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma={sigma!r}; expected a number > 0")
    m = min(num_steps, n)
    nodes, weights = [], []
    with torch.no_grad():
        for s in range(num_probes):
            alpha, beta, _ = lanczos_tridiagonal(lambda v: op @ v, random_unit_vector(n, op.dtype, op.device, seed + s), m)
            theta, U = torch.linalg.eigh(_tridiag(alpha, beta))
            pad = m - theta.shape[0]  # early stop: pad with zero-weight nodes
            nodes.append(torch.cat([theta, theta.new_zeros(pad)]))
            weights.append(torch.cat([U[0] ** 2, theta.new_zeros(pad)]))
    nodes, weights = torch.stack(nodes), torch.stack(weights)
    lo, hi = float(nodes.min()), float(nodes.max())
    width = max(hi - lo, 1e-12)
    if sigma is None:
        sigma = 0.01 * width
    if grid is None:
        grid = torch.linspace(lo - 0.05 * width - 3 * sigma, hi + 0.05 * width + 3 * sigma, num_points,
                              dtype=nodes.dtype)
    grid = torch.as_tensor(grid, dtype=nodes.dtype)
    kern = torch.exp(-((grid[:, None, None] - nodes[None]) ** 2) / (2 * sigma ** 2)) / (sigma * (2 * torch.pi) ** 0.5)
    density = (kern * weights[None]).sum((1, 2)) / num_probes
    return SpectralDensity(grid, density, nodes, weights)


def condition_number(op_or_tensor, *, num_steps: int | None = None, seed: int = 0) -> float:
    r"""Condition number :math:`\kappa = |\lambda|_{\max} / |\lambda|_{\min}` of a symmetric matrix or operator.

    For a positive-definite matrix this is the slides' :math:`\lambda_{\max}/\lambda_{\min}` (Zemel,
    "Ill-conditioned curvature"); for an indefinite one it is the 2-norm condition number. Returns
    ``inf`` for a singular matrix. Plain matrices use ``eigvalsh``; operators use Lanczos (smallest
    magnitudes converge slowly: pass ``num_steps=n`` for an exact answer on small operators).

    Reference: Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 2.6.
    """
    op = as_operator(op_or_tensor, "op_or_tensor")
    n = op.shape[0]
    from ._operator import MatrixOperator
    with torch.no_grad():
        if isinstance(op, MatrixOperator):
            ev = torch.linalg.eigvalsh(op.A).abs()
        else:
            m = n if num_steps is None and n <= 200 else (num_steps or 200)
            _check_int("num_steps", m, 1, n)
            alpha, beta, _ = lanczos_tridiagonal(lambda v: op @ v, random_unit_vector(n, op.dtype, op.device, seed), m)
            ev = torch.linalg.eigvalsh(_tridiag(alpha, beta)).abs()
    big, small = float(ev.max()), float(ev.min())
    scale = torch.finfo(op.dtype).eps * n * big
    return float("inf") if small <= scale else big / small


def lanczos_top_eigenpair(op_or_tensor, *, which: str = "algebraic", max_iter: int = 100, tol: float = 1e-8,
                          seed: int = 0):
    r"""Top eigenpair by Lanczos, one step at a time, stopping when the top Ritz value changes by at most
    ``tol`` relative to itself (the power method's stopping rule, but with Krylov acceleration:
    error :math:`\sim e^{-2k\sqrt{\text{gap}}}` instead of :math:`(\lambda_2/\lambda_1)^{2k}`).

    Returns an :class:`~optlab.curvature.Eigenpair` ``(value, vector, iterations)``.

    Reference: Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 10.1.
    """
    from .power import Eigenpair
    if which not in ("algebraic", "magnitude"):
        raise ValueError(f"which={which!r}; expected 'magnitude' or 'algebraic'")
    op = as_operator(op_or_tensor, "op_or_tensor")
    n = op.shape[0]
    m = min(n, max_iter)
    Q = torch.zeros(n, m, dtype=op.dtype, device=op.device)
    alphas, betas = [], []
    q = random_unit_vector(n, op.dtype, op.device, seed)
    value, prev = None, None
    with torch.no_grad():
        for j in range(m):
            Q[:, j] = q
            w = op @ q
            alphas.append(w @ q)
            for _ in range(2):
                w = w - Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
            theta, U = torch.linalg.eigh(_tridiag(torch.stack(alphas), torch.stack(betas) if betas else w.new_zeros(0)))
            i = int(torch.argmax(theta if which == "algebraic" else theta.abs()))
            value = float(theta[i])
            b = w.norm()
            done = prev is not None and abs(value - prev) <= tol * abs(value)
            if done or j == m - 1 or b <= 1e-10 * max(1.0, abs(value)):
                vec = Q[:, :j + 1] @ U[:, i]
                return Eigenpair(value, vec / vec.norm(), j + 1)
            prev = value
            betas.append(b)
            q = w / b
