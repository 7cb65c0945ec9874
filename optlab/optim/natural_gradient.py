r"""Natural gradient descent with the Fisher information matrix (true or empirical), for small models.

Gradient descent takes the steepest step when distance is measured in orthonormal coordinates,
:math:`\theta_{t+1} = \arg\min_\theta \langle \theta, f' \rangle + \frac{1}{2\alpha}\|\theta - \theta_t\|^2`.
Measuring it instead by how much the model's *predictive distribution* moves (the KL divergence, whose
metric tensor is the Fisher matrix F) gives the natural gradient (Misra, "Natural gradients"):

.. math::
    f'_N = F_\theta^{-1} f',\qquad \theta_{t+1} = \theta_t - \alpha\,(F + \lambda I)^{-1} \nabla E,

.. math::
    F = \frac1N \sum_n \mathbb E_{y \sim p_\theta(y|x_n)}\big[\nabla \log p_\theta(y|x_n)\,\nabla \log p_\theta(y|x_n)^\top\big]
      = \frac1N \sum_n J_n^\top\, \Sigma_n\, J_n ,

with :math:`J_n` the Jacobian of the network's output for sample n and :math:`\Sigma_n` the Fisher of
the output distribution: :math:`\mathrm{diag}(p_n) - p_n p_n^\top` for a softmax (categorical), the
identity for a unit-variance Gaussian (then F is the Gauss-Newton matrix). The expectation over
:math:`y` is computed exactly, not sampled. The **empirical Fisher** replaces it by the observed
targets, :math:`\tilde F = \frac1N\sum_n g_n g_n^\top` with the per-sample gradients :math:`g_n`; cheaper
to think about, but not the same matrix (Kunstner et al., 2019, show where it fails).

The natural gradient is invariant to smooth reparametrizations (to first order), e.g. to rescaling a
linear model's inputs. F is built densely (n x n parameters): small models only;
:mod:`optlab.optim.prong` avoids the inverse by whitening instead.

References:
    S. Amari (1998). Natural gradient works efficiently in learning. Neural Computation.
    J. Martens (2020). New insights and perspectives on the natural gradient method. JMLR.
    F. Kunstner, L. Balles, P. Hennig (2019). Limitations of the empirical Fisher approximation. NeurIPS.
    I. Misra, "Optimization for Deep Networks" (slides), "Natural gradients".
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._flat import add_flat, store_grad
from ._validate import check, non_negative
from .newton import _all_params, _group_vector

FISHERS = ("true", "empirical")
LIKELIHOODS = ("categorical", "gaussian")


def output_jacobian(outputs: Tensor, params: list[Tensor]) -> Tensor:
    """The Jacobian of ``outputs`` (N, C) with respect to the flat parameters, shaped (N, C, n_params).

    Args:
        outputs: the network's outputs (N, C), attached to the graph.
        params: the tensors to differentiate with respect to.

    Reference: Martens (2020). New insights and perspectives on the natural gradient method.
    """
    m = outputs.numel()
    eye = torch.eye(m, dtype=outputs.dtype, device=outputs.device).reshape(m, *outputs.shape)
    rows = torch.autograd.grad(outputs, params, grad_outputs=eye, is_grads_batched=True, retain_graph=True,
                               allow_unused=True)
    J = torch.cat([(torch.zeros(m, p.numel(), dtype=outputs.dtype, device=outputs.device) if r is None
                    else r.reshape(m, -1)) for p, r in zip(params, rows)], dim=1)
    return J.reshape(*outputs.shape, -1)


def output_fisher(outputs: Tensor, likelihood: str) -> Tensor:
    r""":math:`\Sigma_n`, the Fisher of each sample's output distribution, shaped (N, C, C).

    Args:
        outputs: the outputs (N, C): logits or Gaussian means.
        likelihood: ``"categorical"`` or ``"gaussian"``.

    Reference: Martens (2020), section 9.2.
    """
    N, C = outputs.shape
    if likelihood == "gaussian":
        return torch.eye(C, dtype=outputs.dtype, device=outputs.device).expand(N, C, C)
    p = torch.softmax(outputs, dim=1)
    return torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)


def output_residual(outputs: Tensor, targets: Tensor, likelihood: str) -> Tensor:
    r""":math:`\partial(-\log p(y_n|x_n))/\partial z_n`: :math:`p_n - \text{onehot}(y_n)` or :math:`z_n - y_n`.

    Args:
        outputs, targets: the outputs (N, C) and the targets.
        likelihood: ``"categorical"`` or ``"gaussian"``.

    Reference: Martens (2020), section 9.2.
    """
    if likelihood == "gaussian":
        return outputs - targets
    return torch.softmax(outputs, dim=1) - torch.nn.functional.one_hot(targets, outputs.shape[1]).to(outputs.dtype)


def negative_log_likelihood(outputs: Tensor, targets: Tensor, likelihood: str) -> Tensor:
    """The mean negative log-likelihood: cross-entropy, or half the squared error (unit-variance Gaussian).

    Args:
        outputs, targets: the outputs (N, C) and the targets.
        likelihood: ``"categorical"`` or ``"gaussian"``.

    Reference: Martens (2020), section 9.2.
    """
    if likelihood == "gaussian":
        return 0.5 * ((outputs - targets) ** 2).sum(1).mean()
    return torch.nn.functional.cross_entropy(outputs, targets)


def true_fisher(J: Tensor, Sigma: Tensor) -> Tensor:
    r""":math:`F = \frac1N \sum_n J_n^\top \Sigma_n J_n` from Jacobians (N, C, n) and output Fishers (N, C, C).

    Args:
        J: the output Jacobians (N, C, n).
        Sigma: the output Fishers (N, C, C).

    Reference: Amari (1998). Natural gradient works efficiently in learning; Martens (2020).
    """
    return torch.einsum("nci,ncd,ndj->ij", J, Sigma, J) / J.shape[0]


def empirical_fisher(per_sample_grads: Tensor) -> Tensor:
    r""":math:`\tilde F = \frac1N \sum_n g_n g_n^\top` from the per-sample gradients (N, n).

    Args:
        per_sample_grads: the gradients of each sample's loss (N, n).

    Reference: Kunstner, Balles & Hennig (2019). Limitations of the empirical Fisher approximation.
    """
    return per_sample_grads.T @ per_sample_grads / per_sample_grads.shape[0]


def natural_gradient_direction(g: Tensor, F: Tensor, lambda_: Tensor | float = 0.0) -> Tensor:
    r"""The natural-gradient direction :math:`-(F + \lambda I)^{-1} g` (``lambda_`` may be a vector).

    Args:
        g: the gradient; F: the Fisher matrix.
        lambda_: the damping, a number or one value per coordinate.

    Reference: Amari (1998). Natural gradient works efficiently in learning.
    """
    lam = torch.as_tensor(lambda_, dtype=F.dtype, device=F.device)
    return -torch.linalg.solve(F + torch.diag(lam.expand(g.shape)), g)


class NaturalGradient(torch.optim.Optimizer):
    r"""Natural gradient descent :math:`\theta \leftarrow \theta - \alpha (F + \lambda I)^{-1}\nabla E` with a dense Fisher.

    Args:
        params: parameters or parameter groups (each group's ``lr`` scales its part of the step and its
            ``damping`` is added to its part of F's diagonal).
        lr: the step size alpha.
        damping: lambda >= 0 (F is singular as soon as there are more parameters than N times C).
        fisher: ``"true"`` (expectation over the model's own predictions, exact) or ``"empirical"``
            (outer products of the per-sample gradients at the observed targets).
        likelihood: ``"categorical"`` (outputs are logits, targets class indices; the loss is the
            cross-entropy) or ``"gaussian"`` (outputs are means of a unit-variance Gaussian; the loss is
            half the squared error).

    ``step(closure)``: the closure recomputes the model and returns ``(outputs, targets)`` (outputs of
    shape (N, C), no ``backward``); ``step`` returns the mean negative log-likelihood before the step.

    Reference: Amari (1998). Natural gradient works efficiently in learning; Martens (2020).
    """

    def __init__(self, params, lr: float = 1.0, damping: float = 1e-3, *, fisher: str = "true",
                 likelihood: str = "categorical"):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        non_negative(name, "damping", damping)
        check(name, "fisher", fisher, fisher in FISHERS, f"one of {FISHERS}")
        check(name, "likelihood", likelihood, likelihood in LIKELIHOODS, f"one of {LIKELIHOODS}")
        super().__init__(params, dict(lr=lr, damping=damping))
        self.fisher, self.likelihood = fisher, likelihood

    def step(self, closure=None):
        """One natural-gradient step; returns the loss before it."""
        name = type(self).__name__
        if closure is None or not callable(closure):
            raise TypeError(f"{name}: step() needs a closure returning (outputs, targets) (got {closure!r})")
        with torch.enable_grad():
            out = closure()
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Tensor) and out[0].dim() == 2):
            raise TypeError(f"{name}: the closure must return (outputs of shape (N, C), targets), got {out!r}")
        outputs, targets = out
        params = _all_params(self.param_groups)
        with torch.enable_grad():
            J = output_jacobian(outputs, params)
        z = outputs.detach()
        residual = output_residual(z, targets, self.likelihood)          # dNLL_n / dz_n, (N, C)
        per_sample = torch.einsum("nc,nci->ni", residual, J)             # g_n = J_n^T residual_n
        g = per_sample.mean(0)
        if self.fisher == "true":
            F = true_fisher(J, output_fisher(z, self.likelihood))
        else:
            F = empirical_fisher(per_sample)
        d = natural_gradient_direction(g, F, _group_vector(self.param_groups, "damping", g))
        add_flat(params, _group_vector(self.param_groups, "lr", g) * d)
        store_grad(params, g)
        state = self.state[params[0]]
        state["step"] = state.get("step", 0) + 1
        return negative_log_likelihood(z, targets, self.likelihood)
