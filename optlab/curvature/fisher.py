r"""The Fisher information matrix of a network, true and empirical, as a linear operator.

Reading the loss as a negative log-likelihood, :math:`\ell(f, y) = -\log p(y \mid f)`, the (true)
Fisher averages the outer product of the score over labels drawn from the model, the empirical Fisher
over the observed labels:

.. math::

    F = \frac1N\sum_n J_n^\top\, \mathbb{E}_{\hat y \sim p(\cdot\mid f_n)}\!\big[\nabla_f\ell(f_n,\hat y)\,
        \nabla_f\ell(f_n,\hat y)^\top\big]\, J_n, \qquad
    F_{\text{emp}} = \frac1N\sum_n \nabla_\omega \ell_n\, \nabla_\omega \ell_n^\top

For the mean-reduced losses supported here the output-space expectation is written out:
cross-entropy (categorical, enumerated over the classes:
:math:`\sum_c p_c (p - e_c)(p - e_c)^\top = \operatorname{diag}(p) - pp^\top`), MSE (a Gaussian of
variance :math:`O/2` per output, :math:`\frac{2}{O} I`) and ``BCEWithLogitsLoss`` (Bernoulli,
:math:`\operatorname{diag}(p(1-p))`). For these exponential-family losses the true Fisher equals the
generalized Gauss-Newton matrix (Martens 2020). The empirical Fisher is computed from per-sample
gradients (one forward/backward per sample: use eval mode for models with BatchNorm).

References:
    Amari, S. (1998). Natural gradient works efficiently in learning. Neural Computation 10(2).
    Martens, J. (2020). New insights and perspectives on the natural gradient method. JMLR 21.
    Kunstner, F., Balles, L., Hennig, P. (2019). Limitations of the empirical Fisher approximation for
    natural gradient descent. NeurIPS.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._data import Batches, batch_loss, flatten, num_params, preserved_buffers, resolve_params
from ._operator import CurvatureOperator
from .ggn import ggn_batch_matmat

KINDS = ("true", "empirical")


def output_fisher_matvec(loss_fn, f: Tensor, y: Tensor, u: Tensor) -> Tensor:
    r"""Output-space Fisher times ``u`` for one batch of outputs ``f`` (mean-reduced loss, batch of ``N``)."""
    N = f.shape[0]
    if isinstance(loss_fn, nn.CrossEntropyLoss) and f.dim() == 2:
        p = torch.softmax(f, dim=1)
        out = torch.zeros_like(u)
        for c in range(f.shape[1]):  # E_{c ~ p}[(p - e_c)(p - e_c)^T u]
            s = p.clone()
            s[:, c] -= 1
            out += p[:, c:c + 1] * s * (s * u).sum(1, keepdim=True)
        return out / N
    if isinstance(loss_fn, nn.MSELoss):
        return 2.0 * u / f.numel()
    if isinstance(loss_fn, nn.BCEWithLogitsLoss):
        p = torch.sigmoid(f)
        return p * (1 - p) * u / f.numel()
    raise TypeError(f"true Fisher: no likelihood known for {type(loss_fn).__name__}; expected CrossEntropyLoss, "
                    "MSELoss or BCEWithLogitsLoss (or use kind='empirical')")


class FisherOperator(CurvatureOperator):
    r"""The Fisher information matrix, ``kind="true"`` or ``"empirical"``, as a linear operator.

    .. math::

        F v = \frac1N\sum_n J_n^\top F_{\text{out},n} J_n v \quad\text{(true)},\qquad
        F_{\text{emp}} v = \frac1N\sum_n \nabla\ell_n (\nabla\ell_n^\top v) \quad\text{(empirical)}

    Args:
        model, loss_fn, data, params: as in :class:`~optlab.curvature.HessianOperator`; ``loss_fn`` must
            be mean-reduced (``reduction="mean"``).
        kind: ``"true"`` (labels from the model) or ``"empirical"`` (observed labels).

    References:
        Amari, S. (1998). Natural gradient works efficiently in learning. Neural Computation 10(2).
        Kunstner, F., Balles, L., Hennig, P. (2019). Limitations of the empirical Fisher approximation
        for natural gradient descent. NeurIPS.
    """

    def __init__(self, model: nn.Module, loss_fn, data, params=None, *, kind: str = "true"):
        if kind not in KINDS:
            raise ValueError(f"FisherOperator: kind={kind!r}; expected one of {KINDS}")
        if getattr(loss_fn, "reduction", "mean") != "mean":
            raise ValueError(f"FisherOperator: loss_fn.reduction={loss_fn.reduction!r}; expected 'mean'")
        if kind == "true" and not isinstance(loss_fn, (nn.CrossEntropyLoss, nn.MSELoss, nn.BCEWithLogitsLoss)):
            raise TypeError(f"FisherOperator(kind='true'): no likelihood known for {type(loss_fn).__name__}; "
                            "expected CrossEntropyLoss, MSELoss or BCEWithLogitsLoss (or use kind='empirical')")
        self.model, self.loss_fn, self.kind = model, loss_fn, kind
        self.batches = Batches(data)
        self.params = resolve_params(model, params)
        self._G = None
        p0 = self.params[0]
        super().__init__(num_params(self.params), p0.dtype, p0.device)

    def per_sample_gradients(self) -> Tensor:
        r"""The ``N x P`` matrix of per-sample gradients :math:`\nabla_\omega\ell_n` (computed once)."""
        if self._G is None:
            rows = []
            with torch.enable_grad(), preserved_buffers(self.model):
                for x, y in self.batches.samples():
                    loss = batch_loss(self.model, self.loss_fn, x, y)
                    rows.append(flatten(torch.autograd.grad(loss, self.params, allow_unused=True), self.params))
            self._G = torch.stack(rows)
        return self._G

    def _matvec(self, v: Tensor) -> Tensor:
        return self._matmat(v[:, None])[:, 0]

    def _matmat(self, V: Tensor) -> Tensor:
        if self.kind == "empirical":
            G = self.per_sample_gradients()
            return G.T @ (G @ V) / G.shape[0]
        out = torch.zeros_like(V)
        with torch.enable_grad(), preserved_buffers(self.model):
            for x, y, w in self.batches:
                out += w * ggn_batch_matmat(self.model, self.loss_fn, x, y, self.params, V,
                                            output_matvec=lambda f, u, y=y: output_fisher_matvec(self.loss_fn, f, y, u))
        return out
