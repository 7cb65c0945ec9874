r"""The loss of a model at any flat parameter vector, without touching the model.

:func:`model_loss_function` copies the model once (``copy.deepcopy``) and returns
:math:`\theta \mapsto J(\theta)`: it writes :math:`\theta` into the **copy** and evaluates the data-averaged
loss there, so the landscape tools never mutate the caller's model.

BatchNorm and other mode-dependent layers (``bn_mode``):

* ``"eval"`` (default): the copy is put in eval mode, BatchNorm normalises with the running statistics
  of the model as given (the statistics are *not* re-estimated at each :math:`\theta`; they belong to
  the model you passed, usually the trained one). Deterministic.
* ``"train"``: the copy is put in train mode, BatchNorm normalises with each batch's statistics (the
  loss the optimizer saw during training). The copy's running statistics are restored after every
  evaluation, so evaluations do not depend on their order. Dropout would be random in this mode.
* ``"keep"``: the copy keeps the model's mode (running statistics restored as for ``"train"``).

The flat vector follows ``model.parameters()`` order (parameters with ``requires_grad``), as
:func:`params_vector` returns it.

Reference: H. Li, Z. Xu, G. Taylor, C. Studer, T. Goldstein (2018), "Visualizing the loss landscape of
neural nets", NeurIPS (section 4 on BatchNorm parameters).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from ..errors import check_data, check_type, one_of
from ..flat import assign, flatten
from ._vector import as_vector

BN_MODES = ("eval", "train", "keep")


def params_vector(model: torch.nn.Module) -> torch.Tensor:
    """The model's trainable parameters as one flat detached vector (a copy), in ``parameters()`` order."""
    check_type("params_vector", "model", model, isinstance(model, torch.nn.Module), "a torch.nn.Module")
    return flatten([p.detach() for p in model.parameters() if p.requires_grad])


def _is_pair(b) -> bool:
    return isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(t, torch.Tensor) for t in b)


def _batches(owner: str, data) -> list:
    """``data`` as a list of ``(inputs, targets)`` pairs of tensors."""
    if _is_pair(data):
        return [tuple(data)]
    check_type(owner, "data", data, isinstance(data, (list, tuple)) or hasattr(data, "__iter__"),
               "an (inputs, targets) pair of tensors or an iterable of such pairs")
    batches = list(data)
    check_data(owner, "data", bool(batches) and all(_is_pair(b) for b in batches),
               "it is empty or holds something else than (inputs, targets) pairs of tensors",
               "one (inputs, targets) pair of tensors or a non-empty iterable of such pairs")
    for i, (x, y) in enumerate(batches):
        check_data(owner, "data", x.dim() > 0 and y.dim() > 0 and len(x) == len(y) > 0,
                   f"batch {i} has inputs of shape {tuple(x.shape)} and targets of shape {tuple(y.shape)}",
                   "as many targets as input samples, at least one")
    return batches


def model_loss_function(model: torch.nn.Module, loss_fn: Callable, data, *, bn_mode: str = "eval"
                        ) -> Callable[[object], float]:
    r"""A function :math:`\theta \mapsto J(\theta) = \sum_b \frac{n_b}{N}\,\text{loss\_fn}(f_\theta(x_b), y_b)` on a
    copy of ``model``.

    Args:
        model: the network (never modified).
        loss_fn: ``loss_fn(outputs, targets)`` returning a scalar mean over the batch.
        data: one ``(inputs, targets)`` batch or an iterable of batches.
        bn_mode: ``"eval"``, ``"train"`` or ``"keep"`` (see the module docstring).

    Returns:
        ``loss_at(theta)`` taking a flat vector (tensor or array) and returning a float.
    """
    owner = "model_loss_function"
    one_of(owner, "bn_mode", bn_mode, BN_MODES)
    check_type(owner, "model", model, isinstance(model, torch.nn.Module), "a torch.nn.Module")
    batches = _batches(owner, data)
    sizes = np.array([len(x) for x, _ in batches], dtype=float)
    weights = sizes / sizes.sum()
    twin = copy.deepcopy(model)
    if bn_mode == "eval":
        twin.eval()
    elif bn_mode == "train":
        twin.train()
    params = [p for p in twin.parameters() if p.requires_grad]
    n = sum(p.numel() for p in params)
    buffers = {k: v.clone() for k, v in twin.state_dict().items() if k not in dict(twin.named_parameters())}

    def loss_at(theta) -> float:
        assign(params, as_vector("loss_at", "theta", theta, n))
        total = 0.0
        with torch.no_grad():
            for w, (x, y) in zip(weights, batches):
                total += w * float(loss_fn(twin(x), y))
        if twin.training:  # put BatchNorm running statistics back
            twin.load_state_dict(buffers, strict=False)
        return total

    return loss_at
