"""Per-layer curvature: every layer's block operator, top eigenvalue and trace against the dense blocks
of the full Hessian (``torch.autograd.functional.hessian``, independent of optlab's products)."""

import math

import pytest
import torch
from torch import nn

from optlab.curvature import HessianOperator
from optlab.curvature.layers import hessian_trace, layer_curvature, layer_operators, layer_parameters


def problem(seed=0, conv=False):
    g = torch.Generator().manual_seed(seed)
    if conv:
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).double()
        x = torch.randn(20, 1, 6, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, 3, (20,), generator=g)
        return model, nn.CrossEntropyLoss(), (x, y)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Sigmoid(), nn.Linear(3, 2)).double()
    x = torch.randn(40, 4, generator=g, dtype=torch.float64)
    y = torch.randn(40, 2, generator=g, dtype=torch.float64)
    return model, nn.MSELoss(), (x, y)


def dense_blocks(model, loss_fn, data):
    """The full Hessian by torch.autograd.functional.hessian, cut into one diagonal block per layer."""
    params = list(model.parameters())
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in params]
    sizes = [p.numel() for p in params]
    x, y = data

    def loss_of(flat):
        chunks = torch.split(flat, sizes)
        values = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return loss_fn(torch.func.functional_call(model, values, (x,)), y)

    H = torch.autograd.functional.hessian(loss_of, torch.cat([p.detach().reshape(-1) for p in params]))
    blocks, start = {}, 0
    for layer, ps in layer_parameters(model).items():
        n = sum(p.numel() for p in ps)
        blocks[layer] = H[start:start + n, start:start + n]
        start += n
    assert start == H.shape[0]
    return blocks


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
def test_block_operators_equal_the_dense_blocks_of_the_full_hessian(conv):
    model, loss_fn, data = problem(conv=conv)
    blocks = dense_blocks(model, loss_fn, data)
    ops = layer_operators(model, loss_fn, data)
    assert list(ops) == list(blocks)
    for name, op in ops.items():
        torch.testing.assert_close(op.to_dense(), blocks[name], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("conv", [False, True], ids=["mlp", "cnn"])
def test_layer_curvature_top_eigenvalue_and_trace_match_the_dense_blocks(conv):
    model, loss_fn, data = problem(conv=conv)
    blocks = dense_blocks(model, loss_fn, data)
    S = 400
    result = layer_curvature(model, loss_fn, data, num_samples=S, seed=3)
    assert [c.name for c in result] == list(blocks)
    for c in result:
        B = blocks[c.name]
        assert c.size == B.shape[0]
        assert c.top_eigenvalue == pytest.approx(float(torch.linalg.eigvalsh(B).max()), rel=1e-6, abs=1e-9)
        # Hutchinson: unbiased with standard deviation sqrt(2 sum_{i != j} B_ij^2 / S); 5 of them bound a
        # seeded draw far from any chance failure, and the bound is tight enough to fail a wrong block.
        off = B - torch.diag(torch.diag(B))
        sd = math.sqrt(2 * float((off ** 2).sum()) / S)
        assert abs(c.trace - float(torch.trace(B))) <= 5 * sd + 1e-12
        assert c.mean_diagonal == pytest.approx(c.trace / c.size)
        assert set(c.to_dict()) == {"name", "size", "top_eigenvalue", "trace", "iterations"}


def test_hessian_trace_is_exact_on_a_diagonal_matrix_and_unbiased_on_a_dense_one():
    assert hessian_trace(torch.diag(torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64)), num_samples=3) == 4.0
    g = torch.Generator().manual_seed(1)
    A = torch.randn(30, 30, generator=g, dtype=torch.float64)
    A = A + A.T
    estimates = torch.tensor([hessian_trace(A, num_samples=50, seed=s) for s in range(40)], dtype=torch.float64)
    off = A - torch.diag(torch.diag(A))
    sd_mean = math.sqrt(2 * float((off ** 2).sum()) / 50) / math.sqrt(40)
    assert abs(float(estimates.mean()) - float(torch.trace(A))) <= 5 * sd_mean


def test_blocks_are_the_operator_restricted_to_the_layer_and_leave_other_layers_fixed():
    model, loss_fn, data = problem()
    full = HessianOperator(model, loss_fn, data).to_dense()
    first = layer_operators(model, loss_fn, data)["0"].to_dense()
    torch.testing.assert_close(first, full[:first.shape[0], :first.shape[0]])


def test_bad_input_names_the_value():
    with pytest.raises(TypeError, match="model"):
        layer_parameters("not a model")
    with pytest.raises(ValueError, match="trainable layer"):
        layer_parameters(nn.Tanh())
    model, loss_fn, data = problem()
    with pytest.raises(ValueError, match="num_samples"):
        layer_curvature(model, loss_fn, data, num_samples=0)
    with pytest.raises(ValueError, match="seed"):
        layer_curvature(model, loss_fn, data, seed=-1)
