r"""Linear networks: the 1-1-1 linear net's hyperbola, deep scalar chains, and factored (deep) linear models.

* :class:`LinearChain`: :math:`\hat y = w_1 w_2\cdots w_D\,x` on the single sample :math:`x = 1, y = 1`,
  :math:`L(w) = (1 - w_1\cdots w_D)^2`. For :math:`D = 2` this is deck 002's 1-1-1 linear net
  :math:`Y = W_1 W_2 X` whose solutions form the hyperbola :math:`W_2 = 1/W_1` and whose origin is a saddle
  (Hessian :math:`\begin{pmatrix}0&-2\\-2&0\end{pmatrix}`, eigenvalues :math:`\pm2`); for larger :math:`D`
  it is Goodfellow's "linear view of the difficulty": :math:`\partial\hat y/\partial w_1 = x\prod_{j>1}w_j`
  vanishes or explodes exponentially with depth.
* :class:`FactoredLinear`: the deep linear network :math:`\hat y = W_D\cdots W_1 x` of Saxe et al. on
  data :math:`y = Mx` with whitened inputs, loss :math:`\frac1{2P}\sum_i\|y^i - W_D\cdots W_1x^i\|^2`. All
  its minima are global and connected; from a small balanced start aligned with the singular vectors of
  :math:`M = U\,\mathrm{diag}(s)\,V^\top`, the two-layer net learns each mode along the closed-form
  sigmoid of :func:`saxe_mode_strength`.

Slides: Y. LeCun, deck 002, "Multilayer nets have non-convex objective functions" (1-1-1 network,
hyperbola of solutions); I. Goodfellow, deck 004, "Linear view of the difficulty", "Factored linear
loss function", "Do neural nets have saddle points? Saxe et al.".
References: A. M. Saxe, J. L. McClelland, S. Ganguli (2014), "Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks", ICLR; I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015),
"Qualitatively characterizing neural network optimization problems", ICLR.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import check, check_data, data_error, is_integer, positive, positive_int
from .base import Objective, Surface, model_objective
from .quadratic import random_rotation


def chain_loss(theta, x: float = 1.0, y: float = 1.0):
    r""":math:`L(w) = (y - w_1 w_2\cdots w_D\,x)^2` for ``theta`` of shape ``(..., D)`` (numpy or torch)."""
    return (y - theta.prod(-1) * x) ** 2


class LinearChain(Surface):
    r"""The depth-``D`` scalar linear chain on the sample :math:`1 \to 1` (``depth=2``: the 1-1-1 linear net).

    Slide: LeCun deck 002, "1-1-1 network, :math:`Y = W1*W2*X`, ... Solution: :math:`W2 = 1/W1` hyperbola";
    Goodfellow deck 004, "Linear view of the difficulty".
    """

    def __init__(self, depth: int = 2, theta0=None):
        positive_int("LinearChain", "depth", depth)
        start = np.full(depth, 0.5) if theta0 is None else theta0
        super().__init__(name=f"linear chain D={depth}", f=chain_loss, n=depth, theta0=start,
                         minima=np.ones((1, depth)), bounds=((-2.5, 2.5), (-2.5, 2.5)),
                         source="LeCun deck 002: 1-1-1 linear net; Goodfellow deck 004: linear view")
        self.depth = depth

    @staticmethod
    def hyperbola_w2(w1):
        """The solutions of the 1-1-1 net: :math:`W_2 = 1/W_1` (``w1 != 0``)."""
        w1 = np.asarray(w1, dtype=float)
        check("LinearChain.hyperbola_w2", "w1", w1.tolist(), bool(np.all(w1 != 0)),
              "non-zero weights (w1 = 0 has no solution)")
        return 1.0 / w1


def chain_slice_surface(depth: int = 3) -> Surface:
    r"""The depth-``D`` chain's loss on the plane :math:`w_1 = x,\ w_2 = \dots = w_D = y`:
    :math:`f(x, y) = (1 - x\,y^{D-1})^2` (``depth=2`` is the 1-1-1 linear net itself).

    For :math:`D \ge 3` the origin is a saddle that the second-order test cannot see: gradient and Hessian
    both vanish there (:math:`f` changes by :math:`-2xy^{D-1}`, of order :math:`D`), so gradient descent
    leaves it polynomially slowly rather than exponentially. The plane holds the balanced points
    :math:`x = y` and the solution curve :math:`x\,y^{D-1} = 1`.

    Slide: Goodfellow deck 004, "Linear view of the difficulty" (:math:`y = w_1w_2w_3w_4w_5x`).
    """
    positive_int("chain_slice_surface", "depth", depth)
    check("chain_slice_surface", "depth", depth, depth >= 2, "an integer >= 2 (two weights span the plane)")
    p = depth - 1

    def f(theta):
        return (1 - theta[..., 0] * theta[..., 1] ** p) ** 2

    return Surface(f"linear chain D={depth}, w2=...=wD", f, 2, theta0=[0.5, 0.5], minima=[[1.0, 1.0]],
                   bounds=((-2.0, 2.0), (-2.0, 2.0)),
                   source="Goodfellow deck 004: linear view of the difficulty (a plane through the deep chain)")


def saxe_mode_strength(t, s, u0, tau: float = 1.0):
    r"""Saxe et al.'s closed-form learning curve of one mode of a 2-layer linear net.

    .. math:: u(t) = \frac{s\,e^{2st/\tau}}{e^{2st/\tau} - 1 + s/u_0}

    for a mode of input-output singular value :math:`s` started (balanced, aligned) at strength
    :math:`u_0 > 0`, under the gradient flow :math:`\tau\dot W = -\nabla L` of
    :math:`L = \frac1{2P}\sum\|y - W_2W_1x\|^2` with whitened inputs. Gradient descent with learning rate
    :math:`\alpha` follows it with :math:`t` = step and :math:`\tau = 1/\alpha` as :math:`\alpha\to0`.

    Reference: Saxe, McClelland, Ganguli (2014), ICLR, equation (6).
    """
    s, u0 = np.asarray(s, dtype=float), np.asarray(u0, dtype=float)
    check("saxe_mode_strength", "s", s.tolist(), bool(np.all(s > 0)), "s > 0 (singular values)")
    check("saxe_mode_strength", "u0", u0.tolist(), bool(np.all(u0 > 0)), "u0 > 0 (starting strengths)")
    positive("saxe_mode_strength", "tau", tau)
    e = np.exp(2 * s * np.asarray(t, dtype=float) / tau)
    return s * e / (e - 1 + s / u0)


def whiten_exactly(X: np.ndarray) -> np.ndarray:
    r"""Rows of ``X`` made exactly zero-mean with :math:`\frac1P X^\top X = I` (symmetric whitening)."""
    X = X - X.mean(0)
    C = X.T @ X / X.shape[0]
    w, V = np.linalg.eigh(C)
    check_data("whiten_exactly", "X", w.min() > 1e-12 * w.max(), "its samples are (nearly) linearly dependent",
               "more samples than features, in general position")
    return X @ V @ np.diag(w ** -0.5) @ V.T


class FactoredLinear:
    r"""A deep linear network :math:`W_D\cdots W_1 x` on data :math:`y = Mx` (whitened :math:`x`).

    Slides: Goodfellow deck 004, "Factored linear loss function", "Do neural nets have saddle points?
    Saxe et al. 2013"; Goodfellow et al. (2015) used factored linear models to show that the linear path
    from initialization to solution is often monotone.

    Args:
        s: the singular values of the target map :math:`M = U\,\mathrm{diag}(s)\,V^\top` (its rank).
        n_in, n_out: input and output sizes (each >= ``len(s)``).
        n_samples: number of samples :math:`P`.
        seed: seeds :math:`U`, :math:`V` and the inputs.

    Attributes:
        X, Y: data (numpy, rows are samples; :math:`\frac1P X^\top X = I`). M, U, V, s: the target map.
    """

    source = "Goodfellow deck 004: factored linear models (Saxe et al. 2014)"

    def __init__(self, s=(3.0, 2.0, 1.0), n_in: int = 6, n_out: int = 4, n_samples: int = 64, seed: int = 0):
        s = np.asarray(s, dtype=float).reshape(-1)
        r = s.size
        check("FactoredLinear", "s", s.tolist(), r > 0 and bool(np.all(s > 0)), "non-empty positive singular values")
        for name, value in (("n_in", n_in), ("n_out", n_out)):
            check("FactoredLinear", name, value, is_integer(value) and value >= r, f"an integer >= len(s) = {r}")
        check("FactoredLinear", "n_samples", n_samples, is_integer(n_samples) and n_samples > n_in,
              f"an integer > n_in = {n_in}")
        self.s, self.seed = s, seed
        self.U = random_rotation(n_out, seed)[:, :r]
        self.V = random_rotation(n_in, seed + 1)[:, :r]
        self.M = self.U @ np.diag(s) @ self.V.T
        self.X = whiten_exactly(np.random.default_rng(seed + 2).standard_normal((n_samples, n_in)))
        self.Y = self.X @ self.M.T

    def tensors(self, dtype: torch.dtype = torch.float64):
        return torch.tensor(self.X, dtype=dtype), torch.tensor(self.Y, dtype=dtype)

    @staticmethod
    def loss_fn(output, target):
        r""":math:`\frac1{2P}\sum_i\|y^i - \hat y^i\|^2`."""
        return 0.5 * ((output - target) ** 2).sum(-1).mean()

    def model(self, depth: int = 2, hidden: int | None = None, init_scale: float = 1e-2, seed: int = 0,
              dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
        """``depth`` bias-free ``nn.Linear`` layers (width ``hidden``, default ``len(s)``), Gaussian init of std
        ``init_scale``."""
        positive_int("FactoredLinear.model", "depth", depth)
        hidden = self.s.size if hidden is None else hidden
        positive_int("FactoredLinear.model", "hidden", hidden)
        sizes = [self.X.shape[1]] + [hidden] * (depth - 1) + [self.Y.shape[1]]
        g = torch.Generator().manual_seed(seed)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            lin = torch.nn.Linear(a, b, bias=False).to(dtype)
            with torch.no_grad():
                lin.weight.copy_(init_scale * torch.randn(b, a, generator=g, dtype=dtype))
            layers.append(lin)
        return torch.nn.Sequential(*layers)

    def balanced_model(self, u0: float, dtype: torch.dtype = torch.float64) -> torch.nn.Sequential:
        r"""The 2-layer net started at :math:`W_1 = \sqrt{u_0}V^\top`, :math:`W_2 = \sqrt{u_0}U`: every mode at
        strength :math:`u_0`.

        From this start the modes decouple and follow :func:`saxe_mode_strength` exactly under gradient flow.
        """
        positive("FactoredLinear.balanced_model", "u0", u0)
        net = self.model(depth=2, dtype=dtype)
        with torch.no_grad():
            net[0].weight.copy_(torch.tensor(np.sqrt(u0) * self.V.T, dtype=dtype))
            net[1].weight.copy_(torch.tensor(np.sqrt(u0) * self.U, dtype=dtype))
        return net

    def mode_strengths(self, model: torch.nn.Sequential) -> np.ndarray:
        r""":math:`u_\alpha = U_{:,\alpha}^\top (W_D\cdots W_1) V_{:,\alpha}`: how much of each target mode the net
        has learned."""
        W = end_to_end(model)
        return np.einsum("ia,ij,ja->a", self.U, W, self.V)

    def objective(self, model: torch.nn.Module, dtype: torch.dtype = torch.float64) -> Objective:
        """The full-batch loss over ``model``'s parameters (trains ``model`` itself)."""
        X, Y = self.tensors(dtype)
        return model_objective(model, self.loss_fn, X, Y, name="factored linear")


def end_to_end(model: torch.nn.Sequential) -> np.ndarray:
    """The product :math:`W_D\\cdots W_1` of a sequence of bias-free linear layers, as numpy."""
    W = None
    for layer in model:
        if not isinstance(layer, torch.nn.Linear) or layer.bias is not None:
            raise data_error("end_to_end", "model", f"layer {layer!r}", "bias-free nn.Linear layers only", TypeError)
        Wl = layer.weight.detach().double().numpy()
        W = Wl if W is None else Wl @ W
    return W
