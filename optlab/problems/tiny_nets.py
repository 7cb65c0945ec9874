r"""The 1-1-1 tanh networks of LeCun's deck 000 ("the loss landscape for a 2-layer neural net").

The simplest 2-layer net: one input, one hidden unit, one output, activation :math:`\sigma`,

.. math::

    \hat y = \sigma\big(w_1\,\sigma(w_0 x + b_0) + b_1\big), \qquad
    L(\theta) = \frac1P\sum_{i=1}^P \big(y^i - \hat y^i\big)^2 \quad\text{(quadratic cost, no 1/2).}

* :class:`TanhIdentity`: :math:`\sigma = \tanh`, two samples :math:`0.5\to0.5` and :math:`-0.5\to-0.5`, no
  biases. Both samples give the same loss (the net is odd), so :math:`L` is exactly the slide's
  :math:`(0.5 - \tanh(W_1\tanh(W_0\,0.5)))^2`.
* :class:`NoisyIdentity`: :math:`\sigma(z) = 1.7159\tanh(\tfrac23 z)` (the slide rounds it to 1.71; 1.7159
  is the published constant that makes :math:`\sigma(\pm1) = \pm1`), 20 samples, 10 from
  :math:`\mathcal N(-1, 0.4^2)` with target -1 and 10 from :math:`\mathcal N(+1, 0.4^2)` with target +1.
  The slide draws the loss over the two weights; here the biases are parameters of :meth:`~NoisyIdentity.model`
  and held at 0 in :attr:`~NoisyIdentity.surface`.

Slides: Y. LeCun, deck 000, "Deep Learning is Hard?" and "the loss landscape for a 2-layer neural net".
Reference: Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998), "Efficient BackProp", section 4.4 (the
sigmoid :math:`1.7159\tanh(\tfrac23 x)`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check, shape_error
from .base import Objective, Surface

#: LeCun's scaled tanh: sigma(z) = A tanh(S z) with A = 1.7159, S = 2/3 (sigma(1) = 1)
SCALED_TANH_A, SCALED_TANH_S = 1.7159, 2.0 / 3.0


def _tanh(z):
    return torch.tanh(z) if isinstance(z, torch.Tensor) else np.tanh(z)


def tanh(z):
    r""":math:`\tanh(z)` on numpy arrays or torch tensors."""
    return _tanh(z)


def scaled_tanh(z):
    r""":math:`\sigma(z) = 1.7159\tanh(\tfrac23 z)` (LeCun et al. 1998), numpy or torch."""
    return SCALED_TANH_A * _tanh(SCALED_TANH_S * z)


def tiny_net(x, w0, w1, b0=0.0, b1=0.0, act=tanh):
    r"""The 1-1-1 net :math:`\sigma(w_1\sigma(w_0x + b_0) + b_1)`; parameters broadcast against ``x``."""
    return act(w1 * act(w0 * x + b0) + b1)


def tiny_net_loss(theta, x, y, act=tanh):
    r""":math:`L = \frac1P\sum_i (y^i - \hat y^i)^2` for ``theta = (w0, w1)`` or ``(w0, b0, w1, b1)``, shape ``(...,
    2 | 4)``."""
    k = theta.shape[-1]
    if k == 2:
        w0, w1, b0, b1 = theta[..., 0:1], theta[..., 1:2], 0.0, 0.0
    elif k == 4:
        w0, b0, w1, b1 = theta[..., 0:1], theta[..., 1:2], theta[..., 2:3], theta[..., 3:4]
    else:
        raise shape_error("tiny_net_loss", "theta", theta.shape,
                          "(..., 2) for (w0, w1) or (..., 4) for (w0, b0, w1, b1)")
    if isinstance(theta, torch.Tensor):
        x, y = torch.as_tensor(x, dtype=theta.dtype), torch.as_tensor(y, dtype=theta.dtype)
    return ((y - tiny_net(x, w0, w1, b0, b1, act)) ** 2).mean(-1)


class TinyNet(torch.nn.Module):
    """The 1-1-1 net as a module: scalar parameters ``w0, b0, w1, b1``; input and output of shape ``(P,)``."""

    def __init__(self, w0=0.5, w1=0.5, b0=0.0, b1=0.0, act=tanh, biases: bool = True,
                 dtype: torch.dtype = torch.float64):
        super().__init__()
        self.act = act
        self.w0 = torch.nn.Parameter(torch.tensor(float(w0), dtype=dtype))
        self.w1 = torch.nn.Parameter(torch.tensor(float(w1), dtype=dtype))
        self.b0 = torch.nn.Parameter(torch.tensor(float(b0), dtype=dtype), requires_grad=biases)
        self.b1 = torch.nn.Parameter(torch.tensor(float(b1), dtype=dtype), requires_grad=biases)

    def forward(self, x):
        return tiny_net(x, self.w0, self.w1, self.b0, self.b1, self.act)


class _TinyNetProblem:
    act = staticmethod(tanh)
    biases = False

    def tensors(self, dtype: torch.dtype = torch.float64):
        return torch.tensor(self.x, dtype=dtype), torch.tensor(self.y, dtype=dtype)

    def model(self, w0=0.5, w1=0.5, b0=0.0, b1=0.0, dtype: torch.dtype = torch.float64) -> TinyNet:
        """The net as a :class:`TinyNet` (biases trainable only for the problems whose slide has them)."""
        return TinyNet(w0, w1, b0, b1, act=self.act, biases=self.biases, dtype=dtype)

    @staticmethod
    def loss_fn(output, target):
        """The quadratic cost :math:`\\frac1P\\sum (y - \\hat y)^2` (``mse``)."""
        return torch.nn.functional.mse_loss(output, target)

    def objective(self, theta0=None, dtype: torch.dtype = torch.float64) -> Objective:
        """The loss of the two weights ``(w0, w1)`` (biases 0) from ``theta0``, for the trajectory runner."""
        return self.surface.objective(theta0, dtype=dtype)


class TanhIdentity(_TinyNetProblem):
    r"""The 1-1-1 tanh net learning the identity on two samples, :math:`\pm0.5 \to \pm0.5` (no biases).

    Slide: LeCun deck 000, "Deep Learning is Hard?": :math:`y = \tanh(W_1\tanh(W_0 x))`,
    :math:`L = (0.5 - \tanh(W_1\tanh(W_0\,0.5)))^2`. The minimum value 0 is reached on the curve
    :math:`W_1\tanh(0.5\,W_0) = \operatorname{artanh}(0.5)` (:meth:`solution_w1`); the origin is a saddle.
    """

    source = "LeCun deck 000: 'Deep Learning is Hard?' (1-1-1 tanh net, identity on two samples)"

    def __init__(self):
        self.x = np.array([0.5, -0.5])
        self.y = np.array([0.5, -0.5])
        x, y = self.x, self.y
        self.surface = Surface("1-1-1 tanh identity", lambda t: tiny_net_loss(t, x, y, tanh), 2, theta0=[0.1, 0.1],
                               minima=np.zeros((0, 2)), bounds=((-4.0, 4.0), (-4.0, 4.0)), source=self.source)

    @staticmethod
    def solution_w1(w0):
        r"""The zero-loss curve :math:`W_1 = \operatorname{artanh}(0.5)/\tanh(0.5\,W_0)` (``w0 != 0``)."""
        w0 = np.asarray(w0, dtype=float)
        check("TanhIdentity.solution_w1", "w0", w0.tolist(), bool(np.all(w0 != 0)),
              "non-zero weights (w0 = 0 has no solution: the hidden unit is dead)")
        return np.arctanh(0.5) / np.tanh(0.5 * w0)


class NoisyIdentity(_TinyNetProblem):
    r"""The 1-1-1 net with :math:`\sigma(z) = 1.7159\tanh(\tfrac23 z)` on the 20-sample "noisy identity".

    Slide: LeCun deck 000, "the loss landscape for a 2-layer neural net" (2 weights, 2 biases; class 1:
    10 samples from :math:`\mathcal N(-1, 0.4^2)`, target -1; class 2: 10 from :math:`\mathcal N(1, 0.4^2)`,
    target +1; learning rate 0.4 on the slide). :attr:`surface` is the loss over :math:`(w_0, w_1)` with
    the biases at 0; :meth:`model` has trainable biases.

    Args:
        seed: the data's random seed.
    """

    source = "LeCun deck 000: 'the loss landscape for a 2-layer neural net' (noisy identity)"
    act = staticmethod(scaled_tanh)
    biases = True

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.x = np.concatenate([rng.normal(-1.0, 0.4, 10), rng.normal(1.0, 0.4, 10)])
        self.y = np.concatenate([-np.ones(10), np.ones(10)])
        x, y = self.x, self.y
        self.surface = Surface("1-1-1 noisy identity", lambda t: tiny_net_loss(t, x, y, scaled_tanh), 2,
                               theta0=[0.1, 0.1], minima=np.zeros((0, 2)), bounds=((-4.0, 4.0), (-4.0, 4.0)),
                               source=self.source)
