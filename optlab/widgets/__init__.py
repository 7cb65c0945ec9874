"""Interactive widgets: each a pure model (numbers) and a thin ipywidgets view that updates in place."""

from .lr_regimes import LearningRateRegimes, LRRegimesState, lr_regimes_model

__all__ = ["LearningRateRegimes", "LRRegimesState", "lr_regimes_model"]
