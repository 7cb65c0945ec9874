"""What the curvature-driven optimizers read from ``param_groups``: one joint solve couples every group,
so per-coordinate values (``lr``, ``damping``) become flat vectors and solver options must agree."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import check


def all_params(param_groups) -> list[Tensor]:
    """Every parameter of every group, in order (the flat vector's layout)."""
    return [p for group in param_groups for p in group["params"]]


def per_coordinate(param_groups, key: str, like: Tensor) -> Tensor:
    """A flat vector holding each group's ``key`` (``lr``, ``damping``) for every coordinate of its parameters."""
    return torch.cat([torch.full((p.numel(),), float(group[key]), dtype=like.dtype, device=like.device)
                      for group in param_groups for p in group["params"]])


def joint_options(owner: str, param_groups, keys: tuple[str, ...]) -> dict:
    """The options one joint solve uses (``solver``, ``cg_max_iter``...): equal in every parameter group."""
    first = param_groups[0]
    for i, group in enumerate(param_groups[1:], start=1):
        for k in keys:
            check(owner, f"param_groups[{i}]['{k}']", group[k], group[k] == first[k],
                  f"{first[k]!r} as in param_groups[0] (one solve couples all the groups)")
    return {k: first[k] for k in keys}


def joint_option(owner: str, param_groups, key: str):
    """The value of ``key`` that all parameter groups share (see :func:`joint_options`)."""
    return joint_options(owner, param_groups, (key,))[key]
