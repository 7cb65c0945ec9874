"""Problems the slides illustrate their points on: seeded, offline, documented.

One problem family per module; each problem says in its docstring which slide it comes from.

===========================  ==========================================================================
:mod:`.gd_quadratic`          GD on a convex quadratic in closed form: factors, regimes, rates
:mod:`.momentum`              momentum (heavy ball) in closed form: terminal velocity, roots, regimes, noise
:mod:`.quadratic`             quadratics with chosen eigenvalues and rotation (ravines), closed-form GD
:mod:`.surfaces`              Rosenbrock, Beale, Himmelblau, a saddle, a monkey saddle, a saddle with a floor
:mod:`.two_gaussians`         LeCun's two-Gaussian least-squares problem (lambda_max, eta_max)
:mod:`.tiny_nets`             the 1-1-1 tanh nets (identity on two samples, noisy identity)
:mod:`.linear_models`         1-1-1 linear net (hyperbola), deep scalar chains, factored linear (Saxe)
:mod:`.regression_tables`     Zemel's badly scaled and non-centered regression tables
:mod:`.correlated_cloud`      a correlated 2-D input cloud (rotated, elongated error ellipses)
:mod:`.transforms`            center, standardize, decorrelate (Karhunen-Loeve), whiten
:mod:`.digits`                scikit-learn's digits with MLP / CNN builders
:mod:`.base`                  Objective (params + loss closure) and Surface (a loss of a vector)
===========================  ==========================================================================

Only the closed-form GD analysis is imported eagerly (numpy only, so light widget models stay light);
every other name is loaded from its module on first use (PEP 562), which imports torch.
"""

from .gd_quadratic import (REGIMES, as_alpha, as_lambdas, best_alpha, condition_number_of, gd_factors, gd_rate, gd_regime,
                           gd_regimes, measured_steps, predicted_steps)

# name -> module it lives in, loaded on first access
_LAZY = {
    "base": ["Objective", "Surface", "model_objective"],
    "momentum": ["MOMENTUM_REGIMES", "critical_momentum", "heavy_ball_discriminant", "heavy_ball_path",
                 "heavy_ball_rate", "heavy_ball_rate_grid", "heavy_ball_regime", "heavy_ball_roots", "nesterov_path",
                 "noisy_plane_velocities", "plane_velocities", "stationary_velocity_variance", "steps_to_fraction",
                 "terminal_velocity"],
    "quadratic": ["Quadratic", "gd_iterates", "quadratic_grad", "quadratic_loss", "quadratic_matrix",
                  "random_rotation", "rotation_2d"],
    "surfaces": ["SURFACES", "beale", "beale_surface", "himmelblau", "himmelblau_surface", "monkey_saddle",
                 "monkey_saddle_surface", "quartic_saddle", "quartic_saddle_surface", "rosenbrock", "rosenbrock_surface",
                 "saddle", "saddle_surface"],
    "two_gaussians": ["TwoGaussians", "input_covariance", "least_squares_loss", "two_gaussians_data"],
    "tiny_nets": ["NoisyIdentity", "TanhIdentity", "TinyNet", "scaled_tanh", "tiny_net", "tiny_net_loss"],
    "linear_models": ["FactoredLinear", "LinearChain", "chain_loss", "chain_slice_surface", "end_to_end",
                      "saxe_mode_strength"],
    "regression_tables": ["RegressionTable", "badly_scaled", "badly_scaled_table", "non_centered",
                          "non_centered_table", "regression_loss"],
    "correlated_cloud": ["correlated_cloud_data"],
    "transforms": ["TRANSFORMS", "AffineTransform", "center", "decorrelate", "standardize", "whiten"],
    "digits": ["NORMS", "Digits", "DigitsData", "cnn", "load_digits_data", "mlp", "norm_layer"],
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}

__all__ = ["REGIMES", "as_alpha", "as_lambdas", "best_alpha", "condition_number_of", "gd_factors", "gd_rate", "gd_regime",
           "gd_regimes", "measured_steps", "predicted_steps",
           *_WHERE]


def __getattr__(name):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
