"""Normalization layers written from scratch as the slides' equations (mini-batch mean, variance,
normalize, scale and shift), each tested equal to its ``torch.nn`` counterpart so a lecture can open
the box.

Each module holds one layer: its plain function (``batch_norm``, ``layer_norm``, ``instance_norm``,
``group_norm``) and a thin ``torch.nn.Module`` with torch's constructor and parameter names.
"""

from .batch_norm import BatchNorm1d, BatchNorm2d, batch_norm
from .group_norm import GroupNorm, group_norm
from .instance_norm import InstanceNorm1d, InstanceNorm2d, instance_norm
from .layer_norm import LayerNorm, layer_norm

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "LayerNorm",
           "batch_norm", "group_norm", "instance_norm", "layer_norm"]
