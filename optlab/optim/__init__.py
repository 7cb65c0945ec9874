"""Optimizers as ``torch.optim.Optimizer`` subclasses, each a thin shell over a plain update kernel.

Every optimizer module holds one algorithm: its kernel (a function on plain tensors, named with the
slides' symbols) and its ``Optimizer`` class (torch's constructor signature where torch has the
algorithm). Every optimizer is stepped with torch's closure and declares what else it needs in its
``needs`` class attribute (``"gradient"``, ``"closure"`` or ``"model"``): see :mod:`optlab.optim.closure`.
"""

# --- first-order optimizers ---
from .adadelta import Adadelta, adadelta_update
from .adagrad import Adagrad, adagrad_update
from .adam import Adam, AdamW, adam_update
from .adamax import Adamax, adamax_update
from .asgd import ASGD, asgd_eta, asgd_mu, asgd_update
from .averaged_sgd import AveragedSGD, averaged_sgd_update, bottou_eta
from .nadam import NAdam, nadam_mu, nadam_update
from .rmsprop import RMSprop, rmsprop_update
from .rprop import Rprop, rprop_update
from .sgd import SGD, sgd_update

__all__ = [
    "SGD", "sgd_update", "Rprop", "rprop_update", "Adagrad", "adagrad_update", "RMSprop", "rmsprop_update",
    "Adadelta", "adadelta_update", "Adam", "AdamW", "adam_update", "Adamax", "adamax_update",
    "NAdam", "nadam_mu", "nadam_update", "ASGD", "asgd_eta", "asgd_mu", "asgd_update",
    "AveragedSGD", "averaged_sgd_update", "bottou_eta",
]
# --- end first-order optimizers ---

# --- curvature-driven optimizers ---
from ..curvature.cg import CGResult, cg
from .gauss_newton import GaussNewton, LevenbergMarquardt, gauss_newton_direction, lm_damping_update
from .hessian_free import HessianFree, ggn_product
from .natural_gradient import NaturalGradient, empirical_fisher, natural_gradient_direction, true_fisher
from .newton import Newton, newton_direction, newton_update
from .line_search import LineSearchResult, strong_wolfe
from .nonlinear_cg import (NonlinearCG, ScaledCG, conjugate_direction, fletcher_reeves_beta, polak_ribiere_beta,
                           scg_scale_update, scg_scaled_curvature)
from .prong import PRONG, WhitenedLinear, whiten_sequential, whitening
from .saddle_free_newton import SaddleFreeNewton, abs_hessian, saddle_free_direction
from .sdlm import SDLM, running_diagonal, sdlm_rates, sdlm_update

__all__ += [
    "CGResult", "cg",
    "GaussNewton", "LevenbergMarquardt", "gauss_newton_direction", "lm_damping_update",
    "HessianFree", "ggn_product",
    "NaturalGradient", "empirical_fisher", "natural_gradient_direction", "true_fisher",
    "Newton", "newton_direction", "newton_update",
    "LineSearchResult", "strong_wolfe",
    "NonlinearCG", "ScaledCG", "conjugate_direction", "fletcher_reeves_beta", "polak_ribiere_beta", "scg_scale_update",
    "scg_scaled_curvature",
    "PRONG", "WhitenedLinear", "whiten_sequential", "whitening",
    "SaddleFreeNewton", "abs_hessian", "saddle_free_direction",
    "SDLM", "running_diagonal", "sdlm_rates", "sdlm_update",
]
from .vsgd import VSGD, VSGDState, running_average, vsgd_memory, vsgd_rate, vsgd_slow_start, vsgd_update

__all__ += ["VSGD", "VSGDState", "running_average", "vsgd_memory", "vsgd_rate", "vsgd_slow_start", "vsgd_update"]
# --- end curvature-driven optimizers ---
