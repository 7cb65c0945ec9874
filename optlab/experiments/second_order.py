r"""Lecture 06, second-order methods: the measurements behind the slides' speed-up claims.

:func:`epochs_to_target` trains a network with an optimizer on shuffled mini-batches (torch's closure,
so every optimizer of :mod:`optlab.optim` runs, whatever its ``needs``) and returns the epochs it needs to
bring the full training loss below a target: the measure of "SDLM is usually about 3 times faster than
carefully tuned stochastic gradient" (LeCun, deck 000), comparing the best of a sweep for each method.
:func:`sdlm_factory` builds stochastic diagonal Levenberg-Marquardt as the slides describe it: the
Gauss-Newton diagonal estimated on a few hundred patterns and re-estimated every epoch.
``benchmarks/bench_sdlm.py`` runs the full sweeps with these functions.

References:
    Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998). Efficient BackProp, section 9.1 (SDLM).
    Y. LeCun, L. Bottou, Y. Bengio, P. Haffner (1998). Gradient-based learning applied to document
    recognition, appendix C.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import torch
from torch import nn

from ..errors import check, int_in_range, positive
from ..optim import SDLM

#: the default loss of both functions: the same module, because SDLM reads the batch from the closure's call
#: of the ``loss_fn`` it was given
CROSS_ENTROPY = nn.CrossEntropyLoss()


def epochs_to_target(make_opt: Callable[[nn.Module], torch.optim.Optimizer], net: nn.Module, X: torch.Tensor,
                     y: torch.Tensor, *, target: float, epochs: int, batch: int, seed: int = 1,
                     checks_per_epoch: int = 4, loss_fn: Callable | None = None) -> float:
    """Epochs (counted at about ``checks_per_epoch`` checks per epoch) of shuffled mini-batch training until the full
    training loss is below ``target``; ``math.inf`` if never within ``epochs`` or if the run diverged (a
    non-finite or > 1e3 loss, or an optimizer refusing a non-finite curvature with ``ValueError``).

    Args:
        make_opt: ``net -> optimizer``; stepped with torch's closure (``zero_grad``, loss, ``backward``).
        net: the model, trained in place.
        X, y: the training set; ``loss_fn`` (default :data:`CROSS_ENTROPY`) of ``net(X)`` and ``y`` (for
            SDLM, the same ``loss_fn`` object it was built with).
        target, epochs, batch: the target loss, the epoch budget and the mini-batch size.
        seed: seed of the order of the mini-batches (the same for every optimizer compared).

    Example:
        >>> from optlab.problems import load_digits_data, mlp
        >>> d = load_digits_data(n=200)
        >>> epochs_to_target(lambda m: torch.optim.SGD(m.parameters(), lr=0.5), mlp((64, 10), seed=0),
        ...                  d.X_train, d.y_train, target=0.5, epochs=10, batch=16)
        5.6
    """
    owner = "epochs_to_target"
    check(owner, "make_opt", make_opt, callable(make_opt), "a function net -> optimizer")
    positive(owner, "target", target)
    int_in_range(owner, "epochs", epochs, 1)
    int_in_range(owner, "batch", batch, 1, len(X))
    int_in_range(owner, "checks_per_epoch", checks_per_epoch, 1)
    loss_fn = loss_fn or CROSS_ENTROPY
    g = torch.Generator().manual_seed(seed)
    opt = make_opt(net)
    n_batches = len(X) // batch
    check_every = max(1, n_batches // checks_per_epoch)
    for ep in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for b in range(n_batches):
            idx = perm[b * batch:(b + 1) * batch]

            def closure():
                opt.zero_grad()
                loss = loss_fn(net(X[idx]), y[idx])
                loss.backward()
                return loss

            try:
                opt.step(closure)
            except ValueError:  # SDLM refuses a non-finite diagonal: the run diverged
                return math.inf
            if (b + 1) % check_every == 0:
                with torch.no_grad():
                    loss = float(loss_fn(net(X), y))
                if not math.isfinite(loss) or loss > 1e3:
                    return math.inf
                if loss < target:
                    return ep + (b + 1) / n_batches
    return math.inf


def sdlm_factory(*, lr: float, damping: float, gamma: float, estimate_steps: int, estimate_every: int,
                 loss_fn: nn.Module | None = None) -> Callable[[nn.Module], SDLM]:
    r"""``net ->`` :class:`~optlab.optim.SDLM` with :math:`\eta_{ki} = \epsilon/(h_{ki} + \mu)` (``lr`` =
    :math:`\epsilon`, ``damping`` = :math:`\mu`), the Gauss-Newton diagonal folded in as
    :math:`h \leftarrow (1-\gamma)h + \gamma h^p` over ``estimate_steps`` batches every ``estimate_every`` steps."""
    loss_fn = loss_fn or CROSS_ENTROPY

    def make(net):
        return SDLM(net.parameters(), lr=lr, damping=damping, gamma=gamma, model=net, loss_fn=loss_fn,
                    diagonal="gauss-newton", estimate_every=estimate_every, estimate_steps=estimate_steps)
    return make


# --------------------------------------------------------------------------- SDLM against a tuned SGD sweep


@dataclass(frozen=True)
class SpeedUp:
    """Epochs to the target loss for every run of two sweeps, and the ratio of the bests.

    Attributes:
        sgd: learning rate -> epochs (``math.inf``: never reached or diverged).
        sdlm: ``(epsilon, mu)`` -> epochs.
        best_sgd, best_sdlm: the best setting of each sweep.
        factor: best SGD epochs / best SDLM epochs (> 1: SDLM is faster).
    """

    sgd: dict
    sdlm: dict
    best_sgd: float
    best_sdlm: tuple

    @property
    def factor(self) -> float:
        return self.sgd[self.best_sgd] / self.sdlm[self.best_sdlm]


def sdlm_speedup(sizes, activation: str, X: torch.Tensor, y: torch.Tensor, *, sgd_lrs, sdlm_grid, target: float,
                 epochs: int, batch: int = 16, gamma: float = 0.2, estimate_steps: int = 12,
                 seed: int = 0) -> SpeedUp:
    """SDLM (re-estimated every epoch on ``estimate_steps`` batches) against plain SGD: :func:`epochs_to_target`
    for every SGD learning rate and every SDLM ``(epsilon, mu)`` of ``sdlm_grid``, from the same seeded
    ``mlp(sizes, activation)`` and the same mini-batch order.

    Example:
        >>> from optlab.problems import load_digits_data
        >>> d = load_digits_data(n=300)
        >>> s = sdlm_speedup((64, 10), "tanh", d.X_train, d.y_train, sgd_lrs=[0.5], sdlm_grid=[(0.01, 0.01)],
        ...                  target=0.5, epochs=10)
        >>> s.best_sgd, s.best_sdlm, s.factor > 0
        (0.5, (0.01, 0.01), True)
    """
    from ..problems import mlp

    steps_per_epoch = len(X) // batch
    kw = dict(target=target, epochs=epochs, batch=batch)
    sgd = {lr: epochs_to_target(lambda net, lr=lr: torch.optim.SGD(net.parameters(), lr=lr),
                                mlp(sizes, activation, seed=seed), X, y, **kw) for lr in sgd_lrs}
    sdlm = {(eps, mu): epochs_to_target(sdlm_factory(lr=eps, damping=mu, gamma=gamma, estimate_steps=estimate_steps,
                                                     estimate_every=steps_per_epoch),
                                        mlp(sizes, activation, seed=seed), X, y, **kw) for eps, mu in sdlm_grid}
    return SpeedUp(sgd, sdlm, min(sgd, key=sgd.get), min(sdlm, key=sdlm.get))


# --------------------------------------------------------------------------- units of a step


def steps_in_theta_units(g: torch.Tensor, H: torch.Tensor, s: torch.Tensor, alpha: float) -> dict[str, torch.Tensor]:
    r"""The first step of three methods run in rescaled coordinates :math:`\theta = s \odot \phi`, mapped back to
    :math:`\theta`'s units, for a loss with gradient ``g`` and Hessian ``H`` in :math:`\theta`.

    In :math:`\phi` the gradient is :math:`s \odot g` and the Hessian :math:`SHS`. So gradient descent moves
    :math:`\theta` by :math:`-\alpha s^2 \odot g` (the units are wrong: it depends on how :math:`\theta` is
    measured), RMSprop's first step (``r = g^2``) by :math:`-\alpha\, s \odot \mathrm{sign}(g)` (unitless: it
    still depends on s), Newton by :math:`-H^{-1}g` whatever ``s`` (the units of :math:`\theta`).

    Example:
        >>> g, H = torch.tensor([1.0, 2.0]).double(), torch.tensor([[2.0, 0.0], [0.0, 4.0]]).double()
        >>> steps = steps_in_theta_units(g, H, torch.tensor([1.0, 10.0]).double(), 0.1)
        >>> {k: [round(x, 6) for x in v.tolist()] for k, v in steps.items()}
        {'gradient descent': [-0.1, -20.0], 'RMSprop (first step)': [-0.1, -1.0], 'Newton': [-0.5, -0.5]}
    """
    S = torch.diag(s)
    g_phi, H_phi = s * g, S @ H @ S
    gd = -alpha * g_phi
    rms = -alpha * g_phi / g_phi.abs()
    newton = -torch.linalg.solve(H_phi, g_phi)
    return {"gradient descent": s * gd, "RMSprop (first step)": s * rms, "Newton": s * newton}


# --------------------------------------------------------------------------- natural gradient: invariance


def rescaled_logistic_runs(make_opt, X: torch.Tensor, y: torch.Tensor, scales, *, steps: int,
                           seed: int = 0) -> np.ndarray:
    r"""Losses of a logistic unit (``nn.Linear(d, 1)``, ``BCEWithLogitsLoss``) trained by
    ``make_opt(params, model, loss_fn) -> optimizer`` (so that optimizers needing the model can be built) on inputs
    rescaled by each ``s`` of ``scales`` (a tensor of ``d`` factors per row): the same function at the start
    (the weights divided by ``s``), so any difference is the optimizer's dependence on the parametrization.

    Returns:
        ``(len(scales), steps + 1)`` losses, through :func:`optlab.trajectory.run`.

    Example:
        >>> X, y = torch.randn(40, 2, dtype=torch.float64), (torch.arange(40) % 2).double()
        >>> L = rescaled_logistic_runs(lambda p, model, loss_fn: torch.optim.SGD(p, lr=0.5), X, y,
        ...                            [torch.ones(2), torch.tensor([10.0, 1.0])], steps=3)
        >>> bool(L[0, 0] == L[1, 0]), bool(abs(L[0, -1] - L[1, -1]) > 1e-3)
        (True, True)
    """
    from ..problems.base import model_objective
    from ..trajectory import run

    rows = []
    for s in scales:
        s = torch.as_tensor(s, dtype=X.dtype)
        torch.manual_seed(seed)
        unit = nn.Linear(X.shape[1], 1).to(X.dtype)
        with torch.no_grad():
            unit.weight.div_(s)
        loss_fn = LogisticLoss()
        objective = model_objective(unit, loss_fn, X * s, y, name=f"logistic, inputs x {s.tolist()}")
        opt = make_opt(objective.params, unit, loss_fn)
        rows.append(run(objective, opt, steps, record_params=False, explode=None).losses)
    return np.array(rows)


class LogisticLoss(nn.BCEWithLogitsLoss):
    """``BCEWithLogitsLoss`` on a ``(N, 1)`` output and ``(N,)`` 0/1 targets."""

    def forward(self, output, target):
        return super().forward(output.reshape(-1), target)


# --------------------------------------------------------------------------- PRONG on a digits autoencoder


def autoencoder(sizes=(64, 32, 16, 32, 64), seed: int = 0, dtype=torch.float64) -> nn.Sequential:
    """A seeded tanh autoencoder (linear output layer giving the logits of the reconstructed pixels)."""
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers).to(dtype)


def reconstruction_loss(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Sigmoid cross-entropy between the reconstruction's logits and the pixels in [0, 1], summed over the
    pixels and averaged over the images (the deep-autoencoder loss of Desjardins et al. 2015)."""
    return nn.functional.binary_cross_entropy_with_logits(net(x), x, reduction="sum") / len(x)


@dataclass(frozen=True)
class AutoencoderRun:
    """One training run: ``losses[k]`` is the full-data loss after ``(k + 1) * every`` updates (inf once
    diverged), ``cpu_seconds`` the process CPU time of the run (training and re-whitening, evaluations
    excluded), ``reparametrizations`` how many whitenings were made and ``function_change`` the largest
    change of the network's output over all of them (zero up to rounding: the projection keeps the function)."""

    losses: np.ndarray
    cpu_seconds: float
    reparametrizations: int
    function_change: float

    def updates_to(self, target: float, every: int) -> float:
        """Updates until the loss is <= ``target`` (``math.inf`` if never)."""
        hit = np.flatnonzero(self.losses <= target)
        return float((hit[0] + 1) * every) if hit.size else math.inf


def train_autoencoder(method: str, lr: float, X: torch.Tensor, *, sizes=(64, 32, 16, 32, 64), updates: int = 1000,
                      batch: int = 32, T: int | None = 100, eps: float = 0.1, n_samples: int = 500, every: int = 50,
                      seed: int = 1) -> AutoencoderRun:
    r"""SGD or PRONG (Desjardins et al. 2015, Algorithm 1) on :func:`autoencoder` with :func:`reconstruction_loss`;
    a diverged run (non-finite loss, or a covariance without eigendecomposition) gets ``inf`` losses from there on.

    ``method="prong"``: every linear layer whitened (:func:`~optlab.optim.whiten_sequential`), re-whitened from
    ``n_samples`` images with regularizer ``eps`` at t = 0 and then before every T-th update (``T=None``: only
    at t = 0); each re-projection is checked to leave the network's output unchanged. ``method="sgd"``:
    plain SGD on the same initial function. Both see the same mini-batches (uniform, seeded by ``seed``).

    Example:
        >>> from optlab.problems import load_digits_data
        >>> X = load_digits_data(n=200).X_train
        >>> r = train_autoencoder("prong", 0.05, X, updates=20, every=10, T=10, n_samples=100)
        >>> r.losses.shape, r.reparametrizations, r.function_change < 1e-9
        ((2,), 2, True)
    """
    from ..optim import PRONG, WhitenedLinear, whiten_sequential

    owner = "train_autoencoder"
    check(owner, "method", method, method in ("sgd", "prong"), "'sgd' or 'prong'")
    int_in_range(owner, "updates", updates, 1)
    int_in_range(owner, "every", every, 1, updates)
    check(owner, "T", T, T is None or (isinstance(T, int) and T > 0), "None or a positive integer")
    net = autoencoder(sizes, dtype=X.dtype)
    probe = X[:100]
    n_reparam, change = 0, 0.0
    if method == "prong":
        net = whiten_sequential(net)
        g_s = torch.Generator().manual_seed(3)
        opt = PRONG(net.parameters(), [m for m in net if isinstance(m, WhitenedLinear)],
                    lambda: net(X[torch.randperm(len(X), generator=g_s)[:n_samples]]), lr=lr,
                    reparam_every=updates + 1, eps=eps)  # re-whitened by hand below, to check each projection
        n_reparam = 1
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses, cpu = [], 0.0
    for t in range(updates):
        start = time.process_time()
        if method == "prong" and T is not None and t > 0 and t % T == 0:
            with torch.no_grad():
                before = net(probe)
                try:
                    opt.reparametrize()
                except torch.linalg.LinAlgError:  # a diverged net's covariance has no eigendecomposition
                    losses += [math.inf] * (updates // every - len(losses))
                    break
                change = max(change, float((net(probe) - before).abs().max()))
            n_reparam += 1
        idx = torch.randint(0, len(X), (batch,), generator=g)
        opt.zero_grad()
        reconstruction_loss(net, X[idx]).backward()
        opt.step()
        cpu += time.process_time() - start
        if (t + 1) % every == 0:
            with torch.no_grad():
                loss = float(reconstruction_loss(net, X))
            if not math.isfinite(loss):
                losses += [math.inf] * (updates // every - len(losses))
                break
            losses.append(loss)
    return AutoencoderRun(np.array(losses), cpu, n_reparam, change)
