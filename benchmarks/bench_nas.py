"""RegNet candidates analyzed per second on one core, from parameters to verdict.

    python benchmarks/bench_nas.py [--count 5000]

Goal: >= 1,000 configurations per second. Also times the full path (graph + analysis) for
the same candidates, side by side, and checks that both give the same r.
"""

import argparse
import time

from rfa_toolbox import nas
from rfa_toolbox.analysis import graph_r
from rfa_toolbox.zoo import regnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    for space in ("X", "Y"):
        candidates = regnet.sample(space, args.count, seed=1)
        start = time.perf_counter()
        fast = nas.verdicts(candidates, 224)
        fast_s = time.perf_counter() - start
        subset = candidates[: max(1, args.count // 10)]
        start = time.perf_counter()
        slow = [graph_r(regnet.regnet_graph(c)) for c in subset]
        slow_s = (time.perf_counter() - start) / len(subset) * len(candidates)
        agree = all(v.r == r for v, r in zip(fast, slow))
        rate = len(candidates) / fast_s
        print(f"RegNet{space}: {rate:8,.0f} configs/s (parameters -> verdict), "
              f"graph + analysis {len(candidates) / slow_s:6,.0f} configs/s, "
              f"ratio {rate / (len(candidates) / slow_s):5.1f}x; same r on {len(subset)}: {agree}; "
              f"goal >= 1000: {'PASS' if rate >= 1000 else 'FAIL'}")


if __name__ == "__main__":
    main()
