r"""Lecture 03, SGD and its tricks: sample streams for the trajectory runner and the measurements the
lecture makes on them.

:func:`stream_objective` turns a model and a data set into an :class:`~optlab.problems.Objective` whose
loss, each time it is called, is the loss of the **next** sample (or mini-batch) of a stream: so
:func:`optlab.trajectory.run`, which evaluates the loss once per step, runs stochastic gradient descent,
one sample per step, with the order of presentation chosen here:

* ``"shuffle"``: a fresh seeded permutation every epoch (LeCun et al. 1998, "shuffle the examples");
* ``"ordered"``: the data set's own order, every epoch (for the two Gaussians: all of class 1, then all of
  class 2: the "ordered presentation" that Efficient BackProp warns against);
* an explicit sequence of sample indices, repeated (e.g. to inject an outlier at a chosen step).

The measurements: :func:`steps_to_reach` (the first step whose loss is below a target; times the cost of a
step gives the number of per-sample gradients spent), :func:`averaged_loss` (a diagnostic for the runner:
the loss at :class:`~optlab.optim.AveragedSGD`'s averaged weights) and :func:`outlier_displacement` (how
far one outlier throws an optimizer off its path).

References:
    Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", sections 4.1-4.3.
    L. Bottou (2012), "Stochastic gradient descent tricks", Neural Networks: Tricks of the Trade (2nd ed.).
    L. Bottou, F. E. Curtis, J. Nocedal (2018), "Optimization methods for large-scale machine learning",
    SIAM Review 60(2) (section 3.3: why SGD wins on redundant data).
    B. T. Polyak, A. B. Juditsky (1992), "Acceleration of stochastic approximation by averaging".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import check, check_type, int_in_range, is_integer
from ..problems.base import FunctionLoss, Objective
from ..trajectory import StepInfo, run

ORDERS = ("shuffle", "ordered")


def _order_indices(owner: str, order, n: int):
    if isinstance(order, str):
        check(owner, "order", order, order in ORDERS, f"one of {ORDERS} or a sequence of sample indices")
        return None
    idx = np.asarray(order)
    check(owner, "order", f"array of shape {idx.shape}", idx.ndim == 1 and idx.size > 0
          and np.issubdtype(idx.dtype, np.integer) and bool(np.all((idx >= 0) & (idx < n))),
          f"one of {ORDERS} or a non-empty sequence of sample indices in [0, {n - 1}]")
    return torch.as_tensor(idx, dtype=torch.long)


def stream_objective(model: nn.Module, loss_fn: Callable, X: torch.Tensor, y: torch.Tensor, *,
                     batch_size: int = 1, order="shuffle", seed: int = 0, name: str = "stream") -> Objective:
    r"""The objective whose ``loss()`` is the loss of the next batch of a stream over ``(X, y)``.

    Args:
        model, loss_fn: the model (its parameters are trained) and ``loss_fn(outputs, targets)``, a mean over
            the batch.
        X, y: the data set (``len(X) == len(y)``).
        batch_size: samples per call (1: per-sample SGD); an epoch is ``len(X) // batch_size`` calls, the
            remainder of a permutation is dropped.
        order: ``"shuffle"`` (a new seeded permutation each epoch), ``"ordered"`` (``0, 1, ..., P-1`` each
            epoch) or a sequence of sample indices, taken ``batch_size`` at a time and repeated.
        seed: the shuffles' seed.

    The objective carries ``model`` and ``loss_fn``. Every call advances the stream, so each step of
    :func:`optlab.trajectory.run` sees one new batch and its recorded losses are batch losses: evaluate
    the full loss on ``trajectory.thetas`` to see the progress.

    Example:
        >>> X = torch.tensor([[1.0], [2.0], [3.0]]); y = torch.zeros(3, 1)
        >>> obj = stream_objective(nn.Linear(1, 1, bias=False), nn.functional.mse_loss, X, y, order="ordered")
        >>> with torch.no_grad():
        ...     _ = obj.model.weight.fill_(1.0)
        >>> [float(obj.loss().detach()) for _ in range(4)]   # samples 0, 1, 2, then 0 again
        [1.0, 4.0, 9.0, 1.0]
    """
    owner = "stream_objective"
    check_type(owner, "X", X, isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor), "torch tensors X and y")
    check(owner, "y", f"{len(y)} targets", len(X) == len(y) > 0, f"as many targets as samples ({len(X)})")
    int_in_range(owner, "batch_size", batch_size, 1, len(X))
    fixed = _order_indices(owner, order, len(X))
    gen = torch.Generator().manual_seed(seed)
    state = {"queue": torch.zeros(0, dtype=torch.long)}

    def next_batch() -> torch.Tensor:
        if len(state["queue"]) < batch_size:
            if fixed is not None:
                epoch = fixed
            elif order == "shuffle":
                epoch = torch.randperm(len(X), generator=gen)
            else:
                epoch = torch.arange(len(X))
            if len(epoch) >= batch_size:
                epoch = epoch[: len(epoch) - len(epoch) % batch_size]  # drop the incomplete last batch
            else:
                epoch = epoch.repeat(batch_size)
            state["queue"] = torch.cat([state["queue"], epoch])
        idx, state["queue"] = state["queue"][:batch_size], state["queue"][batch_size:]
        return idx

    loss_module = loss_fn if isinstance(loss_fn, nn.Module) else FunctionLoss(loss_fn)

    def loss():
        idx = next_batch()
        return loss_module(model(X[idx]), y[idx])

    params = [p for p in model.parameters() if p.requires_grad]
    return Objective(params, loss, name=name, model=model, loss_fn=loss_module)


def steps_to_reach(losses, target: float) -> int | None:
    """The first index ``k`` with ``losses[k] <= target`` (``None`` if never)."""
    losses = np.asarray(losses, dtype=float)
    hit = np.flatnonzero(losses <= target)
    return int(hit[0]) if hit.size else None


def averaged_loss(loss_at: Callable) -> Callable[[StepInfo], float]:
    r"""A diagnostic for :func:`optlab.trajectory.run`: ``loss_at`` at the optimizer's averaged weights
    :math:`\bar\theta` (:meth:`optlab.optim.AveragedSGD.averaged_params`), after each step.

    Args:
        loss_at: ``flat theta (numpy) -> float``, e.g. the full-batch loss.
    """
    check("averaged_loss", "loss_at", loss_at, callable(loss_at), "a function flat theta -> loss")

    def diagnostic(info: StepInfo) -> float:
        averaged = getattr(info.optimizer, "averaged_params", None)
        check("averaged_loss", "optimizer", type(info.optimizer).__name__, averaged is not None,
              "an optimizer with averaged_params() (optlab.optim.AveragedSGD)")
        theta_bar = torch.cat([t.detach().reshape(-1) for t in averaged()])
        return float(loss_at(theta_bar.double().numpy()))

    return diagnostic


def outlier_displacement(make_objective: Callable[[Sequence[int]], Objective], optimizer, order: Sequence[int],
                         outlier: int, at: int, steps: int) -> float:
    r"""How far one outlier throws an optimizer off its path: :math:`\max_k\|\theta_k - \theta'_k\|`, where
    :math:`\theta` is the run on the stream ``order`` and :math:`\theta'` the same run with sample ``outlier``
    presented at step ``at`` instead of ``order[at]``.

    Args:
        make_objective: ``indices -> Objective`` (a fresh model each call, e.g. a :func:`stream_objective`
            with ``order=indices``).
        optimizer: what :func:`optlab.trajectory.run` accepts (a factory ``params -> Optimizer``).
        order: the sample indices of the clean stream (at least ``steps + 1``).
        outlier: the index of the outlier sample; at: the step that sees it.
    """
    order = [int(i) for i in order]
    check("outlier_displacement", "order", f"{len(order)} indices", len(order) > steps, f"more than steps={steps}")
    check("outlier_displacement", "at", at, is_integer(at) and 0 <= at < steps, f"an integer in [0, {steps - 1}]")
    clean = run(make_objective(order), optimizer, steps)
    hit = list(order)
    hit[at] = int(outlier)
    thrown = run(make_objective(hit), optimizer, steps)
    return float(np.linalg.norm(clean.thetas - thrown.thetas, axis=1).max())


def lr_sweep(make_model: Callable[[], nn.Module], loss_fn: Callable, X: torch.Tensor, y: torch.Tensor,
             lrs: Sequence[float], *, epochs: int = 1, batch_size: int = 16, seed: int = 0) -> np.ndarray:
    r"""The full-batch loss after ``epochs`` epochs of shuffled mini-batch SGD (``torch.optim.SGD``), for each
    learning rate of ``lrs`` (``inf`` where the run diverged); a fresh ``make_model()`` and the same stream
    (``seed``) for every rate.

    Used to compare data sets (e.g. raw vs standardized inputs) at their own best learning rate.
    """
    check("lr_sweep", "lrs", lrs, isinstance(lrs, (list, tuple)) and len(lrs) > 0
          and all(isinstance(a, (int, float)) and a > 0 for a in lrs), "a non-empty list of positive learning rates")
    int_in_range("lr_sweep", "epochs", epochs, 1)
    out = []
    for lr in lrs:
        model = make_model()
        obj = stream_objective(model, loss_fn, X, y, batch_size=batch_size, seed=seed)
        traj = run(obj, lambda p: torch.optim.SGD(p, lr=lr), epochs * (len(X) // batch_size), record_params=False)
        with torch.no_grad():
            out.append(float("inf") if traj.diverged else float(loss_fn(model(X), y)))
    return np.array(out)
