"""vSGD-l (Schaul, Zhang & LeCun 2013): Algorithm 1 step by step, the memory and the slow start, the rate
against the paper's optimum on a noisy quadratic, training without a learning rate, and the optimizer shell."""

import copy
import doctest

import pytest
import torch

from optlab.optim import vsgd as vsgd_module
from optlab.optim.vsgd import (VSGD, VSGDState, running_average, vsgd_memory, vsgd_rate, vsgd_slow_start,
                               vsgd_update)
from optlab.problems.base import PointModel

DT = torch.float64


def t(*xs):
    return torch.tensor(xs, dtype=DT)


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_one_kernel_step_equals_algorithm_1(eps):
    theta, g, h = t(1.0, -2.0, 0.5), t(0.4, -3.0, 1.0), t(2.0, -5.0, 0.1)  # a negative bbprop sample: |h| is used
    s = VSGDState(g_bar=t(0.2, -1.0, 0.0), v_bar=t(0.5, 4.0, 2.0), h_bar=t(1.0, 6.0, 0.3), tau=t(2.0, 4.0, 1.5))
    new_theta, new, eta = vsgd_update(theta, g, h, s, eps=eps)
    # Algorithm 1, written out by hand element by element
    for i in range(3):
        r = 1 / float(s.tau[i])
        gb = (1 - r) * float(s.g_bar[i]) + r * float(g[i])
        vb = (1 - r) * float(s.v_bar[i]) + r * float(g[i]) ** 2
        hb = (1 - r) * float(s.h_bar[i]) + r * abs(float(h[i]))
        e = gb ** 2 / ((hb + eps) * (vb + eps))
        tau = (1 - gb ** 2 / (vb + eps)) * float(s.tau[i]) + 1
        assert float(new.g_bar[i]) == pytest.approx(gb, rel=1e-14)
        assert float(new.v_bar[i]) == pytest.approx(vb, rel=1e-14)
        assert float(new.h_bar[i]) == pytest.approx(hb, rel=1e-14)
        assert float(eta[i]) == pytest.approx(e, rel=1e-14)
        assert float(new.tau[i]) == pytest.approx(tau, rel=1e-14)
        assert float(new_theta[i]) == pytest.approx(float(theta[i]) - e * float(g[i]), rel=1e-14)
    # nothing changed in place, and the helpers are the same formulas
    assert torch.equal(theta, t(1.0, -2.0, 0.5)) and torch.equal(s.tau, t(2.0, 4.0, 1.5))
    torch.testing.assert_close(running_average(s.g_bar, g, s.tau), new.g_bar, rtol=0, atol=0)
    torch.testing.assert_close(vsgd_rate(new.g_bar, new.v_bar, new.h_bar, eps=eps), eta, rtol=0, atol=0)
    torch.testing.assert_close(vsgd_memory(s.tau, new.g_bar, new.v_bar, eps=eps), new.tau, rtol=0, atol=0)
    # lr is only a factor on eta* (1 = the paper)
    half, _, _ = vsgd_update(theta, g, h, s, eps=eps, lr=0.5)
    torch.testing.assert_close(half, theta - 0.5 * eta * g)


def test_the_memory_tau():
    tau = t(3.0, 3.0, 3.0)
    # all noise (g_bar = 0): one more sample of memory; all signal (g_bar^2 = v_bar): back to one sample
    new = vsgd_memory(tau, t(0.0, 2.0, 1.0), t(5.0, 4.0, 4.0))
    torch.testing.assert_close(new, t(4.0, 1.0, (1 - 1 / 4) * 3 + 1))
    # along a run of noisy samples tau stays >= 1 (g_bar^2 <= v_bar) and grows about one per step at the optimum
    gen = torch.Generator().manual_seed(0)
    s = vsgd_slow_start([torch.randn(50, generator=gen, dtype=DT) for _ in range(5)], [torch.ones(50, dtype=DT)] * 5,
                        C=1.0)
    for _ in range(200):
        _, s, _ = vsgd_update(torch.zeros(50, dtype=DT), torch.randn(50, generator=gen, dtype=DT),
                              torch.ones(50, dtype=DT), s)
        assert torch.all(s.tau >= 1) and torch.all(s.g_bar ** 2 <= s.v_bar)
    assert float(s.tau.median()) > 100  # pure noise: long memory, learning rate annealed


class SampleLoss(torch.nn.Module):
    r""":math:`\tfrac12\sum_i h_i\theta_i^2 + c^\top\theta` with ``targets = [c, h]`` (one row): at :math:`\theta` the
    gradient is :math:`h\odot\theta + c` and the (Gauss-Newton) curvature is :math:`h`, so each step's batch
    is one chosen sample (gradient, curvature)."""

    def forward(self, outputs, targets):
        c, h = targets[0].chunk(2)
        return 0.5 * (h * outputs[0] ** 2).sum() + (c * outputs[0]).sum()


class Sampled:
    """A point model stepped on chosen (gradient, curvature) samples, with torch's closure."""

    def __init__(self, theta0, **kwargs):
        self.model, self.loss_fn = PointModel(torch.as_tensor(theta0, dtype=DT)), SampleLoss()
        self.w = self.model.theta
        self.opt = VSGD(self.model.parameters(), model=self.model, loss_fn=self.loss_fn, **kwargs)

    def step(self, g, h):
        """One step whose gradient at the current point is ``g`` and whose curvature sample is ``h``."""
        targets = torch.cat([g - h * self.w.detach(), h])[None]
        nothing = torch.empty(1, 0, dtype=DT)

        def closure():
            self.opt.zero_grad()
            loss = self.loss_fn(self.model(nothing), targets)
            loss.backward()
            return loss

        return self.opt.step(closure)


def test_slow_start_initialization():
    grads = [t(1.0, -2.0), t(3.0, 0.0), t(-1.0, 1.0)]
    hs = [t(2.0, -1.0), t(4.0, 1.0), t(0.0, 4.0)]
    s = vsgd_slow_start(grads, hs, C=5.0)
    torch.testing.assert_close(s.g_bar, t(1.0, -1 / 3))
    torch.testing.assert_close(s.v_bar, 5.0 * t(11 / 3, 5 / 3))
    torch.testing.assert_close(s.h_bar, 5.0 * t(2.0, 2.0))
    torch.testing.assert_close(s.tau, t(3.0, 3.0))
    with pytest.raises(ValueError, match="n0"):
        vsgd_slow_start([], [], C=1.0)

    # the optimizer: the first n0 steps only collect samples, then the state is the slow start's
    run = Sampled(t(0.5, 0.5), n0=3, C=5.0)
    for k in range(3):
        run.step(grads[k], hs[k])
        assert torch.equal(run.w.detach(), t(0.5, 0.5))
    for key in ("g_bar", "v_bar", "h_bar", "tau"):
        torch.testing.assert_close(run.opt.state[run.w][key], getattr(s, key))
    # the next step is one kernel step from there
    expected, _, _ = vsgd_update(t(0.5, 0.5), t(2.0, 1.0), t(1.0, 1.0), s, eps=run.opt.param_groups[0]["eps"])
    run.step(t(2.0, 1.0), t(1.0, 1.0))
    torch.testing.assert_close(run.w.detach(), expected)
    torch.testing.assert_close(run.w.grad, t(2.0, 1.0))  # p.grad: the gradient the step used
    # the paper's default C = d/10, at least 1
    assert Sampled(torch.zeros(500)).opt.param_groups[0]["C"] == 50.0
    assert Sampled(torch.zeros(5)).opt.param_groups[0]["C"] == 1.0


def noisy_quadratic_run(h, sigma, theta0, steps, *, make_opt, seed=0):
    """Minimize E[h/2 (theta - 3)^2] from gradient samples h (theta - 3) + sigma N(0, 1); returns the optimizer,
    the parameter and the trajectory of (theta - 3, eta). ``make_opt(model, loss_fn)`` builds the optimizer."""
    gen = torch.Generator().manual_seed(seed)
    model, loss_fn = PointModel(torch.full_like(h, theta0)), SampleLoss()
    w = model.theta
    opt = make_opt(model, loss_fn)
    nothing = torch.empty(1, 0, dtype=DT)
    traj = []
    for _ in range(steps):
        targets = torch.cat([-3.0 * h + sigma * torch.randn(h.shape, generator=gen, dtype=DT), h])[None]

        def closure():
            opt.zero_grad()
            loss = loss_fn(model(nothing), targets)
            loss.backward()
            return loss

        opt.step(closure)
        traj.append(((w.detach() - 3.0).clone(), opt.state[w].get("eta")))
    return opt, w, traj


def vsgd(**kwargs):
    return lambda model, loss_fn: VSGD(model.parameters(), model=model, loss_fn=loss_fn, **kwargs)
def paper_optimum(d, h, sigma):
    """The paper's optimal rate on the noisy quadratic: (theta - theta*)^2 h / ((theta - theta*)^2 h^2 + sigma^2)."""
    return d ** 2 * h / (d ** 2 * h ** 2 + sigma ** 2)


def test_far_from_the_optimum_the_rate_is_one_over_h_per_parameter():
    h, sigma = t(1.0, 100.0), 1.0
    opt, w, traj = noisy_quadratic_run(h, sigma, -7.0, 11, make_opt=vsgd(n0=10, C=1.0, eps=0.0))
    d_before = traj[-2][0]
    assert torch.all(d_before == -10.0)  # the slow start did not move
    eta = traj[-1][1]
    torch.testing.assert_close(eta, 1 / h, rtol=0.01, atol=0)  # the Newton rate, one per curvature
    torch.testing.assert_close(eta, paper_optimum(d_before, h, sigma), rtol=0.01, atol=0)
    assert torch.all(traj[-1][0].abs() < 4 * sigma / h)  # one step lands at the optimum, up to the noise / h


def test_near_the_optimum_the_rate_anneals_and_vsgd_converges_without_a_learning_rate():
    h, sigma = t(2.0), 1.0
    opt, w, traj = noisy_quadratic_run(h, sigma, -7.0, 3000, make_opt=vsgd())
    etas = torch.cat([e for _, e in traj[10:]])
    dists = torch.cat([d for d, _ in traj[10:]])
    # the rate shrinks from 1/h towards 0 as the gradient becomes mostly noise, as the paper's optimum does
    assert float(etas[0]) == pytest.approx(1 / 2.0, rel=0.01)
    assert float(etas[-500:].mean()) < 0.01 / 2.0
    assert float(etas[-500:].mean()) < float(etas[500:1000].mean())
    opt_late = paper_optimum(dists[-500:], 2.0, sigma).mean()
    assert float(opt_late) < 0.01 / 2.0  # the optimum is small there too...
    assert 0.1 < float(etas[-500:].mean() / opt_late) < 10  # ... and vSGD's rate is within an order of magnitude
    assert float(opt.state[w]["tau"]) > 1000  # the memory grew about one per step
    # it converges: the last 500 iterates within 0.05 of theta*, far better than SGD at the fixed rate 1/h,
    # whose iterates keep a spread sigma / h = 0.5
    assert float(dists[-500:].abs().max()) < 0.05
    _, _, sgd = noisy_quadratic_run(h, sigma, -7.0, 3000, make_opt=lambda model, _: torch.optim.SGD(
        model.parameters(), lr=0.5))
    sgd_spread = torch.cat([d for d, _ in sgd[-500:]]).abs().mean()
    assert float(dists[-500:].abs().mean()) < 0.05 * float(sgd_spread)


def test_trains_a_digits_mlp_without_tuning():
    """600 digits, a 64-16-16-10 tanh MLP, mini-batches of 16, the Gauss-Newton diagonal of optlab.curvature on
    each mini-batch, all hyper-parameters at their defaults (n0=10, C=d/10). Measured: 2.32 -> 0.36 in 3 epochs."""
    from optlab.problems import load_digits_data, mlp

    ce = torch.nn.CrossEntropyLoss()
    d = load_digits_data(n=600)
    X, y = d.X_train, d.y_train
    net = mlp((64, 16, 16, 10), "tanh", seed=0)
    opt = VSGD(net.parameters(), model=net, loss_fn=ce)
    with torch.no_grad():
        start = float(ce(net(X), y))
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        perm = torch.randperm(len(X), generator=gen)
        for b in range(len(X) // 16):
            idx = perm[b * 16:(b + 1) * 16]

            def closure():
                opt.zero_grad()
                loss = ce(net(X[idx]), y[idx])
                loss.backward()
                return loss

            opt.step(closure)
    with torch.no_grad():
        end = float(ce(net(X), y))
    assert end < 0.5 * start, (start, end)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n0=0), "n0=0"), (dict(n0=2.5), "n0=2.5"), (dict(C=0.5), "C=0.5"), (dict(C=float("inf")), "C=inf"),
    (dict(eps=-1.0), "eps=-1.0"), (dict(lr=-0.1), "lr=-0.1"), (dict(diagonal="bbprop"), "diagonal='bbprop'"),
])
def test_invalid_hyper_parameters(kwargs, match):
    model = PointModel(torch.zeros(1, dtype=DT))
    with pytest.raises(ValueError, match=f"VSGD: invalid {match}"):
        VSGD(model.parameters(), model=model, loss_fn=SampleLoss(), **kwargs)
    with pytest.raises(TypeError, match="loss_fn="):
        VSGD(model.parameters(), model=model, loss_fn=lambda out, y: out.sum())


def test_a_non_finite_curvature_sample_raises():
    from optlab.problems.base import SurfaceLoss

    model = PointModel(torch.tensor([800.0], dtype=DT))
    loss_fn = SurfaceLoss(lambda theta: torch.exp(theta).sum())  # exp(800) overflows: the curvature is inf
    opt = VSGD(model.parameters(), model=model, loss_fn=loss_fn, diagonal="exact", n0=1)
    nothing = torch.empty(1, 0, dtype=DT)
    with pytest.raises(ValueError, match="VSGD: the exact curvature sample has non-finite entries"):
        opt.step(lambda: loss_fn(model(nothing), nothing))


class TwoTensors(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Parameter(torch.ones(2, dtype=DT)), torch.nn.Parameter(torch.ones(3, dtype=DT))

    def forward(self, x):
        return torch.cat([self.a, self.b])[None]


def test_param_groups_and_one_flat_curvature_for_all():
    model, loss_fn = TwoTensors(), SampleLoss()
    targets = torch.cat([torch.ones(5, dtype=DT), torch.ones(5, dtype=DT)])[None]  # gradient theta + 1, h = 1
    opt = VSGD([{"params": [model.a]}, {"params": [model.b], "lr": 0.0}], model=model, loss_fn=loss_fn, n0=1)
    nothing = torch.empty(1, 0, dtype=DT)
    for _ in range(3):
        opt.step(lambda: loss_fn(model(nothing), targets))
    assert torch.equal(model.b.detach(), torch.ones(3, dtype=DT))  # lr=0 freezes the group
    assert not torch.equal(model.a.detach(), torch.ones(2, dtype=DT))
    assert opt.state[model.a]["h_bar"].shape == (2,) and opt.state[model.b]["h_bar"].shape == (3,)


@pytest.mark.parametrize("save_after", [2, 6])  # inside the slow start, and after it
def test_state_dict_round_trip_continues_identically(save_after):
    h = t(1.0, 10.0, 0.5)

    def run(sampled, gen, steps):
        for _ in range(steps):
            sampled.step(h * sampled.w.detach() + torch.randn(3, generator=gen, dtype=DT), h)

    gen = torch.Generator().manual_seed(0)
    a = Sampled(t(1.0, 2.0, 3.0), n0=4)
    run(a, gen, save_after)
    b = Sampled(torch.zeros(3, dtype=DT), n0=9, C=7.0)  # loading restores n0 and C too (param_groups)
    b.model.load_state_dict(a.model.state_dict())
    b.opt.load_state_dict(copy.deepcopy(a.opt.state_dict()))
    assert (b.opt.param_groups[0]["n0"], b.opt.param_groups[0]["C"]) == (4, 1.0)
    gen_b = copy.deepcopy(gen)
    run(a, gen, 5)
    run(b, gen_b, 5)
    assert torch.equal(a.w, b.w)
    assert not torch.equal(a.w.detach(), t(1.0, 2.0, 3.0))


def test_docstring_examples():
    assert doctest.testmod(vsgd_module, extraglobs={"torch": torch}).failed == 0
