"""optlab.nn against torch.nn: outputs, gradients (input and parameters) and running statistics, float64.

One registry row per layer configuration; every row goes through the same tests.
"""

import pytest
import torch

import optlab.nn as onn

# (name, optlab layer factory, torch layer factory, input shape)
LAYERS = [
    ("bn1d", lambda: onn.BatchNorm1d(4), lambda: torch.nn.BatchNorm1d(4), (7, 4)),
    ("bn1d-seq", lambda: onn.BatchNorm1d(3, momentum=0.3), lambda: torch.nn.BatchNorm1d(3, momentum=0.3), (5, 3, 6)),
    ("bn1d-cumulative", lambda: onn.BatchNorm1d(3, momentum=None), lambda: torch.nn.BatchNorm1d(3, momentum=None), (6, 3)),
    ("bn1d-no-affine", lambda: onn.BatchNorm1d(3, affine=False), lambda: torch.nn.BatchNorm1d(3, affine=False), (6, 3)),
    ("bn1d-no-stats", lambda: onn.BatchNorm1d(3, track_running_stats=False),
     lambda: torch.nn.BatchNorm1d(3, track_running_stats=False), (6, 3)),
    ("bn2d", lambda: onn.BatchNorm2d(3, eps=1e-3), lambda: torch.nn.BatchNorm2d(3, eps=1e-3), (4, 3, 5, 6)),
    ("ln", lambda: onn.LayerNorm(6), lambda: torch.nn.LayerNorm(6), (5, 6)),
    ("ln-chw", lambda: onn.LayerNorm((3, 4, 5)), lambda: torch.nn.LayerNorm((3, 4, 5)), (2, 3, 4, 5)),
    ("ln-no-bias", lambda: onn.LayerNorm(6, bias=False), lambda: torch.nn.LayerNorm(6, bias=False), (5, 6)),
    ("ln-no-affine", lambda: onn.LayerNorm(6, elementwise_affine=False),
     lambda: torch.nn.LayerNorm(6, elementwise_affine=False), (5, 6)),
    ("in1d", lambda: onn.InstanceNorm1d(3), lambda: torch.nn.InstanceNorm1d(3), (4, 3, 7)),
    ("in2d-affine", lambda: onn.InstanceNorm2d(3, affine=True), lambda: torch.nn.InstanceNorm2d(3, affine=True),
     (2, 3, 4, 5)),
    ("gn", lambda: onn.GroupNorm(2, 6), lambda: torch.nn.GroupNorm(2, 6), (3, 6, 4, 4)),
    ("gn-1group", lambda: onn.GroupNorm(1, 4), lambda: torch.nn.GroupNorm(1, 4), (3, 4, 5)),
    ("gn-instance", lambda: onn.GroupNorm(4, 4, affine=False), lambda: torch.nn.GroupNorm(4, 4, affine=False), (3, 4, 5)),
]


def _pair(row):
    _, ours, theirs, shape = row
    torch.manual_seed(0)
    a, b = ours().double(), theirs().double()
    with torch.no_grad():  # non-trivial gamma, beta so that the affine part is exercised
        for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
            assert na == nb
            pa.copy_(torch.randn_like(pa))
            pb.copy_(pa)
    return a, b, shape


def _run(layer, x, w):
    x = x.clone().requires_grad_(True)
    y = layer(x)
    (y * w).sum().backward()
    grads = [x.grad] + [p.grad for p in layer.parameters()]
    return y.detach(), grads


@pytest.mark.parametrize("row", LAYERS, ids=[r[0] for r in LAYERS])
def test_matches_torch_train_then_eval(row):
    a, b, shape = _pair(row)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    assert sorted(a.state_dict()) == sorted(b.state_dict())
    g = torch.Generator().manual_seed(1)
    for mode in ["train", "train", "train", "eval"]:
        a.train(mode == "train"), b.train(mode == "train")
        x = 3 * torch.randn(shape, generator=g, dtype=torch.float64) + 2
        w = torch.randn(shape, generator=g, dtype=torch.float64)
        a.zero_grad(), b.zero_grad()
        ya, ga = _run(a, x, w)
        yb, gb = _run(b, x, w)
        torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-10)
        for u, v in zip(ga, gb):
            torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-10)
        for (k, u), (_, v) in zip(sorted(a.state_dict().items()), sorted(b.state_dict().items())):
            torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12, msg=f"state {k} differs in {mode}")


def test_state_dict_loads_from_torch():
    theirs = torch.nn.BatchNorm1d(3).double()
    theirs(torch.randn(10, 3, dtype=torch.float64))
    ours = onn.BatchNorm1d(3).double()
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x))


def test_batch_norm_training_output_is_standardized():
    """The slide's four lines: each channel of the output has mean beta and variance ~ gamma^2."""
    x = torch.randn(50, 3, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.1], dtype=torch.float64) + 7
    gamma, beta = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([0.0, -1.0, 1.0], dtype=torch.float64)
    y = onn.batch_norm(x, gamma, beta, eps=0.0)
    torch.testing.assert_close(y.mean(0), beta)
    torch.testing.assert_close(y.var(0, unbiased=False), gamma ** 2)


@pytest.mark.parametrize("make, match", [
    (lambda: onn.BatchNorm1d(0), "num_features=0"),
    (lambda: onn.BatchNorm2d(3, eps=-1.0), "eps=-1.0"),
    (lambda: onn.BatchNorm1d(3, momentum=1.5), "momentum=1.5"),
    (lambda: onn.LayerNorm(()), "normalized_shape"),
    (lambda: onn.LayerNorm((3, 0)), r"normalized_shape=\(3, 0\)"),
    (lambda: onn.GroupNorm(4, 6), "num_groups=4"),
    (lambda: onn.InstanceNorm2d(-2), "num_features=-2"),
])
def test_invalid_hyper_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("layer, x", [
    (onn.BatchNorm1d(3), torch.randn(4, 5)),
    (onn.BatchNorm2d(3), torch.randn(4, 3, 5)),
    (onn.BatchNorm1d(3), torch.randn(1, 3)),
    (onn.LayerNorm(5), torch.randn(4, 6)),
    (onn.GroupNorm(2, 4), torch.randn(3, 6, 2)),
    (onn.InstanceNorm1d(3), torch.randn(3, 4)),
])
def test_bad_inputs_raise(layer, x):
    with pytest.raises(ValueError):
        layer(x)
    with pytest.raises(TypeError):
        layer(x.tolist())
