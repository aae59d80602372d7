"""Cost of the dilation search: forward+backward time and peak memory of a searchable conv
(2 and 3 branches) relative to the plain conv, and of the merged conv.

Cases (CPU, float32):

layer     one Conv2d 64->64, 3x3, padding 1 on an 8x64x56x56 input.
depthwise one depthwise Conv2d 64 channels, 3x3, on the same input.
network   a small VGG-like stack (6 conv3x3-BN-ReLU, two of them stride 2) on 8x3x112x112,
          every conv searchable.

The searchable convs are centred on dilation 2: two branches are [1, 3], three [1, 2, 3].
``merged`` folds the three branches into one dense 7x7 conv. Time is the fastest of
``--repeat`` forward+backward passes after a warm-up, the variants interleaved in each round
(the machine may be shared: the minimum is the least disturbed measurement); memory is the peak of the CPU allocator
during one forward+backward above what was allocated before (the torch profiler's memory
events, in allocation order). The ratios are relative to the plain model.

    python benchmarks/bench_rfsearch.py            # all cases
    python benchmarks/bench_rfsearch.py --quick    # smaller inputs, fewer repeats

Measured on 1 thread of a shared 2-core machine (torch 2.15, CPU), time x / memory x:

    layer      search, 2 branches   2.01 / 1.01    search, 3 branches   3.03 / 1.01
    depthwise  search, 2 branches   3.00 / 1.00    search, 3 branches   3.70 / 1.00
    network    search, 2 branches   1.88 / 1.07    search, 3 branches   2.80 / 1.08
    merged 3 branches (7x7 dense): layer 4.31, depthwise 5.81, network 3.87 in time, memory 1.00
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from rfa_toolbox.rfsearch import RFSearch, merge, search_convs


def layer_model(channels: int, depthwise: bool = False) -> nn.Module:
    groups = channels if depthwise else 1
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=groups))


def network_model() -> nn.Module:
    layers: list[nn.Module] = []
    widths = [(3, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    for cin, cout, stride in widths:
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def variants(model: nn.Module) -> dict[str, nn.Module]:
    """plain, search with 2 and 3 branches (centred on dilation 2), merged 3 branches."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    structure = {n: [2, 2] for n in names}
    out = {"plain": model}
    for branches in (2, 3):
        searched = copy.deepcopy(model)
        RFSearch(searched, {"num_branches": branches}, structure=structure)
        out[f"search, {branches} branches"] = searched
    merged = copy.deepcopy(out["search, 3 branches"])
    for _, conv in search_convs(merged):
        with torch.no_grad():
            conv.alphas.copy_(torch.tensor([0.2, 0.5, 0.3]))
    out["merged (7x7 dense)"] = merge(merged)
    return out


def forward_backward(model: nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).float().pow(2).mean().backward()


def best_seconds(models: dict[str, nn.Module], x: torch.Tensor, repeat: int) -> dict[str, float]:
    """The fastest of ``repeat`` forward+backward passes per model, the models interleaved in
    every round (on a shared machine the minimum is the least disturbed measurement)."""
    for model in models.values():  # warm-up: kernels chosen, buffers allocated
        forward_backward(model, x)
        forward_backward(model, x)
    best = {name: float("inf") for name in models}
    for _ in range(repeat):
        for name, model in models.items():
            start = time.perf_counter()
            forward_backward(model, x)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Peak CPU memory allocated during one forward+backward, above the starting level."""
    from torch.profiler import ProfilerActivity, profile

    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            forward_backward(model, x)
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak


def run_case(name: str, model: nn.Module, x: torch.Tensor, repeat: int) -> list[tuple]:
    models = variants(model)
    for m in models.values():
        m.train()
    times = best_seconds(models, x, repeat)
    memory = {variant: peak_bytes(m, x) for variant, m in models.items()}
    return [(name, variant, times[variant], memory[variant], times[variant] / times["plain"],
             memory[variant] / memory["plain"]) for variant in models]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="rfsearch cost vs the plain conv")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, 5 repeats")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: the steadiest figures on a shared machine)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size, repeat = (28, 5) if args.quick else (56, args.repeat)
    cases = [
        ("layer", layer_model(64), torch.randn(8, 64, size, size)),
        ("depthwise", layer_model(64, depthwise=True), torch.randn(8, 64, size, size)),
        ("network", network_model(), torch.randn(8, 3, 2 * size, 2 * size)),
    ]
    print(f"torch {torch.__version__}, {args.threads} threads, best of {repeat} forward+backward")
    print(f"{'case':<10} {'variant':<20} {'time ms':>9} {'peak MiB':>9} {'time x':>7} {'memory x':>9}")
    for name, model, x in cases:
        for case, variant, t, mem, rt, rm in run_case(name, model, x, repeat):
            print(f"{case:<10} {variant:<20} {t * 1e3:9.1f} {mem / 2 ** 20:9.1f} {rt:7.2f} {rm:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
