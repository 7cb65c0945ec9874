r"""Curvature layer by layer: the Hessian's diagonal blocks, one per layer of a network.

For a network whose parameters split into layers :math:`\omega = (\omega_1, \dots, \omega_L)`, the
Hessian's block of layer :math:`l` is

.. math::

    H_{ll} = \frac{\partial^2 E}{\partial \omega_l\, \partial \omega_l^\top}

the curvature seen when only that layer's weights move (the others held fixed). Its top eigenvalue
bounds the learning rate that layer could take on its own (:math:`2/\lambda_{\max}(H_{ll})`) and its
trace is the sum of the layer's second derivatives :math:`\sum_i \partial^2 E/\partial\omega_i^2`:
the slides' point (LeCun, Bottou, Orr & Müller 1998, "Efficient BackProp") that lower layers often
have smaller second derivatives than higher ones, so could use larger learning rates, is a statement
about these numbers.

Each block is a :class:`~optlab.curvature.HessianOperator` restricted to the layer's parameters (its
products never build the full Hessian); :func:`layer_curvature` measures them all with Lanczos
(:func:`~optlab.curvature.top_eigenvalue`) and Hutchinson's trace estimate (:func:`hessian_trace`).

Reference: LeCun, Y., Bottou, L., Orr, G. B., Müller, K.-R. (1998). Efficient BackProp. In Neural
Networks: Tricks of the Trade, section 9.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from ..errors import check_data, check_type, positive_int
from ._data import resolve_params
from ._eigensolver import check_seed
from .diagonal.hutchinson import hutchinson_diagonal
from .hessian import HessianOperator
from .power import top_eigenvalue


@dataclass(frozen=True)
class LayerCurvature:
    """The curvature of one layer's Hessian block, as plain numbers (see :func:`layer_curvature`)."""

    name: str  #: the module's qualified name in the model (``"0"``, ``"encoder.fc1"``)
    size: int  #: number of parameters in the block
    top_eigenvalue: float  #: largest eigenvalue of the block (algebraic)
    trace: float  #: Hutchinson's estimate of the block's trace (the sum of its second derivatives)
    iterations: int  #: Hessian-vector products Lanczos used for the top eigenvalue

    @property
    def mean_diagonal(self) -> float:
        """``trace / size``: the layer's average second derivative."""
        return self.trace / self.size

    def to_dict(self) -> dict:
        return asdict(self)


def layer_parameters(model: torch.nn.Module) -> dict[str, list[Tensor]]:
    """Every module that owns parameters (requiring grad), in ``model.parameters()`` order, with them.

    A layer is a module with parameters of its own (``nn.Linear``: weight and bias; a BatchNorm:
    gamma and beta); containers (``nn.Sequential``) own none and are skipped.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
        >>> {name: [tuple(p.shape) for p in ps] for name, ps in layer_parameters(net).items()}
        {'0': [(4, 3), (4,)], '2': [(2, 4), (2,)]}
    """
    check_type("layer_parameters", "model", model, isinstance(model, torch.nn.Module), "a torch.nn.Module")
    layers = {}
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own:
            layers[name] = own
    check_data("layer_parameters", "model", bool(layers), "no module has parameters that require grad",
               "a model with at least one trainable layer")
    return layers


def layer_operators(model: torch.nn.Module, loss_fn, data, **kwargs) -> dict[str, HessianOperator]:
    """The Hessian block of every layer (:func:`layer_parameters`) as a :class:`HessianOperator` over
    that layer's parameters; ``kwargs`` go to each operator (``cache_graph``, ``method``)."""
    return {name: HessianOperator(model, loss_fn, data, params, **kwargs)
            for name, params in layer_parameters(model).items()}


def hessian_trace(op_or_tensor, *, num_samples: int = 100, seed: int = 0) -> float:
    r"""Hutchinson's trace estimate :math:`\operatorname{tr} H \approx \frac1S\sum_s v_s^\top H v_s`.

    Rademacher probes :math:`v_s` (entries :math:`\pm1`) make it unbiased, with variance
    :math:`\frac{2}{S}\sum_{i\ne j} H_{ij}^2` (exact for a diagonal matrix). It is the sum of
    :func:`~optlab.curvature.hutchinson_diagonal`.

    Example:
        >>> hessian_trace([[2.0, 0.0], [0.0, 3.0]], num_samples=4)
        5.0

    Reference: Hutchinson, M. F. (1990). A stochastic estimator of the trace of the influence matrix
    for Laplacian smoothing splines. Communications in Statistics - Simulation and Computation.
    """
    return float(hutchinson_diagonal(op_or_tensor, num_samples=num_samples, seed=seed).sum())


def layer_curvature(model: torch.nn.Module, loss_fn, data, *, num_samples: int = 30, max_iter: int = 100,
                    tol: float = 1e-6, seed: int = 0) -> list[LayerCurvature]:
    r"""Top eigenvalue and trace of every layer's Hessian block :math:`H_{ll}`, input layer first.

    Args:
        model, loss_fn, data: as for :class:`~optlab.curvature.HessianOperator`.
        num_samples: Hutchinson probes per layer for the trace (:func:`hessian_trace`).
        max_iter, tol: Lanczos' budget and tolerance for each top eigenvalue
            (:func:`~optlab.curvature.top_eigenvalue` with ``which="algebraic"``).
        seed: seed of the probes and of Lanczos' start vectors.

    Returns:
        one :class:`LayerCurvature` per layer, in ``model.parameters()`` order.

    Example:
        >>> torch.manual_seed(0) and None
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
        >>> x, y = torch.randn(32, 3, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)
        >>> [(c.name, c.size) for c in layer_curvature(net, torch.nn.MSELoss(), (x, y))]
        [('0', 16), ('2', 5)]
    """
    owner = "layer_curvature"
    positive_int(owner, "num_samples", num_samples)
    positive_int(owner, "max_iter", max_iter)
    check_seed(owner, seed)
    resolve_params(model, None, owner)
    results = []
    for name, op in layer_operators(model, loss_fn, data).items():
        with op.many_products():
            top = top_eigenvalue(op, which="algebraic", max_iter=min(max_iter, op.shape[0]), tol=tol, seed=seed,
                                 method="lanczos")
            trace = hessian_trace(op, num_samples=num_samples, seed=seed)
        results.append(LayerCurvature(name=name, size=op.shape[0], top_eigenvalue=float(top.value), trace=trace,
                                      iterations=int(top.iterations)))
    return results
