r"""One closure convention for every optimizer: torch's.

Every optimizer in :mod:`optlab.optim` is stepped as ``torch.optim.LBFGS`` is, with torch's standard
closure::

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        return loss

    optimizer.step(closure)

What a method needs beyond that is declared in one class attribute, ``needs``, which
:func:`optlab.trajectory.run` reads:

=============  ===========================================================================================
``needs``      what ``step`` is given
=============  ===========================================================================================
``"gradient"`` nothing: ``step()`` reads ``p.grad`` (a closure is optional): the first-order methods,
               PRONG (SGD on whitened layers)
``"closure"``  torch's closure: Newton and saddle-free Newton (the Hessian of its loss), nonlinear CG and
               scaled CG (line search, trial points)
``"model"``    torch's closure, and the optimizer was built with ``model=`` and ``loss_fn=`` (an
               ``nn.Module`` loss): Gauss-Newton, Levenberg-Marquardt, Hessian-free's Gauss-Newton
               products, natural gradient, SDLM and vSGD (a curvature diagonal of the batch). The batch
               is the one the closure feeds ``model`` and ``loss_fn``, seen through forward hooks while
               :func:`evaluate` runs the closure.
=============  ===========================================================================================

:func:`optlab.trajectory.run` gives the closure to every optimizer whose ``needs`` is not ``"gradient"``
and builds a class with ``needs = "model"`` from the objective's ``model`` and ``loss_fn``.

Second-order methods run the closure through :func:`evaluate`: inside it ``loss.backward()`` records
the loss instead of consuming its graph, so the method differentiates the loss itself (with
``create_graph`` for Hessian-vector products, or through :mod:`optlab.curvature`'s operators), and
:func:`loss_at` evaluates trial points without gradients. The closure needs nothing special.

Example:
    >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    >>> def closure():
    ...     w.grad = None
    ...     loss = (w ** 3).sum()
    ...     loss.backward()
    ...     return loss
    >>> ev = evaluate("demo", closure)
    >>> torch.autograd.grad(ev.loss, [w], create_graph=True)[0]     # the graph is still there
    tensor([ 3., 12.], grad_fn=<MulBackward0>)
    >>> loss_at("demo", closure)
    9.0
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ..flat import flatten

NEEDS = ("gradient", "closure", "model")


class Evaluation(NamedTuple):
    """One evaluation of a closure: the loss with its autograd graph, and, for optimizers that need a
    model, the batch the closure gave it (``data = (inputs, targets)``; ``None`` otherwise)."""

    loss: Tensor
    data: tuple | None = None


class _KeepGraph(TorchFunctionMode):
    """While active, ``Tensor.backward()`` records the tensor instead of consuming its graph."""

    def __init__(self):
        super().__init__()
        self.backward_calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is Tensor.backward:
            self.backward_calls += 1
            return None
        return func(*args, **(kwargs or {}))


def require_closure(owner: str, closure) -> None:
    """``TypeError`` unless ``closure`` is callable."""
    if closure is None or not callable(closure):
        raise TypeError(f"{owner}: step() needs torch's closure (zero_grad, compute the loss, backward(), "
                        f"return the loss); got {closure!r}")


def _scalar(owner: str, loss) -> Tensor:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError(f"{owner}: the closure must return the loss as a scalar tensor, got {loss!r:.80}")
    return loss.reshape(())


@contextlib.contextmanager
def _capture_batch(owner: str, model: torch.nn.Module, loss_fn: torch.nn.Module):
    """Record the inputs ``model`` and the targets ``loss_fn`` are called with (exactly once each)."""
    seen = {"inputs": [], "targets": []}

    def model_hook(_module, args):
        seen["inputs"].append(args[0] if len(args) == 1 else args)

    def loss_hook(_module, args):
        if len(args) != 2:
            raise TypeError(f"{owner}: loss_fn must be called as loss_fn(outputs, targets), got {len(args)} "
                            f"positional arguments")
        seen["targets"].append(args[1])

    handles = [model.register_forward_pre_hook(model_hook), loss_fn.register_forward_pre_hook(loss_hook)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def check_model_and_loss(owner: str, model, loss_fn) -> None:
    """The ``model=`` and ``loss_fn=`` an optimizer with ``needs = "model"`` is built with."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{owner}: model={model!r:.80} must be the torch.nn.Module the closure calls "
                        f"(its batch is read from the call)")
    if not isinstance(loss_fn, torch.nn.Module):
        raise TypeError(f"{owner}: loss_fn={loss_fn!r:.80} must be the torch.nn.Module loss the closure calls "
                        f"as loss_fn(outputs, targets), e.g. torch.nn.MSELoss() or torch.nn.CrossEntropyLoss()")


def evaluate(owner: str, closure, *, model: torch.nn.Module | None = None,
             loss_fn: torch.nn.Module | None = None) -> Evaluation:
    """Run torch's closure with gradients enabled, keeping the loss's graph (``backward()`` is recorded,
    not run; ``p.grad`` is left as the closure's ``zero_grad`` left it).

    With ``model`` and ``loss_fn``, also return the batch ``(inputs, targets)`` the closure passed them;
    each must be called exactly once.
    """
    require_closure(owner, closure)
    batch = contextlib.nullcontext(None) if model is None else _capture_batch(owner, model, loss_fn)
    with torch.enable_grad(), batch as seen, _KeepGraph():
        loss = _scalar(owner, closure())
    if not loss.requires_grad:
        raise ValueError(f"{owner}: the closure's loss does not depend on the parameters (requires_grad=False)")
    if seen is None:
        return Evaluation(loss)
    if len(seen["inputs"]) != 1 or len(seen["targets"]) != 1:
        raise ValueError(f"{owner}: the closure called model {len(seen['inputs'])} times and loss_fn "
                         f"{len(seen['targets'])} times; expected exactly once each (one batch per step)")
    return Evaluation(loss, (seen["inputs"][0], seen["targets"][0]))


def loss_at(owner: str, closure) -> float:
    """The closure's loss as a float, evaluated without gradients (its ``backward()`` is skipped)."""
    require_closure(owner, closure)
    with torch.no_grad(), _KeepGraph():
        return float(_scalar(owner, closure()))


def loss_and_grad_at(owner: str, closure, params) -> tuple[float, Tensor]:
    """Run torch's closure as it is (``backward()`` really runs) and return the loss and the flat gradient
    left in ``p.grad`` (zeros for parameters without one): what line searches need."""
    require_closure(owner, closure)
    with torch.enable_grad():
        loss = _scalar(owner, closure())
    return float(loss.detach()), flatten([None if p.grad is None else p.grad.detach() for p in params], params)


def leave_gradient(params, grads) -> None:
    """Write ``grads`` (one tensor or ``None`` per parameter) into ``p.grad``: what the closure's
    ``backward()``, recorded instead of run by :func:`evaluate`, would have left there."""
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.detach().clone()
