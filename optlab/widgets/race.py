r"""An optimizer race: any subset of :mod:`optlab.optim`'s optimizers on one 2-D surface, step by step.

Every optimizer is the real class, driven by :func:`optlab.trajectory.run` from the surface's start
point for :data:`HORIZON` steps (once per setting: a step of the race reveals one more iterate, it does
not rerun anything). At step ``k`` the race shows each path :math:`\theta_0..\theta_k`, its loss
:math:`f(\theta_k)`, its distance to the nearest known minimum and what became of it: still running,
reached the minimum (:math:`\|\theta - \theta^*\| <` :data:`REACHED`), diverged (a non-finite or exploding
loss, see :func:`optlab.trajectory.run`) or stopped (the optimizer refused to step, e.g. SDLM on negative
curvature, or a singular Newton system; its message is shown).

Surfaces: Rosenbrock's curved valley, Beale's plateaux, a rotated ravine quadratic (condition number
25) and the saddle :math:`\tfrac12(x^2 - y^2)`.

Slides: R. Zemel, COMS 4995 lecture 4 (ravines, plateaux, saddles; momentum, RMSprop, Adam); I. Misra,
deck 003, "Optimization for Deep Networks" (SGD, momentum, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam,
AdaMax). Natural gradient and PRONG are not in the race: they need a likelihood or whitened layers,
which a 2-D surface does not have.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..errors import check, check_type, int_in_range, is_number, one_of
from ._figure import FigureImage
from ._palette import mark_style, series_style
from ._state import WidgetState
from ._view import KEYS_HELP, WidgetView

#: steps each optimizer runs (the end of Play)
HORIZON = 200
#: distance to a minimum that counts as reached
REACHED = 1e-3


@dataclass(frozen=True)
class RaceSurface:
    """A surface of the race: how to build it and the learning rate plain SGD needs on it."""

    name: str
    label: str
    sgd_lr: float
    log_loss: bool  #: the loss panel on a log scale (f >= 0 with minimum 0)
    slide: str


RACE_SURFACES = {s.name: s for s in [
    RaceSurface("rosenbrock", "Rosenbrock (a curved valley)", 1e-3, True, "Zemel lecture 4: narrow ravines"),
    RaceSurface("beale", "Beale (plateaux)", 1e-3, True, "Zemel lecture 4: plateaux"),
    RaceSurface("ravine", "rotated ravine quadratic, kappa = 25", 0.03, True, "Zemel lecture 4: ill-conditioned curvature"),
    RaceSurface("saddle", "saddle (x^2 - y^2)/2", 0.1, False, "Goodfellow deck 004: gradient descent flees saddles"),
]}


@functools.lru_cache(maxsize=None)
def race_surface(name: str):
    """The :class:`~optlab.problems.base.Surface` of a race surface (built once)."""
    from ..problems import Quadratic, beale_surface, rosenbrock_surface, saddle_surface

    one_of("OptimizerRace", "surface", name, tuple(RACE_SURFACES))
    if name == "ravine":
        q = Quadratic.ravine(25.0, angle=math.pi / 6, theta0=[-1.5, 1.0])
        q.name = "ravine"
        return q
    return {"rosenbrock": rosenbrock_surface, "beale": beale_surface, "saddle": saddle_surface}[name]()


@dataclass(frozen=True)
class RaceOptimizer:
    """One contestant: an ``optlab.optim`` class, fixed options, and the hyper-parameters a student sets."""

    label: str
    cls_name: str
    fixed: dict  #: options that define this contestant (e.g. momentum for "Nesterov")
    defaults: dict  #: default values of the knobs (``lr: None`` means the surface's SGD learning rate)
    knobs: dict  #: hyper-parameter -> (low, high, log scale)

    def cls(self):
        from .. import optim

        return getattr(optim, self.cls_name)


_LR = (1e-5, 10.0, True)
_UNIT = (0.0, 0.999, False)
_DAMP = (0.0, 10.0, False)
RACE_OPTIMIZERS = {o.label: o for o in [
    RaceOptimizer("SGD", "SGD", {}, {"lr": None}, {"lr": _LR}),
    RaceOptimizer("Momentum", "SGD", {}, {"lr": None, "momentum": 0.9}, {"lr": _LR, "momentum": _UNIT}),
    RaceOptimizer("Nesterov", "SGD", {"nesterov": True}, {"lr": None, "momentum": 0.9},
                  {"lr": _LR, "momentum": (0.01, 0.999, False)}),
    RaceOptimizer("Adagrad", "Adagrad", {}, {"lr": 0.5}, {"lr": _LR}),
    RaceOptimizer("RMSprop", "RMSprop", {}, {"lr": 0.01, "alpha": 0.99}, {"lr": _LR, "alpha": _UNIT}),
    RaceOptimizer("Adadelta", "Adadelta", {}, {"lr": 1.0, "rho": 0.9}, {"lr": _LR, "rho": _UNIT}),
    RaceOptimizer("Adam", "Adam", {}, {"lr": 0.05}, {"lr": _LR}),
    RaceOptimizer("AdamW", "AdamW", {}, {"lr": 0.05, "weight_decay": 0.01}, {"lr": _LR, "weight_decay": (0.0, 1.0, False)}),
    RaceOptimizer("Adamax", "Adamax", {}, {"lr": 0.05}, {"lr": _LR}),
    RaceOptimizer("NAdam", "NAdam", {}, {"lr": 0.05}, {"lr": _LR}),
    RaceOptimizer("Rprop", "Rprop", {}, {"lr": 0.01}, {"lr": _LR}),
    RaceOptimizer("ASGD", "ASGD", {}, {"lr": None}, {"lr": _LR}),
    RaceOptimizer("AveragedSGD", "AveragedSGD", {"average_start": 0}, {"lr": None}, {"lr": _LR}),
    RaceOptimizer("Newton", "Newton", {}, {"lr": 1.0, "damping": 1e-3}, {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("SaddleFreeNewton", "SaddleFreeNewton", {}, {"lr": 1.0, "damping": 1e-3},
                  {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("NonlinearCG", "NonlinearCG", {}, {"lr": 1.0}, {"lr": _LR}),
    RaceOptimizer("ScaledCG", "ScaledCG", {}, {"damping": 1e-6}, {"damping": (1e-9, 10.0, True)}),
    RaceOptimizer("GaussNewton", "GaussNewton", {}, {"lr": 1.0, "damping": 1e-3}, {"lr": _LR, "damping": _DAMP}),
    RaceOptimizer("LevenbergMarquardt", "LevenbergMarquardt", {}, {"damping": 0.01}, {"damping": (1e-9, 10.0, True)}),
    RaceOptimizer("HessianFree", "HessianFree", {}, {"lr": 1.0, "damping": 1.0},
                  {"lr": _LR, "damping": (1e-6, 10.0, True)}),
    RaceOptimizer("SDLM", "SDLM", {}, {"lr": 0.01, "damping": 0.1}, {"lr": _LR, "damping": (1e-6, 10.0, True)}),
    RaceOptimizer("VSGD", "VSGD", {}, {}, {}),
]}
DEFAULT_FIELD = ("SGD", "Momentum", "Adam", "Newton")


def default_hyper(label: str, surface: str) -> dict:
    """The knobs' starting values of contestant ``label`` on ``surface`` (``lr: None`` -> the surface's SGD lr)."""
    one_of("OptimizerRace", "optimizer", label, tuple(RACE_OPTIMIZERS))
    sgd_lr = RACE_SURFACES[surface].sgd_lr
    return {k: (sgd_lr if v is None else v) for k, v in RACE_OPTIMIZERS[label].defaults.items()}


def _checked_hyper(label: str, surface: str, given) -> dict:
    entry = RACE_OPTIMIZERS[label]
    hyper = default_hyper(label, surface)
    if given is None:
        return hyper
    check_type("OptimizerRace", f"hyper[{label!r}]", given, isinstance(given, dict), "a dict knob -> value")
    for name, value in given.items():
        one_of("OptimizerRace", f"hyper[{label!r}] knob", name, tuple(entry.knobs))
        low, high, _ = entry.knobs[name]
        check("OptimizerRace", f"{label}.{name}", value, is_number(value) and low <= value <= high,
              f"a number in [{low:g}, {high:g}]")
        hyper[name] = float(value)
    return hyper


@functools.lru_cache(maxsize=256)
def _race_run(surface: str, label: str, hyper: tuple, horizon: int):
    """The whole run of one contestant (cached: Step and Play only reveal more of it)."""
    import torch

    from ..trajectory import run

    entry, surf = RACE_OPTIMIZERS[label], race_surface(surface)
    cls, kwargs = entry.cls(), {**entry.fixed, **dict(hyper)}
    objective = surf.objective()
    extra = dict(model=objective.model, loss_fn=objective.loss_fn) if cls.needs == "model" else {}
    done = []  # steps completed (a diagnostic): where a refusing optimizer stopped

    def make(params):
        return cls(params, **kwargs, **extra)

    try:
        return run(objective, make, horizon, diagnostics={"k": lambda info: done.append(info.step) or 0}), ""
    except (ValueError, RuntimeError, torch.linalg.LinAlgError) as err:  # the optimizer refused a step: say so
        k = len(done)
        return run(surf.objective(), make, k), f"stopped at step {k}: {str(err).splitlines()[0][:160]}"


@dataclass(frozen=True)
class Contestant(WidgetState):
    """One optimizer at step ``k`` of the race."""

    label: str
    hyper: dict
    path: np.ndarray  #: theta_0..theta_j, j = min(k, the step it stopped at); finite rows only
    losses: np.ndarray  #: f along the path
    loss: float  #: f at the last point shown
    distance: float | None  #: distance from the last point to the nearest known minimum (None: the surface has none)
    status: str  #: "running", "reached the minimum at step j", "diverged at step j: ...", "stopped at step j: ..."
    finished_at: int | None  #: the step it reached the minimum, diverged or stopped (None while running)


@dataclass(frozen=True)
class RaceState(WidgetState):
    """What :class:`OptimizerRace` shows at step ``step``."""

    surface: str
    step: int
    horizon: int
    contestants: tuple
    leader: str | None  #: the lowest loss among those that have not diverged or stopped (None if none)

    def contestant(self, label: str) -> Contestant:
        return {c.label: c for c in self.contestants}[label]


def _contestant(surface: str, label: str, hyper: dict, step: int, horizon: int) -> Contestant:
    traj, stopped = _race_run(surface, label, tuple(sorted(hyper.items())), horizon)
    finite = np.all(np.isfinite(traj.thetas), axis=1) & np.isfinite(traj.losses)
    n_ok = int(np.argmin(finite)) if not finite.all() else finite.size  # finite prefix
    j = min(step, n_ok - 1)
    path, losses = traj.thetas[: j + 1], traj.losses[: j + 1]
    minima = race_surface(surface).minima
    dists = np.linalg.norm(traj.thetas[:n_ok, None, :] - minima[None], axis=-1).min(-1) if len(minima) else None
    reached = np.nonzero(dists < REACHED)[0] if dists is not None else np.array([], int)
    distance = float(dists[j]) if dists is not None else None
    status, finished = "running", None
    if reached.size and reached[0] <= step:
        status, finished = f"reached the minimum at step {reached[0]}", int(reached[0])
    elif traj.diverged and traj.diverged_at <= step:
        status, finished = f"diverged at step {traj.diverged_at}: {traj.reason}", int(traj.diverged_at)
    elif stopped and traj.steps <= step:
        status, finished = stopped, traj.steps
    return Contestant(label, dict(hyper), path, losses, float(losses[-1]), distance, status, finished)


def race_model(surface: str = "rosenbrock", optimizers=DEFAULT_FIELD, *, hyper: dict | None = None, step: int = 0,
               horizon: int = HORIZON) -> RaceState:
    r"""The race of ``optimizers`` on ``surface`` at step ``step``.

    Args:
        surface: one of :data:`RACE_SURFACES`.
        optimizers: labels from :data:`RACE_OPTIMIZERS` (one or more, no repeats).
        hyper: label -> {knob: value} overriding :func:`default_hyper` (each knob within its range).
        step: how far the race has gone (0..horizon).
        horizon: the steps each optimizer runs (1..1000).

    Example:
        >>> s = race_model("ravine", ["SGD", "Newton"], step=3)
        >>> s.contestant("Newton").status, s.leader
        ('reached the minimum at step 1', 'Newton')
        >>> s.contestant("SGD").path.shape
        (4, 2)
    """
    one_of("OptimizerRace", "surface", surface, tuple(RACE_SURFACES))
    check_type("OptimizerRace", "optimizers", optimizers, isinstance(optimizers, (list, tuple)),
               "a list of optimizer labels")
    labels = tuple(optimizers)
    check("OptimizerRace", "optimizers", optimizers, len(labels) > 0 and len(set(labels)) == len(labels),
          f"one or more distinct labels from {tuple(RACE_OPTIMIZERS)}")
    for label in labels:
        one_of("OptimizerRace", "optimizer", label, tuple(RACE_OPTIMIZERS))
    hyper = {} if hyper is None else hyper
    check_type("OptimizerRace", "hyper", hyper, isinstance(hyper, dict), "a dict label -> {knob: value}")
    for label in hyper:
        check("OptimizerRace", "hyper", label, label in labels, f"a label among the racing optimizers {labels}")
    int_in_range("OptimizerRace", "horizon", horizon, 1, 1000)
    int_in_range("OptimizerRace", "step", step, 0, horizon)
    contestants = tuple(_contestant(surface, label, _checked_hyper(label, surface, hyper.get(label)), step, horizon)
                        for label in labels)
    alive = [c for c in contestants if not c.status.startswith(("diverged", "stopped"))]
    leader = min(alive, key=lambda c: c.loss).label if alive else None
    return RaceState(surface, int(step), int(horizon), contestants, leader)


# --------------------------------------------------------------------------- the view


def _hyper_text(hyper: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in hyper.items()) or "(defaults)"


def race_table_html(s: RaceState) -> str:
    """One row per contestant: settings, loss and distance at this step, and what became of it."""
    from ._view import html_table, number

    rows = [[c.label, _hyper_text(c.hyper), number(c.loss, ".4g"),
             "no minimum" if c.distance is None else number(c.distance, ".3g"), c.status] for c in s.contestants]
    leader = "none (all diverged or stopped)" if s.leader is None else s.leader
    caption = (f"<b>{RACE_SURFACES[s.surface].label}</b>: step <b>{s.step}</b> of {s.horizon}; "
               f"lowest loss: <b>{leader}</b>")
    return html_table(["optimizer", "settings", "f(&theta;<sub>k</sub>)", "distance to a minimum", "status"], rows,
                      css_class="optlab-race", caption=caption)


class OptimizerRace(WidgetView):
    """Interactive view of :func:`race_model`: pick optimizers and their settings, then Step, Play or Reset.

    Left: the surface's contours (computed once per surface, in the constructor) with each
    contestant's path up to the current step; right: the loss against the step. The i-th contestant
    has the i-th colour, marker and line style of :func:`~optlab.widgets._palette.series_style`, the
    same in both panels and the legend (six contestants differ in all three; more still differ in
    colour and marker together). Play advances the step on a timer
    until the horizon (its square button stops it); Step adds :attr:`step_size` steps; Reset goes back
    to 0. The settings row edits one contestant at a time: choose it under "edit", then move its knobs.

    ``view.set(step=50)`` or ``view.set(hyper={"Adam": {"lr": 0.1}})`` changes the state exactly as the
    controls do; ``view.state`` is the model.

    Slides: Zemel lecture 4 (ravines, plateaux, saddles; momentum, RMSprop, Adam); Misra deck 003
    (SGD, momentum, Nesterov, AdaGrad, RMSProp, AdaDelta, Adam, AdaMax).

    Example:
        >>> view = OptimizerRace("ravine", ["SGD", "Momentum", "Newton"])
        >>> view.step_button.click()
        >>> view.state.step, view.state.contestant("Newton").status
        (5, 'reached the minimum at step 1')
        >>> view.set(hyper={"SGD": {"lr": 0.1}}, step=20)
        >>> view.state.contestant("SGD").status[:19]
        'diverged at step 18'
    """

    step_size = 5

    def __init__(self, surface: str = "rosenbrock", optimizers=DEFAULT_FIELD, *, hyper: dict | None = None,
                 horizon: int = HORIZON, interval_ms: int = 150):
        first = race_model(surface, optimizers, hyper=hyper, step=0, horizon=horizon)
        self.horizon = horizon
        self._hyper = {c.label: dict(c.hyper) for c in first.contestants}
        style = {"description_width": "7em"}
        self.controls = {
            "surface": widgets.Dropdown(options=[(r.label, n) for n, r in RACE_SURFACES.items()], value=surface,
                                        description="surface", style=style, layout=widgets.Layout(width="26em")),
            "optimizers": widgets.SelectMultiple(options=tuple(RACE_OPTIMIZERS), value=tuple(optimizers), rows=6,
                                                 description="optimizers", style=style,
                                                 layout=widgets.Layout(width="20em")),
            "step": widgets.IntSlider(value=0, min=0, max=horizon, step=1, description="step", style=style,
                                      layout=widgets.Layout(width="26em")),
        }
        self.play = widgets.Play(value=0, min=0, max=horizon, step=1, interval=interval_ms, repeat=False,
                                 description="play", tooltip="Play (bounded by the horizon); the square stops")
        widgets.link((self.play, "value"), (self.controls["step"], "value"))
        self.step_button = widgets.Button(description=f"Step +{self.step_size}", tooltip="advance the race",
                                          layout=widgets.Layout(width="7em"))
        self.reset_button = widgets.Button(description="Reset", tooltip="back to step 0",
                                           layout=widgets.Layout(width="7em"))
        self.step_button.on_click(lambda _: self._advance(self.step_size))
        self.reset_button.on_click(lambda _: self._advance(None))
        self.edit = widgets.Dropdown(options=tuple(optimizers), value=tuple(optimizers)[0], description="edit",
                                     style=style, layout=widgets.Layout(width="20em"))
        self.knobs = [widgets.FloatSlider(description="", continuous_update=False, style=style,
                                          layout=widgets.Layout(width="26em"), readout_format=".3g")
                      for _ in range(2)]
        self.lr_knob = widgets.FloatLogSlider(description="lr", base=10, min=-5, max=1, step=0.1, value=1e-3,
                                              continuous_update=False, style=style,
                                              layout=widgets.Layout(width="26em"), readout_format=".2e")
        self.table = widgets.HTML()
        self._fig = FigureImage(ncols=2, figsize=(10.0, 4.0))
        self._build_figure(first)
        self.edit.observe(lambda _: self._show_knobs(), names="value")
        self.controls["optimizers"].observe(self._on_optimizers, names="value")  # before _connect's observer
        self.controls["surface"].observe(self._on_surface, names="value")
        for knob in (self.lr_knob, *self.knobs):
            knob.observe(self._on_knob, names="value")
        self._knob_names = []
        self._show_knobs()
        c = self.controls
        self.widget = widgets.VBox([
            widgets.HBox([widgets.VBox([c["surface"], c["step"],
                                        widgets.HBox([self.play, self.step_button, self.reset_button])]),
                          c["optimizers"],
                          widgets.VBox([self.edit, self.lr_knob, *self.knobs])]),
            widgets.HTML(f"<small>{KEYS_HELP} Optimizers: Ctrl/Shift + click or Shift + arrows to pick several."
                         "</small>"),
            self._fig.image, self.table])
        self._connect()

    # ----- figure, built once: every surface's contours, one path and one loss line per optimizer
    def _build_figure(self, s: RaceState) -> None:
        ax, ax_l = self._fig.axes
        self._contours, self._minima = {}, {}
        for name in RACE_SURFACES:
            surf = race_surface(name)
            (x0, x1), (y0, y1) = surf.bounds
            xs, ys = np.linspace(x0, x1, 161), np.linspace(y0, y1, 161)
            Z = surf.grid(xs, ys)
            if RACE_SURFACES[name].log_loss:
                levels = np.geomspace(max(Z.min(), 1e-3), Z.max(), 18)
            else:
                levels = np.linspace(Z.min(), Z.max(), 18)
            cs = ax.contour(xs, ys, Z, levels=levels, colors="0.72", linewidths=0.7)
            cs.set_visible(name == s.surface)
            self._contours[name] = cs
            m = surf.minima
            self._minima[name] = ax.plot(m[:, 0], m[:, 1], "k*", ms=11, visible=name == s.surface,
                                         label="minimum" if name == "rosenbrock" else None)[0]
        self._paths, self._heads, self._loss_lines = {}, {}, {}
        for i, label in enumerate(RACE_OPTIMIZERS):
            st = series_style(i)
            self._paths[label] = ax.plot([], [], ms=3, lw=1.3, markevery=5, label=label, **st)[0]
            self._heads[label] = ax.plot([], [], marker=st["marker"], color=st["color"], ms=8, mec="k", ls="none")[0]
            self._loss_lines[label] = ax_l.plot([], [], ms=3, lw=1.3, markevery=5, label=label, **st)[0]
        self._start = ax.plot([], [], "kx", ms=8, mew=2)[0]
        ax.set(xlabel="$x$", ylabel="$y$")
        self._title = ax.set_title("", fontsize="medium")
        self._step_mark = ax_l.axvline(0, **mark_style(1))
        ax_l.set(xlabel="step $k$", ylabel=r"$f(\theta_k)$", xlim=(0, self.horizon), title="loss against step")
        self._legend = None
        # blitting: Step and Play only move the paths, their heads, the loss lines and the step mark
        self._fig.animate([*self._paths.values(), *self._heads.values(), *self._loss_lines.values(), self._step_mark])
        self._background_key = None

    # ----- the shared path
    def values(self) -> dict:
        return {**super().values(), "optimizers": tuple(self.controls["optimizers"].value),
                "hyper": {label: dict(h) for label, h in self._hyper.items()},
                "horizon": self.horizon}

    def _compute(self, values: dict) -> RaceState:
        racing = tuple(values["optimizers"])  # the view keeps a dropped contestant's settings for its return
        return race_model(**{**values, "hyper": {k: v for k, v in values["hyper"].items() if k in racing}})

    def _show(self, s: RaceState) -> None:
        self.table.value = race_table_html(s)

    def _draw(self, s: RaceState) -> None:
        ax, ax_l = self._fig.axes
        for name in RACE_SURFACES:
            self._contours[name].set_visible(name == s.surface)
            self._minima[name].set_visible(name == s.surface)
        shown = {c.label: c for c in s.contestants}
        for label in RACE_OPTIMIZERS:
            c = shown.get(label)
            for artist in (self._paths[label], self._heads[label], self._loss_lines[label]):
                artist.set_visible(c is not None)
            if c is None:
                continue
            self._paths[label].set_data(c.path[:, 0], c.path[:, 1])
            self._heads[label].set_data(c.path[-1:, 0], c.path[-1:, 1])
            self._loss_lines[label].set_data(np.arange(len(c.losses)), c.losses)
        self._step_mark.set_xdata([s.step, s.step])
        key = (s.surface, tuple(shown), tuple(tuple(sorted(c.hyper.items())) for c in s.contestants))
        if key != self._background_key:  # new contestants or settings: new limits and legend
            self._draw_background(s)
            # the contours' panel shows the surface only; the loss panel, the runs (limits, legend)
            self._fig.show_background({ax: s.surface, ax_l: key})
            self._background_key = key

    def _draw_background(self, s: RaceState) -> None:
        """Limits from the whole run (so that Step and Play never move them), the legend, the title."""
        ax, ax_l = self._fig.axes
        whole = race_model(s.surface, [c.label for c in s.contestants],
                           hyper={c.label: c.hyper for c in s.contestants}, step=s.horizon, horizon=s.horizon)
        lows = [float(np.min(c.losses)) for c in whole.contestants]
        highs = [float(np.max(c.losses)) for c in whole.contestants]
        surf = race_surface(s.surface)
        (x0, x1), (y0, y1) = surf.bounds
        ax.set(xlim=(x0, x1), ylim=(y0, y1))
        self._start.set_data(surf.theta0[:1], surf.theta0[1:])
        if RACE_SURFACES[s.surface].log_loss:
            ax_l.set_yscale("log")
            low = max(min(lows), 1e-12)
            ax_l.set_ylim(low / 3, max(max(highs), low * 10) * 3)
        else:
            ax_l.set_yscale("symlog", linthresh=1.0)
            ax_l.set_ylim(min(min(lows), -1.0) * 1.5, max(max(highs), 1.0) * 1.5)
        labels = tuple(c.label for c in s.contestants)
        for i, label in enumerate(labels):  # the i-th contestant gets the i-th look: six differ in every way
            st = series_style(i)
            for line in (self._paths[label], self._loss_lines[label]):
                line.set(**st)
            self._heads[label].set(color=st["color"], marker=st["marker"])
        if self._legend is not None:
            self._legend.remove()
        handles = [self._paths[label] for label in labels] + [self._minima["rosenbrock"]]
        self._legend = ax_l.legend(handles, [*labels, "minimum"], loc="upper right", fontsize="x-small",
                                   framealpha=0.85, ncols=2 if len(labels) > 6 else 1)
        self._title.set_text(RACE_SURFACES[s.surface].label)

    # ----- buttons, the edited contestant's knobs, the field of optimizers
    def _advance(self, by: int | None) -> None:
        step = self.controls["step"]
        step.value = 0 if by is None else min(step.value + by, self.horizon)

    def _show_knobs(self) -> None:
        label = self.edit.value
        if label is None or label not in self._hyper:
            return
        knobs = RACE_OPTIMIZERS[label].knobs
        hyper = self._hyper[label]
        self._knob_names = [k for k in knobs if k != "lr"]
        self._holding_knobs = True
        try:
            self.lr_knob.layout.display = None if "lr" in knobs else "none"
            if "lr" in knobs:
                self.lr_knob.value = hyper["lr"]
            for i, knob in enumerate(self.knobs):
                if i < len(self._knob_names):
                    name = self._knob_names[i]
                    low, high, _ = knobs[name]
                    with knob.hold_trait_notifications():
                        knob.min, knob.max = min(low, knob.min), max(high, knob.max)
                        knob.value = hyper[name]
                        knob.min, knob.max = low, high
                        knob.step = (high - low) / 100
                    knob.description = name
                    knob.layout.display = None
                else:
                    knob.layout.display = "none"
        finally:
            self._holding_knobs = False

    def _on_knob(self, change) -> None:
        if getattr(self, "_holding_knobs", False) or self._holding:
            return
        label = self.edit.value
        if label not in self._hyper:
            return
        knobs = RACE_OPTIMIZERS[label].knobs
        for name, knob in [("lr", self.lr_knob), *zip(self._knob_names, self.knobs)]:
            if name in knobs and change["owner"] is knob:
                self._hyper[label][name] = float(knob.value)
        self._update()

    def _on_optimizers(self, change) -> None:
        labels = tuple(change["new"])
        for label in labels:
            self._hyper.setdefault(label, default_hyper(label, self.controls["surface"].value))
        if labels:
            self.edit.options = labels
            if self.edit.value not in labels:
                self.edit.value = labels[0]
            self._show_knobs()

    def _on_surface(self, change) -> None:
        if self._holding:  # inside set(), which has chosen the settings already
            return
        self._hyper = {label: default_hyper(label, change["new"]) for label in self._hyper}
        self._show_knobs()

    def set(self, **params) -> None:
        """As :meth:`WidgetView.set`, plus ``hyper={label: {knob: value}}`` (checked by the model first). A new
        ``surface`` brings every contestant's default settings for it (then ``hyper`` applies)."""
        hyper = params.pop("hyper", None)
        check_type("OptimizerRace.set", "hyper", hyper, hyper is None or isinstance(hyper, dict),
                   "a dict label -> {knob: value}")
        old = self._hyper
        new = {label: dict(h) for label, h in old.items()}
        if params.get("surface") in RACE_SURFACES:
            new = {label: default_hyper(label, params["surface"]) for label in new}
        for label, h in (hyper or {}).items():
            new[label] = {**new.get(label, {}), **h} if isinstance(h, dict) else h
        optimizers = tuple(params.get("optimizers", self.controls["optimizers"].value))
        surface = params.get("surface", self.controls["surface"].value)
        for label in (hyper or {}):  # the model's own checks (no run): a racing label, known knobs in range
            check("OptimizerRace", "hyper", label, label in optimizers,
                  f"a label among the racing optimizers {optimizers}")
            if surface in RACE_SURFACES:
                _checked_hyper(label, surface, new[label])
        self._hyper = new
        try:
            if params:
                super().set(**params)
            else:
                self._update()
        except Exception:
            self._hyper = old
            raise
        self._show_knobs()
