"""Loss-landscape tools: 1-D linear paths, 2-D planes, directions, and trajectory projections.

Every function takes numbers (flat parameter vectors, a ``loss_at(theta)`` function) and returns numbers;
models are never mutated (:func:`model_loss_function` works on a copy). Drawing is in :mod:`optlab.plot`.

References: I. J. Goodfellow, O. Vinyals, A. M. Saxe (2015), "Qualitatively characterizing neural network
optimization problems", ICLR; H. Li et al. (2018), "Visualizing the loss landscape of neural nets".
"""

from .directions import hessian_directions, random_direction
from .evaluate import BN_MODES, model_loss_function, params_vector
from .linear_path import LinePath, linear_path
from .plane import Plane, PlaneSlice, plane_along, plane_grid, plane_through
from .projection import project_to_plane, projection_residual

__all__ = [
    "BN_MODES", "model_loss_function", "params_vector",
    "LinePath", "linear_path",
    "Plane", "PlaneSlice", "plane_along", "plane_grid", "plane_through",
    "hessian_directions", "random_direction",
    "project_to_plane", "projection_residual",
]
