r"""Learning-rate regimes of gradient descent on a quadratic: the factors :math:`(1-\alpha\lambda_i)^k`.

Model (:func:`lr_regimes_model`): numbers only, from :mod:`optlab.problems.gd_quadratic`. View
(:class:`LearningRateRegimes`): a learning-rate slider (linear or log scale), the factor of each
eigen-direction over the steps ``k``, the contraction :math:`|1-\alpha\lambda_i|` against :math:`\alpha`
with the marks :math:`1/\lambda_{\max}`, :math:`\alpha^* = 2/(\lambda_{\min}+\lambda_{\max})` and
:math:`2/\lambda_{\max}`, a table labelling each direction's regime, and the readouts :math:`\kappa`,
:math:`\rho = \max_i|1-\alpha\lambda_i|` and the steps to shrink the error by :math:`10^{-6}` (predicted
from :math:`\rho`, and counted on the GD run). :meth:`LearningRateRegimes.from_model` takes the
eigenvalues from a real network's Hessian (Lanczos, :mod:`optlab.curvature`).

Slide: R. Zemel, COMS 4995 lecture 4 (seed 001), "Ill-conditioned curvature: gradient descent dynamics"
(the spectral analysis of GD and its regimes); Y. LeCun, NYU Deep Learning 2020 (seed 002), the optimal
and the largest learning rate.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..errors import boolean, check, positive_int
from ..problems.gd_quadratic import (as_alpha, as_lambdas, condition_number_of, gd_factors, gd_rate, gd_regimes,
                                     measured_steps, predicted_steps)
from ._figure import FigureImage
from ._palette import CURRENT, mark_style, series_style
from ._state import WidgetState
from ._view import KEYS_HELP, WidgetView, html_table, number

SHRINK = 1e-6  #: the error reduction the step counts refer to


@dataclass(frozen=True)
class LRRegimesState(WidgetState):
    """What the widget shows, as numbers: a grader or a test reads this."""

    lambdas: np.ndarray  #: Hessian eigenvalues lambda_i
    alpha: float  #: learning rate
    k: np.ndarray  #: steps 0..k_max
    factors: np.ndarray  #: (1 - alpha*lambda_i)^k, shape (n, k_max + 1); non-finite once it overflows
    regimes: list  #: regime label of each direction (see optlab.problems.REGIMES)
    alpha_monotone: float  #: 1/lambda_max: the largest alpha with no oscillation
    alpha_max: float  #: 2/lambda_max: the largest alpha that does not diverge
    alpha_best: float | None  #: 2/(lambda_min + lambda_max), the best constant step (None unless all lambda > 0)
    kappa: float | None  #: lambda_max/lambda_min (None unless all lambda > 0)
    rate: float  #: rho = max_i |1 - alpha*lambda_i| (< 1 iff GD converges)
    diverged: bool  #: rho > 1: some direction grows
    steps_predicted: int | None  #: first k with rho^k <= 1e-6 (None: never)
    steps_measured: int | None  #: first k with |theta_k| <= 1e-6 |theta_0| on the GD run from 1 in every direction


def lr_regimes_model(lambdas, alpha: float, k_max: int = 30) -> LRRegimesState:
    """The learning-rate regimes of GD for Hessian eigenvalues ``lambdas`` at learning rate ``alpha``.

    Example:
        >>> s = lr_regimes_model([1.0, 4.0], alpha=0.4)   # alpha* = 2/(1 + 4)
        >>> s.kappa, round(s.rate, 3), s.steps_predicted, s.steps_measured
        (4.0, 0.6, 28, 28)
    """
    owner = "LearningRateRegimes"
    lam = as_lambdas(lambdas, owner)
    alpha = as_alpha(alpha, owner)
    positive_int(owner, "k_max", k_max)
    lam_max = lam.max()
    check(owner, "lambdas", lam.tolist(), lam_max > 0, "a positive largest eigenvalue (to define 1/lambda_max)")
    with np.errstate(all="ignore"):  # a diverging factor overflows to inf: shown as "diverged"
        factors = gd_factors(lam, alpha, k_max)
    rate = gd_rate(lam, alpha)
    return LRRegimesState(
        lambdas=lam, alpha=alpha, k=np.arange(k_max + 1), factors=factors, regimes=gd_regimes(lam, alpha),
        alpha_monotone=1.0 / lam_max, alpha_max=2.0 / lam_max,
        alpha_best=2.0 / (lam.min() + lam_max) if lam.min() > 0 else None, kappa=condition_number_of(lam),
        rate=rate, diverged=rate > 1 + 1e-12, steps_predicted=predicted_steps(rate, SHRINK),
        steps_measured=measured_steps(lam, alpha, SHRINK),
    )


def _steps(k: int | None) -> str:
    return "never" if k is None else str(k)


def regimes_table_html(state: LRRegimesState) -> str:
    """The readouts under the plot: a summary row, then one row per eigen-direction."""
    s = state
    summary = html_table(
        ["&alpha;", "1/&lambda;<sub>max</sub>", "&alpha;* = 2/(&lambda;<sub>min</sub>+&lambda;<sub>max</sub>)",
         "2/&lambda;<sub>max</sub>", "&kappa;", "&rho; = max|1 &minus; &alpha;&lambda;<sub>i</sub>|",
         "steps to 10<sup>&minus;6</sup>: predicted", "measured"],
        [[number(s.alpha), number(s.alpha_monotone), "none (some λ ≤ 0)" if s.alpha_best is None
          else number(s.alpha_best), number(s.alpha_max), "undefined" if s.kappa is None else number(s.kappa),
          number(s.rate, ".4f") + (" (diverges)" if s.diverged else ""), _steps(s.steps_predicted),
          _steps(s.steps_measured)]],
        css_class="optlab-lr-summary")
    rows = [[str(i), number(lam), f"{s.alpha * lam:.4g}", f"{1 - s.alpha * lam:+.4g}", reg]
            for i, (lam, reg) in enumerate(zip(s.lambdas, s.regimes), start=1)]
    table = html_table(["i", "&lambda;<sub>i</sub>", "&alpha;&lambda;<sub>i</sub>", "1 &minus; &alpha;&lambda;<sub>i</sub>",
                        "regime"], rows, css_class="optlab-lr-regimes")
    return summary + table


class LearningRateRegimes(WidgetView):
    r"""Interactive view of :func:`lr_regimes_model`: move :math:`\alpha` and watch each direction's factor.

    Args:
        lambdas: the Hessian's eigenvalues (at least one positive).
        alpha: the starting learning rate (default: half of 1/lambda_max).
        k_max: how many steps to show.
        alpha_limit: the slider's upper end (default 2.5/lambda_max, so divergence is reachable).
        log_alpha: a log-scale slider (two decades below ``alpha_limit``) instead of a linear one.
        title: where the eigenvalues come from (shown above the figure).

    The slider's step is 1/10 of 1/lambda_max on the linear scale (10 presses of an arrow key reach
    1/lambda_max, 25 the end) and 1/20 of a decade on the log scale; PageUp/PageDown move five steps,
    Home/End jump to the ends. ``view.set(alpha=a)`` changes the state exactly as the slider does;
    ``view.state`` is the model.

    Slide: Zemel, COMS 4995 lecture 4 (seed 001), the regimes of :math:`(1-\alpha\lambda)^k`.

    Example:
        >>> view = LearningRateRegimes([0.5, 2.0])
        >>> view.set(alpha=0.75)
        >>> view.state.regimes
        ['monotone decay', 'oscillating decay']
        >>> view.state.to_dict()["steps_measured"]
        29
    """

    def __init__(self, lambdas, alpha: float | None = None, k_max: int = 30, alpha_limit: float | None = None,
                 log_alpha: bool = False, title: str = ""):
        owner = "LearningRateRegimes"
        lam = as_lambdas(lambdas, owner)
        boolean(owner, "log_alpha", log_alpha)
        first = lr_regimes_model(lam, 0.0, k_max)
        alpha_limit = 2.5 * first.alpha_monotone if alpha_limit is None else as_alpha(alpha_limit, owner, "alpha_limit")
        check(owner, "alpha_limit", alpha_limit, alpha_limit > 0, "a number > 0")
        alpha = 0.5 * first.alpha_monotone if alpha is None else as_alpha(alpha, owner)
        low = alpha_limit / 100 if log_alpha else 0.0
        check(owner, "alpha", alpha, low <= alpha <= alpha_limit,
              f"a number in [{low:g}, alpha_limit={alpha_limit:g}] (the slider's range)")
        self.lambdas, self.k_max, self.alpha_limit, self.log_alpha = lam, k_max, alpha_limit, log_alpha
        common = dict(value=alpha, description="α", readout_format=".4g", continuous_update=True,
                      tooltip="learning rate alpha", layout=widgets.Layout(width="36em"))
        if log_alpha:
            top = float(np.log10(alpha_limit))
            self.slider = widgets.FloatLogSlider(base=10, min=top - 2, max=top, step=0.05, **common)
        else:
            self.slider = widgets.FloatSlider(min=0.0, max=alpha_limit, step=first.alpha_monotone / 10, **common)
        self.table = widgets.HTML()
        step = "one step: 1/20 of a decade (log scale)" if log_alpha else "one step: 1/10 of 1/λ<sub>max</sub>"
        help_text = widgets.HTML(f"<div style='font-size:90%;color:#444'>α: the learning rate; {step}. "
                                 f"{html.escape(KEYS_HELP)}</div>")
        self._fig = FigureImage(ncols=2, figsize=(10.0, 3.4))
        self._build_figure(first, title)
        self.controls = {"alpha": self.slider}
        parts = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = widgets.VBox([*parts, self.slider, help_text, self._fig.image, self.table])
        self.widget.add_class("optlab-widget-lr-regimes")
        self._connect()

    @classmethod
    def from_model(cls, model, loss_fn, data, k: int = 5, *, num_steps: int | None = None, seed: int = 0,
                   **kwargs) -> "LearningRateRegimes":
        r"""The widget on a network's top-``k`` Hessian eigenvalues, so the slider's :math:`2/\lambda_{\max}` is real.

        The eigenvalues are the ``k`` largest (algebraic) of the Hessian of ``loss_fn(model(x), y)`` over
        ``data`` (one batch or an iterable of batches) at the model's current weights, by Lanczos
        (:func:`optlab.curvature.lanczos` on a :class:`optlab.curvature.HessianOperator`); ``kwargs``
        go to the constructor.

        Example:
            >>> from optlab.problems import Digits
            >>> digits = Digits(n=300)
            >>> view = LearningRateRegimes.from_model(digits.model("mlp", sizes=(64, 8, 10)), digits.loss_fn,
            ...                                       digits.batch(), k=3)
            >>> len(view.state.lambdas), bool(view.state.alpha_max > 0)
            (3, True)
        """
        from ..curvature import HessianOperator, lanczos

        positive_int("LearningRateRegimes.from_model", "k", k)
        op = HessianOperator(model, loss_fn, data)
        values = lanczos(op, k=k, which="algebraic", num_steps=num_steps, seed=seed).values
        lambdas = np.sort(values.detach().cpu().double().numpy())
        kwargs.setdefault("title", f"top-{len(lambdas)} Hessian eigenvalues of {type(model).__name__} "
                                   f"({sum(p.numel() for p in model.parameters())} parameters), by Lanczos")
        return cls(lambdas, **kwargs)

    def _build_figure(self, s: LRRegimesState, title: str) -> None:
        ax_k, ax_a = self._fig.axes
        self._lines = []
        for i, (lam, row) in enumerate(zip(s.lambdas, s.factors)):
            style = series_style(i)
            line, = ax_k.plot(s.k, row, ms=3.5, lw=1.4, label=rf"$\lambda_{{{i + 1}}}={lam:.3g}$", **style)
            self._lines.append(line)
        ax_k.axhline(0.0, color="0.6", lw=0.8)
        ax_k.set(xlabel=r"step $k$", ylabel=r"$(1-\alpha\lambda_i)^k$", ylim=(-1.6, 1.6),
                 title="each eigen-direction's factor")
        if self.log_alpha:
            a = np.geomspace(self.alpha_limit / 100, self.alpha_limit, 400)
            ax_a.set_xscale("log")
            xlim = (self.alpha_limit / 100 / 1.15, self.alpha_limit * 1.15)
        else:
            a = np.linspace(0.0, self.alpha_limit, 400)
            xlim = (-0.02 * self.alpha_limit, 1.04 * self.alpha_limit)  # the alpha line never sits on the frame
        for i, lam in enumerate(s.lambdas):
            style = series_style(i)
            ax_a.plot(a, np.abs(1.0 - a * lam), color=style["color"], linestyle=style["linestyle"],
                      marker=style["marker"], markevery=(i * 7 % 40, 40), ms=3.5, lw=1.2)
        ax_a.axhline(1.0, color="0.5", lw=0.8)
        # the current alpha: drawn under the marks, so a mark it sits on stays visible (dashes on orange)
        self._alpha_mark = ax_a.axvline(s.alpha, zorder=1.5, alpha=0.85, **CURRENT)
        moving = [*self._lines, self._alpha_mark]
        marks = [(s.alpha_monotone, r"$1/\lambda_{\max}$"), (s.alpha_max, r"$2/\lambda_{\max}$")]
        if s.alpha_best is not None:
            marks.insert(1, (s.alpha_best, r"$\alpha^*$"))
        for j, (x, label) in enumerate(marks):
            if xlim[0] < x < xlim[1]:
                moving.append(ax_a.axvline(x, lw=1.3, zorder=3, **mark_style(j)))  # redrawn above the alpha line
                # the label stays in the background: the translucent alpha line crosses it at most
                ax_a.annotate(label, (x, 0.97 - 0.1 * j), xycoords=("data", "axes fraction"), xytext=(3, 0),
                              textcoords="offset points", ha="left", va="top", fontsize=9, zorder=4,
                              bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
        ax_a.set(xlabel=r"learning rate $\alpha$", ylabel=r"$|1-\alpha\lambda_i|$", ylim=(0.0, 2.0), xlim=xlim)
        ax_a.set_title("contraction per step")
        handles = [*self._lines, self._alpha_mark]
        self._alpha_mark.set_label(r"current $\alpha$")
        # one legend for both panels, outside the axes: no curve can run through it
        self._fig.figure.legend(handles=handles, loc="outside right upper", fontsize="small")
        if title:
            self._fig.figure.suptitle(title, fontsize="medium")
        self._fig.animate(moving)

    def _compute(self, values: dict) -> LRRegimesState:
        return lr_regimes_model(self.lambdas, values["alpha"], self.k_max)

    def _show(self, s: LRRegimesState) -> None:
        self.table.value = regimes_table_html(s)

    def _draw(self, s: LRRegimesState) -> None:
        for line, row in zip(self._lines, s.factors):
            line.set_ydata(np.clip(row, -1e3, 1e3))  # inf/huge values leave the axes anyway
        self._alpha_mark.set_xdata([s.alpha, s.alpha])
