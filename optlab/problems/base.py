r"""What every problem hands to the tools: an :class:`Objective` (parameters + loss) and 2-D :class:`Surface`\ s.

An **objective** is what the trajectory runner and the landscape tools need: a list of tensors
:math:`\theta` (``requires_grad``) and a zero-argument closure returning the scalar loss
:math:`J(\theta)`. When the loss is ``loss_fn(model(inputs), targets)`` the objective also carries
``model`` and ``loss_fn`` (an ``nn.Module``), which optimizers with ``needs = "model"`` (Gauss-Newton,
natural gradient, SDLM...) are built with: :func:`model_objective` makes such objectives, and so does every
surface, whose model is the point :math:`\theta` itself (:class:`PointModel`) and whose loss module
evaluates :math:`f` on it (:class:`SurfaceLoss`). Anything a ``torch.optim`` optimizer can train is an
objective.

A **surface** is a loss of a parameter vector :math:`\theta \in \mathbb{R}^n` (mostly :math:`n = 2`, for
contour plots) given as a plain function written with arithmetic only, so the *same* function evaluates
numpy arrays (fast, for widgets) and torch tensors (autograd gives the gradient and Hessian).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from ..flat import assign, flatten


def flat(tensors: Sequence[Tensor]) -> Tensor:
    """The tensors concatenated into one detached flat vector (a copy)."""
    return flatten([t.detach() for t in tensors])


def assign_flat(params: Sequence[Tensor], theta) -> None:
    """Copy the flat vector ``theta`` (a tensor, array or list) into ``params`` in place (no autograd history)."""
    assign(params, torch.as_tensor(theta))


@dataclass
class Objective:
    r"""A loss :math:`J(\theta)` and the tensors :math:`\theta` it depends on.

    Args:
        params: the tensors an optimizer updates (leaf tensors with ``requires_grad=True``).
        loss: zero-argument callable returning the scalar loss at the current ``params``.
        name: a label for plots and reports.
        model, loss_fn: when ``loss()`` is ``loss_fn(model(inputs), targets)`` (calling each once), the
            ``nn.Module`` model that owns ``params`` and the ``nn.Module`` loss; both or neither. They
            build the optimizers with ``needs = "model"`` (:func:`optlab.trajectory.run`).
    """

    params: list
    loss: Callable[[], Tensor]
    name: str = "objective"
    model: nn.Module | None = None
    loss_fn: nn.Module | None = None

    def __post_init__(self):
        self.params = list(self.params)
        if not self.params:
            raise ValueError("Objective.params is empty: expected at least one tensor")
        for p in self.params:
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"Objective.params must be tensors with requires_grad=True, got {p!r:.60}")
        if not callable(self.loss):
            raise TypeError(f"Objective.loss must be a zero-argument callable, got {type(self.loss).__name__}")
        if (self.model is None) != (self.loss_fn is None):
            raise ValueError(f"Objective {self.name!r}: invalid model={self.model!r:.60}, loss_fn={self.loss_fn!r:.60}; "
                             f"expected both (loss() = loss_fn(model(inputs), targets)) or neither")
        if self.model is not None:
            for what, m in (("model", self.model), ("loss_fn", self.loss_fn)):
                if not isinstance(m, nn.Module):
                    raise TypeError(f"Objective {self.name!r}: invalid {what}={m!r:.60}; expected a torch.nn.Module")
            owned = {id(p) for p in self.model.parameters()}
            if any(id(p) not in owned for p in self.params):
                raise ValueError(f"Objective {self.name!r}: params are not all parameters of model; expected the "
                                 f"model that owns them")

    @property
    def theta(self) -> Tensor:
        """The current parameters as one flat vector (a detached copy)."""
        return flat(self.params)

    def set_theta(self, theta) -> None:
        """Write the flat vector ``theta`` into the parameters."""
        assign_flat(self.params, theta)

    def loss_at(self, theta) -> float:
        """:math:`J(\\theta)` at a flat vector; the parameters are put back afterwards."""
        saved = self.theta
        try:
            self.set_theta(theta)
            with torch.no_grad():
                return float(self.loss())
        finally:
            self.set_theta(saved)


class PointModel(nn.Module):
    r"""The model of a surface: whatever the inputs, its output is the point :math:`\theta` itself, as one
    sample of ``n`` outputs (shape ``(1, n)``).

    Args:
        theta0: the starting point (shape ``(n,)``); it becomes the parameter ``theta``.
    """

    def __init__(self, theta0: Tensor):
        super().__init__()
        self.theta = nn.Parameter(theta0.detach().clone())

    def forward(self, inputs: Tensor) -> Tensor:
        return self.theta.unsqueeze(0)


class SurfaceLoss(nn.Module):
    r"""A surface's function :math:`f` as a loss module: ``loss_fn(outputs, targets) = f(outputs[0])``
    (the targets are not used), so that on a :class:`PointModel` the Gauss-Newton matrix is the Hessian of f.

    Args:
        f: the surface's function of a point of shape ``(n,)``.
    """

    def __init__(self, f: Callable[[Tensor], Tensor]):
        super().__init__()
        self.f = f

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.f(outputs[0])


class FunctionLoss(nn.Module):
    """A plain loss function ``fn(outputs, targets)`` as an ``nn.Module`` (so that hooks see its targets)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.fn(outputs, targets)


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

    def derivatives(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Gradients and Hessians at many points at once (vector fields, widgets): ``points`` of shape
        ``(..., n)`` gives shapes ``(..., n)`` and ``(..., n, n)``, by autograd in float64 (one backward
        pass for the gradients, one per coordinate for the Hessians; ``f`` is evaluated point by point, so
        the sum's gradient is each point's gradient)."""
        t = torch.tensor(_check_theta(points, self.n), dtype=torch.float64, requires_grad=True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.f(t).sum(), t, create_graph=True, materialize_grads=True)
            rows = [torch.zeros_like(t) if not g.requires_grad else
                    torch.autograd.grad(g[..., i].sum(), t, retain_graph=True, allow_unused=True,
                                        materialize_grads=True)[0] for i in range(self.n)]
        return g.detach().numpy(), torch.stack(rows, dim=-2).detach().numpy()

    def grid(self, xs, ys) -> np.ndarray:
        """``Z[j, i] = f(xs[i], ys[j])`` on a 2-D grid (for ``contour(xs, ys, Z)``); numpy only, no autograd."""
        if self.n != 2:
            raise ValueError(f"grid needs a 2-D surface, {self.name!r} has n={self.n}")
        X, Y = np.meshgrid(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
        return np.asarray(self.f(np.stack([X, Y], axis=-1)), dtype=float)

    def objective(self, theta0=None, dtype: torch.dtype = torch.float64) -> Objective:
        """An :class:`Objective` starting at ``theta0`` (default :attr:`theta0`) for the trajectory runner: the
        :class:`PointModel` at ``theta0`` and the :class:`SurfaceLoss` of :attr:`f`."""
        start = self.theta0 if theta0 is None else _check_theta(theta0, self.n, "theta0")
        theta = torch.tensor(np.asarray(start, dtype=float), dtype=dtype)
        if theta.dim() != 1:
            raise ValueError(f"theta0 must have shape ({self.n},), got {tuple(theta.shape)}")
        nothing = torch.empty(1, 0, dtype=dtype)  # one sample without features: the point model needs no input
        return model_objective(PointModel(theta), SurfaceLoss(self.f), nothing, nothing, name=self.name)


def model_objective(model: torch.nn.Module, loss_fn: Callable, X: Tensor, y: Tensor, name: str = "model"
                    ) -> Objective:
    r"""The full-batch objective :math:`J(\theta) = \text{loss\_fn}(\text{model}(X), y)` over the model's parameters.

    The objective carries ``model`` and ``loss_fn`` (a plain function is wrapped in a
    :class:`FunctionLoss` module), so optimizers with ``needs = "model"`` can be built on it. It trains
    ``model`` itself (the optimizer moves its parameters); pass a copy to keep the original.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be a loss function or module loss_fn(outputs, targets), got {loss_fn!r:.60}")
    loss_module = loss_fn if isinstance(loss_fn, torch.nn.Module) else FunctionLoss(loss_fn)
    params = [p for p in model.parameters() if p.requires_grad]
    return Objective(params, lambda: loss_module(model(X), y), name=name, model=model, loss_fn=loss_module)
