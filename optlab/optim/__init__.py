"""Optimizers as ``torch.optim.Optimizer`` subclasses, each a thin shell over a plain update kernel.

Every optimizer module holds one algorithm: its kernel (a function on plain tensors, named with the
slides' symbols) and its ``Optimizer`` class (torch's constructor signature where torch has the
algorithm).
"""

# --- first-order optimizers (issue 3) ---
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

# --- curvature-driven optimizers (issue 5) ---
# --- end curvature-driven optimizers ---
