"""Every invalid hyper-parameter in the registry raises ValueError naming the parameter and the value."""

from __future__ import annotations

import pytest
import torch

from optim_registry import REGISTRY

CASES = [(name, kw, arg, bad) for name, e in REGISTRY.items() for kw, arg, bad in e.invalid]


def _id(case):
    name, kw, arg, bad = case
    return f"{name}-{arg}={bad!r}"


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_invalid_hyper_parameter_is_refused_by_name_and_value(case):
    name, kw, arg, bad = case
    entry = REGISTRY[name]
    p = torch.nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError) as err:
        entry.make([p], **{**entry.base, **kw})
    message = str(err.value)
    assert f"{name}: invalid {arg}={bad!r}" in message
    assert "expected" in message


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_optimizer_refuses_a_negative_learning_rate(name):
    assert any(arg == "lr" for _, arg, _ in REGISTRY[name].invalid)
    with pytest.raises(ValueError, match=f"{name}: invalid lr=-1.0"):
        REGISTRY[name].make([torch.nn.Parameter(torch.ones(2))], lr=-1.0)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_base_hyper_parameters_are_accepted(name):
    """The refusals above are specific: the registry's base settings construct fine."""
    entry = REGISTRY[name]
    opt = entry.make([torch.nn.Parameter(torch.ones(2))], **entry.base)
    assert opt.param_groups[0]["lr"] == entry.base["lr"]


def test_averaged_sgd_needs_an_averaging_start():
    from optlab.optim import AveragedSGD

    with pytest.raises(ValueError, match="AveragedSGD: invalid steps_per_epoch=None"):
        AveragedSGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_docstrings_carry_equations_and_references(name):
    """Each optimizer class, its kernel and its module show an equation and cite the source."""
    import importlib
    import re

    cls = REGISTRY[name].cls
    module = importlib.import_module(cls.__module__)
    kernels = [getattr(module, n) for n in dir(module) if n.endswith("_update") and callable(getattr(module, n))]
    assert kernels, f"{module.__name__} has no pure *_update kernel"
    for obj in [cls, module, *kernels]:
        doc = obj.__doc__ or ""
        assert ".. math::" in doc, f"{obj.__name__}: no equation"
        assert re.search(r"Reference", doc) and re.search(r"\(?(19|20)\d\d\)?", doc), f"{obj.__name__}: no reference"
