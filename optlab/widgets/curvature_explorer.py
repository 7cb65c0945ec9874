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

import math
from dataclasses import dataclass

import numpy as np

from ..errors import check, is_integer, is_number, one_of
from ._state import WidgetState

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
