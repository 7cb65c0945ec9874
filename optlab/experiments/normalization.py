r"""Lecture 07, normalization: the experiments behind its claims, on the 8x8 digits.

* :func:`bn_mlp`: an MLP whose hidden layers are batch-normalized with :class:`optlab.nn.BatchNorm1d`
  (written from the slide's four lines) **before** the non-linearity (Ioffe & Szegedy's placement) or
  **after** it, with or without the learned scale and shift :math:`\gamma, \beta`.
* :func:`lr_grid` / :class:`LRGrid`: mini-batch SGD for every learning rate of a grid, the full training
  loss every few steps; :meth:`LRGrid.steps_to` (steps to reach a target loss), :meth:`LRGrid.best` (the
  fastest rate and its steps) and :meth:`LRGrid.max_usable_lr` (the largest rate that reaches the
  target): the measured training speed-up of batch normalization and its larger usable learning rate.
* :func:`preactivations` and :func:`saturated_fraction`: the inputs of the non-linearities, and the share
  of sigmoid/tanh units in their flat tails (a normalized input "may never saturate").
* :func:`normalized_stats`: the worst mean and variance of a normalized tensor over a group of axes (which
  axes batch, layer, instance and group normalization average over).
* :func:`diagonal_prong`: PRONG's whitening (Desjardins et al. 2015) applied to each unit on its own, i.e.
  the diagonal version of PRONG: it is batch normalization's :math:`\hat x`.

References:
    S. Ioffe, C. Szegedy (2015), "Batch normalization: accelerating deep network training by reducing
    internal covariate shift", ICML.
    J. L. Ba, J. R. Kiros, G. E. Hinton (2016), "Layer normalization"; D. Ulyanov, A. Vedaldi, V. Lempitsky
    (2016), "Instance normalization: the missing ingredient for fast stylization"; Y. Wu, K. He (2018),
    "Group normalization", ECCV.
    G. Desjardins, K. Simonyan, R. Pascanu, K. Kavukcuoglu (2015), "Natural neural networks", NIPS.
    Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp" (centering, tanh vs logistic).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import check, check_type, int_in_range, is_integer, one_of, positive
from ..nn import BatchNorm1d
from ..optim.prong import whitening
from ..problems.digits import Digits
from ..trajectory import run

_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}
PLACEMENTS = ("none", "before", "after")


def bn_mlp(sizes: Sequence[int] = (64, 32, 32, 10), activation: str = "sigmoid", placement: str = "before",
           affine: bool = True, seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Sequential:
    r"""A seeded MLP with :class:`optlab.nn.BatchNorm1d` on every hidden layer.

    ``placement="before"``: Linear -> BN -> activation (Ioffe & Szegedy); ``"after"``: Linear -> activation
    -> BN; ``"none"``: no normalization. ``affine=False`` drops :math:`\gamma` and :math:`\beta` (the layer
    then outputs :math:`\hat x` itself). The linear layers get the same initial weights whatever the
    placement (same ``seed``), so the variants differ only by the normalization.
    """
    one_of("bn_mlp", "activation", activation, _ACTIVATIONS)
    one_of("bn_mlp", "placement", placement, PLACEMENTS)
    check("bn_mlp", "sizes", sizes, isinstance(sizes, (list, tuple)) and len(sizes) >= 2
          and all(is_integer(s) and s > 0 for s in sizes), "two or more positive integers (the layer widths)")
    check_type("bn_mlp", "affine", affine, isinstance(affine, bool), "True or False")
    layers: list[nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        linears = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    for i, lin in enumerate(linears):
        layers.append(lin)
        if i == len(linears) - 1:
            break
        bn = BatchNorm1d(lin.out_features, affine=affine)
        act = _ACTIVATIONS[activation]()
        layers += {"none": [act], "before": [bn, act], "after": [act, bn]}[placement]
    return nn.Sequential(*layers).to(dtype)


@dataclass(frozen=True)
class LRGrid:
    """Full training losses of mini-batch SGD runs, one per learning rate.

    Attributes:
        lrs: the learning rates; checkpoints: the steps at which the loss was measured (0, every, 2 every..);
        losses: shape ``(len(lrs), len(checkpoints))`` (``inf`` after a divergence); diverged: per rate.
    """

    lrs: np.ndarray
    checkpoints: np.ndarray
    losses: np.ndarray
    diverged: np.ndarray

    def steps_to(self, target: float) -> np.ndarray:
        """Per rate, the first checkpoint whose loss is below ``target`` (``inf`` if never)."""
        out = np.full(len(self.lrs), np.inf)
        for i, row in enumerate(self.losses):
            hit = np.flatnonzero(row < target)
            if hit.size:
                out[i] = self.checkpoints[hit[0]]
        return out

    def best(self, target: float) -> tuple[float, float]:
        """``(lr, steps)``: the rate reaching ``target`` in the fewest steps (the smaller rate on ties)."""
        steps = self.steps_to(target)
        i = int(np.argmin(steps))
        return float(self.lrs[i]), float(steps[i])

    def max_usable_lr(self, target: float) -> float:
        """The largest rate of the grid that reaches ``target`` (``nan`` if none does)."""
        ok = np.isfinite(self.steps_to(target))
        return float(self.lrs[ok].max()) if ok.any() else float("nan")


def lr_grid(make_model: Callable[[], nn.Module], data: Digits, lrs: Sequence[float], *, steps: int = 400,
            batch_size: int = 32, every: int = 20, seed: int = 0) -> LRGrid:
    r"""Mini-batch SGD (``torch.optim.SGD``, batches drawn by :meth:`Digits.objective`, ``seed``) from a fresh
    ``make_model()`` for every rate of ``lrs``; the full training loss (model in ``eval`` mode: BatchNorm's
    running statistics) at step 0 and every ``every`` steps.

    Each rate sees the same initial weights and the same sequence of mini-batches.
    """
    check("lr_grid", "lrs", lrs, isinstance(lrs, (list, tuple)) and len(lrs) > 0
          and all(isinstance(a, (int, float)) and a > 0 for a in lrs), "a non-empty list of positive learning rates")
    int_in_range("lr_grid", "steps", steps, 1)
    int_in_range("lr_grid", "every", every, 1, steps)
    X, y = data.batch("train")
    checkpoints = np.arange(0, steps + 1, every)
    losses = np.full((len(lrs), len(checkpoints)), np.inf)
    diverged = np.zeros(len(lrs), dtype=bool)
    for i, lr in enumerate(lrs):
        model = make_model()

        def full_loss(info, model=model):
            if (info.step + 1) % every:
                return float("nan")
            return _eval_loss(model, data.loss_fn, X, y)

        losses[i, 0] = _eval_loss(model, data.loss_fn, X, y)
        traj = run(data.objective(model, batch_size=batch_size, seed=seed), lambda p, lr=lr: torch.optim.SGD(p, lr=lr),
                   steps, diagnostics={"full": full_loss}, record_params=False, explode=1e3)
        measured = traj.diagnostics["full"][every - 1::every]
        losses[i, 1:1 + measured.size] = np.where(np.isfinite(measured), measured, np.inf)
        diverged[i] = traj.diverged or not np.all(np.isfinite(losses[i]))
    return LRGrid(np.asarray(lrs, dtype=float), checkpoints, losses, diverged)


def _eval_loss(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(loss_fn(model(X), y))
    finally:
        model.train(was)


def preactivations(model: nn.Sequential, X: torch.Tensor) -> list[torch.Tensor]:
    """The inputs of every tanh/sigmoid/ReLU module of ``model`` on ``X`` (one forward pass in the model's mode)."""
    check_type("preactivations", "model", model, isinstance(model, nn.Sequential), "an nn.Sequential")
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach()))
             for m in model if isinstance(m, tuple(_ACTIVATIONS.values()))]
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in hooks:
            h.remove()
    return seen


def saturated_fraction(z: torch.Tensor, threshold: float = 4.0) -> float:
    r"""Share of pre-activations with :math:`|z| >` ``threshold`` (for the logistic sigmoid at 4,
    :math:`\sigma'(z) < 0.018`, under a fourteenth of its largest slope 1/4)."""
    positive("saturated_fraction", "threshold", threshold)
    return float((z.abs() > threshold).double().mean())


def normalized_stats(y: torch.Tensor, dims: Sequence[int]) -> tuple[float, float]:
    """``(max |mean|, max |var - 1|)`` of ``y`` over the axes ``dims`` (population variance), over all the other
    axes' entries: both ~0 when ``y`` is normalized over exactly those axes (up to the layer's epsilon)."""
    dims = tuple(dims)
    return (float(y.mean(dims).abs().max()), float((y.var(dims, unbiased=False) - 1).abs().max()))


def diagonal_prong(h: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    r"""PRONG's whitening (:func:`optlab.optim.prong.whitening`) applied to every unit separately: with
    :math:`c_j = \mu_j` and :math:`U_j = (\sigma_j^2 + \epsilon)^{-1/2}`, returns :math:`U_j(h_j - c_j)`, which is batch
    normalization's :math:`\hat x` (Desjardins et al. 2015: BN "quite closely resembles a diagonal version of
    PRONG")."""
    check_type("diagonal_prong", "h", h, isinstance(h, torch.Tensor) and h.dim() == 2 and h.shape[0] > 1,
               "a (samples, units) tensor with at least 2 samples")
    cols = []
    for j in range(h.shape[1]):
        c, U = whitening(h[:, j:j + 1], eps)
        cols.append((h[:, j:j + 1] - c) @ U.T)
    return torch.cat(cols, dim=1)
