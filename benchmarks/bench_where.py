"""Where units look (issue 12): the cost of exact per-position fields and of the new report fields.

1. A U-Net-like graph of about 1,000 layers at 1024x1024: five levels of 3x3 convs (padding 1)
   joined by 2x2 max pools, four levels up by bilinear x2 upsampling and a concat with the skip
   of the same level. Timed side by side: the analysis with the standard rules only
   (exact=False), the default exact analysis (every unit of every layer, position by
   position), and one `report.box` of a head unit on a fresh report.
2. The overhead of the new fields (paths carrying offsets, spans per jump, sizes, jump /
   offset / centre / aligned per row, schema v2) on the 100k-node graphs of
   bench_analysis.py: `analyze` and `analyze(...).to_json()` timed with the code of this
   checkout and with the code before issue 12 (commit BEFORE, exported with git archive), each
   in its own subprocess on the same graphs. Goal: under 1.5x.

    python benchmarks/bench_where.py            # both parts
    python benchmarks/bench_where.py --quick    # 10k-node graphs in part 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BEFORE = "a5e17195b15d4f34b4a460a194f9a6e6d63ea25b"  #: the last commit before issue 12
OVERHEAD_GOAL = 1.5
LEVELS = 5


def build_unet(layers: int = 1000):
    """A U-Net-like graph of about ``layers`` nodes (convs spread evenly over the 9 levels)."""
    from rfa_toolbox import GraphBuilder

    per_level = max(1, (layers - 14) // (2 * LEVELS - 1))
    b = GraphBuilder(name=f"unet-{layers}")
    x = b.input("image")
    skips = []
    for level in range(LEVELS):
        if level:
            x = b.max_pool(x, 2)
        for _ in range(per_level):
            x = b.conv(x, 3, padding=1)
        skips.append(x)
    skips.pop()
    for _ in range(LEVELS - 1):
        x = b.upsample(x, 2, mode="bilinear")
        x = b.layer("concat", [x, skips.pop()])
        for _ in range(per_level):
            x = b.conv(x, 3, padding=1)
    head = b.conv(x, 1, name="head")
    return b.build(outputs=[head])


def part_one(resolution: int) -> None:
    from rfa_toolbox import analyze

    graph = build_unet()
    print(f"1. U-Net-like graph, {len(graph):,} layers, at {resolution}x{resolution}")
    timings = {}
    for label, exact in (("standard rules (exact=False)", False), ("exact, position by position", True)):
        start = time.perf_counter()
        report = analyze(graph, resolution, exact=exact)
        timings[label] = time.perf_counter() - start
        head = report.layer("head")
        print(f"   {label:<32}{timings[label]:>8.2f} s   head r_min {head.r_min[0]}, r_max {head.r_max[0]}")
    start = time.perf_counter()
    box = report.box("head", (resolution // 2, resolution // 2))[0]
    box_s = time.perf_counter() - start
    print(f"   {'one report.box of the head':<32}{box_s:>8.2f} s   union {box['union']}, smallest {box['smallest']}")
    rules, exact_s = timings.values()
    print(f"   exact / rules: {exact_s / rules:.1f}x")


MEASURE = """
import json, sys, time
sys.path.insert(0, {benchmarks!r})
from bench_analysis import KINDS
import rfa_toolbox
assert rfa_toolbox.__file__.startswith({source!r}), rfa_toolbox.__file__  # the code asked for
out = {{}}
for kind in {kinds!r}:
    graph = KINDS[kind]({nodes})
    best = {{"analyze": 1e9, "analyze + to_json": 1e9}}
    for _ in range(3):
        start = time.perf_counter(); report = rfa_toolbox.analyze(graph, 224)
        middle = time.perf_counter(); report.to_json()
        end = time.perf_counter()
        best["analyze"] = min(best["analyze"], middle - start)
        best["analyze + to_json"] = min(best["analyze + to_json"], end - start)
    out[kind] = best
print(json.dumps(out))
"""


def _measure(source: Path, nodes: int, kinds: list[str]) -> dict:
    code = MEASURE.format(benchmarks=str(HERE), kinds=kinds, nodes=nodes, source=str(source))
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=source, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"measuring {source} failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_two(nodes: int) -> list[str]:
    kinds = ["chain", "residual", "densenet"]
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "rfa_toolbox"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        old = _measure(before, nodes, kinds)
        new = _measure(ROOT, nodes, kinds)
    print(f"2. new fields on {nodes:,}-node graphs: this checkout vs {BEFORE[:8]} (before issue 12),"
          " best of 3, seconds")
    print(f"   {'graph':<10}{'step':<20}{'before':>9}{'now':>9}{'ratio':>8}")
    failed = []
    for kind in kinds:
        for step in ("analyze", "analyze + to_json"):
            ratio = new[kind][step] / old[kind][step]
            print(f"   {kind:<10}{step:<20}{old[kind][step]:>9.2f}{new[kind][step]:>9.2f}{ratio:>7.2f}x")
            if ratio >= OVERHEAD_GOAL:
                failed.append(f"{kind} {step}: {ratio:.2f}x >= {OVERHEAD_GOAL}x")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k-node graphs in part 2")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    part_one(1024)
    failed = part_two(10_000 if args.quick else 100_000)
    for line in failed:
        print(f"GOAL MISSED: {line}")
    print("goals met" if not failed else f"{len(failed)} goal(s) missed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
