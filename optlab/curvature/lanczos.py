r"""Lanczos iteration: extreme eigenvalues, the spectrum, and its density (stochastic Lanczos quadrature).

Lanczos builds an orthonormal basis :math:`Q_m = [q_1 \dots q_m]` of the Krylov space
:math:`\{q_1, Hq_1, \dots, H^{m-1}q_1\}` in which :math:`H` is tridiagonal:

.. math::

    H q_j = \beta_{j-1} q_{j-1} + \alpha_j q_j + \beta_j q_{j+1}, \qquad
    T_m = Q_m^\top H Q_m = \operatorname{tridiag}(\beta, \alpha, \beta)

The eigenvalues of :math:`T_m` (Ritz values) converge first to the extreme eigenvalues of :math:`H`,
much faster than the power method, and each comes with a free error bound: its residual is
:math:`|\beta_m s_m|` (:func:`ritz_error_bound`), which :func:`lanczos_top_eigenpair` uses to stop.
Every new vector is re-orthogonalized against all previous ones (full re-orthogonalization), which
keeps the Ritz values free of spurious copies. The iteration is written once,
:func:`lanczos_iteration`; every function here runs it and reads what it needs from its steps.

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

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import check, check_shape, int_in_range, positive, positive_int
from ._eigensolver import Eigenpair, check_iteration_args, check_seed, check_which, random_unit_vector
from ._operator import MatrixOperator, as_operator

#: which end of the spectrum :func:`lanczos` returns
WHICH = ("algebraic", "smallest", "magnitude")


class LanczosResult(NamedTuple):
    """``values`` (k,), ``vectors`` (n, k) Ritz pairs, and ``iterations`` (the Krylov dimension reached,
    one product each)."""

    values: Tensor
    vectors: Tensor
    iterations: int


class SpectralDensity(NamedTuple):
    """``grid`` and ``density`` on it, and the quadrature ``nodes`` and ``weights`` (one row per probe)."""

    grid: Tensor
    density: Tensor
    nodes: Tensor
    weights: Tensor


class LanczosStep(NamedTuple):
    r"""The state after :math:`j` Lanczos steps: :math:`\alpha` (j,) and :math:`\beta` (j-1,) of :math:`T_j` (float64),
    the norm :math:`\beta_j` of the next (unnormalized) Lanczos vector, and the basis :math:`Q_j^\top` (j, n)."""

    alpha: Tensor
    beta: Tensor
    residual: float
    Q: Tensor


def lanczos_iteration(matvec: Callable[[Tensor], Tensor], q1: Tensor, num_steps: int) -> Iterator[LanczosStep]:
    r"""The Lanczos iteration from ``q1`` with full re-orthogonalization, yielding the state after every step.

    .. math::

        w = H q_j - \alpha_j q_j - \beta_{j-1} q_{j-1} \;(\text{here: } w = (I - Q_jQ_j^\top) H q_j),
        \qquad \alpha_j = q_j^\top H q_j, \qquad \beta_j = \|w\|, \qquad q_{j+1} = w / \beta_j

    At most ``num_steps`` steps: fewer when the Krylov space is exhausted (:math:`\beta_j \le 10^{-10}
    \max(1, \max_i|\alpha_i|)`: the Ritz values are then eigenvalues). The basis grows on demand, so a
    caller that stops early never allocates ``num_steps`` vectors.
    """
    n = q1.shape[0]
    Q = q1.new_zeros(min(num_steps, 32), n)
    alphas, betas = [], []
    q = q1 / q1.norm()
    for j in range(num_steps):
        if j == Q.shape[0]:
            Q = torch.cat([Q, Q.new_zeros(min(num_steps, 2 * j) - j, n)])
        Q[j] = q
        w = matvec(q)
        alphas.append(float(w @ q))
        for _ in range(2):  # full re-orthogonalization (twice is enough, Kahan-Parlett)
            w = w - (Q[:j + 1] @ w) @ Q[:j + 1]
        b = float(w.norm())
        yield LanczosStep(torch.tensor(alphas, dtype=torch.float64), torch.tensor(betas, dtype=torch.float64), b,
                          Q[:j + 1])
        if b <= 1e-10 * max(1.0, max(abs(a) for a in alphas)):  # an invariant subspace
            return
        betas.append(b)
        q = w / b


def tridiagonal(alpha: Tensor, beta: Tensor) -> Tensor:
    r""":math:`T = \operatorname{tridiag}(\beta, \alpha, \beta)`."""
    return torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)


def lanczos_tridiagonal(matvec: Callable[[Tensor], Tensor], q1: Tensor,
                        num_steps: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Run :func:`lanczos_iteration` to the end; return :math:`\alpha` (m,), :math:`\beta` (m-1,) (float64) and
    :math:`Q` (n, m), with ``m <= num_steps`` (smaller when the Krylov space is exhausted)."""
    positive_int("lanczos_tridiagonal", "num_steps", num_steps)
    for step in lanczos_iteration(matvec, q1, num_steps):
        pass
    return step.alpha, step.beta, step.Q.T


def _ritz_pairs(op, num_steps: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The Ritz values :math:`\\theta` and the eigenvectors :math:`U` of :math:`T_m` (float64), and the basis
    :math:`Q` (n, m), after ``num_steps`` Lanczos steps from the random start vector of ``seed``."""
    with torch.no_grad(), op.many_products():
        q1 = random_unit_vector(op.shape[0], op.dtype, op.device, seed)
        alpha, beta, Q = lanczos_tridiagonal(lambda v: op @ v, q1, num_steps)
    theta, U = torch.linalg.eigh(tridiagonal(alpha, beta))
    return theta, U, Q


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
        ``LanczosResult(values, vectors, iterations)``, values sorted in the order of ``which``;
        ``iterations`` is the Krylov dimension reached: fewer than ``num_steps`` when the start vector's
        Krylov space is exhausted (then fewer than ``k`` values come back if it holds fewer than ``k``
        distinct eigenvalues).

    Reference: Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 10.1.
    """
    owner = "lanczos"
    check_which(owner, which, WHICH)
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    n = op.shape[0]
    int_in_range(owner, "k", k, 1, n)
    num_steps = min(n, max(2 * k + 20, 40)) if num_steps is None else num_steps
    int_in_range(owner, "num_steps", num_steps, k, n)
    check_seed(owner, seed)
    theta, U, Q = _ritz_pairs(op, num_steps, seed)
    key = {"algebraic": -theta, "smallest": theta, "magnitude": -theta.abs()}[which]
    order = torch.argsort(key)[:k]
    return LanczosResult(theta[order].to(op.dtype), Q @ U[:, order].to(Q.dtype), theta.shape[0])


def spectral_density(op_or_tensor, *, num_probes: int = 10, num_steps: int | None = None, grid: Tensor | None = None,
                     num_points: int = 500, sigma: float | None = None, seed: int = 0) -> SpectralDensity:
    r"""Eigenvalue density :math:`\phi(t) = \frac1n\sum_i\delta(t-\lambda_i)` by stochastic Lanczos quadrature.

    .. math::

        \phi(t) \approx \frac1S \sum_{s=1}^S \sum_{k=1}^m \tau_k^{(s)}\, \frac{1}{\sigma\sqrt{2\pi}}
            \exp\!\Big(-\frac{(t - \theta_k^{(s)})^2}{2\sigma^2}\Big)

    Args:
        op_or_tensor: a curvature operator or a plain symmetric matrix.
        num_probes: :math:`S`, the number of random start vectors.
        num_steps: :math:`m`, Lanczos steps per probe, at most ``n`` (default ``min(n, 80)``).
        grid: points :math:`t` (default: ``num_points`` points spanning the nodes, with a margin).
        num_points: the size of the default grid.
        sigma: kernel width (default: 1% of the node range).
        seed: seed of the first probe (probe ``s`` uses ``seed + s``).

    Returns:
        ``SpectralDensity(grid, density, nodes, weights)``; the weights of each probe sum to 1.

    Reference: Ghorbani, B., Krishnan, S., Xiao, Y. (2019). An investigation into neural net optimization
    via Hessian eigenvalue density. ICML.
    """
    owner = "spectral_density"
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    n = op.shape[0]
    positive_int(owner, "num_probes", num_probes)
    num_steps = min(n, 80) if num_steps is None else num_steps
    int_in_range(owner, "num_steps", num_steps, 1, n)
    int_in_range(owner, "num_points", num_points, 2)
    positive(owner, "sigma", sigma, none_ok=True)
    check_seed(owner, seed)
    nodes, weights = _quadrature(op, num_probes, num_steps, seed)
    lo, hi = float(nodes.min()), float(nodes.max())
    width = max(hi - lo, 1e-12)
    if sigma is None:
        sigma = 0.01 * width
    if grid is None:
        grid = torch.linspace(lo - 0.05 * width - 3 * sigma, hi + 0.05 * width + 3 * sigma, num_points,
                              dtype=nodes.dtype)
    grid = torch.as_tensor(grid, dtype=nodes.dtype)
    check_shape(owner, "grid", grid.shape, grid.dim() == 1 and grid.numel() > 0, "(points,), a non-empty 1-D grid")
    kern = torch.exp(-((grid[:, None, None] - nodes[None]) ** 2) / (2 * sigma ** 2)) / (sigma * (2 * torch.pi) ** 0.5)
    density = (kern * weights[None]).sum((1, 2)) / num_probes
    return SpectralDensity(grid, density, nodes, weights)


def _quadrature(op, num_probes: int, num_steps: int, seed: int) -> tuple[Tensor, Tensor]:
    r"""Stochastic Lanczos quadrature's nodes :math:`\theta_k^{(s)}` and weights :math:`\tau_k^{(s)} = u_k[1]^2`,
    one row per probe (a probe whose Krylov space is exhausted early is padded with zero-weight nodes)."""
    nodes, weights = [], []
    with op.many_products():  # one cache for all the probes
        for s in range(num_probes):
            theta, U, _ = _ritz_pairs(op, num_steps, seed + s)
            pad = num_steps - theta.shape[0]
            nodes.append(torch.cat([theta, theta.new_zeros(pad)]))
            weights.append(torch.cat([U[0] ** 2, theta.new_zeros(pad)]))
    return torch.stack(nodes), torch.stack(weights)


def condition_number(op_or_tensor, *, num_steps: int | None = None, seed: int = 0) -> float:
    r"""Condition number :math:`\kappa = |\lambda|_{\max} / |\lambda|_{\min}` of a symmetric matrix or operator.

    For a positive-definite matrix this is the slides' :math:`\lambda_{\max}/\lambda_{\min}` (Zemel,
    "Ill-conditioned curvature"); for an indefinite one it is the 2-norm condition number. Returns
    ``inf`` for a singular matrix. Plain matrices use ``eigvalsh``; operators use Lanczos (smallest
    magnitudes converge slowly: the default Krylov dimension ``num_steps`` is ``n`` up to ``n = 200``,
    exact up to rounding, and 200 above; at most ``n``).

    Reference: Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 2.6.
    """
    owner = "condition_number"
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    n = op.shape[0]
    if isinstance(op, MatrixOperator):
        ev = torch.linalg.eigvalsh(op.A).abs()
    else:
        num_steps = min(n, 200) if num_steps is None else num_steps
        int_in_range(owner, "num_steps", num_steps, 1, n)
        check_seed(owner, seed)
        ev = _ritz_pairs(op, num_steps, seed)[0].abs()
    big, small = float(ev.max()), float(ev.min())
    scale = torch.finfo(op.dtype).eps * n * big
    return math.inf if small <= scale else big / small


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
    gap = float(gap)
    check("ritz_error_bound", "gap", gap, gap > 0, "a distance > 0 (or inf)")
    r = abs(float(beta_m) * float(s_m))
    return r if gap == math.inf else min(r, r * r / gap)


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
        ``iterations == max_iter`` means the tolerance was not reached; the iteration also ends, with an
        exact value, when the start vector's Krylov space is exhausted (after ``n`` products at most).

    References:
        Golub, G. H., Van Loan, C. F. (2013). Matrix Computations, 4th ed., section 10.1.
        Parlett, B. N. (1998). The Symmetric Eigenvalue Problem. SIAM, chapter 13.
    """
    owner = "lanczos_top_eigenpair"
    check_which(owner, which)
    check_iteration_args(owner, max_iter, tol)
    check_seed(owner, seed)
    op = as_operator(op_or_tensor, "op_or_tensor", owner)
    prev = None
    with torch.no_grad(), op.many_products():
        for step in lanczos_iteration(lambda v: op @ v, op.start_vector(seed), min(op.shape[0], max_iter)):
            value, s, bound = _top_ritz_pair(step, which)
            if prev is not None and abs(value - prev) <= tol * abs(value) and bound <= tol * abs(value):
                break
            prev = value
    vec = s.to(step.Q.dtype) @ step.Q
    return Eigenpair(value, vec / vec.norm(), step.Q.shape[0])


def _top_ritz_pair(step: LanczosStep, which: str) -> tuple[float, Tensor, float]:
    r"""The top Ritz value :math:`\theta`, its eigenvector :math:`s` of :math:`T_j` and :func:`ritz_error_bound`.

    The gap to the rest of the spectrum: each other Ritz value :math:`\theta_k` is within its residual
    :math:`r_k = |\beta_j s_{jk}|` of an eigenvalue, so the rest is at least :math:`|\theta_k - \theta| - r_k`
    away; without a positive estimate the bound is the residual alone.
    """
    theta, U = torch.linalg.eigh(tridiagonal(step.alpha, step.beta))
    i = int(torch.argmax(theta if which == "algebraic" else theta.abs()))
    value = float(theta[i])
    dist = (theta - value).abs() - (step.residual * U[-1]).abs()
    dist = torch.cat([dist[:i], dist[i + 1:]])
    gap = float(dist.min()) if dist.numel() else math.inf
    return value, U[:, i], ritz_error_bound(step.residual, U[-1, i], gap if gap > 0 else math.inf)
