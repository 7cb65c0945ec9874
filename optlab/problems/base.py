r"""What every problem hands to the tools: an :class:`Objective` (parameters + loss) and 2-D :class:`Surface`\ s.

An **objective** is the pair the trajectory runner and the landscape tools need: a list of tensors
:math:`\theta` (``requires_grad``) and a zero-argument closure returning the scalar loss
:math:`J(\theta)`. A model problem builds one from a model, a loss function and its data; a surface builds
one from a starting point. Anything a ``torch.optim`` optimizer can train is an objective.

A **surface** is a loss of a parameter vector :math:`\theta \in \mathbb{R}^n` (mostly :math:`n = 2`, for
contour plots) given as a plain function written with arithmetic only, so the *same* function evaluates
numpy arrays (fast, for widgets) and torch tensors (autograd gives the gradient and Hessian).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors concatenated into one detached flat vector (a copy)."""
    return torch.cat([t.detach().reshape(-1) for t in tensors]).clone()


def assign_flat(params: Sequence[Tensor], theta: Tensor) -> None:
    """Copy the flat vector ``theta`` into ``params`` in place (no autograd history)."""
    n = sum(p.numel() for p in params)
    theta = torch.as_tensor(theta)
    if theta.dim() != 1 or theta.numel() != n:
        raise ValueError(f"theta has shape {tuple(theta.shape)}; expected a flat vector of {n} entries")
    i = 0
    with torch.no_grad():
        for p in params:
            p.copy_(theta[i:i + p.numel()].reshape(p.shape).to(p.dtype))
            i += p.numel()


@dataclass
class Objective:
    r"""A loss :math:`J(\theta)` and the tensors :math:`\theta` it depends on.

    Args:
        params: the tensors an optimizer updates (leaf tensors with ``requires_grad=True``).
        loss: zero-argument callable returning the scalar loss at the current ``params``.
        name: a label for plots and reports.
    """

    params: list
    loss: Callable[[], Tensor]
    name: str = "objective"

    def __post_init__(self):
        self.params = list(self.params)
        if not self.params:
            raise ValueError("Objective.params is empty: expected at least one tensor")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"Objective.params must be tensors with requires_grad=True, got {p!r:.60}")
        if not callable(self.loss):
            raise TypeError(f"Objective.loss must be a zero-argument callable, got {type(self.loss).__name__}")

    @property
    def theta(self) -> Tensor:
        """The current parameters as one flat vector (a detached copy)."""
        return flat(self.params)

    def set_theta(self, theta) -> None:
        """Write the flat vector ``theta`` into the parameters."""
        assign_flat(self.params, torch.as_tensor(theta, dtype=self.params[0].dtype))

    def loss_at(self, theta) -> float:
        """:math:`J(\\theta)` at a flat vector; the parameters are put back afterwards."""
        saved = self.theta
        try:
            self.set_theta(theta)
            with torch.no_grad():
                return float(self.loss())
        finally:
            self.set_theta(saved)


def _check_theta(theta, n: int | None, name: str = "theta"):
    if isinstance(theta, Tensor):
        t = theta
    else:
        t = np.asarray(theta, dtype=float)
    if t.ndim < 1 or (n is not None and t.shape[-1] != n):
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected (..., {n})")
    return t


@dataclass
class Surface:
    r"""A loss :math:`f(\theta)` of a parameter vector, evaluated on numpy arrays or torch tensors.

    ``f`` takes ``theta`` of shape ``(..., n)`` and returns shape ``(...)``; it must use arithmetic only
    (``+ - * / **``, ``theta[..., i]``, ``.sum(-1)``) so numpy and torch both work.

    Args:
        name: a label.
        f: the loss function.
        n: the number of parameters.
        theta0: a default starting point (shape ``(n,)``).
        minima: known minimisers, shape ``(m, n)`` (``m`` may be 0).
        bounds: the plot window ``((x_min, x_max), (y_min, y_max))`` for 2-D surfaces.
        source: the slide or paper it comes from.
    """

    name: str
    f: Callable
    n: int
    theta0: np.ndarray
    minima: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    bounds: tuple = ((-2.0, 2.0), (-2.0, 2.0))
    source: str = ""

    def __post_init__(self):
        self.theta0 = np.asarray(self.theta0, dtype=float).reshape(self.n)
        self.minima = np.asarray(self.minima, dtype=float).reshape(-1, self.n)

    def __call__(self, theta):
        """:math:`f(\\theta)`: numpy in, numpy out; torch in, torch out (differentiable)."""
        return self.f(_check_theta(theta, self.n))

    def grad(self, theta) -> np.ndarray:
        """:math:`\\nabla f(\\theta)` at one point (shape ``(n,)``), by autograd in float64."""
        t = torch.tensor(_check_theta(theta, self.n), dtype=torch.float64, requires_grad=True)
        if t.dim() != 1:
            raise ValueError(f"grad takes one point of shape ({self.n},), got {tuple(t.shape)}")
        (g,) = torch.autograd.grad(self.f(t), t)
        return g.numpy()

    def hessian(self, theta) -> np.ndarray:
        """:math:`\\nabla^2 f(\\theta)` at one point (shape ``(n, n)``), by autograd in float64."""
        t = torch.tensor(_check_theta(theta, self.n), dtype=torch.float64)
        if t.dim() != 1:
            raise ValueError(f"hessian takes one point of shape ({self.n},), got {tuple(t.shape)}")
        return torch.autograd.functional.hessian(self.f, t).numpy()

    def grid(self, xs, ys) -> np.ndarray:
        """``Z[j, i] = f(xs[i], ys[j])`` on a 2-D grid (for ``contour(xs, ys, Z)``); numpy only, no autograd."""
        if self.n != 2:
            raise ValueError(f"grid needs a 2-D surface, {self.name!r} has n={self.n}")
        X, Y = np.meshgrid(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        return np.asarray(self.f(np.stack([X, Y], axis=-1)), dtype=float)

    def objective(self, theta0=None, dtype: torch.dtype = torch.float64) -> Objective:
        """An :class:`Objective` starting at ``theta0`` (default :attr:`theta0`) for the trajectory runner."""
        start = self.theta0 if theta0 is None else _check_theta(theta0, self.n, "theta0")
        theta = torch.tensor(np.asarray(start, dtype=float), dtype=dtype, requires_grad=True)
        if theta.dim() != 1:
            raise ValueError(f"theta0 must have shape ({self.n},), got {tuple(theta.shape)}")
        return Objective([theta], lambda: self.f(theta), name=self.name)


def model_objective(model: torch.nn.Module, loss_fn: Callable, X: Tensor, y: Tensor, name: str = "model"
                    ) -> Objective:
    r"""The full-batch objective :math:`J(\theta) = \text{loss\_fn}(\text{model}(X), y)` over the model's parameters.

    The objective trains ``model`` itself (the optimizer moves its parameters); pass a copy to keep the
    original.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    return Objective(params, lambda: loss_fn(model(X), y), name=name)
