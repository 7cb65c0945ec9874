r"""Learning-rate regimes of gradient descent on a quadratic: the factors :math:`(1-\alpha\lambda_i)^k`.

Model (:func:`lr_regimes_model`): numbers only, from :mod:`optlab.problems.gd_quadratic`. View
(:class:`LearningRateRegimes`): a learning-rate slider, the factor of each eigen-direction over the
steps ``k``, the contraction :math:`|1-\alpha\lambda_i|` against :math:`\alpha` with the marks
:math:`1/\lambda_{\max}` and :math:`2/\lambda_{\max}`, and a table labelling each direction's regime.

Reference: R. Zemel, COMS 4995 lecture 4 (spectral analysis of gradient descent).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..problems.gd_quadratic import as_alpha, as_lambdas, gd_factors, gd_rate, gd_regimes
from ._figure import FigureImage
from ._state import WidgetState
from ._view import WidgetView


@dataclass(frozen=True)
class LRRegimesState(WidgetState):
    """What the widget shows, as numbers: a grader or a test reads this."""

    lambdas: np.ndarray  #: Hessian eigenvalues lambda_i
    alpha: float  #: learning rate
    k: np.ndarray  #: steps 0..k_max
    factors: np.ndarray  #: (1 - alpha*lambda_i)^k, shape (n, k_max + 1)
    regimes: list  #: regime label of each direction (see optlab.problems.REGIMES)
    alpha_monotone: float  #: 1/lambda_max: the largest alpha with no oscillation
    alpha_max: float  #: 2/lambda_max: the largest alpha that does not diverge
    rate: float  #: max_i |1 - alpha*lambda_i|


def lr_regimes_model(lambdas, alpha: float, k_max: int = 30) -> LRRegimesState:
    """The learning-rate regimes of GD for Hessian eigenvalues ``lambdas`` at learning rate ``alpha``."""
    lam = as_lambdas(lambdas, "LearningRateRegimes")
    lam_max = lam.max()
    if lam_max <= 0:
        raise ValueError(f"lambdas needs a positive largest eigenvalue to define 1/lambda_max, got {lam.tolist()}")
    return LRRegimesState(
        lambdas=lam, alpha=as_alpha(alpha, "LearningRateRegimes"), k=np.arange(k_max + 1),
        factors=gd_factors(lam, alpha, k_max), regimes=gd_regimes(lam, alpha),
        alpha_monotone=1.0 / lam_max, alpha_max=2.0 / lam_max, rate=gd_rate(lam, alpha),
    )


def regimes_table_html(state: LRRegimesState) -> str:
    """The table under the plot: one row per eigen-direction."""
    rows = "".join(
        f"<tr><td>{i}</td><td>{lam:.4g}</td><td>{state.alpha * lam:.3f}</td>"
        f"<td>{1 - state.alpha * lam:+.3f}</td><td class='optlab-regime'>{html.escape(reg)}</td></tr>"
        for i, (lam, reg) in enumerate(zip(state.lambdas, state.regimes))
    )
    return (
        f"<div class='optlab-lr-regimes'><b>alpha = {state.alpha:.4f}</b> &nbsp; "
        f"(1/lambda_max = {state.alpha_monotone:.4f}, 2/lambda_max = {state.alpha_max:.4f}, "
        f"worst |1 - alpha*lambda| = {state.rate:.3f})"
        "<table><tr><th>i</th><th>lambda_i</th><th>alpha*lambda_i</th><th>1 - alpha*lambda_i</th>"
        f"<th>regime</th></tr>{rows}</table></div>"
    )


class LearningRateRegimes(WidgetView):
    """Interactive view of :func:`lr_regimes_model`: move ``alpha`` and watch each direction's factor.

    Args:
        lambdas: the Hessian's eigenvalues (at least one positive).
        alpha: the starting learning rate (default: half of 1/lambda_max).
        k_max: how many steps to show.
        alpha_limit: the slider's upper end (default 2.5/lambda_max, so divergence is reachable).

    ``view.slider.value = a`` changes the state exactly as dragging does; ``view.state`` is the model.

    Example:
        >>> view = LearningRateRegimes([0.5, 2.0])
        >>> view.slider.value = 0.75
        >>> view.state.regimes
        ['monotone decay', 'oscillating decay']
    """

    def __init__(self, lambdas, alpha: float | None = None, k_max: int = 30, alpha_limit: float | None = None):
        lam = as_lambdas(lambdas, "LearningRateRegimes")
        first = lr_regimes_model(lam, 0.0, k_max)
        alpha_limit = 2.5 * first.alpha_monotone if alpha_limit is None else as_alpha(alpha_limit, "LearningRateRegimes", "alpha_limit")
        alpha = 0.5 * first.alpha_monotone if alpha is None else as_alpha(alpha, "LearningRateRegimes")
        if alpha > alpha_limit:
            raise ValueError(f"alpha={alpha!r} is beyond the slider's end alpha_limit={alpha_limit!r}")
        self.lambdas, self.k_max = lam, k_max
        self.slider = widgets.FloatSlider(
            value=alpha, min=0.0, max=alpha_limit, step=alpha_limit / 200, description="alpha",
            readout_format=".4f", continuous_update=True, layout=widgets.Layout(width="32em"),
        )
        self.table = widgets.HTML()
        self._fig = FigureImage(ncols=2, figsize=(9.0, 3.2))
        self._build_figure(first, alpha_limit)
        self.controls = {"alpha": self.slider}
        self.widget = widgets.VBox([self.slider, self._fig.image, self.table])
        self._connect()

    def _build_figure(self, s: LRRegimesState, alpha_limit: float) -> None:
        ax_k, ax_a = self._fig.axes
        self._lines = [ax_k.plot(s.k, row, marker="o", ms=3, label=f"lambda={lam:.3g}")[0]
                       for lam, row in zip(s.lambdas, s.factors)]
        ax_k.axhline(0.0, color="0.6", lw=0.8)
        ax_k.set(xlabel="step k", ylabel="(1 - alpha*lambda_i)^k", ylim=(-1.6, 1.6),
                 title="each eigen-direction's factor")
        ax_k.legend(loc="lower left", fontsize="small")
        a = np.linspace(0.0, alpha_limit, 400)
        for lam, line in zip(s.lambdas, self._lines):
            ax_a.plot(a, np.abs(1.0 - a * lam), color=line.get_color())
        ax_a.axhline(1.0, color="0.3", lw=0.8, ls=":")
        ax_a.axvline(s.alpha_monotone, color="tab:green", ls="--", label="1/lambda_max")
        ax_a.axvline(s.alpha_max, color="tab:red", ls="--", label="2/lambda_max")
        self._alpha_mark = ax_a.axvline(s.alpha, color="k", lw=2, label="alpha")
        ax_a.set(xlabel="alpha", ylabel="|1 - alpha*lambda_i|", ylim=(0.0, 2.0), xlim=(0.0, alpha_limit),
                 title="contraction per step")
        ax_a.legend(loc="upper left", fontsize="small")

    def _compute(self, values: dict) -> LRRegimesState:
        return lr_regimes_model(self.lambdas, values["alpha"], self.k_max)

    def _show(self, s: LRRegimesState) -> None:
        self.table.value = regimes_table_html(s)

    def _draw(self, s: LRRegimesState) -> None:
        for line, row in zip(self._lines, s.factors):
            line.set_ydata(row)
        self._alpha_mark.set_xdata([s.alpha, s.alpha])
