"""Encode + analyze time of large torchvision models next to one plain forward pass.

    python benchmarks/bench_encode.py [--res 224] [--repeat 3] [--models resnet152 ...]

For each model: the best of ``--repeat`` plain forward passes (eval, no grad, batch 1) and the
best of ``--repeat`` encode+analyze runs (JIT trace at the same resolution, walk, analysis),
measured in the same run, and their ratio. Goal: encode+analyze <= 2x one forward pass.
"""

from __future__ import annotations

import argparse
import time
import warnings


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=["resnet152", "densenet121", "efficientnet_b7"])
    args = parser.parse_args()

    import torch
    import torchvision.models as models
    from rfa_toolbox.encoders.torch import encode

    from rfa_toolbox import analyze

    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x3x{args.res}x{args.res}")
    print(f"{'model':18s} {'ops':>6s} {'forward s':>10s} {'encode+analyze s':>17s} {'ratio':>6s}  goal <= 2")
    for name in args.models:
        model = models.get_model(name, weights=None).eval()
        x = torch.rand(1, 3, args.res, args.res)
        with torch.no_grad():
            model(x)  # warm-up: allocator and kernels
            forward = best_of(args.repeat, lambda: model(x))
        result = {}
        encoded = best_of(args.repeat, lambda: result.update(r=analyze(encode(model, x, name=name), args.res)))
        ratio = encoded / forward
        print(f"{name:18s} {len(result['r'].layers):>6d} {forward:>10.3f} {encoded:>17.3f} {ratio:>6.2f}"
              f"  {'PASS' if ratio <= 2 else 'FAIL'}", flush=True)


if __name__ == "__main__":
    main()
