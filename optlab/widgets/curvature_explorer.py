r"""Curvature of a real network while it trains: :math:`\lambda_{\max}`, the learning rate against :math:`2/\lambda_{\max}`,
each layer's Hessian block, and the spectrum.

Model (:func:`curvature_run`, then :func:`curvature_explorer_model`): a digits MLP (or the small CNN) of
:mod:`optlab.problems.digits` is trained by an optimizer of :mod:`optlab.optim` through
:func:`optlab.trajectory.run` for a few hundred seeded steps. Every ``every`` steps (a *checkpoint*) it
measures, with :mod:`optlab.curvature`, on a fixed set of training samples:

* :math:`\lambda_{\max}` of the loss Hessian by Lanczos (:func:`~optlab.curvature.top_eigenvalue`) and the
  recipe's :math:`\eta_{\max} = 2/\lambda_{\max}` (deck 000, "max learning rate"), to set against the lr;
* LeCun, Simard & Pearlmutter's stochastic power method (:func:`~optlab.curvature.stochastic_top_eigenvalue`):
  its running estimate :math:`\|\Psi\|` pattern after pattern, against the batch value;
* each layer's Hessian block :math:`H_{ll}`: top eigenvalue and Hutchinson trace
  (:func:`~optlab.curvature.layer_curvature`), to check the slide's "lower layers often have smaller
  second derivatives" on this net -- whatever it shows;
* the spectral density by stochastic Lanczos quadrature (:func:`~optlab.curvature.spectral_density`):
  "few large, many small" eigenvalues.

The run is the expensive part (seconds) and is computed once per setting (optimizer, lr, batch size);
:func:`curvature_explorer_model` then picks a step of it, which is what the step slider scrubs.

Slides: Y. LeCun, deck 000, "What does the Hessian look like in a neural net?", "Computing the
maximum learning rate" (power method, batch and on-line), "lower layers ... smaller second
derivatives". References: LeCun, Simard & Pearlmutter (1993), "Automatic learning rate maximization by
on-line estimation of the Hessian's eigenvectors"; Ghorbani, Krishnan & Xiao (2019), "An investigation
into neural net optimization via Hessian eigenvalue density"; Cohen et al. (2021), "Gradient descent on
neural networks typically occurs at the edge of stability".
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..errors import check, is_integer, is_number, one_of
from ._cache import LRUCache
from ._figure import FigureImage
from ._palette import CURRENT, mark_style, series_style
from ._state import WidgetState
from ._view import KEYS_HELP, WidgetView, html_table, number

#: optimizer name -> (class name in optlab.optim, extra keyword arguments)
OPTIMIZERS = {"sgd": ("SGD", {}), "momentum": ("SGD", {"momentum": 0.9}), "adam": ("Adam", {}),
              "rmsprop": ("RMSprop", {}), "adagrad": ("Adagrad", {})}
MODELS = ("mlp", "cnn")
BATCH_SIZES = (None, 16, 64, 256)  #: None: the full training set (gradient descent)
CURVATURE_SAMPLES = 512  #: training samples every curvature measure uses
PATTERNS = 256  #: patterns the stochastic power method sees per checkpoint
GAMMA = 0.02  #: its running-average constant
DENSITY_POINTS = 200


@dataclass(frozen=True)
class CurvatureRun(WidgetState):
    """A training run with its curvature measured at every checkpoint (arrays over checkpoints ``c``)."""

    model: str
    optimizer: str
    lr: float
    batch_size: int | None
    steps: int
    every: int
    losses: np.ndarray  #: (steps + 1,) training loss of every step (mini-batch loss if batch_size), nan after divergence
    diverged_at: int | None  #: first diverging step, or None
    checkpoints: np.ndarray  #: (C,) the steps measured
    full_loss: np.ndarray  #: (C,) loss on the curvature samples
    lambda_max: np.ndarray  #: (C,) Lanczos
    alpha_max: np.ndarray  #: (C,) 2 / lambda_max (inf where lambda_max <= 0)
    stochastic: np.ndarray  #: (C,) the stochastic power method's final estimate
    stochastic_history: np.ndarray  #: (C, PATTERNS) its running estimate after each pattern
    layers: list  #: the layers' names ("0", "2", ...: their index in the nn.Sequential)
    layer_sizes: list  #: parameters per layer
    layer_top: np.ndarray  #: (C, L) top eigenvalue of each layer's Hessian block
    layer_trace: np.ndarray  #: (C, L) Hutchinson trace of each block
    density_grid: np.ndarray  #: (C, DENSITY_POINTS)
    density: np.ndarray  #: (C, DENSITY_POINTS) SLQ spectral density


def check_run_settings(model, optimizer, lr, batch_size, steps, every, seed) -> None:
    """The ``ValueError`` of :func:`curvature_run` for a bad argument."""
    owner = "CurvatureExplorer"
    one_of(owner, "model", model, MODELS)
    one_of(owner, "optimizer", optimizer, OPTIMIZERS)
    check(owner, "lr", lr, is_number(lr) and math.isfinite(lr) and lr > 0, "a finite number > 0")
    check(owner, "batch_size", batch_size, batch_size is None or (is_integer(batch_size) and 1 <= batch_size <= 1437),
          "None (the full training set) or an integer in [1, 1437]")
    check(owner, "steps", steps, is_integer(steps) and 1 <= steps <= 5000, "an integer in [1, 5000]")
    check(owner, "every", every, is_integer(every) and 1 <= every <= steps, f"an integer in [1, steps={steps}]")
    check(owner, "seed", seed, is_integer(seed) and seed >= 0, "an integer >= 0")


def _optimizer_factory(optimizer: str, lr: float):
    from .. import optim

    name, kwargs = OPTIMIZERS[optimizer]
    cls = getattr(optim, name)
    return lambda params: cls(params, lr=lr, **kwargs)


def _measure(net, loss_fn, data, seed: int) -> dict:
    """Every curvature number of one checkpoint (the net's parameters are left as they are)."""
    import torch

    from ..curvature import (HessianOperator, layer_curvature, spectral_density, stochastic_top_eigenvalue,
                             top_eigenvalue)

    op = HessianOperator(net, loss_fn, data)
    with torch.no_grad():
        loss = float(loss_fn(net(data[0]), data[1]))
    lam = float(top_eigenvalue(op, which="algebraic", max_iter=80, tol=1e-5, seed=seed).value)
    sto = stochastic_top_eigenvalue(net, loss_fn, (data[0][:PATTERNS], data[1][:PATTERNS]), gamma=GAMMA, seed=seed)
    layers = layer_curvature(net, loss_fn, data, num_samples=20, max_iter=60, tol=1e-4, seed=seed)
    sd = spectral_density(op, num_probes=3, num_steps=min(40, op.shape[0]), num_points=DENSITY_POINTS, seed=seed)
    return {"loss": loss, "lambda_max": lam, "stochastic": sto.value, "history": sto.history.numpy(),
            "layers": layers, "grid": sd.grid.numpy(), "density": sd.density.numpy()}


def curvature_run(model: str = "mlp", optimizer: str = "sgd", lr: float = 0.5, batch_size: int | None = None,
                  steps: int = 200, every: int = 20, seed: int = 0, *, progress=None) -> CurvatureRun:
    r"""Train a digits ``model`` with ``optimizer`` (one of :data:`OPTIMIZERS`) at ``lr`` for ``steps`` steps
    (``batch_size=None``: full-batch) and measure the curvature every ``every`` steps (see the module docstring).

    A run that diverges stops there; its remaining checkpoints are ``nan``. ``progress(fraction, text)``
    is called after each checkpoint.

    Example:
        >>> r = curvature_run("mlp", "sgd", lr=0.5, steps=2, every=2)
        >>> r.checkpoints.tolist(), r.layers, bool(r.lambda_max[0] > 0)
        ([0, 2], ['0', '2'], True)
    """
    import torch

    from ..problems import Digits
    from ..trajectory import run

    check_run_settings(model, optimizer, lr, batch_size, steps, every, seed)
    d = Digits()
    net = d.model(model, seed=seed)
    X, y = d.batch()
    data = (X[:CURVATURE_SAMPLES], y[:CURVATURE_SAMPLES])
    objective = d.objective(net, batch_size=batch_size, seed=seed)
    checkpoints = list(range(0, steps + 1, every))
    if checkpoints[-1] != steps:
        checkpoints.append(steps)
    wanted = set(checkpoints)
    measures = []

    def measure(step: int) -> None:
        if all(bool(torch.isfinite(p).all()) for p in net.parameters()):
            measures.append(_measure(net, d.loss_fn, data, seed))
            if progress:
                progress(len(measures) / len(checkpoints), f"step {step} of {steps}: curvature measured")

    def at_checkpoint(info) -> float:
        """A diagnostic of the one uninterrupted run: after step k, measure at checkpoint k + 1."""
        if info.step + 1 in wanted:
            measure(info.step + 1)
        return 0.0

    measure(0)
    traj = run(objective, _optimizer_factory(optimizer, lr), steps, record_params=False,
               diagnostics={"curvature": at_checkpoint})
    losses = np.full(steps + 1, np.nan)
    losses[:len(traj.losses)] = traj.losses
    diverged_at = traj.diverged_at if traj.diverged else None
    if diverged_at is not None:
        losses[diverged_at:] = np.nan
        # a checkpoint measured at the diverging step itself is not shown
        measures = measures[:sum(1 for c in checkpoints if c < diverged_at)]
    C, n = len(checkpoints), len(measures)
    names = [lc.name for lc in measures[0]["layers"]]

    def column(key, shape=()):
        out = np.full((C, *shape), np.nan)
        for i, m in enumerate(measures):
            out[i] = m[key]
        return out

    lam = column("lambda_max")
    layer_top = np.full((C, len(names)), np.nan)
    layer_trace = np.full((C, len(names)), np.nan)
    for i, m in enumerate(measures):
        layer_top[i] = [lc.top_eigenvalue for lc in m["layers"]]
        layer_trace[i] = [lc.trace for lc in m["layers"]]
    grid = column("grid", (DENSITY_POINTS,))
    if n < C:  # diverged: the later checkpoints have nothing to show
        grid[n:] = grid[n - 1] if n else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha_max = np.where(lam > 0, 2.0 / lam, np.inf)
    alpha_max[np.isnan(lam)] = np.nan
    return CurvatureRun(
        model=model, optimizer=optimizer, lr=float(lr), batch_size=batch_size, steps=int(steps), every=int(every),
        losses=losses, diverged_at=diverged_at, checkpoints=np.array(checkpoints), full_loss=column("loss"),
        lambda_max=lam, alpha_max=alpha_max, stochastic=column("stochastic"),
        stochastic_history=column("history", (PATTERNS,)), layers=names,
        layer_sizes=[lc.size for lc in measures[0]["layers"]], layer_top=layer_top, layer_trace=layer_trace,
        density_grid=grid, density=column("density", (DENSITY_POINTS,)),
    )


@dataclass(frozen=True)
class CurvatureExplorerState(WidgetState):
    """One step of a :class:`CurvatureRun`: what the explorer shows for the step slider's value."""

    run: CurvatureRun
    step: int  #: the step asked for
    checkpoint: int  #: index of the checkpoint shown (the last one at or before ``step``)
    checkpoint_step: int  #: its step
    measured: bool  #: False when the run diverged before that checkpoint
    loss: float  #: the training loss at ``step``
    lambda_max: float
    alpha_max: float
    lr_ratio: float  #: lr / (2 / lambda_max) = lr * lambda_max / 2 (>= 1: GD beyond its stable step)
    stochastic: float
    layer_top: np.ndarray  #: (L,)
    layer_trace: np.ndarray  #: (L,)
    layer_mean_diagonal: np.ndarray  #: (L,) trace / size: the layer's average second derivative


def curvature_explorer_model(run: CurvatureRun, step: int) -> CurvatureExplorerState:
    """The numbers of ``run`` at ``step`` (curvature from the last checkpoint at or before it).

    Example:
        >>> r = curvature_run("mlp", "sgd", lr=0.5, steps=2, every=2)
        >>> s = curvature_explorer_model(r, 1)
        >>> s.checkpoint_step, bool(abs(s.lr_ratio - 0.5 * s.lambda_max / 2) < 1e-12)
        (0, True)
    """
    check("CurvatureExplorer", "step", step, is_integer(step) and 0 <= step <= run.steps,
          f"an integer in [0, {run.steps}] (the run's steps)")
    c = int(np.searchsorted(run.checkpoints, step, side="right") - 1)
    lam = float(run.lambda_max[c])
    top, trace = run.layer_top[c], run.layer_trace[c]
    return CurvatureExplorerState(
        run=run, step=int(step), checkpoint=c, checkpoint_step=int(run.checkpoints[c]), measured=bool(np.isfinite(lam)),
        loss=float(run.losses[step]), lambda_max=lam, alpha_max=float(run.alpha_max[c]),
        lr_ratio=run.lr * lam / 2.0, stochastic=float(run.stochastic[c]), layer_top=top, layer_trace=trace,
        layer_mean_diagonal=trace / np.array(run.layer_sizes, dtype=float),
    )


# ----- the view ------------------------------------------------------------------------------------------------

def explorer_caption(s: CurvatureExplorerState) -> str:
    """The caption under the figure, from the state."""
    r = s.run
    head = f"{r.optimizer} at lr = {number(r.lr, '.3g')} on the digits {r.model.upper()}"
    if r.diverged_at is not None:
        head += f" (diverged at step {r.diverged_at})"
    if not s.measured:
        return head + f": step {s.step} comes after the divergence, nothing to measure."
    side = "below" if s.lr_ratio < 1 else "above"
    text = (f"{head}. Step {s.step} (curvature from step {s.checkpoint_step}): &lambda;<sub>max</sub> = "
            f"{number(s.lambda_max, '.4g')}, so plain gradient descent is stable up to 2/&lambda;<sub>max</sub> = "
            f"{number(s.alpha_max, '.4g')}; the lr is {side} it (lr&lambda;<sub>max</sub>/2 = {s.lr_ratio:.3g}). "
            f"The stochastic power method reads {number(s.stochastic, '.4g')}.")
    if len(r.layers) >= 2:
        low, high = s.layer_mean_diagonal[0], s.layer_mean_diagonal[-1]
        word = "smaller" if low < high else "larger"
        text += (f" Average second derivative (trace/size): first layer {number(low, '.3g')}, last layer "
                 f"{number(high, '.3g')} -- the lower layer's is {word} here.")
    return text


def explorer_table_html(s: CurvatureExplorerState) -> str:
    """Readouts: the step's numbers, then one row per layer."""
    r = s.run
    top = html_table(["step", "loss", "&lambda;<sub>max</sub> (Lanczos)", "stochastic estimate",
                      "2/&lambda;<sub>max</sub>", "lr", "lr&lambda;<sub>max</sub>/2"],
                     [[str(s.step), number(s.loss, ".4f"), number(s.lambda_max), number(s.stochastic),
                       number(s.alpha_max), number(r.lr, ".3g"), number(s.lr_ratio, ".3f")]],
                     css_class="optlab-curv-step", caption=explorer_caption(s))
    rows = [[name, str(size), number(t), number(tr), number(md)]
            for name, size, t, tr, md in zip(r.layers, r.layer_sizes, s.layer_top, s.layer_trace,
                                             s.layer_mean_diagonal)]
    layers = html_table(["layer", "parameters", "top eigenvalue of H<sub>ll</sub>", "trace (Hutchinson)",
                         "trace / size"], rows, css_class="optlab-curv-layers")
    return top + layers


@dataclass(frozen=True)
class _Setting:
    model: str
    optimizer: str
    lr: float
    batch_size: int | None


class CurvatureExplorer(WidgetView):
    r"""Curvature of a digits network while it trains: scrub the steps of a precomputed run.

    Panels: the training loss; :math:`\lambda_{\max}` by Lanczos and the stochastic power method's estimate;
    the lr against :math:`2/\lambda_{\max}`; the running estimate :math:`\|\Psi\|` pattern by pattern against the
    batch value; each layer's Hessian block (top eigenvalue and trace, :func:`optlab.curvature.layer_curvature`);
    the spectral density at the chosen step (SLQ). Changing the net, optimizer, lr or batch size computes a
    new run (seconds, with a progress bar; the last ``cache_size`` runs are kept); the ``step`` slider only
    picks a step of it (:func:`curvature_explorer_model`).

    Keyboard: Tab to a control; the step slider moves one checkpoint per arrow key (PageUp/PageDown five,
    Home/End the ends); dropdowns with the arrow keys.

    Slide: LeCun deck 000 (seed 000), "What does the Hessian look like", the maximum learning rate
    recipe (batch and on-line power method), lower layers' smaller second derivatives.

    Example:
        >>> view = CurvatureExplorer(steps=4, every=2)
        >>> view.set(step=3)
        >>> view.state.checkpoint_step, view.state.run.layers
        (2, ['0', '2'])
    """

    def __init__(self, model: str = "mlp", optimizer: str = "sgd", lr: float = 0.5, batch_size: int | None = None,
                 steps: int = 200, every: int = 20, seed: int = 0, cache_size: int = 3):
        check_run_settings(model, optimizer, lr, batch_size, steps, every, seed)
        owner = "CurvatureExplorer"
        check(owner, "lr", lr, 1e-4 <= lr <= 100, "a number in [0.0001, 100] (the slider's range)")
        one_of(owner, "batch_size", batch_size, BATCH_SIZES)
        self.steps, self.every, self.seed = steps, every, seed
        self._cache = LRUCache(cache_size)
        toggle = dict(style={"button_width": "auto"})
        self.controls = {
            "model": widgets.ToggleButtons(options=list(MODELS), value=model, description="net",
                                           tooltips=["64-30-10 tanh MLP", "two conv stages + linear"], **toggle),
            "optimizer": widgets.Dropdown(options=list(OPTIMIZERS), value=optimizer, description="optimizer"),
            "lr": widgets.FloatLogSlider(value=lr, base=10, min=-4, max=2, step=0.1, description="lr",
                                         readout_format=".3g", continuous_update=False,
                                         layout=widgets.Layout(width="30em")),
            "batch_size": widgets.Dropdown(options=[("full", None), *[(str(b), b) for b in BATCH_SIZES[1:]]],
                                           value=batch_size, description="batch"),
            "step": widgets.IntSlider(value=0, min=0, max=steps, step=every, description="step",
                                      continuous_update=True, layout=widgets.Layout(width="36em")),
        }
        self.progress = widgets.FloatProgress(value=1.0, min=0.0, max=1.0, description="ready",
                                              layout=widgets.Layout(width="30em"))
        self.table = widgets.HTML()
        help_text = widgets.HTML("<div style='font-size:90%;color:#444'>" + html.escape(KEYS_HELP) + "</div>")
        self._fig = FigureImage(ncols=3, nrows=2, figsize=(12.5, 6.0))
        self._build_figure()
        c = self.controls
        self.widget = widgets.VBox([widgets.HBox([c["model"], c["optimizer"], c["batch_size"]]), c["lr"],
                                    self.progress, c["step"], self._fig.image, self.table, help_text])
        self.widget.add_class("optlab-widget-curvature")
        self._drawn_run = None
        self._connect()

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.value, self.progress.description = fraction, "computing" if fraction < 1 else "ready"
        self.progress.tooltip = text

    def _compute(self, values: dict) -> CurvatureExplorerState:
        key = _Setting(values["model"], values["optimizer"], float(values["lr"]), values["batch_size"])
        run = self._cache.get_or_compute(key, lambda: curvature_run(
            key.model, key.optimizer, key.lr, key.batch_size, self.steps, self.every, self.seed,
            progress=self._progress))
        return curvature_explorer_model(run, values["step"])

    def _show(self, s: CurvatureExplorerState) -> None:
        self.table.value = explorer_table_html(s)

    def _build_figure(self) -> None:
        ax_loss, ax_lam, ax_lr, ax_psi, ax_layer, ax_sd = self._fig.axes
        st = [series_style(i) for i in range(6)]
        self._loss, = ax_loss.plot([], [], color=st[0]["color"], lw=1.2)
        ax_loss.set(yscale="log", xlabel="step", ylabel="training loss", title="loss")
        self._lam, = ax_lam.plot([], [], label="Lanczos", **st[0])
        self._sto, = ax_lam.plot([], [], label="stochastic power", ms=5, **st[1])
        ax_lam.set(xlabel="step", title=r"$\lambda_{\max}$ of the Hessian")
        ax_lam.legend(fontsize="small")
        self._amax, = ax_lr.plot([], [], label=r"$2/\lambda_{\max}$", **st[2])
        self._lr_line = ax_lr.axhline(1.0, label="lr", **CURRENT)
        ax_lr.set(xlabel="step", yscale="log", title=r"lr against $2/\lambda_{\max}$")
        ax_lr.legend(fontsize="small")
        self._psi, = ax_psi.plot([], [], color=st[1]["color"], lw=1.2, label=r"running $\|\Psi\|$")
        self._psi_batch = ax_psi.axhline(1.0, label="batch value (Lanczos)", lw=1.3, **mark_style(0))
        ax_psi.set(xlabel="pattern", title="stochastic power method at the step")
        ax_psi.legend(fontsize="small", loc="lower right")
        self._layer_lines = []
        for j in range(3):  # the MLP has 2 layers, the CNN 3
            a, = ax_layer.plot([], [], label=f"layer {j}: top", **st[j])
            b, = ax_layer.plot([], [], label=f"layer {j}: trace/size", color=st[j]["color"], marker=st[j]["marker"],
                               linestyle=":", mfc="white")
            self._layer_lines.append((a, b))
        ax_layer.set(xlabel="step", yscale="log", title="each layer's Hessian block")
        self._sd, = ax_sd.plot([], [], color=st[3]["color"], lw=1.2)
        ax_sd.set(yscale="log", xlabel=r"eigenvalue $\lambda$", ylabel="density", title="spectrum (SLQ) at the step")
        self._marks = [ax.axvline(0, lw=1.0, **mark_style(1)) for ax in (ax_loss, ax_lam, ax_lr, ax_layer)]
        # the step slider moves only these (blitted over the run's background)
        self._fig.animate([*self._marks, self._psi, self._psi_batch, self._sd])

    def _draw_run(self, r: CurvatureRun) -> None:
        ax_loss, ax_lam, ax_lr, ax_psi, ax_layer, ax_sd = self._fig.axes
        k = np.arange(r.steps + 1)
        self._loss.set_data(k, r.losses)
        self._lam.set_data(r.checkpoints, r.lambda_max)
        self._sto.set_data(r.checkpoints, r.stochastic)
        self._amax.set_data(r.checkpoints, r.alpha_max)
        self._lr_line.set_ydata([r.lr, r.lr])
        for j, (a, b) in enumerate(self._layer_lines):
            on = j < len(r.layers)
            a.set_visible(on)
            b.set_visible(on)
            if on:
                a.set_data(r.checkpoints, r.layer_top[:, j])
                b.set_data(r.checkpoints, r.layer_trace[:, j] / r.layer_sizes[j])
                a.set_label(f"layer {r.layers[j]}: top eigenvalue")
                b.set_label(f"layer {r.layers[j]}: trace/size")
        ax_layer.legend(handles=[h for pair in self._layer_lines[:len(r.layers)] for h in pair], fontsize="x-small")
        for ax in (ax_loss, ax_lam, ax_lr, ax_layer):
            ax.set_xlim(-0.02 * r.steps, 1.02 * r.steps)

        def fit(ax, arrays, log):
            v = np.concatenate([np.ravel(a) for a in arrays])
            v = v[np.isfinite(v) & ((v > 0) if log else True)]
            if v.size:
                lo, hi = v.min(), v.max()
                ax.set_ylim((lo / 1.5, hi * 1.5) if log else (lo - 0.1 * (hi - lo + 1e-12), hi + 0.1 * (hi - lo + 1e-12)))

        fit(ax_loss, [r.losses], True)
        fit(ax_lam, [r.lambda_max, r.stochastic], False)
        fit(ax_lr, [r.alpha_max, [r.lr]], True)
        fit(ax_layer, [r.layer_top, r.layer_trace / np.array(r.layer_sizes)], True)
        fit(ax_psi, [r.stochastic_history, r.lambda_max], False)
        ax_psi.set_xlim(0, r.stochastic_history.shape[1])
        ok = np.isfinite(r.density_grid).all(1) & (r.density > 0).any(1)
        if ok.any():  # one scale for every checkpoint's spectrum, so scrubbing compares them
            pos = r.density[ok][r.density[ok] > 0]
            ax_sd.set_xlim(r.density_grid[ok].min(), r.density_grid[ok].max())
            ax_sd.set_ylim(max(pos.max() * 1e-6, pos.min()), pos.max() * 2)
        self._fig.redraw_background()

    def _draw(self, s: CurvatureExplorerState) -> None:
        if self._drawn_run is not s.run:
            self._draw_run(s.run)
            self._drawn_run = s.run
        for m in self._marks:
            m.set_xdata([s.step, s.step])
        r, c = s.run, s.checkpoint
        self._psi.set_data(np.arange(1, r.stochastic_history.shape[1] + 1), r.stochastic_history[c])
        self._psi_batch.set_ydata([s.lambda_max, s.lambda_max])
        grid, dens = r.density_grid[c], r.density[c]
        self._sd.set_data(grid, np.where(dens > 0, dens, np.nan))
