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
from collections.abc import Callable

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
