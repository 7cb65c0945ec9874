r"""Lanczos iteration: extreme eigenvalues, the spectrum, and its density (stochastic Lanczos quadrature).

Lanczos builds an orthonormal basis :math:`Q_m = [q_1 \dots q_m]` of the Krylov space
:math:`\{q_1, Hq_1, \dots, H^{m-1}q_1\}` in which :math:`H` is tridiagonal:

.. math::

    H q_j = \beta_{j-1} q_{j-1} + \alpha_j q_j + \beta_j q_{j+1}, \qquad
    T_m = Q_m^\top H Q_m = \operatorname{tridiag}(\beta, \alpha, \beta)

The eigenvalues of :math:`T_m` (Ritz values) converge first to the extreme eigenvalues of :math:`H`,
much faster than the power method, and each comes with a free error bound: its residual is
:math:`|\beta_m s_m|` (:func:`ritz_error_bound`), which :func:`lanczos_top_eigenpair` uses to stop. Here every new vector is re-orthogonalized against all previous
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
    with torch.no_grad(), op.many_products():
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
    with torch.no_grad(), op.many_products():
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
    with torch.no_grad(), op.many_products():
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


def ritz_error_bound(beta_m: float, s_m: float, gap: float) -> float:
    r"""Bound on the distance from a Ritz value :math:`\theta` to the eigenvalue it approximates.

    After :math:`m` Lanczos steps the Ritz vector :math:`y = Q_m s` (:math:`T_m s = \theta s`,
    :math:`\|s\| = 1`) has the residual :math:`\|Hy - \theta y\| = |\beta_m s_m|` (no product needed:
    :math:`\beta_m` is the norm of the next Lanczos vector, :math:`s_m` the last component of
    :math:`s`). For a symmetric :math:`H`:

    .. math::

        r = |\beta_m s_m|, \qquad |\lambda - \theta| \le r \quad\text{and}\quad
        |\lambda - \theta| \le \frac{r^2}{\delta}\ \text{(Kato--Temple)}, \qquad
        \text{bound} = \min\Big(r, \frac{r^2}{\delta}\Big)

    where :math:`\lambda` is the eigenvalue of :math:`H` closest to :math:`\theta` and :math:`\delta`
    the distance from :math:`\theta` to the rest of the spectrum. :math:`\delta` is unknown: the caller
    passes an estimate ``gap`` (:func:`lanczos_top_eigenpair` uses the other Ritz values, each moved
    towards :math:`\theta` by its own residual). The :math:`r` bound is rigorous; the
    :math:`r^2/\delta` one is only as good as that estimate (optimistic while an eigenvalue close to
    :math:`\theta` has not been found yet). ``gap=inf`` (no estimate) gives :math:`r`.

    Args:
        beta_m: :math:`\beta_m`, norm of the next (unnormalized) Lanczos vector.
        s_m: :math:`s_m`, last component of the unit eigenvector of :math:`T_m`.
        gap: distance from :math:`\theta` to the nearest other Ritz value (``inf`` if there is none).

    Returns:
        ``min(r, r**2 / gap)``.

    Example:
        >>> ritz_error_bound(0.1, 0.5, 1.0)   # r = 0.05, r^2/gap = 0.0025
        0.0025000000000000005

    References:
        Parlett, B. N. (1998). The Symmetric Eigenvalue Problem. SIAM (chapter 10: the Kato-Temple
        bound; chapter 13: the Lanczos residual :math:`\beta_m s_m`).
        Kato, T. (1949). On the upper and lower bounds of eigenvalues. J. Phys. Soc. Japan 4.
    """
    r = abs(float(beta_m) * float(s_m))
    gap = float(gap)
    if not gap > 0:
        raise ValueError(f"gap={gap!r}; expected a positive distance (or inf)")
    return r if gap == float("inf") else min(r, r * r / gap)


def lanczos_top_eigenpair(op_or_tensor, *, which: str = "algebraic", max_iter: int = 100, tol: float = 1e-8,
                          seed: int = 0):
    r"""Top eigenpair by Lanczos, one step at a time, stopping when the Ritz residual bound says the
    top Ritz value :math:`\theta` is accurate to ``tol`` relative to itself:

    .. math::

        \min\Big(r, \frac{r^2}{\delta}\Big) \le \mathrm{tol}\cdot|\theta|, \qquad r = |\beta_m s_m|

    (:func:`ritz_error_bound`). :math:`\delta`, the distance to the rest of the spectrum, is estimated
    from the other Ritz values: each :math:`\theta_k` is within its residual :math:`r_k = |\beta_m s_{mk}|`
    of an eigenvalue, so :math:`\hat\delta = \min_k (|\theta_k - \theta| - r_k)` (if that is not
    positive, :math:`r` alone is used). The value must also have moved by at most ``tol`` relative to
    itself since the previous step, which keeps the rule from stopping in the first steps, before
    the Ritz values have spread out. Krylov acceleration makes the error fall like
    :math:`e^{-2m\sqrt{\text{gap}}}` instead of the power method's :math:`(\lambda_2/\lambda_1)^{2m}`,
    and the residual rule stops when the answer is accurate, not merely when the value stops moving
    (which also happens while Lanczos lingers near the second eigenvalue). Every new vector is
    re-orthogonalized against all previous ones.

    Limits (shared by every method that sees :math:`H` only through products from one random start,
    the power method included): the bound is on the distance to the *nearest* eigenvalue, and it
    cannot see an eigenvalue the Krylov space has not resolved yet. When the top eigenvalue has a
    neighbour closer than a fraction of a percent but farther than ``tol``, and the start vector
    happens to favour the neighbour, the neighbour can be returned (error about their distance);
    a smaller ``tol`` or another ``seed`` is then the remedy.

    Args:
        op_or_tensor: a curvature operator or a plain symmetric matrix.
        which: ``"algebraic"`` (largest :math:`\lambda`) or ``"magnitude"`` (largest :math:`|\lambda|`).
        max_iter: maximum number of matrix-vector products (Lanczos steps); capped at ``n``.
        tol: relative accuracy asked of the eigenvalue (a bound, not the change between steps).
        seed: seed of the random start vector (or of its random part: see
            :meth:`~optlab.curvature.CurvatureOperator.start_vector`).

    Returns:
        An :class:`~optlab.curvature.Eigenpair` ``(value, vector, iterations)``, iterations = products.

    References:
        Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 10.1.
        Parlett, B. N. (1998). The Symmetric Eigenvalue Problem. SIAM, chapter 13.
    """
    from .power import Eigenpair, check_iteration_args
    if which not in ("algebraic", "magnitude"):
        raise ValueError(f"which={which!r}; expected 'magnitude' or 'algebraic'")
    check_iteration_args(max_iter, tol)
    op = as_operator(op_or_tensor, "op_or_tensor")
    n = op.shape[0]
    m = min(n, max_iter)
    Q = torch.zeros(min(m, 32), n, dtype=op.dtype, device=op.device)  # rows q_1..q_j, grown on demand
    alphas, betas = [], []
    prev = None
    with torch.no_grad(), op.many_products():
        q = op.start_vector(seed)
        for j in range(m):
            if j == Q.shape[0]:
                Q = torch.cat([Q, torch.zeros(min(m, 2 * j) - j, n, dtype=Q.dtype, device=Q.device)])
            Q[j] = q
            w = op @ q
            alphas.append(float(w @ q))
            for _ in range(2):  # full re-orthogonalization (twice is enough, Kahan-Parlett)
                w = w - (Q[:j + 1] @ w) @ Q[:j + 1]
            b = float(w.norm())
            T = _tridiag(torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64))
            theta, U = torch.linalg.eigh(T)
            i = int(torch.argmax(theta if which == "algebraic" else theta.abs()))
            value = float(theta[i])
            # distance to the rest of the spectrum: each other Ritz value theta_k is within its residual
            # r_k = |b U[-1, k]| of an eigenvalue, so the rest is at least |theta_k - value| - r_k away
            dist = (theta - value).abs() - (b * U[-1]).abs()
            dist = torch.cat([dist[:i], dist[i + 1:]])
            gap = float(dist.min()) if dist.numel() else float("inf")
            gap = gap if gap > 0 else float("inf")  # no estimate: r alone
            exhausted = b <= 1e-10 * max(1.0, abs(value))  # invariant subspace: the Ritz values are exact
            settled = prev is not None and abs(value - prev) <= tol * abs(value)
            accurate = settled and ritz_error_bound(b, U[-1, i], gap) <= tol * abs(value)
            if exhausted or accurate or j == m - 1:
                vec = U[:, i].to(Q.dtype) @ Q[:j + 1]
                return Eigenpair(value, vec / vec.norm(), j + 1)
            prev = value
            betas.append(b)
            q = w / b
