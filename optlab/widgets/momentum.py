r"""Momentum explorer: terminal velocity, heavy-ball roots and regimes, conventions, gradient noise.

Model (:func:`momentum_model`): numbers only, from the closed forms of :mod:`optlab.problems.momentum`
plus two real ``optlab.optim.SGD`` runs (momentum and Nesterov) for the conventions panel. View
(:class:`MomentumExplorer`): sliders for :math:`\alpha`, :math:`\mu`, the curvature :math:`\lambda`, the
plane's gradient :math:`g` and the gradient noise :math:`\sigma`; four panels built once:

* *inclined plane*: the step :math:`p_k` over :math:`k` in units of the terminal velocity
  :math:`-\alpha g/(1-\mu)` -- the approach :math:`1-\mu^k`, the step where it reaches 90% and the
  estimate :math:`\ln 10/(1-\mu)`, and a seeded noisy run with the predicted band
  :math:`\pm 2\sqrt{\alpha^2\sigma^2/(1-\mu^2)}`;
* *quadratic*: :math:`\theta_k` of the heavy ball on :math:`\tfrac12\lambda\theta^2` with the envelope
  :math:`\pm\max|r|^k`;
* *regime map* over :math:`(\alpha\lambda, \mu)`, computed once: the rate :math:`\max|r|`, the critical
  damping curve :math:`\mu^* = (1-\sqrt{\alpha\lambda})^2` and the divergence line
  :math:`\alpha\lambda = 2(1+\mu)`, with the current point;
* *conventions*: the slides' form, ``torch.optim.SGD``'s form run by ``optlab.optim.SGD`` (the same path
  with :math:`p = -\alpha b`) and Nesterov (torch's iterates are the look-ahead points :math:`\theta+\mu p`).

Slides: R. Zemel, COMS 4995 lecture 4 (seed 001), "Momentum" (the puck, :math:`\mu` below 1, the
terminal velocity); I. Misra, "Optimization for Deep Networks" (seed 003), SGD + momentum and NAG.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..errors import check, finite, in_unit_interval, non_negative, positive_int
from ..problems.momentum import (critical_momentum, heavy_ball_discriminant, heavy_ball_path, heavy_ball_rate_grid,
                                 heavy_ball_regime, heavy_ball_roots, nesterov_path, noisy_plane_velocities,
                                 stationary_velocity_variance, steps_to_fraction, terminal_velocity)
from ._figure import FigureImage
from ._palette import CURRENT, OKABE_ITO, mark_style, series_style
from ._state import WidgetState
from ._view import KEYS_HELP, WidgetView, html_table, number

OWNER = "MomentumExplorer"


@dataclass(frozen=True)
class MomentumState(WidgetState):
    """What the explorer shows, as numbers (``to_dict()`` for a grader)."""

    alpha: float  #: learning rate
    mu: float  #: momentum (damping) in [0, 1)
    lam: float  #: curvature of the quadratic
    g: float  #: the plane's constant gradient
    sigma: float  #: gradient-noise standard deviation
    # inclined plane
    k_plane: np.ndarray  #: steps 0..k_plane
    velocity: np.ndarray  #: p_k on the plane (no noise)
    terminal: float  #: -alpha g/(1 - mu)
    steps_90: int  #: first k with 1 - mu^k >= 0.9
    steps_90_estimate: float  #: ln 10/(1 - mu)
    # quadratic
    k_quad: np.ndarray  #: steps 0..k_quad
    theta: np.ndarray  #: heavy-ball theta_k on lam theta^2/2 from theta0
    roots_real: np.ndarray  #: real parts of the two characteristic roots (larger modulus first)
    roots_imag: np.ndarray  #: imaginary parts
    discriminant: float  #: (1 + mu - alpha lam)^2 - 4 mu
    rate: float  #: max |r|
    sqrt_mu: float  #: sqrt(mu): the rate whenever the roots are complex
    mu_critical: float  #: (1 - sqrt(alpha lam))^2
    regime: str  #: one of optlab.problems.MOMENTUM_REGIMES
    diverged: bool  #: rate > 1 (theta grows without bound)
    # conventions (theta_0..theta_k_conv on the same quadratic)
    theta_slides: np.ndarray  #: p <- mu p - alpha g, theta <- theta + p
    theta_torch: np.ndarray  #: optlab.optim.SGD(lr=alpha, momentum=mu): b <- mu b + g, theta <- theta - alpha b
    lookahead_nesterov: np.ndarray  #: Sutskever's Nesterov in the slides' form: theta_k + mu p_k
    theta_torch_nesterov: np.ndarray  #: optlab.optim.SGD(..., nesterov=True) (plain SGD when mu = 0)
    deviation: float | None  #: max |theta_torch - theta_slides| / max(1, max |theta_slides|), finite steps (None: none)
    deviation_nesterov: float | None  #: the same for theta_torch_nesterov against lookahead_nesterov
    # noise on the plane
    var_predicted: float  #: alpha^2 sigma^2/(1 - mu^2)
    var_measured: float  #: variance of p_k on the seeded run after its burn-in
    noise_samples: int  #: steps the measured variance averages over
    noisy_velocity: np.ndarray  #: p_0..p_k_plane of the seeded noisy run (shown)


def sgd_paths(alpha: float, mu: float, lam: float, theta0: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    r"""``optlab.optim.SGD`` on :math:`\tfrac12\lambda\theta^2` from ``theta0``, with momentum and with Nesterov.

    One optimizer, two parameter groups (``nesterov=False`` and ``nesterov=True``, one step call for
    both); the gradient :math:`\lambda\theta` is set by hand (no autograd: a loop a student can read).
    Returns the two paths :math:`\theta_0..\theta_{steps}`. With ``mu == 0`` Nesterov is plain SGD
    (torch refuses ``nesterov=True`` without momentum).
    """
    import torch

    from ..optim import SGD

    plain, nag = (torch.tensor([float(theta0)], dtype=torch.float64, requires_grad=True) for _ in range(2))
    opt = SGD([{"params": [plain]}, {"params": [nag], "nesterov": mu > 0}], lr=alpha, momentum=mu,
              kernel="reference")  # the readable kernel: fastest on one number, no compilation
    out = np.empty((2, steps + 1))
    out[:, 0] = theta0
    for k in range(steps):
        for theta in (plain, nag):
            theta.grad = lam * theta.detach()
        opt.step()
        out[0, k + 1], out[1, k + 1] = plain.item(), nag.item()
    return out[0], out[1]


def _max_deviation(a: np.ndarray, b: np.ndarray) -> float | None:
    """max |a - b| relative to max(1, max |b|), over the steps where both are finite (None: none are)."""
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return None
    with np.errstate(all="ignore"):
        scale = max(1.0, float(np.max(np.abs(b[ok]))))
        value = float(np.max(np.abs(a[ok] - b[ok]))) / scale
    return value if math.isfinite(value) else None


def momentum_model(alpha: float, mu: float, lam: float = 1.0, g: float = 1.0, sigma: float = 0.0, *,
                   theta0: float = 1.0, k_plane: int = 250, k_quad: int = 100, k_conv: int = 40,
                   noise_steps: int = 20_000, seed: int = 0) -> MomentumState:
    r"""Everything the explorer shows for learning rate ``alpha``, momentum ``mu``, curvature ``lam``, plane
    gradient ``g`` and gradient noise ``sigma``.

    Example:
        >>> s = momentum_model(alpha=0.1, mu=0.81, lam=1.0)
        >>> s.regime, round(s.rate, 6), round(s.sqrt_mu, 6), s.steps_90
        ('underdamped', 0.9, 0.9, 11)
    """
    non_negative(OWNER, "alpha", alpha)
    in_unit_interval(OWNER, "mu", mu)
    finite(OWNER, "lam", lam)
    check(OWNER, "lam", lam, lam > 0, "a finite number > 0 (the curvature of a bowl)")
    finite(OWNER, "g", g)
    check(OWNER, "g", g, g != 0, "a finite number != 0 (the plane's slope)")
    non_negative(OWNER, "sigma", sigma)
    for name, value in [("k_plane", k_plane), ("k_quad", k_quad), ("k_conv", k_conv), ("noise_steps", noise_steps)]:
        positive_int(OWNER, name, value)
    alpha, mu, lam, g, sigma = float(alpha), float(mu), float(lam), float(g), float(sigma)
    k = np.arange(k_plane + 1)
    terminal = terminal_velocity(alpha, mu, g)
    with np.errstate(all="ignore"):
        velocity = -terminal * (mu ** k - 1.0)
    r1, r2 = heavy_ball_roots(alpha, mu, lam)
    rate = float(heavy_ball_rate_grid(alpha * lam, mu))
    theta, _ = heavy_ball_path(alpha, mu, lam, theta0, k_quad)
    theta_nag, p_nag = nesterov_path(alpha, mu, lam, theta0, k_conv)
    with np.errstate(all="ignore"):
        lookahead = theta_nag + mu * p_nag
    theta_torch, theta_torch_nag = sgd_paths(alpha, mu, lam, theta0, k_conv)
    noisy = noisy_plane_velocities(alpha, mu, g, sigma, noise_steps, seed)
    burn = min(noise_steps // 2, math.ceil(10.0 / (1.0 - mu)))
    return MomentumState(
        alpha=alpha, mu=mu, lam=lam, g=g, sigma=sigma,
        k_plane=k, velocity=velocity, terminal=terminal, steps_90=steps_to_fraction(mu, 0.9),
        steps_90_estimate=float(np.log(10.0) / (1.0 - mu)),
        k_quad=np.arange(k_quad + 1), theta=theta, roots_real=np.array([r1.real, r2.real]),
        roots_imag=np.array([r1.imag, r2.imag]), discriminant=heavy_ball_discriminant(alpha, mu, lam), rate=rate,
        sqrt_mu=math.sqrt(mu), mu_critical=critical_momentum(alpha, lam), regime=heavy_ball_regime(alpha, mu, lam),
        diverged=rate > 1.0 + 1e-12,
        theta_slides=theta[:k_conv + 1] if k_conv <= k_quad else heavy_ball_path(alpha, mu, lam, theta0, k_conv)[0],
        theta_torch=theta_torch, lookahead_nesterov=lookahead, theta_torch_nesterov=theta_torch_nag,
        deviation=_max_deviation(theta_torch, theta[:k_conv + 1] if k_conv <= k_quad else
                                 heavy_ball_path(alpha, mu, lam, theta0, k_conv)[0]),
        deviation_nesterov=_max_deviation(theta_torch_nag, lookahead),
        var_predicted=stationary_velocity_variance(alpha, mu, sigma), var_measured=float(np.var(noisy[burn:])),
        noise_samples=noise_steps - burn, noisy_velocity=np.concatenate([[0.0], noisy[:k_plane]]),
    )


def _root_text(re: float, im: float) -> str:
    if abs(im) < 1e-15:
        return number(re, ".4g")
    return f"{number(re, '.4g')} {'+' if im > 0 else '-'} {number(abs(im), '.4g')}i"


def readouts_html(s: MomentumState) -> str:
    """The readout table: quantity, value, and the closed form it comes from."""
    dev = "diverged" if s.deviation is None else f"{s.deviation:.1e}"
    dev_n = "diverged" if s.deviation_nesterov is None else f"{s.deviation_nesterov:.1e}"
    ratio = s.var_measured / s.var_predicted if s.var_predicted > 0 else None
    rows = [
        ["terminal velocity p∞", number(s.terminal), "−αg/(1−μ)"],
        ["steps to 90% of p∞", str(s.steps_90), "first k with 1−μ^k ≥ 0.9"],
        ["estimate ln10/(1−μ)", number(s.steps_90_estimate, ".3g"), "ln 10/(1−μ)"],
        ["roots r₁, r₂", f"{_root_text(s.roots_real[0], s.roots_imag[0])}, "
                         f"{_root_text(s.roots_real[1], s.roots_imag[1])}", "r² − (1+μ−αλ)r + μ = 0"],
        ["regime", s.regime, "discriminant " + number(s.discriminant, ".3g")],
        ["rate max|r|", number(s.rate, ".4f"), "= √μ when the roots are complex"],
        ["√μ", number(s.sqrt_mu, ".4f"), ""],
        ["critical μ*", number(s.mu_critical, ".4f"), "(1−√(αλ))²"],
        ["velocity variance, predicted", number(s.var_predicted, ".4g"), "α²σ²/(1−μ²)"],
        ["velocity variance, measured", number(s.var_measured, ".4g"),
         f"seeded run, {s.noise_samples} steps" + ("" if ratio is None else f" (ratio {number(ratio, '.3f')})")],
        ["torch vs slides: max difference", dev, "SGD(momentum=μ) with p = −α·b (relative to max(1, |θ|))"],
        ["torch Nesterov vs θ+μp", dev_n, "SGD(nesterov=True) = the look-ahead points (relative)"],
    ]
    return html_table(["quantity", "value", "closed form / source"], rows, css_class="optlab-momentum-readouts")


class MomentumExplorer(WidgetView):
    r"""Interactive view of :func:`momentum_model`: the puck on a plane, the heavy ball in a bowl, the regime map.

    Args:
        alpha, mu, lam, g, sigma: the starting values (learning rate, momentum, curvature, the plane's
            gradient, gradient-noise std); each must lie in its slider's range.

    Sliders: :math:`\alpha \in [0, 1]` (step 0.01), :math:`\mu \in [0, 0.99]` (step 0.01),
    :math:`\lambda \in [0.1, 4]` (step 0.05), :math:`g \in [0.1, 2]` (step 0.1), :math:`\sigma \in [0, 2]`
    (step 0.05): with :math:`\alpha\lambda` up to 4 every regime, divergence included, is reachable.
    Arrow keys move one step, PageUp/PageDown five, Home/End to the ends. ``view.set(mu=0.9)`` moves a
    slider exactly as a student does; ``view.state`` is the model's :class:`MomentumState`.

    Slides: Zemel, COMS 4995 lecture 4 (seed 001), "Momentum"; Misra (seed 003), SGD + momentum, NAG.

    Example:
        >>> view = MomentumExplorer()
        >>> view.set(alpha=0.25, lam=1.0, mu=0.25)   # mu = mu* = (1 - sqrt(0.25))^2
        >>> view.state.regime, view.state.rate
        ('critically damped', 0.5)
        >>> view.set(mu=0.64)
        >>> view.state.regime, round(view.state.rate, 12)   # complex roots: the rate is sqrt(mu)
        ('underdamped', 0.8)
    """

    RANGES = {  # name: (min, max, step, description, tooltip)
        "alpha": (0.0, 1.0, 0.01, "α", "learning rate alpha"),
        "mu": (0.0, 0.99, 0.01, "μ", "momentum mu (damping; below 1)"),
        "lam": (0.1, 4.0, 0.05, "λ", "curvature lambda of the quadratic bowl"),
        "g": (0.1, 2.0, 0.1, "g", "constant gradient g of the inclined plane"),
        "sigma": (0.0, 2.0, 0.05, "σ", "gradient noise: standard deviation sigma"),
    }

    def __init__(self, alpha: float = 0.1, mu: float = 0.9, lam: float = 1.0, g: float = 1.0, sigma: float = 0.5):
        start = {"alpha": alpha, "mu": mu, "lam": lam, "g": g, "sigma": sigma}
        momentum_model(**start)  # the model's own checks first
        self.controls = {}
        for name, (low, high, step, desc, tip) in self.RANGES.items():
            value = start[name]
            check(OWNER, name, value, low <= value <= high, f"a number in [{low:g}, {high:g}] (the slider's range)")
            self.controls[name] = widgets.FloatSlider(
                value=value, min=low, max=high, step=step, description=desc, tooltip=tip, readout_format=".2f",
                continuous_update=True, layout=widgets.Layout(width="24em"))
        self.readouts = widgets.HTML()
        help_text = widgets.HTML(
            "<div style='font-size:90%;color:#444'>α learning rate, μ momentum, λ the bowl's curvature, g the "
            f"plane's slope, σ gradient noise. {html.escape(KEYS_HELP)}</div>")
        self._fig = FigureImage(nrows=2, ncols=2, figsize=(11.0, 6.6))
        first = momentum_model(**start)
        self._build_figure(first)
        sliders = list(self.controls.values())
        self.widget = widgets.VBox([widgets.HBox([widgets.VBox(sliders[:3]), widgets.VBox(sliders[3:])]), help_text,
                                    self._fig.image, self.readouts])
        self.widget.add_class("optlab-widget-momentum")
        self._connect()

    # ----- the figure: built once ---------------------------------------------------------------------

    def _build_figure(self, s: MomentumState) -> None:
        ax_p, ax_q, ax_m, ax_c = self._fig.axes
        st = [series_style(i) for i in range(4)]
        moving = []
        # inclined plane, in units of the terminal velocity
        ax_p.axhline(1.0, color="0.3", lw=1.0)
        self._plane_noisy, = ax_p.plot(s.k_plane, s.k_plane * 0.0, color=OKABE_ITO["sky blue"], lw=0.8,
                                       label="noisy run (seeded)")
        self._plane_band = [ax_p.plot(s.k_plane, s.k_plane * 0.0, lw=1.2, **mark_style(1))[0] for _ in range(2)]
        self._plane_band[0].set_label(r"$\pm 2\sqrt{\alpha^2\sigma^2/(1-\mu^2)}$ (predicted)")
        self._plane_line, = ax_p.plot(s.k_plane, s.k_plane * 0.0, lw=2.0, color=st[0]["color"],
                                      linestyle=st[0]["linestyle"], marker=st[0]["marker"], markevery=25, ms=4,
                                      label=r"$p_k/p_\infty = 1-\mu^k$")
        self._k90 = ax_p.axvline(0, lw=1.3, label=r"90% reached", **mark_style(0))
        self._k90_estimate = ax_p.axvline(0, lw=1.3, label=r"$\ln 10/(1-\mu)$", **mark_style(2))
        moving += [self._plane_noisy, *self._plane_band, self._plane_line, self._k90, self._k90_estimate]
        ax_p.set(xlabel=r"step $k$", ylabel=r"$p_k\,/\,p_\infty$", ylim=(-0.6, 2.6),
                 xlim=(-2, s.k_plane[-1] + 2), title=r"inclined plane: $p_\infty = -\alpha g/(1-\mu)$")
        # quadratic
        ax_q.axhline(0.0, color="0.6", lw=0.8)
        self._quad_line, = ax_q.plot(s.k_quad, s.k_quad * 0.0, lw=1.2, ms=3, label=r"$\theta_k$ (heavy ball)",
                                     **st[1])
        self._envelope = [ax_q.plot(s.k_quad, s.k_quad * 0.0, lw=1.2, **mark_style(0))[0] for _ in range(2)]
        self._envelope[0].set_label(r"$\pm\max|r|^k$")
        moving += [self._quad_line, *self._envelope]
        ax_q.set(xlabel=r"step $k$", ylabel=r"$\theta_k$", ylim=(-1.6, 1.6), xlim=(-1, s.k_quad[-1] + 1),
                 title=r"quadratic $\frac{1}{2}\lambda\theta^2$ from $\theta_0=1$")
        # regime map over (alpha*lambda, mu): computed once
        x = np.linspace(0.0, 4.2, 300)
        m = np.linspace(0.0, 0.99, 200)
        rate = heavy_ball_rate_grid(x[None, :], m[:, None])
        image = ax_m.imshow(np.clip(rate, 0, 1.0), origin="lower", extent=(x[0], x[-1], m[0], m[-1]), aspect="auto",
                            cmap="cividis", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax_m.contourf(x, m, (rate > 1).astype(float), levels=[0.5, 1.5], colors="none", hatches=["///"])
        xc = np.linspace(0.0, 4.0, 200)
        ax_m.plot(xc, (1.0 - np.sqrt(xc)) ** 2, color="white", lw=1.8, linestyle=(0, (4, 2)))
        ax_m.plot(2.0 * (1.0 + m), m, color="white", lw=1.8)
        for text, xy in [("overdamped", (0.05, 0.05)), ("underdamped", (1.0, 0.75)), ("divergent", (3.35, 0.1))]:
            ax_m.text(*xy, text, color="white" if text != "divergent" else "black", fontsize=9,
                      bbox=dict(fc="black" if text != "divergent" else "white", alpha=0.45, ec="none"))
        self._fig.figure.colorbar(image, ax=ax_m, label=r"rate $\max|r|$ (clipped at 1)")
        self._point, = ax_m.plot([0], [0], marker="*", ms=16, color=CURRENT["color"], markeredgecolor="black",
                                 linestyle="none", label="current setting")
        moving.append(self._point)
        ax_m.set(xlabel=r"$\alpha\lambda$", ylabel=r"$\mu$",
                 title=r"regimes over $(\alpha\lambda, \mu)$; dashed: $\mu^*=(1-\sqrt{\alpha\lambda})^2$")
        # conventions
        kc = np.arange(len(s.theta_slides))
        ax_c.axhline(0.0, color="0.6", lw=0.8)
        self._conv = [
            ax_c.plot(kc, kc * 0.0, lw=1.4, ms=5, label=r"slides: $p\leftarrow\mu p-\alpha g$", **st[0])[0],
            ax_c.plot(kc, kc * 0.0, linestyle="none", marker="x", ms=7, color="black",
                      label=r"torch SGD: $b\leftarrow\mu b+g$ ($p=-\alpha b$)")[0],
            ax_c.plot(kc, kc * 0.0, lw=1.4, ms=5, label=r"Nesterov (slides' form): $\theta_k+\mu p_k$",
                      **st[2])[0],
            ax_c.plot(kc, kc * 0.0, linestyle="none", marker="+", ms=9, color="black",
                      label="torch SGD nesterov=True")[0],
        ]
        moving += self._conv
        ax_c.set(xlabel=r"step $k$", ylabel=r"$\theta_k$", ylim=(-1.6, 1.6), xlim=(-1, kc[-1] + 1),
                 title="conventions: one path, two notations")
        handles = [self._plane_line, self._plane_noisy, self._plane_band[0], self._k90, self._k90_estimate,
                   self._quad_line, self._envelope[0], self._point, *self._conv]
        self._fig.figure.legend(handles=handles, loc="outside right upper", fontsize="small")
        self._fig.animate(moving)

    # ----- the shared path ----------------------------------------------------------------------------

    def _compute(self, values: dict) -> MomentumState:
        return momentum_model(**values)

    def _show(self, s: MomentumState) -> None:
        self.readouts.value = readouts_html(s)

    def _draw(self, s: MomentumState) -> None:
        with np.errstate(all="ignore"):
            unit = abs(s.terminal) if s.terminal != 0 else 1.0
            sign = -1.0 if s.terminal < 0 else 1.0  # plot p_k/p_inf: positive towards the terminal value
            self._plane_line.set_ydata(s.velocity / s.terminal if s.terminal != 0 else 1.0 - s.mu ** s.k_plane)
            self._plane_noisy.set_ydata(sign * s.noisy_velocity / unit)
            half = 2.0 * math.sqrt(s.var_predicted) / unit
            self._plane_band[0].set_ydata(np.full(len(s.k_plane), 1.0 + half))
            self._plane_band[1].set_ydata(np.full(len(s.k_plane), 1.0 - half))
            self._k90.set_xdata([s.steps_90, s.steps_90])
            self._k90_estimate.set_xdata([s.steps_90_estimate, s.steps_90_estimate])
            self._quad_line.set_ydata(np.clip(s.theta, -1e6, 1e6))
            envelope = np.clip(s.rate ** s.k_quad.astype(float), 0, 1e6)
            self._envelope[0].set_ydata(envelope)
            self._envelope[1].set_ydata(-envelope)
            self._point.set_data([min(s.alpha * s.lam, 4.15)], [s.mu])
            for line, path in zip(self._conv, [s.theta_slides, s.theta_torch, s.lookahead_nesterov,
                                               s.theta_torch_nesterov]):
                line.set_ydata(np.clip(path, -1e6, 1e6))
