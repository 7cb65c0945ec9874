"""The registry of small networks every curvature test runs on (float64), and dense autograd references.

Imported by the other ``test_curvature_*`` files; it holds no tests itself.
"""

import torch
from torch import nn
from torch.func import functional_call

DT = torch.float64


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _regression(n, d_in, d_out, seed):
    g = _gen(seed)
    return torch.randn(n, d_in, generator=g, dtype=DT), torch.randn(n, d_out, generator=g, dtype=DT)


def _classification(n, d_in, classes, seed, image=False):
    g = _gen(seed)
    shape = (n, 1, 6, 6) if image else (n, d_in)
    return torch.randn(*shape, generator=g, dtype=DT), torch.randint(0, classes, (n,), generator=g)


def _mlp(act, d_in, hidden, d_out, seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), act(), nn.Linear(hidden, d_out)).to(DT)


def _cnn(seed=10):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).to(DT)


# name -> (model factory, loss, data factory); data is one batch or a list of batches
CASES = {
    "mlp-tanh-mse": (lambda: _mlp(nn.Tanh, 3, 4, 2, 0), nn.MSELoss(), lambda: _regression(12, 3, 2, 1)),
    "mlp-sigmoid-ce": (lambda: _mlp(nn.Sigmoid, 3, 5, 3, 2), nn.CrossEntropyLoss(),
                       lambda: _classification(10, 3, 3, 3)),
    "mlp-relu-mse": (lambda: _mlp(nn.ReLU, 3, 5, 2, 4), nn.MSELoss(), lambda: _regression(9, 3, 2, 5)),
    "mlp-tanh-ce-batches": (lambda: _mlp(nn.Tanh, 4, 3, 3, 6), nn.CrossEntropyLoss(),
                            lambda: [_classification(5, 4, 3, 7), _classification(8, 4, 3, 8)]),
    "cnn-tanh-ce": (_cnn, nn.CrossEntropyLoss(), lambda: _classification(6, None, 3, 9, image=True)),
}


def case(name):
    make_model, loss_fn, make_data = CASES[name]
    return make_model(), loss_fn, make_data()


def batches_of(data):
    return [data] if isinstance(data, tuple) else list(data)


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def functional_loss(model, loss_fn, data):
    """E(theta_flat): the size-weighted full-data loss as a function of the flat parameter vector."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    batches = batches_of(data)
    total = sum(x.shape[0] for x, _ in batches)

    def E(theta):
        d, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(torch.tensor(s).prod()) if len(s) else 1
            d[n] = theta[i:i + k].view(s)
            i += k
        return sum(x.shape[0] / total * loss_fn(functional_call(model, d, (x,)), y) for x, y in batches)

    return E


def dense_hessian(model, loss_fn, data):
    """Reference Hessian from ``torch.func.hessian``."""
    return torch.func.hessian(functional_loss(model, loss_fn, data))(flat_params(model))


def outputs_fn(model, x):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(theta):
        d, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(torch.tensor(s).prod()) if len(s) else 1
            d[n] = theta[i:i + k].view(s)
            i += k
        return functional_call(model, d, (x,))

    return f


def dense_ggn(model, loss_fn, data):
    """Reference GGN  sum_b (n_b/N) J_b' H_L J_b, with J from ``torch.func.jacrev`` and H_L from ``torch.func.hessian``."""
    batches = batches_of(data)
    total = sum(x.shape[0] for x, _ in batches)
    theta = flat_params(model)
    G = 0
    for x, y in batches:
        f = outputs_fn(model, x)
        out = f(theta)
        J = torch.func.jacrev(f)(theta).reshape(out.numel(), -1)
        HL = torch.func.hessian(lambda o: loss_fn(o.view_as(out), y))(out.reshape(-1))
        G = G + x.shape[0] / total * J.T @ HL @ J
    return G
