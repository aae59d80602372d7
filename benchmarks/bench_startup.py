"""End-to-end time of the `rfa` command, side by side with what it cannot avoid.

Each command runs in a fresh process, best of --repeats:

- import torch and torchvision          the framework's own import (torchvision pulls in
                                        torch._dynamo through its ops), exiting at once
- rfa analyze torchvision:resnet18      the whole command, default exit
- ... with RFA_NO_FAST_EXIT=1           the same, waiting for the interpreter's teardown
- rfa analyze examples/vgg_style.yaml   an architecture file: no framework imported

    python benchmarks/bench_startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RFA = [sys.executable, "-m", "rfa_toolbox.cli"]

COMMANDS = [
    ("import torch and torchvision", [sys.executable, "-c", "import os, torch, torchvision.models; os._exit(0)"],
     {}),
    ("rfa analyze torchvision:resnet18", RFA + ["analyze", "torchvision:resnet18", "--res", "224", "-f", "json"], {}),
    ("  ... waiting for teardown", RFA + ["analyze", "torchvision:resnet18", "--res", "224", "-f", "json"],
     {"RFA_NO_FAST_EXIT": "1"}),
    ("rfa analyze examples/vgg_style.yaml", RFA + ["analyze", "examples/vgg_style.yaml", "--res", "224"], {}),
]


def best(command: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    results = {label: best(command, env, args.repeats) for label, command, env in COMMANDS}
    for label, seconds in results.items():
        print(f"{label:<40}{seconds:>8.2f} s")
    imports = results["import torch and torchvision"]
    whole = results["rfa analyze torchvision:resnet18"]
    print(f"\nrfa beyond the framework import: {whole - imports:.2f} s;"
          f" teardown skipped: {results['  ... waiting for teardown'] - whole:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
