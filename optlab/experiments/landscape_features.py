r"""Lecture 02, the landscape: the experiments behind the slides' claims about convexity, symmetries,
saddles, plateaux, ReLU paths and the size of the network.

* **Convexity** (Zemel, "Convex functions"): a function is convex iff
  :math:`J(\tfrac{a+b}2) \le \tfrac12(J(a) + J(b))` for all pairs; :func:`convexity_gap` measures the
  violation. For twice differentiable :math:`J`, convex iff the Hessian is PSD everywhere.
* **Permutation symmetry** (Zemel, "Local minima"): :func:`permute_hidden` reorders the hidden units of
  an MLP without changing its function; :func:`average_hidden_units` is the average over all :math:`K!`
  permutations: every hidden unit becomes the mean unit.
* **Identical units** (Zemel, "Saddle points"): :func:`tie_hidden_units` makes all hidden units of the
  first layer copies of one unit (plus an optional perturbation); :func:`hidden_unit_spread` measures
  how far apart they are.
* **Plateaux** (Zemel, "Plateaux"): :func:`logistic_unit_gradients` (least squares vs cross-entropy on a
  saturated logistic unit), :func:`zero_one_loss`, :func:`kill_unit` and :func:`unit_gradient_norms`
  (a dead ReLU has exactly zero gradient).
* **ReLU paths** (LeCun deck 002, "Deep nets with ReLUs and max pooling"): :func:`path_sum` writes the
  output of a bias-free ReLU net as the sum over active input-output paths of :math:`x_i\prod w`;
  :func:`rescale_unit` moves along the hyperbola-like set of equivalent weights.
* **Size of the network** (LeCun deck 000, "Deep learning is hard?", "Back-prop learning is not as bad
  as it seems"): :func:`seed_sweep` trains MLPs of several shapes from several seeds.
* **Convexity is overrated** (LeCun deck 000; Collobert, Sinz, Weston, Bottou 2006): :func:`hinge_vs_ramp`
  trains a linear classifier with the convex hinge loss and the non-convex ramp loss on noisy labels;
  :func:`digits_classifier_table` is the digits analogue of the NORB table (linear, KNN, SVM, ConvNet,
  ConvNet features + SVM).

References:
    R. Zemel, COMS 4995 Lecture 4: Optimization. Y. LeCun, "Optimization Methods for Non-Linear/Non-Convex
    Learning Problems" (deck 000) and "Optimization", NYU 2020 (deck 002).
    R. Collobert, F. Sinz, J. Weston, L. Bottou (2006), "Trading convexity for scalability", ICML.
    Y. LeCun, F.-J. Huang, L. Bottou (2004), "Learning methods for generic object recognition with
    invariance to pose and lighting", CVPR (the NORB tables).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import check, check_type, in_interval, int_in_range, is_integer, non_negative, positive, positive_int
from ..landscape import linear_path
from ..problems.base import Objective, model_objective
from ..problems.digits import Digits, load_digits_data, mlp
from ..trajectory import run
from .sgd_tricks import stream_objective

# --------------------------------------------------------------------------- convexity


def convexity_gap(loss_at: Callable, theta_a, theta_b) -> float:
    r""":math:`J(\tfrac{a+b}{2}) - \tfrac12\big(J(a) + J(b)\big)`: positive means :math:`J` is not convex.

    Args:
        loss_at: ``theta -> float`` (e.g. :func:`optlab.landscape.model_loss_function`).
        theta_a, theta_b: two flat parameter vectors.

    Example:
        >>> convexity_gap(lambda t: float((t ** 2).sum()), torch.tensor([1.0]), torch.tensor([-1.0]))
        -1.0
    """
    path = linear_path(loss_at, theta_a, theta_b, alphas=[0.0, 0.5, 1.0])
    return float(path.losses[1] - 0.5 * (path.losses[0] + path.losses[2]))


# --------------------------------------------------------------------------- hidden units of an MLP


def _first_layers(owner: str, model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """The first ``nn.Linear`` of a ``nn.Sequential`` MLP and the next one (they hold the first hidden layer)."""
    check_type(owner, "model", model, isinstance(model, nn.Sequential), "an nn.Sequential MLP (optlab.problems.mlp)")
    linears = [m for m in model if isinstance(m, nn.Linear)]
    check(owner, "model", type(model).__name__, len(linears) >= 2, "an MLP with at least one hidden layer")
    return linears[0], linears[1]


def permute_hidden(model: nn.Sequential, perm) -> nn.Sequential:
    """A copy of the MLP with the first hidden layer's units reordered by ``perm`` (same function).

    Unit ``perm[i]`` of the original becomes unit ``i``: rows of the first weight matrix and bias, columns
    of the next weight matrix.
    """
    first, _ = _first_layers("permute_hidden", model)
    k = first.out_features
    perm = [int(i) for i in perm]
    check("permute_hidden", "perm", perm, sorted(perm) == list(range(k)), f"a permutation of 0..{k - 1}")
    twin = copy.deepcopy(model)
    a, b = _first_layers("permute_hidden", twin)
    with torch.no_grad():
        a.weight.copy_(a.weight[perm])
        if a.bias is not None:
            a.bias.copy_(a.bias[perm])
        b.weight.copy_(b.weight[:, perm])
    return twin


def average_hidden_units(model: nn.Sequential) -> nn.Sequential:
    r"""The average of the MLP over all :math:`K!` permutations of its first hidden layer: a copy in which
    every hidden unit is the mean unit (mean incoming weights and bias, mean outgoing weights).

    Each unit occupies each position in :math:`(K-1)!` of the :math:`K!` permutations, so the average has
    the mean unit everywhere (Zemel, "Local minima": "a degenerate network where all the hidden units are
    identical").
    """
    twin = copy.deepcopy(model)
    a, b = _first_layers("average_hidden_units", twin)
    with torch.no_grad():
        a.weight.copy_(a.weight.mean(0, keepdim=True).expand_as(a.weight))
        if a.bias is not None:
            a.bias.fill_(float(a.bias.mean()))
        b.weight.copy_(b.weight.mean(1, keepdim=True).expand_as(b.weight))
    return twin


def tie_hidden_units(model: nn.Sequential, perturbation: float = 0.0, seed: int = 0) -> nn.Sequential:
    """Make every unit of the first hidden layer a copy of unit 0 (in place; returns ``model``).

    Incoming weights, bias and outgoing weights are copied; then, if ``perturbation > 0``, Gaussian noise of
    that standard deviation (seeded) is added to the incoming weights, which breaks the symmetry.
    """
    non_negative("tie_hidden_units", "perturbation", perturbation)
    a, b = _first_layers("tie_hidden_units", model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        a.weight.copy_(a.weight[:1].expand_as(a.weight))
        if a.bias is not None:
            a.bias.fill_(float(a.bias[0]))
        b.weight.copy_(b.weight[:, :1].expand_as(b.weight))
        if perturbation > 0:
            a.weight.add_(perturbation * torch.randn(a.weight.shape, generator=g, dtype=a.weight.dtype))
    return model


def hidden_unit_spread(model: nn.Sequential) -> float:
    r""":math:`\max_i \|w_i - w_0\|_\infty` over the incoming weights of the first hidden layer (0: all identical)."""
    a, _ = _first_layers("hidden_unit_spread", model)
    w = a.weight.detach()
    return float((w - w[:1]).abs().max())


# --------------------------------------------------------------------------- plateaux


def logistic_unit_gradients(z: float, t: float = 1.0) -> tuple[float, float]:
    r"""The derivatives with respect to the pre-activation :math:`z` of a logistic unit :math:`y = \sigma(z)` with
    target ``t``, for the squared error :math:`\tfrac12(y - t)^2` and the cross-entropy
    :math:`-t\log y - (1-t)\log(1-y)`: ``((y - t) y (1 - y), y - t)``, by autograd.

    A saturated unit (:math:`|z|` large) has :math:`\sigma'(z) \approx 0`, so the squared error's derivative
    vanishes even when the unit is completely wrong: a plateau. The cross-entropy's does not.

    Example:
        >>> se, ce = logistic_unit_gradients(0.0, 1.0)
        >>> se, ce
        (-0.125, -0.5)
    """
    zt = torch.tensor(float(z), dtype=torch.float64, requires_grad=True)
    y = torch.sigmoid(zt)
    (g_se,) = torch.autograd.grad(0.5 * (y - t) ** 2, zt)
    zt2 = torch.tensor(float(z), dtype=torch.float64, requires_grad=True)
    ce = nn.functional.binary_cross_entropy_with_logits(zt2, torch.tensor(float(t), dtype=torch.float64))
    (g_ce,) = torch.autograd.grad(ce, zt2)
    return float(g_se), float(g_ce)


def zero_one_loss(W, X, y) -> np.ndarray:
    r"""The 0-1 loss :math:`\frac1P\sum_i [\,y^i W^\top X^i \le 0\,]` of a linear classifier, for ``W`` of shape
    ``(..., d)``; piecewise constant, so its gradient is zero wherever it exists."""
    W, X, y = np.asarray(W, dtype=float), np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    margins = y * (W[..., None, :] * X).sum(-1)
    return (margins <= 0).mean(-1)


def kill_unit(model: nn.Sequential, unit: int, bias: float = -1e3) -> nn.Sequential:
    """Make unit ``unit`` of the first hidden layer dead for inputs in [0, 1] (in place; returns ``model``):
    its bias is set to ``bias`` (very negative), so its pre-activation is negative on every input."""
    a, _ = _first_layers("kill_unit", model)
    int_in_range("kill_unit", "unit", unit, 0, a.out_features - 1)
    with torch.no_grad():
        a.bias[unit] = bias
    return model


def unit_gradient_norms(model: nn.Sequential, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    r"""For each unit of the first hidden layer, the norm of the loss gradient with respect to its incoming
    weights and bias, :math:`\|(\partial J/\partial w_i, \partial J/\partial b_i)\|`, on the batch ``(X, y)``."""
    a, _ = _first_layers("unit_gradient_norms", model)
    model.zero_grad()
    loss_fn(model(X), y).backward()
    g = a.weight.grad.detach()
    gb = a.bias.grad.detach()[:, None] if a.bias is not None else torch.zeros(len(g), 1, dtype=g.dtype)
    norms = torch.cat([g, gb], 1).norm(dim=1).double().numpy()
    model.zero_grad()
    return norms


# --------------------------------------------------------------------------- ReLU paths


def _linears(owner: str, model: nn.Module) -> list[nn.Linear]:
    check_type(owner, "model", model, isinstance(model, nn.Sequential), "an nn.Sequential of Linear and ReLU layers")
    layers = list(model)
    ok = all(isinstance(m, (nn.Linear, nn.ReLU)) for m in layers) and all(
        m.bias is None for m in layers if isinstance(m, nn.Linear))
    check(owner, "model", type(model).__name__, ok, "bias-free nn.Linear layers separated by nn.ReLU")
    return [m for m in layers if isinstance(m, nn.Linear)]


def relu_net(sizes: Sequence[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A bias-free ReLU MLP with layer widths ``sizes`` (seeded): the nets of :func:`path_sum`."""
    check("relu_net", "sizes", sizes, isinstance(sizes, (list, tuple)) and len(sizes) >= 2
          and all(is_integer(s) and s > 0 for s in sizes), "two or more positive integers (the layer widths)")
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(a, b, bias=False).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=dtype) / np.sqrt(a))
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class PathSum:
    """The output of a ReLU net as a sum over paths: ``output[k]`` and how many paths were active."""

    output: np.ndarray
    active_paths: int
    paths: int


def path_sum(model: nn.Sequential, x) -> PathSum:
    r"""The output of a bias-free ReLU net on one input ``x``, computed path by path:

    .. math::
        \hat y_k = \sum_{\text{active paths } i \to j_1 \to \dots \to k}
        x_i\, w_{j_1 i}\, w_{j_2 j_1}\cdots w_{k j_{L-1}}

    A path is active when every hidden unit on it has a positive pre-activation (its ReLU is "on";
    LeCun deck 002: "sum over active paths, product of all weights along the path"). Every path is
    enumerated: small nets only.
    """
    Ws = [m.weight.detach().double().numpy() for m in _linears("path_sum", model)]
    x = np.asarray(x, dtype=float).reshape(-1)
    check("path_sum", "x", list(x.shape), x.size == Ws[0].shape[1], f"a vector of {Ws[0].shape[1]} inputs")
    n_paths = int(np.prod([W.shape[1] for W in Ws])) * Ws[-1].shape[0]
    check("path_sum", "model", f"{n_paths} paths", n_paths <= 200_000, "a small net (at most 200000 paths)")
    on, h = [], x
    for W in Ws[:-1]:  # which hidden units are on, layer by layer
        z = W @ h
        on.append(z > 0)
        h = np.maximum(z, 0.0)
    out = np.zeros(Ws[-1].shape[0])
    active = 0
    sizes = [W.shape[1] for W in Ws] + [Ws[-1].shape[0]]
    for path in itertools.product(*[range(s) for s in sizes]):
        if all(on[layer][path[layer + 1]] for layer in range(len(on))):
            active += 1
            out[path[-1]] += x[path[0]] * np.prod([Ws[layer][path[layer + 1], path[layer]] for layer in range(len(Ws))])
    return PathSum(out, active, n_paths)


def rescale_unit(model: nn.Sequential, layer: int, unit: int, c: float) -> nn.Sequential:
    r"""A copy of the ReLU net with hidden unit ``unit`` of hidden layer ``layer`` rescaled: incoming weights
    times ``c > 0``, outgoing weights divided by ``c``. Since :math:`\mathrm{ReLU}(cz) = c\,\mathrm{ReLU}(z)`,
    the function is unchanged: the equivalent weights form a hyperbola
    :math:`w_{\text{in}}w_{\text{out}} = \text{const}`."""
    positive("rescale_unit", "c", c)
    twin = copy.deepcopy(model)
    lins = _linears("rescale_unit", twin)
    int_in_range("rescale_unit", "layer", layer, 0, len(lins) - 2)
    int_in_range("rescale_unit", "unit", unit, 0, lins[layer].out_features - 1)
    with torch.no_grad():
        lins[layer].weight[unit] *= c
        lins[layer + 1].weight[:, unit] /= c
    return twin


# --------------------------------------------------------------------------- size of the network


@dataclass(frozen=True)
class SeedSweep:
    """Final training losses and accuracies of MLPs of several shapes, each trained from several seeds.

    ``losses[i, s]`` and ``accuracies[i, s]`` belong to ``shapes[i]`` (hidden widths) and ``seeds[s]``.
    """

    shapes: tuple
    seeds: tuple
    losses: np.ndarray
    accuracies: np.ndarray

    def success_rate(self, accuracy: float = 0.9) -> np.ndarray:
        """The share of seeds whose training accuracy reached ``accuracy``, per shape."""
        return (self.accuracies >= accuracy).mean(1)

    def spread(self) -> np.ndarray:
        """The standard deviation of the final loss over the seeds, per shape."""
        return self.losses.std(1)


def seed_sweep(shapes: Sequence[Sequence[int]], seeds: Sequence[int] = (0, 1, 2, 3), *, n: int = 400,
               steps: int = 200, lr: float = 0.1, momentum: float = 0.9, activation: str = "tanh",
               dtype: torch.dtype = torch.float32) -> SeedSweep:
    r"""Train a digits MLP ``64-h_1-...-h_L-10`` for each shape :math:`(h_1..h_L)` and seed, full batch.

    Data: the training split of ``Digits(n=n)`` (80% of ``n`` images). Optimizer: ``torch.optim.SGD`` with
    ``lr`` and ``momentum`` for ``steps`` steps, run by :func:`optlab.trajectory.run`. The seed sets the
    initial weights (PyTorch's default initialization).

    Slides: LeCun deck 000, "Deep learning is hard?" (tall and skinny vs short and fat) and "Back-prop
    learning is not as bad as it seems" (oversized nets give consistent results).
    """
    check("seed_sweep", "shapes", shapes, isinstance(shapes, (list, tuple)) and len(shapes) > 0 and all(
        isinstance(s, (list, tuple)) and len(s) > 0 and all(is_integer(w) and w > 0 for w in s) for s in shapes),
        "a non-empty list of hidden-width tuples, e.g. [(16,), (4, 4, 4)]")
    check("seed_sweep", "seeds", seeds, isinstance(seeds, (list, tuple)) and len(seeds) > 0
          and all(is_integer(s) for s in seeds), "a non-empty list of integer seeds")
    positive_int("seed_sweep", "steps", steps)
    positive("seed_sweep", "lr", lr)
    in_interval("seed_sweep", "momentum", momentum, 0, 1, open_high=True)
    data = Digits(n=n, dtype=dtype)
    X, y = data.batch("train")
    losses = np.zeros((len(shapes), len(seeds)))
    accs = np.zeros_like(losses)
    for i, shape in enumerate(shapes):
        for j, seed in enumerate(seeds):
            model = mlp((64, *shape, 10), activation=activation, seed=seed, dtype=dtype)
            traj = run(model_objective(model, data.loss_fn, X, y),
                       lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum), steps, record_params=False)
            losses[i, j] = traj.final_loss
            accs[i, j] = data.accuracy(model, "train")
    return SeedSweep(tuple(tuple(s) for s in shapes), tuple(seeds), losses, accs)


# --------------------------------------------------------------------------- convexity is overrated


def _binary_digits(a: int, b: int, noise: float, seed: int):
    """Digits ``a`` (label -1) and ``b`` (+1), standardized, with a share ``noise`` of training labels flipped."""
    d = load_digits_data(test_fraction=0.5, seed=seed)
    rng = np.random.default_rng(seed)

    def pick(X, y):
        keep = (y == a) | (y == b)
        return X[keep].double().numpy(), np.where(y[keep].numpy() == b, 1.0, -1.0)

    Xtr, ytr = pick(d.X_train, d.y_train)
    Xte, yte = pick(d.X_test, d.y_test)
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-3
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    flip = rng.random(len(ytr)) < noise
    return Xtr, np.where(flip, -ytr, ytr), Xte, yte, int(flip.sum())


@dataclass(frozen=True)
class HingeVsRamp:
    """Test errors (on clean labels) and support-vector counts of the two linear classifiers."""

    flipped: int  #: training labels flipped
    n_train: int
    hinge_error: float
    ramp_error: float
    hinge_support: int  #: training points with a non-zero loss gradient (margin < 1)
    ramp_support: int  #: training points with a non-zero ramp gradient (s < margin < 1)


def ramp_loss(margins: torch.Tensor, s: float = -1.0) -> torch.Tensor:
    r"""Collobert et al.'s ramp loss :math:`R_s(m) = \min(\max(0, 1 - m), 1 - s)` (hinge capped at :math:`1 - s`)."""
    return torch.clamp(1 - margins, min=0.0, max=1 - s)


def hinge_vs_ramp(a: int = 3, b: int = 8, noise: float = 0.2, *, C: float = 1.0, s: float = -1.0, steps: int = 300,
                  lr: float = 0.05, seed: int = 0) -> HingeVsRamp:
    r"""A linear classifier of digit ``a`` vs ``b`` with a share ``noise`` of flipped training labels, trained
    with the hinge loss (convex, a linear SVM) and then with the ramp loss (non-convex) from the hinge
    solution, as the concave-convex procedure of Collobert et al. does; each by ``steps`` steps of full-batch
    Adam on :math:`\frac{1}{2C P}\|w\|^2 + \frac1P\sum_i \ell(y^i(w^\top x^i + b))`.

    A flipped label is a point on the wrong side with a large negative margin: the hinge loss grows
    linearly with it and lets it pull the boundary; the ramp loss is flat there (zero gradient), so the
    outlier stops counting and stops being a support vector.

    Reference: R. Collobert, F. Sinz, J. Weston, L. Bottou (2006), "Trading convexity for scalability", ICML.
    """
    in_interval("hinge_vs_ramp", "noise", noise, 0, 0.5, open_high=True)
    positive("hinge_vs_ramp", "C", C)
    positive_int("hinge_vs_ramp", "steps", steps)
    check("hinge_vs_ramp", "s", s, isinstance(s, (int, float)) and s < 1,
          "a number < 1 (the ramp's flat level is 1 - s)")
    Xtr, ytr, Xte, yte, flipped = _binary_digits(a, b, noise, seed)
    X, y = torch.tensor(Xtr), torch.tensor(ytr)
    P = len(y)
    w = torch.zeros(X.shape[1] + 1, dtype=torch.float64, requires_grad=True)

    def margins():
        return y * (X @ w[:-1] + w[-1])

    def fit(loss):
        objective = Objective([w], lambda: 0.5 / (C * P) * (w[:-1] ** 2).sum() + loss(margins()).mean(),
                              name="linear classifier")
        run(objective, lambda p: torch.optim.Adam(p, lr=lr), steps, record_params=False)
        with torch.no_grad():
            m = margins().numpy()
            wt = w.detach().numpy().copy()
        return float(np.mean(np.sign(Xte @ wt[:-1] + wt[-1]) != yte)), m

    hinge_err, m_h = fit(lambda m: torch.clamp(1 - m, min=0.0))
    ramp_err, m_r = fit(lambda m: ramp_loss(m, s))
    return HingeVsRamp(flipped, P, hinge_err, ramp_err, int((m_h < 1).sum()), int(((m_r < 1) & (m_r > s)).sum()))


@dataclass(frozen=True)
class ClassifierTable:
    """Test error of each classifier on the digits (``errors[name]``), the digits analogue of LeCun's NORB table."""

    errors: dict
    n_train: int
    n_test: int


def train_cnn(data: Digits, seed: int = 0, epochs: int = 12, batch_size: int = 64, lr: float = 0.01) -> nn.Sequential:
    """A digits ConvNet (:func:`optlab.problems.cnn`, tanh) trained by ``epochs`` epochs of shuffled mini-batch
    Adam (:func:`optlab.experiments.sgd_tricks.stream_objective`), seeded (weights and data order)."""
    positive_int("train_cnn", "epochs", epochs)
    model = data.model("cnn", seed=seed)
    X, y = data.batch("train")
    stream = stream_objective(model, data.loss_fn, X, y, batch_size=batch_size, seed=seed, name="digits ConvNet")
    run(stream, lambda p: torch.optim.Adam(p, lr=lr), epochs * (len(X) // batch_size), record_params=False)
    return model


def cnn_features(model: nn.Sequential, X: torch.Tensor) -> np.ndarray:
    """The ConvNet's last hidden layer (the input of its final ``nn.Linear``): "chop off the last layer"."""
    with torch.no_grad():
        return model[:-1](X).double().numpy()


def digits_classifier_table(seed: int = 0, epochs: int = 12) -> ClassifierTable:
    """Test errors on the digits (80/20 split, ``seed``) of: a linear classifier (least squares to one-hot
    targets, sklearn's ``RidgeClassifier``, as the NORB paper's linear classifier), KNN
    (k = 1 and on 20 principal components), an RBF SVM (raw pixels and 20 principal components), the ConvNet
    of :func:`train_cnn`, and an RBF SVM trained on the ConvNet's features (LeCun deck 000: "Chop off the last
    layer of the convolutional net and train an SVM on it")."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import RidgeClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    data = Digits(seed=seed, dtype=torch.float32)
    (Xtr, ytr), (Xte, yte) = data.batch("train"), data.batch("test")
    xtr, xte, ltr, lte = Xtr.numpy(), Xte.numpy(), ytr.numpy(), yte.numpy()
    pca = PCA(20, random_state=seed).fit(xtr)
    ptr, pte = pca.transform(xtr), pca.transform(xte)

    def err(clf, a, b):
        return float(np.mean(clf.fit(a, ltr).predict(b) != lte))

    errors = {
        "linear": err(RidgeClassifier(), xtr, xte),
        "KNN": err(KNeighborsClassifier(1), xtr, xte),
        "KNN on PCA-20": err(KNeighborsClassifier(1), ptr, pte),
        "SVM": err(SVC(), xtr, xte),
        "SVM on PCA-20": err(SVC(), ptr, pte),
    }
    net = train_cnn(data, seed=seed, epochs=epochs)
    errors["ConvNet"] = 1.0 - data.accuracy(net, "test")
    errors["ConvNet + SVM"] = err(SVC(), cnn_features(net, Xtr), cnn_features(net, Xte))
    return ClassifierTable(errors, len(ltr), len(lte))
