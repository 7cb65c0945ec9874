"""Generic tests run on every curvature-driven optimizer (one ``second_order_registry`` row each), all stepped
with torch's closure: one step equals an independent dense computation (the reference column), a few steps
lower the loss, invalid hyper-parameters raise a ValueError naming the value, parameter groups.

The state_dict continuation and the runs through ``optlab.trajectory.run`` are in ``test_contract.py``,
for first-order and curvature-driven optimizers alike."""

import pytest
import torch

from optlab.flat import flatten
from optlab.optim.closure import NEEDS
from second_order_registry import REGISTRY, dense, small_problem


def _kw_id(kw):
    return ",".join(f"{k}={v}" for k, v in kw.items())


ROWS = [pytest.param(name, marks=e.marks, id=name) for name, e in REGISTRY.items()]
CASES = [pytest.param(name, kw, marks=e.marks, id=f"{name}-{_kw_id(kw)}")
         for name, e in REGISTRY.items() for kw in e.cases()]
INVALID = [pytest.param(name, kw, arg, bad, marks=e.marks, id=f"{name}-{arg}={bad!r}")
           for name, e in REGISTRY.items() for kw, arg, bad in e.invalid]


def theta_of(problem):
    return flatten([p.detach() for p in problem.model.parameters()])


@pytest.mark.parametrize("name, kw", CASES)
def test_one_step_is_the_dense_reference(name, kw):
    """The optimizer's step(s) against the row's formula on torch.autograd.functional's dense Hessian,
    Gauss-Newton matrix or Fisher at the starting point (after the constructor, which may re-whiten)."""
    entry = REGISTRY[name]
    problem = small_problem()
    opt = entry.make(problem, **kw)
    expected = entry.reference(dense(problem), kw)
    for _ in range(entry.reference_steps):
        opt.step(problem.closure(opt))
    assert not torch.equal(theta_of(problem), dense(small_problem()).theta)  # it moved
    torch.testing.assert_close(theta_of(problem), expected, rtol=entry.rtol, atol=entry.rtol)


@pytest.mark.parametrize("name, kw", CASES)
def test_a_few_steps_lower_the_loss(name, kw):
    entry = REGISTRY[name]
    problem = small_problem()
    opt = entry.make(problem, **kw)
    with torch.no_grad():
        before = float(problem.loss())
    for _ in range(5):
        loss = opt.step(problem.closure(opt))
        assert isinstance(loss, torch.Tensor) and loss.numel() == 1  # step returns the loss, as torch's do
    with torch.no_grad():
        assert float(problem.loss()) < before


@pytest.mark.parametrize("name, kw, arg, bad", INVALID)
def test_invalid_hyper_parameters_raise_named_errors(name, kw, arg, bad):
    entry = REGISTRY[name]
    with pytest.raises(ValueError) as err:
        entry.make(small_problem(), **kw)
    assert f"{entry.cls.__name__}: invalid {arg}={bad!r}" in str(err.value) and "expected" in str(err.value)


@pytest.mark.parametrize("name", ROWS)
def test_param_groups(name):
    """With several groups each one's lr scales its own part (lr = 0 freezes it); the methods whose single
    solve or line search couples everything refuse a second group, naming it."""
    entry = REGISTRY[name]
    problem = small_problem()
    first, rest = list(problem.model[0].parameters()), list(problem.model[2].parameters())
    groups = [{"params": first}, {"params": rest, "lr": 0.0}]
    if not entry.groups:
        with pytest.raises(ValueError, match="param(eter)? groups"):
            entry.make(problem, groups)
        return
    opt = entry.make(problem, groups)
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["lr"] == 0.0
    frozen = [p.detach().clone() for p in rest]
    moving = [p.detach().clone() for p in first]
    for _ in range(entry.reference_steps):
        opt.step(problem.closure(opt))
    for p, q in zip(rest, frozen):
        torch.testing.assert_close(p.detach(), q, rtol=0, atol=0 if not entry.whitened else 1e-12)
    assert any(not torch.equal(p.detach(), q) for p, q in zip(first, moving))


def test_shared_options_must_agree_across_groups():
    """One solve couples the groups: a group asking for another solver is refused by name and value."""
    problem = small_problem()
    first, rest = list(problem.model[0].parameters()), list(problem.model[2].parameters())
    opt = REGISTRY["Newton"].make(problem, [{"params": first}, {"params": rest, "solver": "cg"}])
    with pytest.raises(ValueError, match=r"Newton: invalid param_groups\[1\]\['solver'\]='cg'; expected 'dense'"):
        opt.step(problem.closure(opt))


@pytest.mark.parametrize("name", ROWS)
def test_needs_is_declared_and_a_missing_closure_is_named(name):
    entry = REGISTRY[name]
    assert entry.cls.needs in NEEDS
    problem = small_problem()
    opt = entry.make(problem)
    if entry.cls.needs == "gradient":
        return  # step() without a closure reads p.grad, as torch.optim.SGD
    with pytest.raises(TypeError, match=f"{entry.cls.__name__}: step\\(\\) needs torch's closure"):
        opt.step()
