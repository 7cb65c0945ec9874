"""Plumbing shared by the curvature tools: batches, the parameters to differentiate, the data-averaged gradient.

``data`` is one ``(inputs, targets)`` batch or an iterable of such batches. Every quantity is the
full-data average, each batch weighted by its size: :math:`E = \\sum_b \\frac{n_b}{N} E_b` where ``E_b``
is the (mean-reduced) loss on batch ``b``.

Model modes are the user's: nothing here calls ``model.train()`` or ``model.eval()``. Buffers that a
forward pass changes (BatchNorm running statistics in train mode) are put back after every pass, so
measuring curvature never moves the model.

Errors name ``owner``, the public function or class that received the argument (default
``"optlab.curvature"`` for internal callers that do not say).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from ..errors import data_error, shape_error, type_error
from ..flat import flatten

OWNER = "optlab.curvature"
DATA = "an (inputs, targets) pair of tensors or an iterable of such pairs"


class Batches:
    """The batches of ``data``, checked once, with their weights ``n_b / N``.

    Args:
        data: one ``(inputs, targets)`` pair of tensors, or an iterable of such pairs (a list, a
            ``DataLoader``...; an iterator is read once and kept).
        owner: the public name errors are reported under.

    Raises:
        TypeError: ``data`` is a single tensor or not iterable.
        ValueError: no batch, a batch that is not a pair, an empty batch, or inputs and targets whose
            first (sample) dimensions differ.
    """

    def __init__(self, data, owner: str = OWNER):
        if isinstance(data, Batches):
            self.batches, self.sizes, self.total = data.batches, data.sizes, data.total
            return
        if _is_pair(data):
            batches = [tuple(data)]
        elif isinstance(data, Iterable) and not isinstance(data, Tensor):
            batches = [tuple(b) if isinstance(b, (tuple, list)) else b for b in data]
        else:
            raise type_error(owner, "data", data, DATA)
        if not batches:
            raise data_error(owner, "data", "it is empty (no batch)", "at least one (inputs, targets) batch")
        self.batches, self.sizes = batches, [_batch_size(owner, i, b) for i, b in enumerate(batches)]
        self.total = sum(self.sizes)

    def __iter__(self):
        """Yield ``(inputs, targets, weight)`` with ``weight = n_b / N``."""
        for (x, y), n in zip(self.batches, self.sizes):
            yield x, y, n / self.total

    def __len__(self) -> int:
        return len(self.batches)

    def samples(self):
        """Yield every sample as a batch of one: ``(inputs[i:i+1], targets[i:i+1])``."""
        for x, y in self.batches:
            for i in range(x.shape[0]):
                yield x[i:i + 1], y[i:i + 1]


def _is_pair(b) -> bool:
    return isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(t, Tensor) for t in b)


def _batch_size(owner: str, i: int, b) -> int:
    """The number of samples of batch ``i``, after checking it is a pair of tensors with as many of each."""
    if not _is_pair(b):
        raise data_error(owner, "data", f"batch {i} is a {type(b).__name__}", "(inputs, targets) pairs of tensors")
    x, y = b
    if x.dim() == 0 or y.dim() == 0:
        raise data_error(owner, "data", f"batch {i} has inputs of shape {tuple(x.shape)} and targets of shape "
                         f"{tuple(y.shape)}", "a leading sample dimension on both")
    if x.shape[0] != y.shape[0]:
        raise data_error(owner, "data", f"batch {i} has {x.shape[0]} input samples and {y.shape[0]} targets",
                         "as many targets as input samples")
    if x.shape[0] == 0:
        raise data_error(owner, "data", f"batch {i} is empty (0 samples)", "at least one sample per batch")
    return int(x.shape[0])


def resolve_params(model: torch.nn.Module, params=None, owner: str = OWNER) -> list[Tensor]:
    """The parameters to differentiate: ``params`` if given, else every ``model`` parameter that requires grad."""
    if params is None:
        if not isinstance(model, torch.nn.Module):
            raise type_error(owner, "model", model, "a torch.nn.Module (or the tensors to differentiate as params)")
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise type_error(owner, f"params[{i}]", p, "a tensor that requires grad")
            if not p.requires_grad:
                raise data_error(owner, f"params[{i}]", "requires_grad=False", "a tensor that requires grad")
    if not params:
        raise data_error(owner, "params", "no parameter has requires_grad=True",
                         "at least one tensor to differentiate")
    return params


def num_params(params: Sequence[Tensor]) -> int:
    return sum(p.numel() for p in params)


def check_vector(v, n: int, like: Tensor, name: str = "v", owner: str = OWNER) -> Tensor:
    """``v`` as a flat tensor of length ``n`` with ``like``'s dtype and device; otherwise an error naming ``owner``."""
    if not isinstance(v, Tensor):
        try:
            v = torch.as_tensor(v)
        except (TypeError, ValueError, RuntimeError) as e:
            raise type_error(owner, name, v, f"a tensor (or array) of length {n}") from e
    if v.dim() != 1 or v.numel() != n:
        raise shape_error(owner, name, v.shape, f"({n},), a flat vector of the {n} parameters")
    return v.to(dtype=like.dtype, device=like.device)


def scalar_loss(loss: Tensor, where: str = "loss_fn", owner: str = OWNER) -> Tensor:
    """Check that ``loss``, what ``where`` returned, is a scalar tensor."""
    if not isinstance(loss, Tensor):
        raise type_error(owner, f"value of {where}", loss, "a scalar tensor")
    if loss.numel() != 1 or loss.dim() > 1:
        raise shape_error(owner, f"value of {where}", loss.shape, "a scalar (use a mean- or sum-reduced loss)")
    return loss.reshape(())


@contextlib.contextmanager
def preserved_buffers(model: torch.nn.Module):
    """Run the block, then put every buffer of ``model`` back (BatchNorm running stats in train mode).

    The model's mode is left as it is: train-mode BatchNorm still normalizes with batch statistics and
    dropout still drops, as the user chose.
    """
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in saved:
                b.copy_(s)


@contextlib.contextmanager
def restored_params(params: Sequence[Tensor]):
    """Run the block, then restore the values of ``params`` exactly, even if the block raises."""
    saved = [p.detach().clone() for p in params]
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


def batch_loss(model, loss_fn, x, y, owner: str = OWNER) -> Tensor:
    """``loss_fn(model(x), y)``, checked to be a scalar."""
    return scalar_loss(loss_fn(model(x), y), owner=owner)


def gradient(model, loss_fn, batches: Batches, params: Sequence[Tensor], owner: str = OWNER) -> Tensor:
    """Flat gradient of the data-averaged loss :math:`\\nabla E(\\omega)`."""
    g = None
    with torch.enable_grad(), preserved_buffers(model):
        for x, y, w in batches:
            loss = batch_loss(model, loss_fn, x, y, owner)
            gb = flatten(torch.autograd.grad(loss, params, allow_unused=True), params)
            g = w * gb if g is None else g + w * gb
    return g
