"""Plumbing shared by the curvature tools: batches, parameters as one flat vector, the data-averaged loss.

``data`` is one ``(inputs, targets)`` batch or an iterable of such batches. Every quantity is the
full-data average, each batch weighted by its size: :math:`E = \\sum_b \\frac{n_b}{N} E_b` where ``E_b``
is the (mean-reduced) loss on batch ``b``.

Model modes are the user's: nothing here calls ``model.train()`` or ``model.eval()``. Buffers that a
forward pass changes (BatchNorm running statistics in train mode) are put back after every pass, so
measuring curvature never moves the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


class Batches:
    """The batches of ``data``, checked once, with their weights ``n_b / N``.

    Args:
        data: one ``(inputs, targets)`` pair of tensors, or an iterable of such pairs (a list, a
            ``DataLoader``...; an iterator is read once and kept).

    Raises:
        ValueError: no batch, a batch that is not a pair, an empty batch, or inputs and targets whose
            first (sample) dimensions differ.
    """

    def __init__(self, data):
        if isinstance(data, Batches):
            self.batches, self.sizes = data.batches, data.sizes
            self.total = data.total
            return
        if _is_pair(data):
            batches = [tuple(data)]
        elif isinstance(data, Tensor):
            raise TypeError("data must be an (inputs, targets) pair or an iterable of pairs, got a single "
                            f"tensor of shape {tuple(data.shape)}")
        elif isinstance(data, Iterable):
            batches = [tuple(b) if isinstance(b, (tuple, list)) else b for b in data]
        else:
            raise TypeError(f"data must be an (inputs, targets) pair or an iterable of pairs, got {type(data).__name__}")
        if not batches:
            raise ValueError("data is empty: expected at least one (inputs, targets) batch")
        sizes = []
        for i, b in enumerate(batches):
            if not _is_pair(b):
                raise ValueError(f"batch {i} is {type(b).__name__}; expected an (inputs, targets) pair of tensors")
            x, y = b
            if x.dim() == 0 or y.dim() == 0:
                raise ValueError(f"batch {i}: inputs shape {tuple(x.shape)}, targets shape {tuple(y.shape)}; "
                                 "expected a leading sample dimension on both")
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"batch {i}: inputs have {x.shape[0]} samples but targets have {y.shape[0]}; "
                                 "expected the same number")
            if x.shape[0] == 0:
                raise ValueError(f"batch {i} is empty (0 samples)")
            sizes.append(int(x.shape[0]))
        self.batches, self.sizes, self.total = batches, sizes, sum(sizes)

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


def resolve_params(model: torch.nn.Module, params=None) -> list[Tensor]:
    """The parameters to differentiate: ``params`` if given, else every ``model`` parameter that requires grad."""
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    else:
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise ValueError(f"params[{i}] must be a tensor that requires grad, got {type(p).__name__}"
                                 + (" with requires_grad=False" if isinstance(p, Tensor) else ""))
    if not params:
        raise ValueError("no parameters to differentiate: the model has no parameter with requires_grad=True")
    return params


def num_params(params: Sequence[Tensor]) -> int:
    return sum(p.numel() for p in params)


def flatten(tensors: Sequence[Tensor | None], like: Sequence[Tensor] | None = None) -> Tensor:
    """Concatenate ``tensors`` into one flat vector (``None`` entries, e.g. unused parameters, become zeros)."""
    like = like if like is not None else tensors
    return torch.cat([(t if t is not None else torch.zeros_like(p)).reshape(-1) for t, p in zip(tensors, like)])


def unflatten(v: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """Split the flat vector ``v`` into tensors shaped like ``params``."""
    out, i = [], 0
    for p in params:
        out.append(v[i:i + p.numel()].view_as(p))
        i += p.numel()
    return out


def check_vector(v, n: int, like: Tensor, name: str = "v") -> Tensor:
    """``v`` as a flat tensor of length ``n`` with ``like``'s dtype and device; otherwise a clear error."""
    if not isinstance(v, Tensor):
        try:
            v = torch.as_tensor(v)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"{name} must be a tensor (or array) of length {n}, got {type(v).__name__}") from e
    if v.dim() != 1 or v.numel() != n:
        raise ValueError(f"{name} has shape {tuple(v.shape)}; expected a flat vector of length {n} "
                         "(the number of parameters)")
    return v.to(dtype=like.dtype, device=like.device)


def scalar_loss(loss: Tensor, where: str = "loss_fn") -> Tensor:
    """Check that ``loss`` is a scalar tensor."""
    if not isinstance(loss, Tensor):
        raise TypeError(f"{where} returned {type(loss).__name__}; expected a scalar tensor")
    if loss.numel() != 1 or loss.dim() > 1:
        raise ValueError(f"{where} returned a tensor of shape {tuple(loss.shape)}; expected a scalar "
                         "(use a mean- or sum-reduced loss)")
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


def batch_loss(model, loss_fn, x, y) -> Tensor:
    """``loss_fn(model(x), y)``, checked to be a scalar."""
    out = model(x)
    return scalar_loss(loss_fn(out, y))


def gradient(model, loss_fn, batches: Batches, params: Sequence[Tensor]) -> Tensor:
    """Flat gradient of the data-averaged loss :math:`\\nabla E(\\omega)`."""
    g = None
    with torch.enable_grad(), preserved_buffers(model):
        for x, y, w in batches:
            gb = flatten(torch.autograd.grad(batch_loss(model, loss_fn, x, y), params, allow_unused=True), params)
            g = w * gb if g is None else g + w * gb
    return g


def average_loss(model, loss_fn, batches: Batches) -> Tensor:
    """The data-averaged loss :math:`E(\\omega) = \\sum_b (n_b/N) E_b`, without a graph."""
    total = 0.0
    with torch.no_grad(), preserved_buffers(model):
        for x, y, w in batches:
            total = total + w * batch_loss(model, loss_fn, x, y)
    return total
