"""The cost of an ERF sample (issue 14): ResNet-50 at 224 on this machine's CPU, batches of 8.

Side by side, in one run: a plain training step's forward + backward (`model(x).sum().backward()`,
per sample), and `effective_receptive_field` per sample (the difference between 40 and 8
samples, so that tracing and analysis, paid once, are left out). Goal: within 1.2x.

    python benchmarks/bench_erf.py [--model resnet50] [--res 224] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--res", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch
    import torchvision

    from rfa_toolbox.erf import effective_receptive_field

    batch = 8
    model = torchvision.models.get_model(args.model, weights=None).eval()
    x = torch.randn(batch, 3, args.res, args.res)
    model(x).sum().backward()  # warm up
    plain = []
    for _ in range(args.repeats):
        model.zero_grad()
        start = time.perf_counter()
        model(x).sum().backward()
        plain.append((time.perf_counter() - start) / batch)

    def erf_seconds(samples: int) -> float:
        start = time.perf_counter()
        effective_receptive_field(model, args.res, samples=samples, batch=batch)
        return time.perf_counter() - start

    erf_seconds(batch)  # warm up
    per_sample = []
    for _ in range(args.repeats):
        few, many = erf_seconds(batch), erf_seconds(5 * batch)
        per_sample.append((many - few) / (4 * batch))
    best_plain, best_erf = min(plain), min(per_sample)
    ratio = best_erf / best_plain
    print(f"{args.model} at {args.res}, batches of {batch}, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"  forward + backward (training step)   {best_plain * 1000:8.1f} ms per sample")
    print(f"  effective_receptive_field            {best_erf * 1000:8.1f} ms per sample")
    print(f"  ratio {ratio:.2f}x (goal <= 1.2x): {'met' if ratio <= 1.2 else 'MISSED'}")
    return 0 if ratio <= 1.2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
