"""Analysis time of synthetic graphs at 1k, 10k and 100k nodes.

Three kinds of graph, built with :class:`rfa_toolbox.GraphBuilder`:

chain     a plain VGG-like chain: stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool), then four
          stages of conv3x3-BN-ReLU units; the first conv of stages 2-4 has stride 2.
residual  a ResNet-like network: the same stem, then four stages of basic blocks
          (conv3x3-BN-ReLU-conv3x3-BN, add with the shortcut, ReLU); the first block of
          stages 2-4 has a stride-2 conv and a 1x1/2 conv + BN projection shortcut.
densenet  DenseNet-like: the same stem, then dense blocks of 24 layers, each layer
          (BN-ReLU-conv1x1-BN-ReLU-conv3x3) fed by the concat of the block input and every
          earlier layer of its block; the block output is the concat of all of them.
          Blocks are joined by transitions (BN, ReLU, 1x1 conv, 2x2 avg pool). The blocks
          are spread over four stages: the pool has stride 2 between stages, stride 1
          between blocks of the same stage.

Depth grows with the node count while the number of stride-2 layers stays fixed (total
stride 32, as in real networks), so jumps grow as in a real network and sizes grow linearly
with depth. Each graph ends with global average pooling and a dense classifier; identity
nodes before the head pad it to exactly the requested node count.

Goals: a 100k-node residual graph analyzed in under 2 s, and time(10N)/time(N) <= 12
(linear growth) for every kind.

    python benchmarks/bench_analysis.py            # 1k, 10k and 100k nodes
    python benchmarks/bench_analysis.py --quick    # 1k and 10k only
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import sys
import time
from collections.abc import Callable

import rfa_toolbox
from rfa_toolbox import GraphBuilder

RESOLUTION = 224
STAGES = 4
DENSE_LAYERS = 24  # layers per dense block
HEAD = 2  # global pool + dense
RESIDUAL_GOAL_S = 2.0
RATIO_GOAL = 12.0

# -- graph builders ---------------------------------------------------------------------------


def _stem(b: GraphBuilder) -> str:
    x = b.input("image")
    x = b.conv(x, 7, stride=2)
    x = b.neutral(x, "batch_norm")
    x = b.neutral(x, "relu")
    return b.max_pool(x, 3, stride=2)


STEM = 5  # nodes added by _stem


def _finish(b: GraphBuilder, x: str, nodes: int) -> rfa_toolbox.Graph:
    """Pad with identity nodes to ``nodes`` - HEAD nodes, add the head, build."""
    missing = nodes - HEAD - len(b.graph)
    if missing < 0:
        raise ValueError(f"{b.graph.name}: {len(b.graph) + HEAD} nodes, more than {nodes}")
    for _ in range(missing):
        x = b.neutral(x, "identity")
    x = b.global_pool(x)
    x = b.dense(x)
    graph = b.build(outputs=[x])
    assert len(graph) == nodes, (len(graph), nodes)
    return graph


def _per_stage(units: int) -> list[int]:
    """``units`` spread over the stages, at least one each."""
    units = max(units, STAGES)
    return [units // STAGES + (i < units % STAGES) for i in range(STAGES)]


def build_chain(nodes: int) -> rfa_toolbox.Graph:
    b = GraphBuilder(name=f"chain-{nodes}")
    x = _stem(b)
    unit = 3
    for stage, count in enumerate(_per_stage((nodes - STEM - HEAD) // unit)):
        for i in range(count):
            x = b.conv(x, 3, stride=2 if stage and i == 0 else 1)
            x = b.neutral(x, "batch_norm")
            x = b.neutral(x, "relu")
    return _finish(b, x, nodes)


def build_residual(nodes: int) -> rfa_toolbox.Graph:
    b = GraphBuilder(name=f"residual-{nodes}")
    x = _stem(b)
    block, projection = 7, 2
    blocks = (nodes - STEM - HEAD - projection * (STAGES - 1)) // block
    for stage, count in enumerate(_per_stage(blocks)):
        for i in range(count):
            stride = 2 if stage and i == 0 else 1
            y = b.conv(x, 3, stride=stride)
            y = b.neutral(y, "batch_norm")
            y = b.neutral(y, "relu")
            y = b.conv(y, 3)
            y = b.neutral(y, "batch_norm")
            shortcut = x
            if stride != 1:
                shortcut = b.neutral(b.conv(x, 1, stride=stride), "batch_norm")
            x = b.neutral(b.add(y, shortcut), "relu")
    return _finish(b, x, nodes)


def build_densenet(nodes: int) -> rfa_toolbox.Graph:
    b = GraphBuilder(name=f"densenet-{nodes}")
    x = _stem(b)
    # 6 nodes per layer, a concat before every layer but the first, and the output concat
    block = 7 * DENSE_LAYERS
    transition = 4
    blocks = (nodes - STEM - HEAD + transition) // (block + transition)
    first = True
    for count in _per_stage(blocks):
        for i in range(count):
            if not first:  # transition: BN, ReLU, 1x1 conv, 2x2 avg pool
                x = b.neutral(x, "batch_norm")
                x = b.neutral(x, "relu")
                x = b.conv(x, 1)
                x = b.avg_pool(x, 2, stride=2 if i == 0 else 1)
            first = False
            features = [x]
            for _ in range(DENSE_LAYERS):
                y = features[0] if len(features) == 1 else b.concat(*features)
                y = b.neutral(y, "batch_norm")
                y = b.neutral(y, "relu")
                y = b.conv(y, 1)
                y = b.neutral(y, "batch_norm")
                y = b.neutral(y, "relu")
                y = b.conv(y, 3)
                features.append(y)
            x = b.concat(*features)
    return _finish(b, x, nodes)


KINDS: dict[str, Callable[[int], rfa_toolbox.Graph]] = {
    "chain": build_chain,
    "residual": build_residual,
    "densenet": build_densenet,
}

# -- timing -----------------------------------------------------------------------------------


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The best wall time of ``repeats`` calls (garbage collection left on, as for a user)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def default_repeats(nodes: int) -> int:
    """Many runs where they are cheap: the best of a few 10 ms runs is noisy."""
    return 20 if nodes <= 1_000 else 5 if nodes <= 10_000 else 2


def profile(graph: rfa_toolbox.Graph, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    rfa_toolbox.analyze(graph, RESOLUTION)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Time rfa_toolbox.analyze(graph, 224) on synthetic graphs (plain chain, residual"
            " network, DenseNet-like blocks of 24 layers) at 1k, 10k and 100k nodes, and check"
            f" the goals: 100k-node residual graph in under {RESIDUAL_GOAL_S:g} s,"
            f" time(10N)/time(N) <= {RATIO_GOAL:g}."
        ),
        epilog="Exit status: 0 when every checked goal passes, 1 when one fails.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="only 1k and 10k nodes (skips the 100k goal)")
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS),
                        metavar="KIND",
                        help=f"graph kinds to run (default: all of {', '.join(KINDS)})")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per graph, best one kept"
                             " (default: 20 at 1k, 5 at 10k, 2 at 100k)")
    parser.add_argument("--profile", action="store_true",
                        help="after the table, print a cProfile of analyze on the largest graph"
                             " of each kind")
    parser.add_argument("--top", type=int, default=20,
                        help="functions shown per profile (default: 20)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")

    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    print(f"rfa-toolbox {rfa_toolbox.__version__} from {os.path.dirname(rfa_toolbox.__file__)},"
          f" Python {sys.version.split()[0]}")
    print(f"analyze(graph, {RESOLUTION}), best of {args.repeats or 'default'} runs,"
          f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs;"
          " ratio: analyze time over that of the previous size")
    header = (f"{'graph':<10}{'nodes':>9}{'edges':>10}{'build s':>10}{'analyze s':>11}"
              f"{'µs/node':>10}{'ratio':>8}")
    print(header)
    print("-" * len(header))

    times: dict[tuple[str, int], float] = {}
    largest: dict[str, rfa_toolbox.Graph] = {}
    for kind in args.kinds:
        previous = None
        for nodes in sizes:
            build_s, graph = best_of(lambda: KINDS[kind](nodes), 1)
            repeats = args.repeats or default_repeats(nodes)
            analyze_s, report = best_of(lambda: rfa_toolbox.analyze(graph, RESOLUTION), repeats)
            assert len(report.layers) == nodes
            times[kind, nodes] = analyze_s
            ratio = f"{analyze_s / previous:.2f}" if previous else "-"
            print(f"{kind:<10}{nodes:>9}{graph.nx.number_of_edges():>10}{build_s:>10.3f}"
                  f"{analyze_s:>11.4f}{analyze_s / nodes * 1e6:>10.2f}{ratio:>8}", flush=True)
            previous = analyze_s
            largest[kind] = graph
            del report

    print()
    failed = False
    if "residual" in args.kinds and ("residual", 100_000) in times:
        t = times["residual", 100_000]
        ok = t < RESIDUAL_GOAL_S
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'}: 100k-node residual graph analyzed in {t:.3f} s"
              f" (goal < {RESIDUAL_GOAL_S:g} s)")
    else:
        print("SKIP: 100k-node residual goal (run without --quick, with the residual kind)")
    for kind in args.kinds:
        ratios = [(n, times[kind, m] / times[kind, n]) for n, m in zip(sizes, sizes[1:])]
        ok = all(r <= RATIO_GOAL for _, r in ratios)
        failed |= not ok
        shown = ", ".join(f"{m // 1000}k/{n // 1000}k = {r:.2f}"
                          for (n, r), m in zip(ratios, sizes[1:]))
        print(f"{'PASS' if ok else 'FAIL'}: {kind} time(10N)/time(N): {shown}"
              f" (goal <= {RATIO_GOAL:g})")

    if args.profile:
        for graph in largest.values():
            print(f"\n== cProfile: analyze({graph.name}, {RESOLUTION}), by own time ==")
            print(profile(graph, args.top))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
