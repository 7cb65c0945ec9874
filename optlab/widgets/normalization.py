r"""The numbers behind :class:`~optlab.widgets.NormalizationEffect`: input transforms and normalization layers.

Two pure models, each returning a frozen dataclass (no widgets, no plotting):

* :func:`input_normalization_model` -- linear least squares :math:`L(w) = \frac1{2N}\sum_i (w^\top x_i - t_i)^2`,
  whose Hessian is the inputs' second-moment matrix :math:`H = \frac1N\sum_i x_i x_i^\top` (deck 002: "Hessian
  is covariance matrix of input vectors"), on a data set after one of the transforms of
  :mod:`optlab.problems.transforms`. It returns the eigenvalues and :math:`\kappa`, the best fixed step
  :math:`\alpha^* = 2/(\lambda_{\min}+\lambda_{\max})`, its rate :math:`\rho = (\kappa-1)/(\kappa+1)`, the steps
  to shrink the error by :math:`10^{-6}` predicted (:math:`\lceil\ln 10^{-6}/\ln\rho\rceil`) and run, the GD path
  at :math:`\alpha^*` and the error contours in a plane (the weights themselves for 2 inputs; the
  eigen-directions of :math:`\lambda_{\max}` and :math:`\lambda_{\min}` otherwise, where GD's coordinates move
  independently, so the plane shows the run exactly).
* :func:`layer_normalization_model` -- a digits MLP or CNN (:mod:`optlab.problems.digits`) with a
  normalization of :mod:`optlab.nn` before each hidden activation (the CNN with :data:`CNN_CHANNELS` channels, in
  float32: :data:`DTYPES`), against the same net without: the
  hidden pre-activations' mean and spread at initialisation and after training, :math:`\lambda_{\max}` of the
  loss Hessian at initialisation (Lanczos, :mod:`optlab.curvature`) and :math:`2/\lambda_{\max}`, the training
  losses of mini-batch SGD at the chosen learning rate (:func:`optlab.trajectory.run` with
  :class:`optlab.optim.SGD`), and BatchNorm's dependence on the batch: the loss of the training set in
  train mode (batch statistics, batches of the chosen size) against eval mode (running statistics), and
  how much one sample's output changes with the batch it is in.

Slides: Y. LeCun, deck 000, "Making the Hessian better conditioned" (center, decorrelate, normalize);
R. Zemel, lecture 4, "Ill-conditioned curvature: normalization"; Y. LeCun, deck 002, "Normalization
tricks" (batch / layer / instance / group norm over N, C, H, W). The slide writes group norm's axes as
"N, C subset"; Wu & He's group norm (implemented here, :class:`optlab.nn.GroupNorm`) averages over a subset
of C and over H, W, per sample -- the diagram shows the published axes.
References: LeCun, Bottou, Orr & Müller (1998), "Efficient BackProp", 4.3; Ioffe & Szegedy (2015);
Ba, Kiros & Hinton (2016); Ulyanov, Vedaldi & Lempitsky (2016); Wu & He (2018).
"""

from __future__ import annotations

import functools
import html
import math
from dataclasses import dataclass

import ipywidgets as widgets
import numpy as np

from ..errors import check, is_integer, is_number, one_of
from ..problems.gd_quadratic import best_alpha, gd_rate, measured_steps, predicted_steps
from ._cache import LRUCache
from ._figure import FigureImage
from ._palette import CURRENT, series_style
from ._state import WidgetState
from ._view import KEYS_HELP, WidgetView, html_table, number

#: the data sets of the inputs part (name -> where it comes from)
DATASETS = ("two gaussians", "badly scaled", "non-centered", "correlated cloud", "digits")
#: the transforms (name shown -> function name in optlab.problems.transforms; None = the raw inputs)
TRANSFORM_NAMES = {"raw": None, "centered": "center", "standardized": "standardize",
                   "decorrelated": "decorrelate", "whitened": "whiten"}
SHRINK = 1e-6  #: the error reduction the step counts refer to
PATH_STEPS = 400  #: at most this many GD steps are drawn
MAX_STEPS = 10 ** 15  #: step counts beyond this read "never" (raw inputs need up to ~1e11)
GRID = 61  #: contour grid points per axis

#: the layers part's normalizations (None: the plain net) and the axes each averages over
NORMS = ("none", "batch", "layer", "instance", "group")
NORM_AXES = {"none": "", "batch": "N, H, W", "layer": "C, H, W", "instance": "H, W",
             "group": "C subset, H, W"}
MODELS = ("mlp", "cnn")
BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
CURVATURE_SAMPLES = 256  #: training samples the Hessian at initialisation is measured on
#: the precision each net is trained in: the MLP in float64 (its runs match float64 references to the last
#: digits); the CNN in float32, where its convolutions, pooling and tanh over the 8x8 images cost about half
#: (float32's 7 digits are ample for loss curves and 3-digit readouts)
DTYPES = {"mlp": "float64", "cnn": "float32"}
#: the CNN's channels (two conv stages, :func:`optlab.problems.digits.cnn`): narrower than the builder's (8, 16),
#: so that a new setting, which trains the plain and the normalized net, stays within a second
CNN_CHANNELS = (4, 8)
NOISE_ROWS = 1024  #: the batch-noise probe runs at most this many rows per draw (samples x batch size)


# ----- inputs: linear least squares -------------------------------------------------------------------------

def dataset_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, t)`` of one of :data:`DATASETS` (seeded, offline).

    ``"digits"``: scikit-learn's 8x8 digits scaled to [0, 1] without the 3 pixels that are 0 in every
    image (a constant input has no variance to standardize, and makes :math:`H` singular), targets
    :math:`\\pm1` for digits >= 5 and < 5.
    """
    one_of("dataset_inputs", "name", name, DATASETS)
    from .. import problems as P

    if name == "two gaussians":
        return P.two_gaussians_data()
    if name == "badly scaled":
        return P.badly_scaled_table()
    if name == "non-centered":
        return P.non_centered_table()
    if name == "correlated cloud":
        return P.correlated_cloud_data()
    from sklearn.datasets import load_digits

    d = load_digits()
    X = d.data / 16.0
    return X[:, X.var(0) > 0], np.where(d.target >= 5, 1.0, -1.0)


@dataclass(frozen=True)
class InputsState(WidgetState):
    """The inputs part: one data set after one transform, as numbers."""

    dataset: str
    transform: str
    points: np.ndarray  #: the transformed inputs shown (first two coordinates, or first two principal ones), (N, 2)
    points_are_principal: bool  #: whether ``points`` are principal coordinates (more than 2 inputs)
    eigenvalues: np.ndarray  #: eigenvalues of H (descending)
    kappa: float  #: lambda_max / lambda_min
    lambda_max: float
    alpha_star: float  #: best fixed step 2 / (lambda_min + lambda_max)
    rate: float  #: max |1 - alpha* lambda_i| = (kappa - 1) / (kappa + 1)
    steps_predicted: int | None  #: first k with rate^k <= 1e-6 (None: never)
    steps_run: int | None  #: first k with |w_k - w*| <= 1e-6 |w_0 - w*| on the GD run at alpha* from w_0 = 0
    plane: str  #: "weights" (2 inputs) or "eigen" (the lambda_max and lambda_min eigen-directions)
    path: np.ndarray  #: the GD run at alpha* in the plane, (k + 1, 2)
    grid_x: np.ndarray  #: contour grid, (GRID,)
    grid_y: np.ndarray
    grid_loss: np.ndarray  #: excess loss L - L* on the grid, (GRID, GRID)
    levels: np.ndarray  #: contour levels


def transformed_inputs(dataset: str, transform: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, t)`` of ``dataset`` after ``transform`` (one of :data:`TRANSFORM_NAMES`)."""
    one_of("NormalizationEffect", "transform", transform, TRANSFORM_NAMES)
    X, t = dataset_inputs(dataset)
    name = TRANSFORM_NAMES[transform]
    if name is None:
        return X, t
    from ..problems.transforms import TRANSFORMS

    return TRANSFORMS[name](X)[0], t


def input_normalization_model(dataset: str = "correlated cloud", transform: str = "raw") -> InputsState:
    r"""Least squares on ``dataset`` (one of :data:`DATASETS`) after ``transform`` (one of
    :data:`TRANSFORM_NAMES`): Hessian spectrum, :math:`\kappa`, :math:`\alpha^*`, steps to :math:`10^{-6}`, GD path.

    Example:
        >>> raw = input_normalization_model("correlated cloud", "raw")
        >>> white = input_normalization_model("correlated cloud", "whitened")
        >>> bool(raw.kappa > 10), round(white.kappa, 6), white.steps_run
        (True, 1.0, 1)
    """
    one_of("NormalizationEffect", "dataset", dataset, DATASETS)
    X, t = transformed_inputs(dataset, transform)
    N, d = X.shape
    H = X.T @ X / N
    lam, Q = np.linalg.eigh(H)
    lam, Q = lam[::-1], Q[:, ::-1]  # largest first
    lam = np.maximum(lam, 0.0)  # round-off below 0 on a positive semi-definite matrix
    b = Q.T @ (X.T @ t) / N  # the normal equations H w* = X't/N in H's eigenbasis (pseudo-inverse where lam = 0)
    w_star = Q @ np.divide(b, lam, out=np.zeros_like(b), where=lam > 0)
    w0 = np.zeros(d)
    positive_spectrum = lam[-1] > 0
    alpha = best_alpha(lam) if positive_spectrum else 1.0 / lam[0]
    rate = gd_rate(lam, alpha)
    coords0 = Q.T @ (w0 - w_star)
    # the run's count: the closed-form GD iterates (equal to optlab.optim.SGD's, tested), by bisection over k
    steps_run = measured_steps(lam, alpha, SHRINK, coords0, max_steps=MAX_STEPS)
    k = min(PATH_STEPS if steps_run is None else steps_run, PATH_STEPS)
    factors = (1.0 - alpha * lam)[:, None] ** np.arange(k + 1)[None, :]  # gd_factors, (d, k+1)
    coords = (factors * coords0[:, None]).T  # eigen-coordinates of w_k - w*
    if d == 2:
        plane, path = "weights", w_star + coords @ Q.T
        centre, basis, lam2 = w_star, Q, lam
    else:
        plane, path = "eigen", coords[:, [0, d - 1]]
        centre, basis, lam2 = np.zeros(2), np.eye(2), lam[[0, d - 1]]
    half = np.full(2, 1.15 * max(float(np.abs(path - centre).max()), 1e-12))  # a square box: circles stay round
    gx = np.linspace(centre[0] - half[0], centre[0] + half[0], GRID)
    gy = np.linspace(centre[1] - half[1], centre[1] + half[1], GRID)
    D = np.stack(np.meshgrid(gx, gy), -1) - centre  # (GRID, GRID, 2), [iy, ix]
    E = 0.5 * ((D @ basis) ** 2 * lam2).sum(-1)
    e0 = 0.5 * float(((path[0] - centre) @ basis) ** 2 @ lam2)
    levels = e0 * np.geomspace(1e-4, 1.0, 9) if e0 > 0 else np.array([1.0])
    if d == 2:
        points, principal = X, False
    else:
        Xc = X - X.mean(0)
        _, V = np.linalg.eigh(Xc.T @ Xc)
        points, principal = Xc @ V[:, [-1, -2]], True
    return InputsState(
        dataset=dataset, transform=transform, points=points, points_are_principal=principal, eigenvalues=lam,
        kappa=float(lam[0] / lam[-1]) if positive_spectrum else math.inf, lambda_max=float(lam[0]),
        alpha_star=float(alpha), rate=float(rate), steps_predicted=predicted_steps(rate, SHRINK), steps_run=steps_run,
        plane=plane, path=path, grid_x=gx, grid_y=gy, grid_loss=E, levels=levels,
    )


# ----- layers: normalization inside a digits net --------------------------------------------------------------

@dataclass(frozen=True)
class LayersState(WidgetState):
    """The layers part: a digits net with and without a normalization, as numbers.

    Arrays with a leading axis of 2 hold ``[without, with]`` the normalization (``norm="none"``: both
    are the plain net).
    """

    model: str
    norm: str
    lr: float
    batch_size: int
    steps: int
    axes: str  #: the axes (N, C, H, W) the normalization averages over (NORM_AXES)
    layers: list  #: names of the hidden layers
    act_mean: np.ndarray  #: (2 nets, 2 times [init, trained], layers): mean of each hidden pre-activation
    act_std: np.ndarray  #: same shape: its spread (standard deviation)
    lambda_max: np.ndarray  #: (2,): top Hessian eigenvalue at initialisation
    alpha_max: np.ndarray  #: (2,): 2 / lambda_max
    losses: np.ndarray  #: (2, steps + 1): mini-batch training losses (nan after a divergence)
    diverged_at: list  #: per net: the step where the run diverged, or None
    train_loss: np.ndarray  #: (2,): training-set loss in train mode (batch statistics, batches of batch_size)
    eval_loss: np.ndarray  #: (2,): training-set loss in eval mode (running statistics)
    batch_noise: np.ndarray  #: (2,): mean std of a sample's logits over 8 batches it is put in

    @property
    def train_eval_gap(self) -> np.ndarray:
        """``eval_loss - train_loss``: 0 without running statistics (all but BatchNorm)."""
        return self.eval_loss - self.train_loss


def check_layer_settings(model, norm, lr, batch_size, steps, seed) -> None:
    """The ``ValueError`` of :func:`layer_normalization_model` for a bad argument."""
    owner = "NormalizationEffect"
    one_of(owner, "model", model, MODELS)
    one_of(owner, "norm", norm, NORMS)
    check(owner, "lr", lr, is_number(lr) and math.isfinite(lr) and lr > 0, "a finite number > 0")
    check(owner, "batch_size", batch_size, is_integer(batch_size) and 2 <= batch_size <= 1024, "an integer in [2, 1024]")
    check(owner, "steps", steps, is_integer(steps) and 1 <= steps <= 5000, "an integer in [1, 5000]")
    check(owner, "seed", seed, is_integer(seed) and seed >= 0, "an integer >= 0")


def _hidden_stats(net, X) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each hidden pre-activation (the input of every activation module) on ``X``."""
    import torch

    acts = [m for m in net if isinstance(m, (torch.nn.Tanh, torch.nn.ReLU, torch.nn.Sigmoid))]
    seen = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach())) for m in acts]
    try:
        was = net.training
        net.train()
        with torch.no_grad():
            net(X)
        net.train(was)
    finally:
        for h in hooks:
            h.remove()
    return np.array([float(a.mean()) for a in seen]), np.array([float(a.std()) for a in seen])


def _lambda_max(net, loss_fn, data) -> float:
    from ..curvature import HessianOperator, top_eigenvalue

    op = HessianOperator(net, loss_fn, data)
    return float(top_eigenvalue(op, which="algebraic", max_iter=60, tol=1e-4).value)


@dataclass(frozen=True)
class NetRun(WidgetState):
    """One net of the layers part (with or without its normalization): what :func:`layer_net_run` measured."""

    act_mean: np.ndarray  #: (2 times [init, trained], layers)
    act_std: np.ndarray
    lambda_max: float  #: top Hessian eigenvalue at initialisation (on CURVATURE_SAMPLES training samples)
    losses: np.ndarray  #: (steps + 1,) mini-batch losses, nan after a divergence
    diverged_at: int | None
    train_loss: float  #: training-set loss in train mode, batches of batch_size (nan if diverged)
    eval_loss: float  #: training-set loss in eval mode (nan if diverged)
    batch_noise: float  #: mean std of a sample's logits over the batches it is put in (nan if diverged)


def digits_problem(model: str = "mlp"):
    """The digits problem (:class:`optlab.problems.Digits`) ``model`` is trained on, in its :data:`DTYPES`."""
    import torch

    from ..problems import Digits

    one_of("NormalizationEffect", "model", model, MODELS)
    return Digits(dtype=getattr(torch, DTYPES[model]))


def _net(problem, model: str, norm: str, seed: int):
    """A fresh seeded ``model`` of ``problem`` with ``norm`` (``"none"``: the plain net); the CNN with
    :data:`CNN_CHANNELS`."""
    kw = dict(channels=CNN_CHANNELS) if model == "cnn" else {}
    return problem.model(model, seed=seed, norm=None if norm == "none" else norm, **kw)


def layer_init(model: str, norm: str, seed: int = 0, problem=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Pre-activation mean and std per hidden layer and the Hessian's top eigenvalue of a fresh net."""
    d = problem or digits_problem(model)
    net = _net(d, model, norm, seed)
    X, y = d.batch()
    data = (X[:CURVATURE_SAMPLES], y[:CURVATURE_SAMPLES])
    mean, std = _hidden_stats(net, data[0])
    return mean, std, _lambda_max(net, d.loss_fn, data)


def _split_loss(net, loss_fn, X, y, batch_size: int) -> float:
    """The loss of ``(X, y)`` in train mode on consecutive batches of ``batch_size`` (a last batch of one dropped)."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], y[i:i + batch_size]
            if len(xb) < 2:
                break
            total += float(loss_fn(net(xb), yb)) * len(xb)
            count += len(xb)
    return total / count


def _batch_noise(net, X, batch_size: int, seed: int, samples: int | None = None, draws: int = 8) -> float:
    """How much a sample's output depends on its batch: the std of its logits over ``draws`` random
    batches of ``batch_size`` it is put in (train mode), averaged over ``samples`` samples.

    ``samples=None``: 16, or fewer for big batches so that a draw runs at most :data:`NOISE_ROWS` rows (8 samples
    at batch 128, 4 at 256; one sample's std varies by about 20% from sample to sample, so the mean of 4 is
    still within about 10%)."""
    import torch

    if samples is None:
        samples = max(4, min(16, NOISE_ROWS // batch_size))
    g = torch.Generator().manual_seed(seed)
    outs = []
    with torch.no_grad():
        for _ in range(draws):
            others = X[samples + torch.randperm(len(X) - samples, generator=g)[:batch_size - 1]]
            outs.append(torch.stack([net(torch.cat([X[j:j + 1], others]))[0] for j in range(samples)]))
    return float(torch.stack(outs).std(0).mean())


def layer_net_run(model: str, norm: str, lr: float, batch_size: int, steps: int, seed: int = 0,
                  problem=None, init=None) -> NetRun:
    """Train one digits net (``norm="none"``: the plain net) by mini-batch SGD and measure it (see
    :class:`NetRun`); ``init`` is :func:`layer_init`'s result if already known."""
    import copy

    import torch

    from ..optim import SGD
    from ..trajectory import run

    check_layer_settings(model, norm, lr, batch_size, steps, seed)
    d = problem or digits_problem(model)
    mean0, std0, lam = init if init is not None else layer_init(model, norm, seed, d)
    net = _net(d, model, norm, seed)
    X, y = d.batch()
    traj = run(d.objective(net, batch_size=batch_size, seed=seed), lambda p: SGD(p, lr=lr), steps,
               record_params=False)
    losses = np.full(steps + 1, np.nan)
    losses[:len(traj.losses)] = traj.losses
    diverged = traj.diverged or not np.all(np.isfinite([float(p.detach().abs().max()) for p in net.parameters()]))
    if diverged:
        losses[traj.diverged_at if traj.diverged_at is not None else len(traj.losses) - 1:] = np.nan
        mean1 = std1 = np.full_like(mean0, np.nan)
        train = evl = noise = math.nan
    else:
        with torch.no_grad():
            mean1, std1 = _hidden_stats(copy.deepcopy(net), X[:CURVATURE_SAMPLES])
            train = _split_loss(copy.deepcopy(net), d.loss_fn, X, y, batch_size)
            noise = _batch_noise(copy.deepcopy(net), X, batch_size, seed)
            net.eval()
            evl = float(d.loss_fn(net(X), y))
    return NetRun(act_mean=np.stack([mean0, mean1]), act_std=np.stack([std0, std1]), lambda_max=lam, losses=losses,
                  diverged_at=(traj.diverged_at if traj.diverged_at is not None else steps) if diverged else None,
                  train_loss=train, eval_loss=evl, batch_noise=noise)


def layer_normalization_model(model: str = "mlp", norm: str = "batch", lr: float = 0.5, batch_size: int = 32,
                              steps: int = 150, seed: int = 0, *, cache=None, progress=None) -> LayersState:
    r"""A digits ``model`` with ``norm`` (one of :data:`NORMS`) before each hidden activation, against the same
    net without: statistics, :math:`\lambda_{\max}` and :math:`2/\lambda_{\max}` at initialisation, SGD losses at
    ``lr`` on batches of ``batch_size``, BatchNorm's train/eval gap and batch noise.

    Args:
        cache: a mapping (e.g. :class:`~optlab.widgets.LRUCache`) that keeps each net's
            :class:`NetRun` by setting, so the plain net is trained once for all normalizations.
        progress: ``progress(fraction, text)`` called as the work goes on (the view's progress bar).

    Example:
        >>> s = layer_normalization_model("mlp", "layer", lr=0.3, batch_size=16, steps=5)
        >>> s.layers, s.axes, float(s.batch_noise[1])  # layer norm: a sample's output ignores its batch
        (['hidden 1'], 'C, H, W', 0.0)
    """
    check_layer_settings(model, norm, lr, batch_size, steps, seed)
    cache = {} if cache is None else cache
    runs = []
    for i, which in enumerate(("none", norm)):
        key = ("net", model, which, float(lr), int(batch_size), int(steps), int(seed))
        if key not in cache:
            if progress:
                progress(i / 2, f"training the {'plain' if which == 'none' else which + '-normalized'} {model}")
            if ("problem", model) not in cache:  # the data, loaded once for every setting
                cache[("problem", model)] = digits_problem(model)
            d = cache[("problem", model)]
            ikey = ("init", model, which, int(seed))
            if ikey not in cache:
                cache[ikey] = layer_init(model, which, seed, d)
            cache[key] = layer_net_run(model, which, lr, batch_size, steps, seed, d, cache[ikey])
        runs.append(cache[key])
    if progress:
        progress(1.0, "done")
    n_layers = runs[0].act_mean.shape[1]
    lam = np.array([r.lambda_max for r in runs])
    with np.errstate(divide="ignore"):
        amax = np.where(lam > 0, 2.0 / np.where(lam > 0, lam, 1.0), np.inf)
    return LayersState(
        model=model, norm=norm, lr=float(lr), batch_size=int(batch_size), steps=int(steps), axes=NORM_AXES[norm],
        layers=[f"hidden {i + 1}" for i in range(n_layers)],
        act_mean=np.stack([r.act_mean for r in runs]), act_std=np.stack([r.act_std for r in runs]),
        lambda_max=lam, alpha_max=amax, losses=np.stack([r.losses for r in runs]),
        diverged_at=[r.diverged_at for r in runs], train_loss=np.array([r.train_loss for r in runs]),
        eval_loss=np.array([r.eval_loss for r in runs]), batch_noise=np.array([r.batch_noise for r in runs]),
    )


# ----- the view ------------------------------------------------------------------------------------------------

PARTS = ("inputs", "layers")


@dataclass(frozen=True)
class NormalizationEffectState(WidgetState):
    """What :class:`NormalizationEffect` shows: the part chosen and its numbers (the other part's may be None)."""

    part: str
    inputs: InputsState | None
    layers: LayersState | None


def _steps_text(k) -> str:
    return "never" if k is None else f"{k:,}"


def inputs_caption(s: InputsState) -> str:
    """The inputs part's caption, from the state."""
    return (f"{s.dataset}, {s.transform} inputs: &kappa; = {number(s.kappa)}, so gradient descent at its best fixed "
            f"step &alpha;* = {number(s.alpha_star)} shrinks the error by 10<sup>&minus;6</sup> in "
            f"{_steps_text(s.steps_run)} steps (the worst direction alone predicts {_steps_text(s.steps_predicted)}).")


def layers_caption(s: LayersState) -> str:
    """The layers part's caption, from the state."""
    if s.norm == "none":
        what = f"the plain {s.model.upper()} (choose a normalization to compare)"
    else:
        what = f"{s.norm} norm (averaging over {s.axes}) in the {s.model.upper()} against the plain net"
    runs = []
    for label, k, loss in zip(("plain", s.norm), s.diverged_at, s.losses[:, -1]):
        runs.append(f"{label}: diverged at step {k}" if k is not None else f"{label}: loss {number(loss, '.3f')}")
    return (f"{what}. 2/&lambda;<sub>max</sub> at initialisation: {number(s.alpha_max[0], '.3g')} plain, "
            f"{number(s.alpha_max[1], '.3g')} normalized; lr = {number(s.lr, '.3g')}. After {s.steps} SGD steps "
            f"on batches of {s.batch_size}: " + "; ".join(runs) + ".")


def inputs_table_html(s: InputsState) -> str:
    """The inputs part's readout table."""
    return html_table(
        ["data", "transform", "&lambda;<sub>max</sub>", "&lambda;<sub>min</sub>", "&kappa;", "&alpha;*",
         "&rho;", "steps to 10<sup>&minus;6</sup>: predicted", "run"],
        [[s.dataset, s.transform, number(s.lambda_max), number(float(s.eigenvalues[-1])), number(s.kappa),
          number(s.alpha_star), number(s.rate, ".6f"), _steps_text(s.steps_predicted), _steps_text(s.steps_run)]],
        css_class="optlab-norm-inputs", caption=inputs_caption(s))


def layers_table_html(s: LayersState) -> str:
    """The layers part's readout tables: one row per net, then the hidden layers' statistics."""
    rows = []
    for i, label in enumerate(("plain", s.norm)):
        rows.append([label, number(s.lambda_max[i]), number(s.alpha_max[i]), number(s.lr * s.lambda_max[i] / 2, ".3f"),
                     "diverged" if s.diverged_at[i] is not None else number(s.losses[i, -1], ".4f"),
                     number(s.train_loss[i], ".4f"), number(s.eval_loss[i], ".4f"),
                     number(s.train_eval_gap[i], "+.4f"), number(s.batch_noise[i], ".4f")])
    nets = html_table(["net", "&lambda;<sub>max</sub>", "2/&lambda;<sub>max</sub>", "lr&lambda;<sub>max</sub>/2",
                       "last batch loss", "train-mode loss", "eval-mode loss", "eval &minus; train",
                       "batch noise"], rows, css_class="optlab-norm-layers", caption=layers_caption(s))
    stats = []
    for i, label in enumerate(("plain", s.norm)):
        for j, layer in enumerate(s.layers):
            stats.append([label, layer, number(s.act_mean[i, 0, j], "+.3f"), number(s.act_std[i, 0, j], ".3f"),
                          number(s.act_mean[i, 1, j], "+.3f"), number(s.act_std[i, 1, j], ".3f")])
    layers = html_table(["net", "layer", "mean (init)", "spread (init)", "mean (trained)", "spread (trained)"],
                        stats, css_class="optlab-norm-stats")
    return nets + layers


def axes_mask(norm: str, n: int = 6, c: int = 6) -> np.ndarray:
    """Which cells of an (C, N) grid (each cell one sample's channel, all its H, W) one statistic of ``norm``
    averages over, for the sample and channel in the middle: 1 inside, 0 outside (Wu & He's figure)."""
    m = np.zeros((c, n))
    i, j = c // 2, n // 2
    if norm == "batch":
        m[i, :] = 1
    elif norm == "layer":
        m[:, j] = 1
    elif norm == "instance":
        m[i, j] = 1
    elif norm == "group":
        m[c // 2:, j] = 1
    return m


class NormalizationEffect(WidgetView):
    r"""How normalizing the inputs or the layers changes the curvature: least squares and digits networks.

    *Inputs*: a data set and a transform (raw, centered, standardized, decorrelated, whitened); the inputs,
    the Hessian's eigenvalues (log scale) with :math:`\kappa`, and the error contours with gradient descent at
    its best fixed step :math:`\alpha^*`, with the steps to :math:`10^{-6}` predicted and run
    (:func:`input_normalization_model`). *Layers*: a digits MLP or CNN with batch, layer, instance or group
    norm against the plain net: hidden statistics, :math:`\lambda_{\max}` and :math:`2/\lambda_{\max}`, training
    losses at the chosen lr and batch size, BatchNorm's train/eval gap and batch noise, and the N, C, H, W
    diagram of what each normalization averages over (:func:`layer_normalization_model`).

    Torch work runs once per setting and is kept in an :class:`~optlab.widgets._cache.LRUCache` of
    ``cache_size`` results; the first computation of a setting moves the progress bar. The inputs part's
    picture of each setting is kept too (its contours and scatter need a full draw), so going back to a
    setting re-renders at slider speed; the layers part's figure keeps fixed scales and only its moving
    artists are redrawn.

    Controls (keyboard: Tab between them; toggle buttons with Space/Enter; sliders with the arrow keys,
    PageUp/PageDown, Home/End): ``part``, ``dataset``, ``transform`` (inputs); ``model``, ``norm``, ``lr``,
    ``batch_size`` (layers). ``view.set(**params)`` moves them as a student would.

    Slides: LeCun deck 000 "Making the Hessian better conditioned" and deck 002 "Normalization tricks"
    (seeds 000, 002), Zemel lecture 4 "Ill-conditioned curvature: normalization" (seed 001), Misra's batch
    normalization (seed 003).

    Example:
        >>> view = NormalizationEffect()
        >>> view.set(dataset="badly scaled", transform="standardized")
        >>> round(view.state.inputs.kappa, 3), view.state.inputs.steps_run
        (1.249, 7)
        >>> view.state.to_dict()["inputs"]["transform"]
        'standardized'
    """

    def __init__(self, part: str = "inputs", dataset: str = "correlated cloud", transform: str = "raw",
                 model: str = "mlp", norm: str = "batch", lr: float = 0.5, batch_size: int = 32, steps: int = 150,
                 seed: int = 0, cache_size: int = 48):
        owner = "NormalizationEffect"
        one_of(owner, "part", part, PARTS)
        one_of(owner, "dataset", dataset, DATASETS)
        one_of(owner, "transform", transform, TRANSFORM_NAMES)
        check_layer_settings(model, norm, lr, batch_size, steps, seed)
        check(owner, "lr", lr, 1e-3 <= lr <= 100, "a number in [0.001, 100] (the slider's range)")
        one_of(owner, "batch_size", batch_size, BATCH_SIZES)
        self.steps, self.seed = steps, seed
        self._cache = LRUCache(cache_size)
        self._pngs = LRUCache(cache_size)  # the inputs part's picture of each setting seen (contours, scatter)
        toggle = dict(style={"button_width": "auto"})
        self.controls = {
            "part": widgets.ToggleButtons(options=list(PARTS), value=part, description="part",
                                          tooltips=["normalize the inputs of least squares",
                                                    "normalize the layers of a digits net"], **toggle),
            "dataset": widgets.Dropdown(options=list(DATASETS), value=dataset, description="data"),
            "transform": widgets.ToggleButtons(options=list(TRANSFORM_NAMES), value=transform, description="transform",
                                               tooltips=["the inputs as given", "x - mean", "(x - mean) / std",
                                                         "rotate onto the principal axes", "decorrelate, unit variances"],
                                               **toggle),
            "model": widgets.ToggleButtons(options=list(MODELS), value=model, description="net",
                                           tooltips=["64-30-10 tanh MLP",
                                                     "two tanh conv stages (%d, %d channels) + linear" % CNN_CHANNELS],
                                           **toggle),
            "norm": widgets.ToggleButtons(options=list(NORMS), value=norm, description="norm",
                                          tooltips=[f"averages over {NORM_AXES[n] or 'nothing'}" for n in NORMS],
                                          **toggle),
            "lr": widgets.FloatLogSlider(value=lr, base=10, min=-3, max=2, step=0.1, description="lr",
                                         readout_format=".3g", continuous_update=False,
                                         layout=widgets.Layout(width="30em")),
            "batch_size": widgets.SelectionSlider(options=list(BATCH_SIZES), value=batch_size, description="batch",
                                                  continuous_update=False, layout=widgets.Layout(width="30em")),
        }
        self.progress = widgets.FloatProgress(value=1.0, min=0.0, max=1.0, description="ready",
                                              layout=widgets.Layout(width="30em"))
        self.table = widgets.HTML()
        help_text = widgets.HTML("<div style='font-size:90%;color:#444'>" + html.escape(KEYS_HELP) +
                                 " Toggle buttons: Tab to them, Space or Enter.</div>")
        self._figs = {"inputs": FigureImage(ncols=3, figsize=(11.0, 3.4)),
                      "layers": FigureImage(ncols=4, figsize=(12.5, 3.3))}
        self._build_inputs_figure()
        self._build_layers_figure()
        c = self.controls
        self._boxes = {"inputs": widgets.VBox([c["dataset"], c["transform"], self._figs["inputs"].image]),
                       "layers": widgets.VBox([c["model"], c["norm"], c["lr"], c["batch_size"], self.progress,
                                               self._figs["layers"].image])}
        self.widget = widgets.VBox([c["part"], *self._boxes.values(), self.table, help_text])
        self.widget.add_class("optlab-widget-normalization")
        self._connect()

    # ----- model ------------------------------------------------------------------------------------------------

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.value, self.progress.description = fraction, "computing" if fraction < 1 else "ready"
        self.progress.tooltip = text

    def _compute(self, values: dict) -> NormalizationEffectState:
        part = values["part"]
        inputs = self._cache.get_or_compute(("inputs", values["dataset"], values["transform"]),
                                            lambda: input_normalization_model(values["dataset"], values["transform"]))
        layers = None
        if part == "layers":
            layers = layer_normalization_model(values["model"], values["norm"], values["lr"], values["batch_size"],
                                               self.steps, self.seed, cache=self._cache, progress=self._progress)
        return NormalizationEffectState(part=part, inputs=inputs, layers=layers)

    def _show(self, s: NormalizationEffectState) -> None:
        for name, box in self._boxes.items():
            box.layout.display = "" if name == s.part else "none"
        self.table.value = inputs_table_html(s.inputs) if s.part == "inputs" else layers_table_html(s.layers)

    def _render(self, s: NormalizationEffectState) -> None:
        if s.part == "inputs":  # a setting seen before shows its picture again at once (its artists are redrawn
            fig = self._figs["inputs"]  # only for a new setting: contours and scatter cost a full draw)
            key = (s.inputs.dataset, s.inputs.transform)
            fig.image.value = self._pngs.get_or_compute(key, lambda: (self._draw_inputs(s.inputs), fig.png())[1])
            return
        self._draw(s)
        self._figs[s.part].refresh()

    @property
    def _fig(self):
        return self._figs[self._state.part]

    # ----- inputs figure ----------------------------------------------------------------------------------------

    def _build_inputs_figure(self) -> None:
        ax_x, ax_e, ax_c = self._figs["inputs"].axes
        self._points = ax_x.scatter([], [], s=8, alpha=0.6, color=series_style(0)["color"], marker="o")
        ax_x.set_title("the inputs")
        ax_x.axhline(0, color="0.7", lw=0.8)
        ax_x.axvline(0, color="0.7", lw=0.8)
        st = series_style(1)
        self._eig_line, = ax_e.plot([], [], ls="", marker=st["marker"], color=st["color"], ms=5)
        from matplotlib.collections import LineCollection

        self._eig_bars = LineCollection([], colors=st["color"], linewidths=2)
        ax_e.add_collection(self._eig_bars)
        ax_e.set_yscale("log")
        ax_e.set(xlabel=r"$i$", ylabel=r"$\lambda_i(H)$")
        pst = series_style(0)
        self._path, = ax_c.plot([], [], color=pst["color"], marker=pst["marker"], ms=3, lw=1.2,
                                label=r"GD at $\alpha^*$")
        self._start, = ax_c.plot([], [], ls="", marker="s", color="black", ms=6, label=r"$w_0$")
        self._opt, = ax_c.plot([], [], ls="", marker="*", color="black", ms=10, label=r"$w^*$")
        ax_c.legend(loc="upper right", fontsize="small")
        ax_c.set_aspect("equal", adjustable="box")
        self._contours = None

    def _draw_inputs(self, s: InputsState) -> None:
        ax_x, ax_e, ax_c = self._figs["inputs"].axes
        self._points.set_offsets(s.points)
        lo, hi = s.points.min(0), s.points.max(0)
        pad = 0.05 * np.maximum(hi - lo, 1e-12)
        ax_x.set(xlim=(lo[0] - pad[0], hi[0] + pad[0]), ylim=(lo[1] - pad[1], hi[1] + pad[1]),
                 xlabel="principal coordinate 1" if s.points_are_principal else r"$x_1$",
                 ylabel="principal coordinate 2" if s.points_are_principal else r"$x_2$")
        i = np.arange(1, len(s.eigenvalues) + 1)
        lam = np.maximum(s.eigenvalues, 1e-300)
        floor = lam.min() / 3
        self._eig_line.set_data(i, lam)
        self._eig_bars.set_segments([[(k, floor), (k, v)] for k, v in zip(i, lam)])
        ax_e.set(xlim=(0.3, len(i) + 0.7), ylim=(floor, lam.max() * 3))
        ax_e.set_title(rf"Hessian eigenvalues, $\kappa$ = {number(s.kappa, '.3g')}")
        if self._contours is not None:
            self._contours.remove()
        self._contours = ax_c.contour(s.grid_x, s.grid_y, s.grid_loss, levels=s.levels, colors="0.45",
                                      linewidths=0.8)
        self._path.set_data(s.path[:, 0], s.path[:, 1])
        self._start.set_data([s.path[0, 0]], [s.path[0, 1]])
        centre = (s.grid_x[len(s.grid_x) // 2], s.grid_y[len(s.grid_y) // 2])
        self._opt.set_data([centre[0]], [centre[1]])
        ax_c.set(xlim=(s.grid_x[0], s.grid_x[-1]), ylim=(s.grid_y[0], s.grid_y[-1]))
        if s.plane == "weights":
            ax_c.set(xlabel=r"$w_1$", ylabel=r"$w_2$")
        else:
            ax_c.set(xlabel=r"along $v_{\max}$", ylabel=r"along $v_{\min}$")
        ax_c.set_title(f"error contours, {min(len(s.path) - 1, PATH_STEPS)} GD steps shown")

    # ----- layers figure ----------------------------------------------------------------------------------------

    def _build_layers_figure(self) -> None:
        ax_a, ax_l, ax_r, ax_d = self._figs["layers"].axes
        self._spread_bars = []
        labels = ["plain, init", "plain, trained", "norm, init", "norm, trained"]
        for k in range(4):
            st = series_style(k)
            bars = ax_a.bar(np.arange(2) + (k - 1.5) * 0.2, [0, 0], width=0.18, color=st["color"],
                            hatch=["", "//", "..", "xx"][k], edgecolor="white", label=labels[k])
            self._spread_bars.append(bars)
        ax_a.set(xticks=[0, 1], xticklabels=["hidden 1", "hidden 2"], ylabel="spread (std)",
                 title="pre-activation spread")
        ax_a.legend(fontsize="x-small", loc="upper right")
        self._loss_lines = []
        for k, label in enumerate(["plain", "normalized"]):
            st = series_style(k)
            line, = ax_l.plot([], [], color=st["color"], linestyle=st["linestyle"], marker=st["marker"], ms=3,
                              markevery=15, lw=1.1, label=label)
            self._loss_lines.append(line)
        ax_l.set(xlabel="step", ylabel="mini-batch loss", title="training loss", yscale="log")
        ax_l.legend(fontsize="small", loc="upper right")
        self._amax_bars = ax_r.barh([1, 0], [1, 1], color=[series_style(0)["color"], series_style(1)["color"]],
                                    hatch=["", "//"], edgecolor="white")
        ax_r.set(yticks=[1, 0], yticklabels=["plain", "normalized"], xscale="log",
                 title=r"$2/\lambda_{\max}$ at init against lr")
        self._lr_mark = ax_r.axvline(1.0, **CURRENT)
        self._lr_text = ax_r.annotate("lr", (1.0, 0.5), xycoords=("data", "axes fraction"), xytext=(3, 0),
                                      textcoords="offset points", ha="left", va="center", fontsize=9,
                                      bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85))
        self._diagram = ax_d.pcolormesh(axes_mask("batch"), cmap="Greys", vmin=0, vmax=1.6, edgecolors="0.55",
                                        linewidth=0.6)
        ax_d.set(xticks=[], yticks=[], xlabel="N (samples); a cell = H×W", ylabel="C (channels)", aspect="equal")
        # fixed scales, so that a setting only moves these artists (blitted over a background drawn once)
        ax_a.set(xlim=(-0.5, 1.5), ylim=(0.0, 2.5))
        ax_l.set(xlim=(0, self.steps), ylim=(1e-3, 30.0))
        ax_r.set_xlim(3e-4, 300.0)
        self._figs["layers"].animate([*(b for bars in self._spread_bars for b in bars), *self._loss_lines,
                                      *self._amax_bars, self._lr_mark, self._lr_text, self._diagram, ax_d.title])

    def _draw_layers(self, s: LayersState) -> None:
        ax_a, ax_l, ax_r, ax_d = self._figs["layers"].axes
        n = len(s.layers)
        values = [s.act_std[0, 0], s.act_std[0, 1], s.act_std[1, 0], s.act_std[1, 1]]
        for bars, v in zip(self._spread_bars, values):
            for j, bar in enumerate(bars):
                bar.set_height(float(v[j]) if j < n and np.isfinite(v[j]) else 0.0)
                bar.set_visible(j < n)
        for line, losses in zip(self._loss_lines, s.losses):
            line.set_data(np.arange(len(losses)), losses)
        amax = np.where(np.isfinite(s.alpha_max), s.alpha_max, 1e3)
        for bar, v in zip(self._amax_bars, amax):
            bar.set_width(float(v))
        self._lr_mark.set_xdata([s.lr, s.lr])
        self._lr_text.xy = (s.lr, 0.5)
        self._lr_text.set_text(f"lr = {s.lr:.3g}")
        self._diagram.set_array(axes_mask(s.norm).ravel())
        ax_d.set_title(f"{s.norm}: mean over {s.axes}" if s.norm != "none" else "no normalization",
                       fontsize="medium")

    def _draw(self, s: NormalizationEffectState) -> None:
        if s.part == "inputs":
            self._draw_inputs(s.inputs)
        else:
            self._draw_layers(s.layers)
