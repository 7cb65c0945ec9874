r"""Handwritten digits (scikit-learn's ``load_digits``, shipped with the package) with small MLP and CNN builders.

The slides' digit experiments use 16x16 images (deck 000: "Network: 256-128-64-10 ... Data set: 320
handwritten digits"); the 8x8 digits of scikit-learn (1797 images, 10 classes, pixels 0..16) stand in for
them offline. Inputs are scaled to :math:`[0, 1]` (pixel / 16); the split is a seeded shuffle.

Builders follow the slides' shapes: :func:`mlp` (default 64-30-10, tanh), :func:`cnn` (two small
convolution + pooling stages, then a linear classifier), each seeded. The loss is the mean cross-entropy.

Slides: Y. LeCun, deck 000, "What does the Hessian look like in a neural net?" (digits network);
I. Goodfellow, deck 004, "Maxout / MNIST experiment" (linear path init -> solution).
Reference: E. Alpaydin, C. Kaynak (1998), "Optical Recognition of Handwritten Digits" (UCI data set
behind ``sklearn.datasets.load_digits``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .. import nn as onn
from ..errors import check, in_interval, int_in_range, is_integer, one_of
from .base import FunctionLoss, Objective, model_objective

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
#: the normalizations ``norm=`` inserts (from :mod:`optlab.nn`), before each hidden activation
NORMS = (None, "batch", "layer", "instance", "group")
#: the groups of :class:`~optlab.nn.GroupNorm` (``norm="group"``): each hidden layer's channels in two halves
NORM_GROUPS = 2


class _Unit(nn.Module):
    """Views an MLP's hidden ``(N, C)`` as ``(N, C, 1)`` (one spatial position) for InstanceNorm1d, and back."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x):
        return self.norm(x[:, :, None])[:, :, 0]


def norm_layer(norm: str, channels: int, spatial: tuple[int, ...] = (), dtype: torch.dtype = torch.float64):
    """One :mod:`optlab.nn` normalization over a hidden layer of ``channels`` (and ``spatial`` positions).

    ``"batch"``: :class:`~optlab.nn.BatchNorm1d`/``2d`` (over N, H, W); ``"layer"``: :class:`~optlab.nn.LayerNorm`
    over (C, H, W); ``"instance"``: :class:`~optlab.nn.InstanceNorm1d`/``2d`` (over H, W; an MLP's hidden layer
    has one position, so every normalized value is 0 -- legal, and why instance norm is for images);
    ``"group"``: :class:`~optlab.nn.GroupNorm` with :data:`NORM_GROUPS` groups (over a subset of C, and H, W).
    """
    one_of("norm_layer", "norm", norm, NORMS[1:])
    kw = dict(dtype=dtype)
    if norm == "batch":
        return (onn.BatchNorm2d if spatial else onn.BatchNorm1d)(channels, **kw)
    if norm == "layer":
        return onn.LayerNorm((channels, *spatial), **kw)
    if norm == "instance":
        return onn.InstanceNorm2d(channels, **kw) if spatial else _Unit(onn.InstanceNorm1d(channels, **kw))
    check("norm_layer", "channels", channels, channels % NORM_GROUPS == 0,
          f"a multiple of {NORM_GROUPS} (GroupNorm's groups)")
    return onn.GroupNorm(NORM_GROUPS, channels, **kw)


def _check_norm(owner: str, norm, batch_norm: bool) -> None:
    one_of(owner, "norm", norm, NORMS)
    check(owner, "batch_norm", batch_norm, not (batch_norm and norm is not None),
          "False when norm is given (norm='batch' is optlab's BatchNorm)")


@dataclass(frozen=True)
class DigitsData:
    """A seeded train/test split of the digits: images as rows of 64 floats in [0, 1], integer labels."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_data(test_fraction: float = 0.2, seed: int = 0, n: int | None = None,
                     dtype: torch.dtype = torch.float64) -> DigitsData:
    """Load scikit-learn's digits (no download), scale to [0, 1], shuffle with ``seed`` and split.

    Args:
        test_fraction: share of the (first ``n``) shuffled samples held out, in (0, 1).
        seed: the shuffle's seed.
        n: use only ``n`` samples (after shuffling); default all 1797.
    """
    from sklearn.datasets import load_digits

    in_interval("load_digits_data", "test_fraction", test_fraction, 0, 1, open_low=True, open_high=True)
    d = load_digits()
    X, y = d.data / 16.0, d.target
    idx = np.random.default_rng(seed).permutation(len(X))
    if n is not None:
        int_in_range("load_digits_data", "n", n, 10, len(X))
        idx = idx[:n]
    k = int(round(len(idx) * (1 - test_fraction)))
    tr, te = idx[:k], idx[k:]
    return DigitsData(torch.tensor(X[tr], dtype=dtype), torch.tensor(y[tr], dtype=torch.long),
                      torch.tensor(X[te], dtype=dtype), torch.tensor(y[te], dtype=torch.long))


def mlp(sizes=(64, 30, 10), activation: str = "tanh", batch_norm: bool = False, seed: int = 0,
        dtype: torch.dtype = torch.float64, norm: str | None = None) -> nn.Sequential:
    """A fully connected net with layer sizes ``sizes`` (default the slides' style 64-30-10), seeded.

    ``batch_norm=True`` inserts torch's ``BatchNorm1d`` before each hidden activation (for the BatchNorm
    cases of the landscape tools); ``norm`` (one of :data:`NORMS`) inserts :func:`norm_layer` there instead.
    """
    one_of("mlp", "activation", activation, _ACTIVATIONS)
    _check_norm("mlp", norm, batch_norm)
    check("mlp", "sizes", sizes, isinstance(sizes, (list, tuple)) and len(sizes) >= 2
          and all(is_integer(s) and s > 0 for s in sizes), "two or more positive integers (the layer widths)")
    sizes = list(sizes)
    layers = []
    with torch.random.fork_rng(devices=[]):  # seeded without touching the global generator
        torch.manual_seed(seed)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                if batch_norm:
                    layers.append(nn.BatchNorm1d(b))
                elif norm is not None:
                    layers.append(norm_layer(norm, b, dtype=dtype))
                layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers).to(dtype)


def cnn(channels=(8, 16), activation: str = "tanh", batch_norm: bool = False, seed: int = 0,
        dtype: torch.dtype = torch.float64, norm: str | None = None) -> nn.Sequential:
    """A small ConvNet for 8x8 digits: input rows of 64 are reshaped to 1x8x8, then two stages of
    3x3 convolution (+ optional normalization) + activation + 2x2 max-pooling, then ``Linear(c2*2*2, 10)``.

    ``batch_norm=True``: torch's ``BatchNorm2d``; ``norm`` (one of :data:`NORMS`): :func:`norm_layer`.
    """
    one_of("cnn", "activation", activation, _ACTIVATIONS)
    _check_norm("cnn", norm, batch_norm)
    check("cnn", "channels", channels, isinstance(channels, (list, tuple)) and len(channels) == 2
          and all(is_integer(c) and c > 0 for c in channels),
          "two positive integers (the channels of the two stages)")
    c1, c2 = channels
    act = _ACTIVATIONS[activation]
    with torch.random.fork_rng(devices=[]):  # seeded without touching the global generator
        torch.manual_seed(seed)
        def normalization(c: int, side: int) -> list:
            if batch_norm:
                return [nn.BatchNorm2d(c)]
            return [] if norm is None else [norm_layer(norm, c, (side, side), dtype)]

        layers = [nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, c1, 3, padding=1), *normalization(c1, 8)]
        layers += [act(), nn.MaxPool2d(2), nn.Conv2d(c1, c2, 3, padding=1), *normalization(c2, 4)]
        layers += [act(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(c2 * 4, 10)]
    return nn.Sequential(*layers).to(dtype)


class Digits:
    """The digits classification problem: data, model builders, loss and accuracy.

    Slide: LeCun deck 000 (digit networks) and Goodfellow deck 004 (MNIST linear-path experiment); the
    8x8 scikit-learn digits stand in for their data sets.

    Args:
        test_fraction, seed, n: see :func:`load_digits_data`.
    """

    source = "LeCun deck 000 / Goodfellow deck 004: handwritten digits (sklearn load_digits stand-in)"

    def __init__(self, test_fraction: float = 0.2, seed: int = 0, n: int | None = None,
                 dtype: torch.dtype = torch.float64):
        self.data = load_digits_data(test_fraction, seed, n, dtype)
        self.dtype = dtype

    @staticmethod
    def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the logits ``output``."""
        return nn.functional.cross_entropy(output, target)

    def model(self, kind: str = "mlp", seed: int = 0, **kwargs) -> nn.Sequential:
        """A fresh seeded ``"mlp"`` (:func:`mlp`) or ``"cnn"`` (:func:`cnn`)."""
        builders = {"mlp": mlp, "cnn": cnn}
        one_of("Digits.model", "kind", kind, builders)
        return builders[kind](seed=seed, dtype=self.dtype, **kwargs)

    def batch(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, y)`` of the ``"train"`` or ``"test"`` split."""
        one_of("Digits.batch", "split", split, ("train", "test"))
        d = self.data
        return (d.X_train, d.y_train) if split == "train" else (d.X_test, d.y_test)

    def objective(self, model: nn.Module, split: str = "train", batch_size: int | None = None,
                  seed: int = 0) -> Objective:
        """The cross-entropy over ``model``'s parameters (trains ``model`` itself), carrying ``model`` and the
        loss so that every optimizer runs on it (:func:`optlab.trajectory.run`).

        ``batch_size=None``: the full batch. Otherwise every call of the loss draws a fresh mini-batch of
        ``batch_size`` samples without replacement (seeded by ``seed``), so the trajectory runner, which
        calls it once per step, runs stochastic gradient descent; the recorded losses are then the
        mini-batch losses.
        """
        X, y = self.batch(split)
        if batch_size is None:
            return model_objective(model, self.loss_fn, X, y, name="digits")
        check("Digits.objective", "batch_size", batch_size, is_integer(batch_size) and 1 <= batch_size <= len(X),
              f"None or an integer in [1, {len(X)}]")
        g = torch.Generator().manual_seed(seed)
        loss_fn = FunctionLoss(self.loss_fn)

        def minibatch_loss():
            idx = torch.randperm(len(X), generator=g)[:batch_size]
            return loss_fn(model(X[idx]), y[idx])

        return Objective([p for p in model.parameters() if p.requires_grad], minibatch_loss,
                         name=f"digits (batch {batch_size})", model=model, loss_fn=loss_fn)

    def accuracy(self, model: nn.Module, split: str = "test") -> float:
        """Share of correctly classified samples (evaluated in ``eval`` mode on a copy of the mode flag)."""
        X, y = self.batch(split)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return float((model(X).argmax(1) == y).double().mean())
        finally:
            model.train(was_training)
