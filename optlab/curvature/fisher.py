r"""The Fisher information matrix of a network, true and empirical, as a linear operator.

Reading the per-sample loss as a negative log-likelihood, :math:`\ell_n(y) = \ell(f_n, y) = -\log p(y \mid f_n)`
(+ a constant), with :math:`f_n` the network's output for sample :math:`n` and the loss the mean
:math:`E = \frac1N\sum_n \ell_n(y_n)`, the (true) Fisher averages the outer product of the per-sample
score over labels drawn from the model, the empirical Fisher over the observed labels:

.. math::

    F = \frac1N\sum_n \mathbb{E}_{\hat y \sim p(\cdot\mid f_n)}\!\big[\nabla_\omega\ell_n(\hat y)\,
        \nabla_\omega\ell_n(\hat y)^\top\big]
      = \frac1N\sum_n J_n^\top\, F_{\text{out},n}\, J_n, \qquad
    F_{\text{emp}} = \frac1N\sum_n \nabla_\omega \ell_n(y_n)\, \nabla_\omega \ell_n(y_n)^\top

**One scaling**: both average over the samples the outer products of the gradients of the same
per-sample loss :math:`\ell_n` (``loss_fn`` on that sample alone, mean-reduced), which is how the mean
loss :math:`E`, its Hessian and its Gauss-Newton matrix are scaled. The likelihood is implied by
``loss_fn``, and :math:`F_{\text{out},n} = \mathbb{E}_{\hat y}[\nabla_f\ell_n\nabla_f\ell_n^\top]` is
written out:

- ``CrossEntropyLoss``: categorical, :math:`p = \mathrm{softmax}(f_n)`;
  :math:`F_{\text{out},n} = \sum_c p_c (p - e_c)(p - e_c)^\top = \mathrm{diag}(p) - pp^\top`.
- ``MSELoss`` with :math:`O` outputs per sample: Gaussian :math:`\mathcal N(f_n, \tfrac O2 I)`, whose
  negative log-likelihood is exactly :math:`\ell_n = \tfrac1O\|f_n - y\|^2` (+ a constant);
  :math:`F_{\text{out},n} = \tfrac{2}{O} I`.
- ``BCEWithLogitsLoss`` with one output per sample: Bernoulli, :math:`p = \sigma(f_n)`;
  :math:`F_{\text{out},n} = p(1-p)`. (With several outputs the mean over them is not a sample's
  negative log-likelihood: the true Fisher refuses it.)

Each :math:`F_{\text{out},n}` is the loss's Hessian in output space :math:`\partial^2\ell_n/\partial f^2`
for these losses (exponential families in their natural parameters), so **the true Fisher equals the
generalized Gauss-Newton matrix** of :math:`E` (Martens 2020; tested against
:class:`~optlab.curvature.GGNOperator`). It is computed as the GGN is, :math:`J^\top F_{\text{out}} (J v)`
by the R-pass's linearization. The empirical Fisher is not a curvature of :math:`E` (Kunstner et al.
2019 show where it fails); it is computed from per-sample gradients (one forward/backward per sample:
use eval mode for models with BatchNorm), for the mean cross-entropy and squared error on R-pass models
all at once from the linearization's back-propagated :math:`\delta` (Goodfellow 2015).

References:
    Amari, S. (1998). Natural gradient works efficiently in learning. Neural Computation 10(2).
    Martens, J. (2020). New insights and perspectives on the natural gradient method. JMLR 21.
    Kunstner, F., Balles, L., Hennig, P. (2019). Limitations of the empirical Fisher approximation for
    natural gradient descent. NeurIPS.
    Goodfellow, I. (2015). Efficient per-example gradient computations. arXiv:1510.01799.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..flat import flatten
from ._data import batch_loss, preserved_buffers
from .ggn import GGNOperator
from .rop import Linearization

KINDS = ("true", "empirical")
LIKELIHOODS = (nn.CrossEntropyLoss, nn.MSELoss, nn.BCEWithLogitsLoss)


def check_likelihood(owner: str, loss_fn) -> None:
    """``loss_fn`` must be a mean-reduced negative log-likelihood the true Fisher knows (a table row of
    the module docstring), without weights or smoothing that would make it another function."""
    if not isinstance(loss_fn, LIKELIHOODS):
        raise TypeError(f"{owner}: no likelihood known for loss_fn={type(loss_fn).__name__}; expected one of "
                        f"{', '.join(c.__name__ for c in LIKELIHOODS)} (or kind='empirical')")
    changed = [name for name, default in (("weight", None), ("pos_weight", None), ("label_smoothing", 0.0))
               if getattr(loss_fn, name, default) is not None and getattr(loss_fn, name, default) != default]
    if changed:
        name = changed[0]
        raise ValueError(f"{owner}: invalid loss_fn.{name}={getattr(loss_fn, name)!r}; expected the default "
                         f"({'None' if name != 'label_smoothing' else '0.0'}): with it the loss is no longer a "
                         f"negative log-likelihood (or use kind='empirical')")


def check_fisher_loss(owner: str, loss_fn, kind: str) -> None:
    """The checks a Fisher of ``kind`` makes on ``loss_fn`` (shared by :class:`FisherOperator` and
    :class:`~optlab.optim.NaturalGradient`): a known kind, a mean-reduced loss, a known likelihood for
    ``"true"``."""
    if kind not in KINDS:
        raise ValueError(f"{owner}: invalid kind={kind!r}; expected one of {KINDS}")
    if getattr(loss_fn, "reduction", "mean") != "mean":
        raise ValueError(f"{owner}: invalid loss_fn.reduction={loss_fn.reduction!r}; expected 'mean' (the Fisher "
                         f"averages over samples as the mean loss does)")
    if kind == "true":
        check_likelihood(f"{owner}(kind='true')", loss_fn)


def output_fisher_product(loss_fn, outputs: Tensor, targets: Tensor) -> Callable[[Tensor], Tensor]:
    r"""The function :math:`u \mapsto F_{\text{out}} u` for one batch of ``N`` outputs: the block diagonal
    :math:`\frac1N \mathrm{diag}(F_{\text{out},1}, \dots, F_{\text{out},N})` of the module docstring's table
    (``u`` shaped like the outputs, or ``(k, *outputs.shape)`` for ``k`` vectors at once).

    Example:
        >>> f = torch.zeros(1, 2)                            # p = (1/2, 1/2)
        >>> output_fisher_product(torch.nn.CrossEntropyLoss(), f, torch.tensor([0]))(torch.tensor([[1.0, 0.0]]))
        tensor([[ 0.2500, -0.2500]])
    """
    N = outputs.shape[0]
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        if outputs.dim() != 2 or targets.dim() != 1 or targets.is_floating_point() or bool((targets < 0).any()):
            raise ValueError(f"true Fisher of CrossEntropyLoss: outputs of shape {tuple(outputs.shape)}, targets of "
                             f"shape {tuple(targets.shape)} and dtype {targets.dtype}; expected logits (N, C) and "
                             f"class indices >= 0 of shape (N,)")
        p = torch.softmax(outputs, dim=-1)
        return lambda u: (p * u - p * (p * u).sum(-1, keepdim=True)) / N   # E_c[(p - e_c)(p - e_c)^T] u
    if isinstance(loss_fn, nn.MSELoss):
        if targets.shape != outputs.shape:
            raise ValueError(f"true Fisher of MSELoss: targets of shape {tuple(targets.shape)}; expected the outputs' "
                             f"shape {tuple(outputs.shape)}")
        c = 2.0 / outputs.numel()
        return lambda u: c * u
    if outputs.numel() != N:
        raise ValueError(f"true Fisher of BCEWithLogitsLoss: outputs of shape {tuple(outputs.shape)}; expected one "
                         f"output per sample, (N,) or (N, 1): the mean over several Bernoulli outputs is not a "
                         f"sample's negative log-likelihood (use kind='empirical')")
    s = torch.sigmoid(outputs)
    return lambda u: s * (1 - s) * u / N


def linearized_per_sample_gradients(lin: Linearization, params) -> Tensor:
    r"""The ``N x P`` per-sample gradients :math:`\nabla_\omega\ell_n` of a batch from its linearization.

    For a mean loss :math:`E = \frac1N\sum_n\ell_n` the back-propagated :math:`\delta_{z_l} = \partial E/\partial z_l`
    holds each sample's part, :math:`\frac1N\partial\ell_n/\partial z_{l,n}`, so (Goodfellow 2015)

    .. math:: \nabla_{W_l}\ell_n = N\,\delta_{z_l,n}\, a_{l-1,n}^\top,\qquad \nabla_{b_l}\ell_n = N\,\delta_{z_l,n}

    summed over positions for sequences and convolutions (a convolution's input patches by ``unfold``).

    Reference: Goodfellow, I. (2015). Efficient per-example gradient computations. arXiv:1510.01799.
    """
    N = lin.out.shape[0]
    parts: dict[int, Tensor] = {}
    for m, a, d in zip(lin.layers, lin.inputs, lin.deltas):
        if isinstance(m, nn.Linear):
            d3, a3 = d.reshape(N, -1, m.out_features), a.reshape(N, -1, m.in_features)
            parts[id(m.weight)] = torch.einsum("nto,nti->noi", d3, a3)
            d_sum = d3.sum(1)
        elif isinstance(m, nn.Conv2d):
            patches = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
            d3 = d.reshape(N, m.out_channels, -1)
            parts[id(m.weight)] = torch.einsum("nol,nkl->nok", d3, patches).reshape(N, *m.weight.shape)
            d_sum = d3.sum(2)
        else:
            continue
        if m.bias is not None:
            parts[id(m.bias)] = d_sum
    return N * torch.cat([(parts[id(p)] if id(p) in parts else torch.zeros(N, *p.shape, dtype=lin.out.dtype,
                                                                             device=lin.out.device)).reshape(N, -1)
                          for p in params], dim=1)


class FisherOperator(GGNOperator):
    r"""The Fisher information matrix, ``kind="true"`` or ``"empirical"``, as a linear operator.

    .. math::

        F v = \frac1N\sum_n J_n^\top F_{\text{out},n} J_n v \quad\text{(true)},\qquad
        F_{\text{emp}} v = \frac1N\sum_n \nabla\ell_n (\nabla\ell_n^\top v) \quad\text{(empirical)}

    scaled as the mean loss (the module docstring): the true Fisher equals the Gauss-Newton matrix
    :class:`~optlab.curvature.GGNOperator` for the supported likelihoods.

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`; ``loss_fn`` must
            be mean-reduced (``reduction="mean"``), and for ``kind="true"`` one of ``CrossEntropyLoss``
            (class-index targets), ``MSELoss`` or ``BCEWithLogitsLoss`` (one output per sample), which
            imply the likelihood.
        kind: ``"true"`` (labels drawn from the model, expectation in closed form) or ``"empirical"``
            (observed labels).
        method, cache_graph: for ``kind="true"``, as in :class:`~optlab.curvature.GGNOperator`.

    Example:
        >>> model = torch.nn.Linear(2, 3).double()
        >>> x, y = torch.randn(8, 2, dtype=torch.float64), torch.randint(0, 3, (8,))
        >>> F = FisherOperator(model, torch.nn.CrossEntropyLoss(), (x, y))
        >>> bool(torch.allclose(F.to_dense(), GGNOperator(model, torch.nn.CrossEntropyLoss(), (x, y)).to_dense()))
        True

    References:
        Amari, S. (1998). Natural gradient works efficiently in learning. Neural Computation 10(2).
        Kunstner, F., Balles, L., Hennig, P. (2019). Limitations of the empirical Fisher approximation
        for natural gradient descent. NeurIPS.
    """

    def __init__(self, model: nn.Module, loss_fn, data, params=None, *, kind: str = "true", method: str = "exact",
                 cache_graph: bool | None = None):
        check_fisher_loss(type(self).__name__, loss_fn, kind)
        self.kind = kind
        self._G, self._G_versions = None, None
        self.sample_gradients_method = None  # set by per_sample_gradients()
        super().__init__(model, loss_fn, data, params, method=method, cache_graph=cache_graph)

    def _output_product(self, outputs: Tensor, targets: Tensor, lin=None) -> Callable[[Tensor], Tensor]:
        return output_fisher_product(self.loss_fn, outputs, targets)

    def per_sample_gradients(self) -> Tensor:
        r"""The ``N x P`` matrix of per-sample gradients :math:`\nabla_\omega\ell_n` (computed once for the
        current parameters, again after they change).

        Where the R-pass applies and its linearization recognizes the loss as the mean cross-entropy or
        the mean squared error (so that :math:`E_b = \frac{1}{N_b}\sum_n \ell_n` exactly), all the batch's
        rows come from the linearization (:func:`linearized_per_sample_gradients`); otherwise one
        forward/backward pass per sample. ``sample_gradients_method`` then tells which was used
        (``"r-op"`` or ``"per-sample"``).
        """
        versions = tuple(p._version for p in self.params)
        if self._G is None or versions != self._G_versions:
            methods = set()
            with torch.enable_grad(), preserved_buffers(self.model):
                G = torch.cat([self._batch_per_sample_gradients(x, y, methods) for x, y in self.batches.batches])
            self._G, self._G_versions = G, versions
            self.sample_gradients_method = "r-op" if methods == {"r-op"} else "per-sample"
        return self._G

    def _batch_per_sample_gradients(self, x: Tensor, y: Tensor, methods: set) -> Tensor:
        if self.method == "r-op":
            lin = Linearization(self._layers, self.loss_fn, x, y)
            if lin.p is not None or lin.mse:  # the plain mean of per-sample losses
                methods.add("r-op")
                return linearized_per_sample_gradients(lin, self.params)
        methods.add("per-sample")
        rows = []
        for n in range(x.shape[0]):
            loss = batch_loss(self.model, self.loss_fn, x[n:n + 1], y[n:n + 1])
            rows.append(flatten(torch.autograd.grad(loss, self.params, allow_unused=True), self.params))
        return torch.stack(rows)

    def _matmat(self, V: Tensor) -> Tensor:
        if self.kind == "empirical":
            G = self.per_sample_gradients()
            return G.T @ (G @ V) / G.shape[0]
        return super()._matmat(V)
