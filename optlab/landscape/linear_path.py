r"""Goodfellow's 1-D linear path between two parameter vectors (e.g. initialization -> solution).

.. math::

    \theta(\alpha) = (1 - \alpha)\,\theta_0 + \alpha\,\theta_1, \qquad J(\alpha) = J(\theta(\alpha)),

evaluated for :math:`\alpha` beyond :math:`[0, 1]` too (default :math:`[-0.5, 1.5]`), so the plot shows the
barrier-free (or not) descent from the start to the solution and what lies past both ends.

Slide: I. Goodfellow, deck 004, "A special 1-D subspace" and "Maxout / MNIST experiment".
Reference: I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015), "Qualitatively characterizing neural network
optimization problems", ICLR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinePath:
    """``losses[i]`` is :math:`J((1-\\alpha_i)\\theta_0 + \\alpha_i\\theta_1)`."""

    alphas: np.ndarray
    losses: np.ndarray


def _flat64(theta, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(theta.detach().cpu() if isinstance(theta, torch.Tensor) else theta, dtype=float))
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty flat vector, got shape {tuple(t.shape)}")
    return t


def linear_path(loss_at: Callable, theta0, theta1, alphas=None) -> LinePath:
    r"""The loss along :math:`\theta(\alpha) = (1-\alpha)\theta_0 + \alpha\theta_1`.

    Args:
        loss_at: ``theta -> float`` (e.g. :func:`~optlab.landscape.model_loss_function`, or a surface).
        theta0, theta1: the end points (flat vectors of equal length).
        alphas: the path coordinates; default 51 points on :math:`[-0.5, 1.5]`.
    """
    a, b = _flat64(theta0, "theta0"), _flat64(theta1, "theta1")
    if a.shape != b.shape:
        raise ValueError(f"theta0 and theta1 differ in length: {a.numel()} vs {b.numel()}")
    alphas = np.linspace(-0.5, 1.5, 51) if alphas is None else np.asarray(alphas, dtype=float).reshape(-1)
    if alphas.size == 0 or not np.all(np.isfinite(alphas)):
        raise ValueError(f"alphas must be a non-empty list of finite numbers, got {alphas!r}")
    losses = np.array([float(loss_at((1 - al) * a + al * b)) for al in alphas])
    return LinePath(alphas, losses)
