r"""PRONG, projected natural gradient descent (Desjardins et al., 2015): whitened neural networks.

Rather than inverting the Fisher matrix, reparametrize each layer so that its Fisher block is close to
the identity; plain SGD in the new parameters :math:`\Omega = \{V_i, d_i\}` then approximates natural
gradient descent. Layer i whitens its input :math:`h_{i-1}` with a centre :math:`c_{i-1}` and a whitening
matrix :math:`U_{i-1}` (estimated, not learned):

.. math::
    h_i = f_i\big(V_i\, U_{i-1} (h_{i-1} - c_{i-1}) + d_i\big),\qquad
    \Sigma_{i-1} + \epsilon I = Q \Lambda Q^\top,\quad U_{i-1} = \Lambda^{-1/2} Q^\top,\quad c_{i-1} = \mu_{i-1},

with :math:`\mu, \Sigma` the mean and covariance of :math:`h_{i-1}` over :math:`N_s` samples. The canonical
parameters are :math:`W_i = V_i U_{i-1}`, :math:`b_i = d_i - W_i c_{i-1}`. Every T updates (Algorithm 1):

1. compute the canonical :math:`W_i, b_i` (projection :math:`P_\Phi^{-1}(\Omega)`);
2. estimate :math:`\mu_{i-1}, \Sigma_{i-1}` on :math:`N_s` samples; update :math:`c_{i-1}, U_{i-1}`;
3. set :math:`V_i = W_i U_{i-1}^{-1}`, :math:`d_i = b_i + W_i c_{i-1}` (projection :math:`P_\Phi(\theta)`),

so the network computes exactly the same function before and after; then SGD on :math:`\Omega` goes on.

The slide's extraction writes the canonical bias as :math:`b_i = d_i + W_i c_i` and the projection as
":math:`c_i \leftarrow b_i - V_i c_i`"; expanding :math:`V_i U_{i-1}(h_{i-1} - c_{i-1}) + d_i` shows the
function-preserving pair is :math:`b_i = d_i - W_i c_{i-1}` and :math:`d_i = b_i + W_i c_{i-1}`, used here.

Reference: G. Desjardins, K. Simonyan, R. Pascanu, K. Kavukcuoglu (2015). Natural Neural Networks.
NIPS. Slides: I. Misra, "Optimization for Deep Networks", "PRONG: Projected Natural Gradient Descent".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import check, non_negative
from .param_groups import joint_option


def whitening(h: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    r"""``(c, U)`` for samples ``h`` (N, n): :math:`c = \mu`, :math:`U = \Lambda^{-1/2} Q^\top` with :math:`\Sigma + \epsilon I = Q\Lambda Q^\top`.

    After it, :math:`U (h - c)` has mean 0 and covariance :math:`\Lambda^{-1/2} Q^\top \Sigma Q \Lambda^{-1/2}`
    (the identity when :math:`\epsilon = 0`).

    Args:
        h: samples of a layer's input (N, n).
        eps: the eigenvalue regularizer epsilon.

    Reference: Desjardins et al. (2015). Natural Neural Networks, Algorithm 1, line 9.
    """
    c = h.mean(0)
    centred = h - c
    Sigma = centred.T @ centred / h.shape[0]
    lam, Q = torch.linalg.eigh(Sigma + eps * torch.eye(h.shape[1], dtype=h.dtype, device=h.device))
    return c, torch.diag(lam.rsqrt()) @ Q.T


def canonical(V: Tensor, d: Tensor, U: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    r"""The canonical weights of a whitened layer: :math:`W = V U`, :math:`b = d - W c`.

    Args:
        V, d: the whitened layer's parameters; U, c: its whitening matrix and centre.

    Reference: Desjardins et al. (2015). Natural Neural Networks, Algorithm 1, line 7.
    """
    W = V @ U
    return W, d - W @ c


def reparametrize(W: Tensor, b: Tensor, U: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    r"""The whitened parameters computing :math:`W h + b` with the new ``(U, c)``: :math:`V = W U^{-1}`, :math:`d = b + W c`.

    Args:
        W, b: the canonical parameters; U, c: the new whitening matrix and centre.

    Reference: Desjardins et al. (2015). Natural Neural Networks, Algorithm 1, line 10.
    """
    V = torch.linalg.solve(U.T, W.T).T  # W U^{-1} without forming the inverse
    return V, b + W @ c


class WhitenedLinear(nn.Module):
    r"""A linear layer in PRONG's parametrization: :math:`y = V U (h - c) + d`.

    ``V`` (out, in) and ``d`` (out,) are the learned parameters :math:`\Omega`; ``U`` (in, in) and ``c`` (in,)
    are buffers set by :meth:`set_whitening`, which keeps the function unchanged. With ``U = I`` and
    ``c = 0`` (the start) it is an ordinary ``nn.Linear``.

    Reference: Desjardins et al. (2015). Natural Neural Networks. NIPS.

    Args:
        in_features, out_features: the layer's sizes (V is initialized as ``nn.Linear``'s weight).
    """

    def __init__(self, in_features: int, out_features: int, device=None, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                raise ValueError(f"WhitenedLinear: invalid {name}={v!r}; expected a positive integer")
        kw = dict(device=device, dtype=dtype)
        lin = nn.Linear(in_features, out_features, **kw)  # torch's default initialization
        self.V = nn.Parameter(lin.weight.detach().clone())
        self.d = nn.Parameter(lin.bias.detach().clone())
        self.register_buffer("U", torch.eye(in_features, **kw))
        self.register_buffer("c", torch.zeros(in_features, **kw))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "WhitenedLinear":
        """The same function as ``linear`` (``V = W``, ``d = b``, ``U = I``, ``c = 0``)."""
        layer = cls(linear.in_features, linear.out_features, device=linear.weight.device, dtype=linear.weight.dtype)
        with torch.no_grad():
            layer.V.copy_(linear.weight)
            layer.d.copy_(linear.bias if linear.bias is not None else torch.zeros_like(layer.d))
        return layer

    def forward(self, h: Tensor) -> Tensor:
        return ((h - self.c) @ self.U.T) @ self.V.T + self.d

    def canonical(self) -> tuple[Tensor, Tensor]:
        """``(W, b)`` of the equivalent ``nn.Linear``."""
        return canonical(self.V.detach(), self.d.detach(), self.U, self.c)

    @torch.no_grad()
    def set_whitening(self, c: Tensor, U: Tensor) -> None:
        """Install a new centre and whitening matrix, re-expressing V and d so the output is unchanged."""
        W, b = self.canonical()
        V, d = reparametrize(W, b, U, c)
        self.U.copy_(U), self.c.copy_(c)
        self.V.copy_(V), self.d.copy_(d)

    def extra_repr(self) -> str:
        return f"in_features={self.V.shape[1]}, out_features={self.V.shape[0]}"


def whiten_sequential(model: nn.Sequential) -> nn.Sequential:
    """A copy of ``model`` with every ``nn.Linear`` replaced by an equivalent :class:`WhitenedLinear`.

    Args:
        model: an ``nn.Sequential``; its ``nn.Linear`` layers are converted, the rest kept (shared).

    Reference: Desjardins et al. (2015). Natural Neural Networks.
    """
    return nn.Sequential(*[WhitenedLinear.from_linear(m) if isinstance(m, nn.Linear) else m for m in model])


class PRONG(torch.optim.Optimizer):
    r"""Projected natural gradient descent: SGD on whitened layers, re-whitened every T updates.

    Args:
        params: the parameters to train (normally ``model.parameters()``), one or several groups.
        layers: the :class:`WhitenedLinear` layers to re-whiten.
        sample_fn: a function with no argument running the model forward on :math:`N_s` samples (e.g.
            ``lambda: model(X[:500])``); each layer's input on that pass gives its mean and covariance.
        lr: the SGD learning rate.
        reparam_every: T, the number of updates between re-whitenings.
        eps: the eigenvalue regularizer epsilon added to each covariance.

    The first whitening happens in the constructor (t = 0, Algorithm 1), the next ones after every T-th
    ``step``. ``needs = "gradient"``: ``step(closure=None)`` is plain SGD from ``p.grad``, like
    ``torch.optim.SGD`` (the optional closure is torch's); the whitening statistics come from
    ``sample_fn``, not from the step's batch. ``reparametrize()`` can be called at any time and never
    changes the network's function. ``reparam_every`` and ``eps`` are in ``param_groups`` (shared by all
    groups), the update counter is ``state[first param]["t"]``.

    Reference: Desjardins, Simonyan, Pascanu, Kavukcuoglu (2015). Natural Neural Networks. NIPS.
    """

    needs = "gradient"

    def __init__(self, params, layers: Sequence[WhitenedLinear], sample_fn: Callable[[], object], lr: float = 0.01, *,
                 reparam_every: int = 100, eps: float = 0.1):
        name = type(self).__name__
        non_negative(name, "lr", lr)
        check(name, "reparam_every", reparam_every,
              isinstance(reparam_every, int) and not isinstance(reparam_every, bool) and reparam_every > 0,
              "a positive integer")
        check(name, "eps", eps, isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 < eps < math.inf,
              "a finite number > 0 (it keeps the whitening invertible)")
        layers = list(layers)
        check(name, "layers", layers, len(layers) > 0 and all(isinstance(m, WhitenedLinear) for m in layers),
              "a non-empty list of WhitenedLinear layers")
        check(name, "sample_fn", sample_fn, callable(sample_fn), "a callable running the model on N_s samples")
        super().__init__(params, dict(lr=lr, reparam_every=reparam_every, eps=eps))
        self.layers, self.sample_fn = layers, sample_fn
        self.reparametrize()

    @torch.no_grad()
    def reparametrize(self) -> None:
        """Lines 6-11 of Algorithm 1 for every layer: new (c, U) from N_s samples, V and d re-expressed."""
        inputs: dict[int, Tensor] = {}
        hooks = [m.register_forward_pre_hook(lambda mod, args, i=i: inputs.__setitem__(i, args[0].detach()))
                 for i, m in enumerate(self.layers)]
        try:
            self.sample_fn()
        finally:
            for h in hooks:
                h.remove()
        for i, layer in enumerate(self.layers):
            if i not in inputs:
                raise RuntimeError(f"PRONG.reparametrize: layer {i} was not called by sample_fn")
            h = inputs[i].reshape(-1, inputs[i].shape[-1])
            layer.set_whitening(*whitening(h, joint_option(type(self).__name__, self.param_groups, "eps")))

    @torch.no_grad()
    def step(self, closure=None):
        """One SGD update on the whitened parameters; re-whitens after every ``reparam_every``-th update."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"]]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        counter = self.state[params[0]]
        counter["t"] = counter.get("t", 0) + 1
        if counter["t"] % joint_option(type(self).__name__, self.param_groups, "reparam_every") == 0:
            self.reparametrize()
        return loss
