"""`rfa analyze` end to end (default options: suggestions on) on large synthetic graphs.

Three kinds of graph, written as JSON architecture files and analyzed at 224 by the real
command in a subprocess, so the figures include start-up, reading, analysis, suggestions and
writing the report:

plain     a chain of stride-1 3x3 convs (most of them unproductive at 224: many removal
          candidates, no downsampling site)
chain     the VGG-like chain of bench_analysis.py (four downsampling sites)
residual  the ResNet-like graph of bench_analysis.py

Goals (issue 11): time(10N)/time(N) below 15 for every kind, and 10k layers under 10 s.

    python benchmarks/bench_cli_scale.py             # 1k, 10k and 100k layers
    python benchmarks/bench_cli_scale.py --quick     # 1k and 10k
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_analysis import build_chain, build_residual

from rfa_toolbox import Graph, GraphBuilder, spec_from_graph

RATIO_GOAL = 15.0
TEN_K_GOAL_S = 10.0


def build_plain(nodes: int) -> Graph:
    """An input and ``nodes - 1`` stride-1 3x3 convs."""
    b = GraphBuilder(name=f"plain-{nodes}")
    x = b.input("x")
    for _ in range(nodes - 1):
        x = b.conv(x, 3)
    return b.build()


KINDS = {"plain": build_plain, "chain": build_chain, "residual": build_residual}


def run(path: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "rfa_toolbox.cli", "analyze", str(path), "--res", "224",
                           "-f", "json"], capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"rfa failed on {path.name}: {done.stderr.strip()}")
    return elapsed, json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k layers only")
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'graph':<10}{'layers':>9}{'seconds':>10}{'ratio':>8}{'suggestions':>13}  notes")
        for kind, build in KINDS.items():
            previous = None
            for n in sizes:
                path = Path(tmp) / f"{kind}-{n}.json"
                path.write_text(json.dumps(spec_from_graph(build(n))))
                seconds, report = run(path)
                ratio = seconds / previous if previous else None
                notes = [note for note in report["notes"] if note.startswith("suggestions")]
                print(f"{kind:<10}{n:>9,}{seconds:>10.2f}{'' if ratio is None else f'{ratio:.1f}':>8}"
                      f"{len(report.get('suggestions', [])):>13}  {'; '.join(notes)[:60]}")
                if ratio is not None and ratio >= RATIO_GOAL:
                    failed.append(f"{kind}: time({n})/time({n // 10}) = {ratio:.1f} >= {RATIO_GOAL:g}")
                if n == 10_000 and seconds >= TEN_K_GOAL_S:
                    failed.append(f"{kind}: 10k layers took {seconds:.1f} s >= {TEN_K_GOAL_S:g} s")
                previous = seconds
    print("goals met" if not failed else "goals missed:\n  " + "\n  ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
