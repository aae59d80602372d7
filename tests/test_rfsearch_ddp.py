"""rfa_toolbox.rfsearch under DistributedDataParallel: two gloo processes on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch import nn  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

WORLD = 2
EPOCHS = 6
PERTURBED_EPOCH = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _batch(generator, lag=4, n=8, length=64):
    x = torch.randn(n, 1, length + 2 * lag, generator=generator).cumsum(-1) * 0.3
    return x[..., lag:lag + length], x[..., :length] + x[..., 2 * lag:]


def _worker(rank: int, port: int, out: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    from rfa_toolbox.rfsearch import RFSearch

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=WORLD)
    try:
        out_dir = Path(out)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv1d(4, 1, 3, padding=1))
        search = RFSearch(model, {"num_branches": 3, "max_step": EPOCHS},
                          work_dir=out_dir / f"work{rank}")
        ddp = DistributedDataParallel(model)  # no unused parameters: every alpha gets a gradient
        optimizer = torch.optim.Adam(ddp.parameters(), lr=0.05)
        generator = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        own_estimate = None
        for epoch in range(EPOCHS):
            for _ in range(8):
                x, y = _batch(generator)
                loss = (ddp(x) - y).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if epoch == PERTURBED_EPOCH and rank == 1:
                # a rank whose alphas drifted: its own estimate differs, rank 0's must win
                with torch.no_grad():
                    model[0].alphas.copy_(torch.tensor([1.0, 0.0, 0.0]))
                own_estimate = list(model[0].estimate())
            search.step(optimizer)
            if epoch == PERTURBED_EPOCH:
                applied = list(model[0].dilation)
        saved = search.save(out_dir / "searched.json")
        result = {"structure": search.structure, "step": search.step_count,
                  "rates": [list(r) for r in model[0].rates], "own_estimate": own_estimate,
                  "applied": applied, "saved": saved is not None,
                  "alphas_equal": _alphas_agree(model)}
        (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _alphas_agree(model) -> bool:
    """After training under DDP the alphas (like every parameter) agree across ranks."""
    flat = torch.cat([p.detach().flatten() for name, p in model.named_parameters() if "alphas" in name])
    gathered = [torch.empty_like(flat) for _ in range(WORLD)]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered)


def test_two_gloo_processes_end_with_identical_structures(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert results[0]["structure"] == results[1]["structure"]
    assert results[0]["rates"] == results[1]["rates"]
    assert results[0]["step"] == results[1]["step"] == EPOCHS
    assert all(r["alphas_equal"] for r in results)
    # rank 1's own estimate was overridden by rank 0's decision
    assert results[1]["own_estimate"] != results[1]["applied"]
    assert results[0]["applied"] == results[1]["applied"]
    # only rank 0 writes files
    assert results[0]["saved"] and not results[1]["saved"]
    assert json.loads((tmp_path / "searched.json").read_text())["structure"] == {
        f"module.{name}": value for name, value in results[0]["structure"].items()}
    assert sorted(p.name for p in (tmp_path / "work0").iterdir()) == [
        f"local{step}.json" for step in range(1, EPOCHS)]
    assert not (tmp_path / "work1").exists()
