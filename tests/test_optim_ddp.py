"""optlab's optimizers under DistributedDataParallel: 2 processes, gloo, on localhost.

Each rank trains a DDP-wrapped copy of the same model on its own half of every batch with every
registered optimizer. The replicas must stay identical, and equal to one process training on the
whole batch (DDP averages the gradients, which is the full-batch gradient of the mean loss).
"""

from __future__ import annotations

import copy
import gc
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from optim_registry import REGISTRY

STEPS = 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_and_data():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
    X = torch.randn(STEPS, 16, 4, generator=g, dtype=torch.float64)
    Y = torch.randn(STEPS, 16, 2, generator=g, dtype=torch.float64)
    return model, X, Y


def _worker(rank, world, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    report = {}
    try:
        for name, entry in REGISTRY.items():
            model, X, Y = _model_and_data()
            single = copy.deepcopy(model)
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            opt = entry.make(ddp.parameters(), **entry.base)
            opt_single = entry.make(single.parameters(), **entry.base)
            half = X.shape[1] // world
            for k in range(STEPS):
                opt.zero_grad()
                x, y = X[k, rank * half:(rank + 1) * half], Y[k, rank * half:(rank + 1) * half]
                ((ddp(x) - y) ** 2).mean().backward()
                opt.step()
                opt_single.zero_grad()
                ((single(X[k]) - Y[k]) ** 2).mean().backward()
                opt_single.step()
            flat = torch.cat([p.detach().flatten() for p in model.parameters()])
            gathered = [torch.empty_like(flat) for _ in range(world)]
            dist.all_gather(gathered, flat)
            start = torch.cat([p.flatten() for p in _model_and_data()[0].parameters()])
            single_flat = torch.cat([p.detach().flatten() for p in single.parameters()])
            report[name] = {
                "replica_diff": max((g - gathered[0]).abs().max().item() for g in gathered),
                "vs_single_process": ((flat - single_flat).abs().max() / single_flat.abs().max()).item(),
                "moved": (flat - start).abs().max().item(),
            }
            # free DDP's reducer (it holds the process group and gloo's work objects) while the group is
            # alive: freed after destroy_process_group, at the function's return or at interpreter exit,
            # gloo's teardown could abort the process ("terminate called without an active exception")
            del ddp, opt
            gc.collect()
        dist.barrier()  # both ranks are done with the group before either destroys it
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_replicas_stay_identical_under_ddp(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]
    for report in reports:
        assert set(report) == set(REGISTRY)
        for name, r in report.items():
            assert r["replica_diff"] == 0.0, f"{name}: replicas differ by {r['replica_diff']}"
            assert r["vs_single_process"] <= 1e-10, f"{name}: DDP vs one process {r['vs_single_process']}"
            assert r["moved"] > 1e-3, f"{name}: the weights did not move"
