"""One optimizer contract for every optimizer of ``optlab.optim`` (first-order and curvature-driven alike):
each declares ``needs``; ``optlab.trajectory.run`` drives each on a quadratic and on a digits MLP with no
per-optimizer flag; each is stepped with torch's closure; and ``state_dict()`` holds everything, so a run
saved at step k and reloaded into a fresh model and optimizer continues bit for bit.

The rows come from the two registries: ``optim_registry`` (first-order) and ``second_order_registry``."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import optlab.optim as oo
from optlab.optim.closure import NEEDS
from optlab.problems import Quadratic, load_digits_data, mlp
from optlab.problems.base import model_objective
from optlab.trajectory import run
from optim_registry import REGISTRY as FIRST_ORDER
from second_order_registry import REGISTRY as SECOND_ORDER
from second_order_registry import Problem, small_problem

DT = torch.float64
OPTIMIZERS = [n for n in oo.__all__ if isinstance(getattr(oo, n), type) and issubclass(getattr(oo, n), torch.optim.Optimizer)]


def _param(name, marks=()):
    return pytest.param(name, marks=list(marks), id=name)


FIRST = [_param(n) for n in FIRST_ORDER]
SECOND = [_param(n, SECOND_ORDER[n].marks) for n in SECOND_ORDER]


@pytest.mark.parametrize("name", [_param(n) for n in OPTIMIZERS])
def test_every_optimizer_has_a_registry_row_and_declares_needs(name):
    cls = getattr(oo, name)
    assert cls.needs in NEEDS
    rows = [e.cls for e in FIRST_ORDER.values()] + [e.cls for e in SECOND_ORDER.values()]
    assert cls in rows, f"{name} has no row in tests/optim_registry.py or tests/second_order_registry.py"


# ------------------------------------------------------------------ run() on a quadratic and a digits MLP
def quadratic_problem() -> tuple[object, Problem]:
    obj = Quadratic([1.0, 10.0]).objective()
    nothing = torch.empty(1, 0, dtype=DT)
    return obj, Problem(obj.model, obj.loss_fn, nothing, nothing)


def digits_problem(whitened: bool) -> tuple[object, Problem]:
    """A 64-8-10 tanh MLP (610 parameters: dense Hessians stay cheap) on 128 digits, float64, full batch."""
    d = load_digits_data(n=160)
    X, y = d.X_train, d.y_train
    net = mlp((64, 8, 10), "tanh", seed=0)
    net = oo.whiten_sequential(net) if whitened else net
    problem = Problem(net, nn.CrossEntropyLoss(), X, y)
    return model_objective(net, problem.loss_fn, X, y, name="digits MLP"), problem


def factory(name, problem, which):
    if name in FIRST_ORDER:
        entry = FIRST_ORDER[name]
        return (lambda params: entry.make(params, **entry.base)), (30 if which == "quadratic" else 5)
    entry = SECOND_ORDER[name]
    kwargs, steps = getattr(entry, which)
    return entry.factory(problem, **kwargs), steps


def assert_finite_and_decreasing(t):
    assert not t.diverged, t.reason
    assert all(math.isfinite(v) for v in t.losses)
    assert t.final_loss < t.losses[0], (t.losses[0], t.final_loss)


@pytest.mark.parametrize("name", FIRST + SECOND)
def test_run_takes_every_optimizer_down_a_quadratic(name):
    obj, problem = quadratic_problem()
    make, steps = factory(name, problem, "quadratic")
    if name in SECOND_ORDER and SECOND_ORDER[name].whitened:  # PRONG re-whitens linear layers; a point has none
        with pytest.raises(ValueError, match="invalid layers=\\[\\]"):
            run(obj, make, steps)
        return
    assert_finite_and_decreasing(run(obj, make, steps))


@pytest.mark.parametrize("name", FIRST + SECOND)
def test_run_lowers_the_loss_of_a_digits_mlp(name):
    whitened = name in SECOND_ORDER and SECOND_ORDER[name].whitened
    obj, problem = digits_problem(whitened)
    make, steps = factory(name, problem, "mlp")
    assert_finite_and_decreasing(run(obj, make, steps))


ISSUE = ["GaussNewton", "LevenbergMarquardt", "Newton", "SaddleFreeNewton", "SDLM", "HessianFree", "NaturalGradient",
         "ScaledCG", "NonlinearCG", "VSGD"]


@pytest.mark.parametrize("use_closure", [False, True])
@pytest.mark.parametrize("name", [_param(n) for n in ISSUE])
def test_run_builds_a_class_from_the_objective_and_knows_what_it_needs(name, use_closure):
    """``run(objective, cls, 30)``: the class with its defaults (``model=``/``loss_fn=`` from the objective
    when it needs them) and torch's closure when it needs one; ``use_closure`` is only for foreign
    optimizers and changes nothing here."""
    objective = Quadratic([1.0, 10.0]).objective()
    if name == "NaturalGradient":  # its default, the true Fisher, needs a likelihood, and a surface has none
        with pytest.raises(TypeError, match="NaturalGradient.*no likelihood known for loss_fn=SurfaceLoss"):
            run(objective, oo.NaturalGradient, 30, use_closure=use_closure)
        return
    assert_finite_and_decreasing(run(objective, getattr(oo, name), 30, use_closure=use_closure))


# ------------------------------------------------------------------ state_dict: a bit-identical continuation
def make_optimizer(name, problem):
    if name in FIRST_ORDER:
        entry = FIRST_ORDER[name]
        return entry.make(list(problem.model.parameters()), **entry.base)
    return SECOND_ORDER[name].make(problem)


@pytest.mark.parametrize("name", FIRST + SECOND)
def test_state_dict_at_step_k_continues_bit_for_bit_in_a_fresh_model_and_optimizer(name):
    a = small_problem()
    opt_a = make_optimizer(name, a)
    for _ in range(3):
        opt_a.step(a.closure(opt_a))
    saved_model, saved_opt = copy.deepcopy(a.model.state_dict()), copy.deepcopy(opt_a.state_dict())
    b = small_problem(seed=1)  # resume as from a checkpoint: build model and optimizer, then load both
    opt_b = make_optimizer(name, b)
    b.model.load_state_dict(saved_model)
    opt_b.load_state_dict(saved_opt)
    for _ in range(3):
        opt_a.step(a.closure(opt_a))
        opt_b.step(b.closure(opt_b))
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)
    assert any(not torch.equal(p, q) for p, q in zip(a.model.parameters(), small_problem(seed=1).model.parameters()))


@pytest.mark.parametrize("name", SECOND)
def test_hyper_parameters_are_in_param_groups_not_attributes(name):
    """What ``state_dict()`` cannot see does not exist: every constructor argument but the wiring (model,
    loss_fn, layers, sample_fn) is a key of ``param_groups``."""
    import inspect

    entry = SECOND_ORDER[name]
    opt = entry.make(small_problem())
    wiring = {"params", "model", "loss_fn", "layers", "sample_fn"}
    arguments = set(inspect.signature(entry.cls.__init__).parameters) - wiring - {"self"}
    assert arguments <= set(opt.param_groups[0]), arguments - set(opt.param_groups[0])


@pytest.mark.parametrize("batch_size", [None, 64], ids=["full batch", "mini-batch"])
def test_digits_objective_drives_the_optimizers_that_need_the_model(batch_size):
    """Digits' objective carries its model and loss, so Levenberg-Marquardt (needs = "model") runs on it."""
    from optlab.problems.digits import Digits

    digits = Digits(n=200)
    objective = digits.objective(digits.model("mlp", seed=0, sizes=(64, 8, 10)), batch_size=batch_size)
    assert objective.model is not None and objective.loss_fn is not None
    losses = run(objective, oo.LevenbergMarquardt, 3).losses
    assert len(losses) == 4 and losses[-1] < losses[0]
