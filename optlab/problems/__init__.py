"""Problems the slides illustrate their points on: seeded, offline, documented.

One problem family per module; each problem says in its docstring which slide it comes from.

===========================  ==========================================================================
:mod:`.gd_quadratic`          GD on a convex quadratic in closed form: factors, regimes, rates
:mod:`.quadratic`             quadratics with chosen eigenvalues and rotation (ravines), closed-form GD
:mod:`.surfaces`              Rosenbrock, Beale, Himmelblau, a saddle, a monkey saddle
:mod:`.two_gaussians`         LeCun's two-Gaussian least-squares problem (lambda_max, eta_max)
:mod:`.tiny_nets`             the 1-1-1 tanh nets (identity on two samples, noisy identity)
:mod:`.linear_models`         1-1-1 linear net (hyperbola), deep scalar chains, factored linear (Saxe)
:mod:`.regression_tables`     Zemel's badly scaled and non-centered regression tables
:mod:`.transforms`            center, standardize, decorrelate (Karhunen-Loeve), whiten
:mod:`.digits`                scikit-learn's digits with MLP / CNN builders
:mod:`.base`                  Objective (params + loss closure) and Surface (a loss of a vector)
===========================  ==========================================================================
"""

from .base import Objective, Surface, model_objective
from .digits import Digits, DigitsData, cnn, load_digits_data, mlp
from .gd_quadratic import REGIMES, best_alpha, gd_factors, gd_rate, gd_regime, gd_regimes
from .linear_models import FactoredLinear, LinearChain, chain_loss, end_to_end, saxe_mode_strength
from .quadratic import (Quadratic, gd_iterates, quadratic_grad, quadratic_loss, quadratic_matrix, random_rotation,
                        rotation_2d)
from .regression_tables import (RegressionTable, badly_scaled, badly_scaled_table, non_centered, non_centered_table,
                                regression_loss)
from .surfaces import (SURFACES, beale, beale_surface, himmelblau, himmelblau_surface, monkey_saddle,
                       monkey_saddle_surface, rosenbrock, rosenbrock_surface, saddle, saddle_surface)
from .tiny_nets import NoisyIdentity, TanhIdentity, TinyNet, scaled_tanh, tiny_net, tiny_net_loss
from .transforms import TRANSFORMS, AffineTransform, center, decorrelate, standardize, whiten
from .two_gaussians import TwoGaussians, input_covariance, least_squares_loss, two_gaussians_data

__all__ = [
    # closed-form GD analysis (gd_quadratic)
    "REGIMES", "best_alpha", "gd_factors", "gd_rate", "gd_regime", "gd_regimes",
    # base
    "Objective", "Surface", "model_objective",
    # quadratic
    "Quadratic", "gd_iterates", "quadratic_grad", "quadratic_loss", "quadratic_matrix", "random_rotation",
    "rotation_2d",
    # surfaces
    "SURFACES", "beale", "beale_surface", "himmelblau", "himmelblau_surface", "monkey_saddle",
    "monkey_saddle_surface", "rosenbrock", "rosenbrock_surface", "saddle", "saddle_surface",
    # two gaussians
    "TwoGaussians", "input_covariance", "least_squares_loss", "two_gaussians_data",
    # tiny nets
    "NoisyIdentity", "TanhIdentity", "TinyNet", "scaled_tanh", "tiny_net", "tiny_net_loss",
    # linear models
    "FactoredLinear", "LinearChain", "chain_loss", "end_to_end", "saxe_mode_strength",
    # regression tables
    "RegressionTable", "badly_scaled", "badly_scaled_table", "non_centered", "non_centered_table",
    "regression_loss",
    # transforms
    "TRANSFORMS", "AffineTransform", "center", "decorrelate", "standardize", "whiten",
    # digits
    "Digits", "DigitsData", "cnn", "load_digits_data", "mlp",
]
