r"""Momentum (heavy ball) in closed form: terminal velocity, characteristic roots, regimes, noise.

The slides' form (Zemel, COMS 4995 lecture 4, seed 001), with velocity :math:`p`, learning rate
:math:`\alpha`, momentum (damping) :math:`\mu` and gradient :math:`g_k = \nabla J(\theta_k)`:

.. math::

    p_{k+1} = \mu p_k - \alpha g_k, \qquad \theta_{k+1} = \theta_k + p_{k+1}, \qquad p_0 = 0.

*Inclined plane* (constant gradient :math:`g`): :math:`p_k = -\alpha g\,(1-\mu^k)/(1-\mu)`, which tends to
the terminal velocity :math:`-\alpha g/(1-\mu)`; the approach :math:`1-\mu^k` reaches 90% after
:math:`\lceil \ln 10 / (-\ln\mu) \rceil \approx \ln 10/(1-\mu)` steps.

*Quadratic* :math:`J = \tfrac12\lambda\theta^2`: :math:`\theta_{k+1} = (1+\mu-\alpha\lambda)\theta_k - \mu\theta_{k-1}`,
whose characteristic roots solve :math:`r^2 - (1+\mu-\alpha\lambda)r + \mu = 0`. The error shrinks like
:math:`\max|r|^k`. The product of the roots is :math:`\mu`, so when they are complex (underdamped)
:math:`|r| = \sqrt{\mu}` -- not :math:`2\sqrt{\mu}`, as an often-read interactive article prints. The
discriminant vanishes (critical damping) at :math:`\mu^* = (1-\sqrt{\alpha\lambda})^2`; above it the
iteration is underdamped, below it overdamped; it diverges once :math:`\alpha\lambda > 2(1+\mu)`.

*Noise*: with gradients :math:`g + \sigma\xi_k` (:math:`\xi_k` standard normal) the velocity fluctuates
around its terminal value with the stationary variance :math:`\alpha^2\sigma^2/(1-\mu^2)`
(:math:`p` is an AR(1) process with coefficient :math:`\mu` driven by noise of variance
:math:`\alpha^2\sigma^2`).

*Conventions*: ``torch.optim.SGD`` keeps :math:`b \leftarrow \mu b + g`, :math:`\theta \leftarrow \theta - \alpha b`
(Misra's slides, seed 003: :math:`v = \alpha b`, :math:`\theta \leftarrow \theta - v`): the same path with
:math:`p = -\alpha b`. Nesterov (Sutskever et al. 2013) evaluates the gradient at the look-ahead point,
:math:`p_{k+1} = \mu p_k - \alpha\nabla J(\theta_k + \mu p_k)`; torch's Nesterov iterates are exactly those
look-ahead points :math:`\theta_k + \mu p_k`. Misra's NAG slide writes :math:`v_{t+1} = \alpha f'(\theta_{t+1/2})`
without the :math:`\mu v_t` term; the published update (used here) keeps it.

References: B. T. Polyak (1964), "Some methods of speeding up the convergence of iteration methods";
I. Sutskever, J. Martens, G. Dahl, G. Hinton (2013), "On the importance of initialization and momentum
in deep learning"; G. Goh (2017), "Why momentum really works", Distill.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import check, finite, in_interval, in_unit_interval, non_negative, non_negative_int

OVERDAMPED = "overdamped"
CRITICAL = "critically damped"
UNDERDAMPED = "underdamped"
NO_DECAY = "no decay (rate 1)"
DIVERGENT = "divergent"
#: every label :func:`heavy_ball_regime` returns
MOMENTUM_REGIMES = (OVERDAMPED, CRITICAL, UNDERDAMPED, NO_DECAY, DIVERGENT)


def _check(owner: str, alpha, mu, lam=None) -> None:
    non_negative(owner, "alpha", alpha)
    in_unit_interval(owner, "mu", mu)
    if lam is not None:
        finite(owner, "lam", lam)


def terminal_velocity(alpha: float, mu: float, g: float = 1.0) -> float:
    r"""The velocity on a plane of constant gradient ``g``: :math:`-\alpha g/(1-\mu)`.

    Example:
        >>> terminal_velocity(0.1, 0.9, 2.0)
        -2.0000000000000004
    """
    _check("terminal_velocity", alpha, mu)
    finite("terminal_velocity", "g", g)
    return -alpha * g / (1.0 - mu)


def plane_velocities(alpha: float, mu: float, g: float, k: int) -> np.ndarray:
    r"""The velocities :math:`p_0..p_k` on the plane: :math:`-\alpha g (1-\mu^j)/(1-\mu)`.

    Example:
        >>> plane_velocities(0.5, 0.5, 1.0, 3)
        array([ 0.   , -0.5  , -0.75 , -0.875])
    """
    non_negative_int("plane_velocities", "k", k)
    return -terminal_velocity(alpha, mu, g) * (float(mu) ** np.arange(k + 1) - 1.0)


def steps_to_fraction(mu: float, fraction: float = 0.9) -> int:
    r"""The first step :math:`k \ge 1` with :math:`1-\mu^k \ge` ``fraction`` (of the terminal velocity).

    About :math:`\ln(1/(1-\text{fraction}))/(1-\mu)` for :math:`\mu` near 1 (:math:`\ln 10/(1-\mu)` for 90%).

    Example:
        >>> steps_to_fraction(0.9), round(float(np.log(10) / (1 - 0.9)), 1), steps_to_fraction(0.0)
        (22, 23.0, 1)
    """
    in_unit_interval("steps_to_fraction", "mu", mu)
    in_interval("steps_to_fraction", "fraction", fraction, 0.0, 1.0, open_low=True, open_high=True)
    if mu == 0:
        return 1
    return max(1, int(np.ceil(np.log(1.0 - fraction) / np.log(mu) - 1e-12)))


def heavy_ball_roots(alpha: float, mu: float, lam: float) -> tuple[complex, complex]:
    r"""The roots of :math:`r^2 - (1+\mu-\alpha\lambda)r + \mu = 0`, the larger modulus first.

    Example:
        >>> r1, r2 = heavy_ball_roots(0.1, 0.81, 1.0)   # complex: |r| = sqrt(mu) = 0.9
        >>> round(float(abs(r1)), 12), round(float(abs(r2)), 12)
        (0.9, 0.9)
    """
    _check("heavy_ball_roots", alpha, mu, lam)
    b = 1.0 + mu - alpha * lam
    root = np.sqrt(complex(b * b - 4.0 * mu))
    r1, r2 = (b + root) / 2.0, (b - root) / 2.0
    return (r1, r2) if abs(r1) >= abs(r2) else (r2, r1)


def heavy_ball_discriminant(alpha: float, mu: float, lam: float) -> float:
    r""":math:`(1+\mu-\alpha\lambda)^2 - 4\mu`: > 0 real roots, 0 a double root, < 0 complex roots."""
    _check("heavy_ball_discriminant", alpha, mu, lam)
    return (1.0 + mu - alpha * lam) ** 2 - 4.0 * mu


def heavy_ball_rate(alpha: float, mu: float, lam: float) -> float:
    r"""The convergence rate :math:`\max|r|` (< 1 iff the iteration converges; :math:`\sqrt\mu` if underdamped)."""
    _check("heavy_ball_rate", alpha, mu, lam)
    return float(heavy_ball_rate_grid(alpha * lam, mu))


def heavy_ball_rate_grid(alpha_lambda, mu) -> np.ndarray:
    r""":math:`\max|r|` for arrays of :math:`\alpha\lambda` and :math:`\mu` (broadcast): a regime map in one call.

    Example:
        >>> heavy_ball_rate_grid(np.array([0.25, 1.0, 5.0]), 0.25)
        array([0.5       , 0.5       , 3.68210404])
    """
    x, mu = np.asarray(alpha_lambda, dtype=float), np.asarray(mu, dtype=float)
    b = 1.0 + mu - x
    root = np.sqrt((b * b - 4.0 * mu).astype(complex))
    return np.maximum(np.abs(b + root), np.abs(b - root)) / 2.0


def critical_momentum(alpha: float, lam: float) -> float:
    r"""The critical damping :math:`\mu^* = (1-\sqrt{\alpha\lambda})^2` (the double root), for :math:`\alpha\lambda \ge 0`.

    Example:
        >>> critical_momentum(0.25, 1.0)
        0.25
    """
    non_negative("critical_momentum", "alpha", alpha)
    finite("critical_momentum", "lam", lam)
    check("critical_momentum", "lam", lam, alpha * lam >= 0, "lam >= 0 (a convex quadratic)")
    return float((1.0 - np.sqrt(alpha * lam)) ** 2)


def heavy_ball_regime(alpha: float, mu: float, lam: float, *, tol: float = 1e-12) -> str:
    """The regime: one of :data:`MOMENTUM_REGIMES` (discriminant and rate compared up to ``tol``).

    Example:
        >>> [heavy_ball_regime(0.25, mu, 1.0) for mu in (0.1, 0.25, 0.5)]
        ['overdamped', 'critically damped', 'underdamped']
        >>> heavy_ball_regime(1.0, 0.2, 2.5)   # alpha*lambda = 2.5 > 2(1 + mu) = 2.4
        'divergent'
    """
    rate = heavy_ball_rate(alpha, mu, lam)
    if rate > 1.0 + tol:
        return DIVERGENT
    if rate >= 1.0 - tol:
        return NO_DECAY
    d = heavy_ball_discriminant(alpha, mu, lam)
    if abs(d) <= tol:
        return CRITICAL
    return OVERDAMPED if d > 0 else UNDERDAMPED


def heavy_ball_path(alpha: float, mu: float, lam: float, theta0: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    r"""The slides' iteration on :math:`J = \tfrac12\lambda\theta^2`: :math:`(\theta_0..\theta_k,\ p_0..p_k)`, :math:`p_0 = 0`.

    A diverging run overflows to ``inf``/``nan`` silently (no warning): callers say "diverged".

    Example:
        >>> heavy_ball_path(0.5, 0.5, 1.0, 1.0, 2)[0]
        array([1. , 0.5, 0. ])
    """
    return _momentum_path("heavy_ball_path", alpha, mu, lam, theta0, k, lookahead=False)


def nesterov_path(alpha: float, mu: float, lam: float, theta0: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Nesterov's momentum (Sutskever et al. 2013) on :math:`\tfrac12\lambda\theta^2`:
    :math:`p_{k+1} = \mu p_k - \alpha\lambda(\theta_k + \mu p_k)`, :math:`\theta_{k+1} = \theta_k + p_{k+1}`.

    Returns :math:`(\theta_0..\theta_k,\ p_0..p_k)`; torch's Nesterov iterates are :math:`\theta_j + \mu p_j`.

    Example:
        >>> nesterov_path(0.5, 0.5, 1.0, 1.0, 2)[0]
        array([1.   , 0.5  , 0.125])
    """
    return _momentum_path("nesterov_path", alpha, mu, lam, theta0, k, lookahead=True)


def _momentum_path(owner: str, alpha: float, mu: float, lam: float, theta0: float, k: int, *,
                   lookahead: bool) -> tuple[np.ndarray, np.ndarray]:
    r"""The momentum iteration with its gradient at :math:`\theta_j` or, ``lookahead``, at :math:`\theta_j + \mu p_j`."""
    _check(owner, alpha, mu, lam)
    finite(owner, "theta0", theta0)
    non_negative_int(owner, "k", k)
    theta, p = np.empty(k + 1), np.empty(k + 1)
    theta[0], p[0] = theta0, 0.0
    with np.errstate(all="ignore"):
        for j in range(k):
            at = theta[j] + mu * p[j] if lookahead else theta[j]
            p[j + 1] = mu * p[j] - alpha * (lam * at)
            theta[j + 1] = theta[j] + p[j + 1]
    return theta, p


def stationary_velocity_variance(alpha: float, mu: float, sigma: float) -> float:
    r"""The variance of the velocity's fluctuation under gradient noise of std ``sigma``: :math:`\alpha^2\sigma^2/(1-\mu^2)`.

    Example:
        >>> stationary_velocity_variance(0.1, 0.0, 1.0), round(stationary_velocity_variance(0.1, 0.9, 1.0), 6)
        (0.010000000000000002, 0.052632)
    """
    _check("stationary_velocity_variance", alpha, mu)
    non_negative("stationary_velocity_variance", "sigma", sigma)
    return alpha * alpha * sigma * sigma / (1.0 - mu * mu)


def noisy_plane_velocities(alpha: float, mu: float, g: float, sigma: float, n: int, seed: int = 0) -> np.ndarray:
    r"""A seeded run on the plane with gradients :math:`g + \sigma\xi_k`: the velocities :math:`p_1..p_n`.

    Example:
        >>> p = noisy_plane_velocities(0.1, 0.9, 1.0, 0.5, 20000, seed=0)
        >>> round(float(p[2000:].var()) / stationary_velocity_variance(0.1, 0.9, 0.5), 1)
        1.0
    """
    from scipy.signal import lfilter

    _check("noisy_plane_velocities", alpha, mu)
    finite("noisy_plane_velocities", "g", g)
    non_negative("noisy_plane_velocities", "sigma", sigma)
    non_negative_int("noisy_plane_velocities", "n", n)
    grads = g + sigma * _standard_normals(n, seed)
    return lfilter([-alpha], [1.0, -mu], grads)  # p_k = mu p_{k-1} - alpha g_k, p_0 = 0


@functools.lru_cache(maxsize=4)
def _standard_normals(n: int, seed: int) -> np.ndarray:
    """The seeded noise, drawn once per (n, seed): a widget redraws its run on every slider event."""
    xi = np.random.default_rng(seed).standard_normal(n)
    xi.flags.writeable = False
    return xi
