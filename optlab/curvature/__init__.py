r"""Curvature tools: Hessians, Hessian-vector products, eigenvalues, diagonals and learning-rate recipes.

One operator or estimator per module; every estimator accepts a curvature operator or a plain
symmetric matrix, so a student can check it on a 3x3. ``data`` is one ``(inputs, targets)`` batch or
an iterable of batches (full-data average, each batch weighted by its size).

=====================  ====================================================================
module                 contents
=====================  ====================================================================
``cg``                 :func:`cg`: linear conjugate gradient on any operator (callback for stopping rules)
``hessian``            :func:`loss_hvp`, :func:`hvp`, :func:`hessian`, :class:`HessianOperator`
``finite_difference``  the slides' finite-difference HVP and row-by-row Hessian
``ggn``                :func:`jacobian`, :func:`gauss_newton_matrix`, :class:`GGNOperator`
``fisher``             :class:`FisherOperator` (true and empirical)
``diagonal``           :func:`diagonal_hessian`: exact, Gauss-Newton, Becker-LeCun, Hutchinson
``power``              :func:`top_eigenvalue` (power method or Lanczos), deflated :func:`top_eigenvalues`
``lanczos``            the one Lanczos iteration; :func:`lanczos`, :func:`spectral_density`, :func:`condition_number`
``stochastic_power``   LeCun, Simard & Pearlmutter's on-line :math:`\lambda_{\max}`
``learning_rate``      :func:`max_learning_rate` (2/lambda_max), :func:`optimal_learning_rate` (1/lambda_max)
``directional``        directional curvature, Goodfellow's optimal step and Taylor prediction
``critical``           :func:`classify_critical_point`
``layers``             per-layer Hessian blocks: :func:`layer_curvature` (top eigenvalue, trace), :func:`hessian_trace`
``rbf``                :class:`RBF` units (LeNet-5's output layer)
=====================  ====================================================================

Shared plumbing, imported by the modules above and importing none of them: ``_operator`` (the
operator interface), ``_eigensolver`` (result records, start vector, argument checks), ``_data``
(batches, parameters), ``_sequential`` (running an ``nn.Sequential`` layer by layer, for the R-pass
and the diagonals). Errors follow :mod:`optlab.errors`.
"""

from ._eigensolver import Eigenpair, Eigenpairs
from ._operator import CurvatureOperator, MatrixOperator, as_operator
from .cg import CGResult, cg, quadratic_value
from .diagonal import (becker_lecun_diagonal, diagonal_hessian, exact_diagonal, ggn_diagonal, ggn_diagonal_method,
                       hutchinson_diagonal)
from .critical import classify_critical_point, classify_eigenvalues
from .directional import TaylorStep, directional_curvature, optimal_step, taylor_improvement
from .finite_difference import finite_difference_hessian, finite_difference_hvp
from .fisher import FisherOperator
from .ggn import GGNOperator, gauss_newton_matrix, jacobian, output_hessian
from .hessian import HessianOperator, hessian, hvp, loss_hvp
from .closure_hessian import LossHessianOperator
from .lanczos import LanczosResult, SpectralDensity, condition_number, lanczos, spectral_density
from .layers import LayerCurvature, hessian_trace, layer_curvature, layer_operators, layer_parameters
from .learning_rate import lambda_max, max_learning_rate, optimal_learning_rate
from .power import top_eigenvalue, top_eigenvalues
from .rbf import RBF
from .stochastic_power import StochasticPowerResult, stochastic_top_eigenvalue

__all__ = [
    "CurvatureOperator", "MatrixOperator", "as_operator",
    "CGResult", "cg", "quadratic_value",
    "HessianOperator", "hessian", "hvp", "loss_hvp",
    "finite_difference_hessian", "finite_difference_hvp",
    "Eigenpair", "Eigenpairs", "top_eigenvalue", "top_eigenvalues",
    "lambda_max", "max_learning_rate", "optimal_learning_rate",
    "GGNOperator", "gauss_newton_matrix", "jacobian", "output_hessian",
    "diagonal_hessian", "becker_lecun_diagonal", "exact_diagonal", "ggn_diagonal", "ggn_diagonal_method",
    "hutchinson_diagonal",
    "RBF", "FisherOperator",
    "LanczosResult", "SpectralDensity", "lanczos", "spectral_density", "condition_number",
    "StochasticPowerResult", "stochastic_top_eigenvalue",
    "classify_critical_point", "classify_eigenvalues",
    "LayerCurvature", "hessian_trace", "layer_curvature", "layer_operators", "layer_parameters",
    "TaylorStep", "directional_curvature", "optimal_step", "taylor_improvement",
]
