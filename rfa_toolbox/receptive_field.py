"""Propagation of min/max receptive-field sets over the graph, in one topological pass.

Every path from an input to a node has, per axis, a size r and a jump j. Instead of
enumerating paths, each node keeps per axis the Pareto-minimal pairs (no other pair has both
r and j smaller or equal), the Pareto-maximal finite pairs, and a flag for infinite paths.
All transfers are monotone in (r, j), so dominated pairs can never become extreme later and
r_min / r_max are exact.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .errors import GraphError
from .graph import Graph, Layer, Number, Transfer, simplify

Pair = tuple[Number, Number]


class AxisRF:
    """The receptive-field sets of one node on one axis (immutable, shared between nodes)."""

    __slots__ = ("mins", "maxs", "infinite")

    def __init__(self, mins: tuple[Pair, ...], maxs: tuple[Pair, ...], infinite: bool):
        self.mins = mins  #: Pareto-minimal (r, j) pairs, r ascending
        self.maxs = maxs  #: Pareto-maximal finite (r, j) pairs, r descending
        self.infinite = infinite  #: some path into the node has an infinite receptive field

    @property
    def r_min(self) -> Number | None:
        """Smallest size over the finite paths, or None when every path is infinite."""
        return self.mins[0][0] if self.mins else None

    @property
    def r_max(self) -> Number | None:
        """Largest size over the finite paths, or None when every path is infinite."""
        return self.maxs[0][0] if self.maxs else None

    @property
    def finite(self) -> bool:
        """True when at least one path into the node is finite."""
        return bool(self.mins)

    def __repr__(self) -> str:
        return f"AxisRF(mins={self.mins}, maxs={self.maxs}, infinite={self.infinite})"


INPUT_RF = AxisRF(((1, 1),), ((1, 1),), False)
INFINITE_RF = AxisRF((), (), True)

NodeRF = tuple[AxisRF, ...]


def pareto_min(pairs: Iterable[Pair]) -> tuple[Pair, ...]:
    """The pairs not dominated by another with both r and j smaller or equal, r ascending."""
    kept: list[Pair] = []
    best_j = None
    for r, j in sorted(pairs):
        if best_j is None or j < best_j:
            kept.append((r, j))
            best_j = j
    return tuple(kept)


def pareto_max(pairs: Iterable[Pair]) -> tuple[Pair, ...]:
    """The pairs not dominated by another with both r and j larger or equal, r descending."""
    kept: list[Pair] = []
    best_j = None
    for r, j in sorted(pairs, reverse=True):
        if best_j is None or j > best_j:
            kept.append((r, j))
            best_j = j
    return tuple(kept)


def union(sets: Sequence[AxisRF], with_max: bool = True) -> AxisRF:
    """The sets of a node fed by several nodes: the union of their paths."""
    first = sets[0]
    if all(s is first for s in sets):
        return first
    mins = pareto_min(p for s in sets for p in s.mins)
    maxs = pareto_max(p for s in sets for p in s.maxs) if with_max else ()
    return AxisRF(mins, maxs, any(s.infinite for s in sets))


def _map(pairs: tuple[Pair, ...], c: Number, m: Number) -> list[Pair]:
    if isinstance(m, int) and isinstance(c, int) and all(type(j) is int for _, j in pairs):
        return [(r + c * j, j * m) for r, j in pairs]
    return [(simplify(r + c * j), simplify(j * m)) for r, j in pairs]


def apply(layer: Layer, before: NodeRF, with_max: bool = True) -> NodeRF:
    """The sets after ``layer``, given the union of its inputs' sets ``before``."""
    if layer.transfer is Transfer.GLOBAL:
        axes = layer.global_axes or range(len(before))
        return tuple(INFINITE_RF if a in axes else s for a, s in enumerate(before))
    affine = layer.affine
    if not affine or all(c == 0 and m == 1 for c, m in affine):  # e.g. 1x1 convs
        return before  # the same object: nodes that change nothing share their sets
    out: list[AxisRF] = []
    done: dict[tuple[int, Number, Number], AxisRF] = {}
    for s, (c, m) in zip(before, affine):
        if c == 0 and m == 1:
            out.append(s)
            continue
        key = (id(s), c, m)
        result = done.get(key)
        if result is None:
            mins: Sequence[Pair] = _map(s.mins, c, m)
            maxs: Sequence[Pair] = _map(s.maxs, c, m) if with_max else ()
            if c:  # r grew by c*j: pairs may now dominate each other
                if len(mins) > 1:
                    mins = pareto_min(mins)
                if len(maxs) > 1:
                    maxs = pareto_max(maxs)
            result = AxisRF(tuple(mins), tuple(maxs), s.infinite)
            if _too_large(result):
                raise GraphError(
                    f"layer {layer.name!r}: receptive fields grow beyond 2^64 pixels here (or"
                    " jumps shrink below 2^-64); the kernels, strides, dilations or factors of"
                    " the layers up to it multiply to numbers no network has: check them")
            done[key] = result
        out.append(result)
    return tuple(out)


#: Sizes, jumps and their denominators beyond this are refused (see `apply`): exact
#: arithmetic on them would slow down without end, and no network has them.
LIMIT = 2**64


def _too_large(s: AxisRF) -> bool:
    """Does any extreme size or jump of ``s`` exceed `LIMIT` (or need a larger denominator)?"""
    for pairs in (s.mins, s.maxs):
        if pairs:
            for v in (pairs[0][0], pairs[0][1], pairs[-1][0], pairs[-1][1]):
                if v > LIMIT or (type(v) is not int and v.denominator > LIMIT):
                    return True
    return False


F = TypeVar("F", bound=Callable[..., Any])


def without_gc(fn: F) -> F:
    """Run ``fn`` with the cyclic garbage collector paused (and restored after).

    A pass over a large graph allocates a few objects per node and creates no cycles; the
    collections these allocations trigger traverse the whole heap, graph included, and cost
    30-40% of the time at 100k nodes while freeing nothing.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return wrapper  # type: ignore[return-value]


@without_gc
def propagate(graph: Graph, with_max: bool = True) -> dict[str, NodeRF]:
    """The receptive-field sets of every node, per axis, in one pass in topological order.

    With ``with_max=False`` only the min sets are kept (enough for r_min and r), which is
    what the fast NAS helpers use.
    """
    graph.validate()
    rf: dict[str, NodeRF] = {}
    _pass(graph, 0, {}, rf, rf, with_max)
    return rf


@without_gc
def repropagate(graph: Graph, rf: dict[str, NodeRF], changed: Mapping[str, Layer]) -> dict[str, NodeRF]:
    """The sets of the nodes from the first changed one on (in topological order), when the
    layers of ``graph`` named in ``changed`` are replaced by those layers and everything else
    stays: the unchanged prefix is read from ``rf`` (the sets of ``graph`` itself). The cost is
    the length of the suffix, not of the graph; ``rf`` is not modified."""
    start = min(graph.position(name) for name in changed)
    suffix: dict[str, NodeRF] = {}
    _pass(graph, start, changed, rf, suffix, True)
    return suffix


def _pass(graph: Graph, start: int, changed: Mapping[str, Layer], known: dict[str, NodeRF],
          out: dict[str, NodeRF], with_max: bool) -> None:
    """Fill ``out`` with the sets of the nodes from position ``start`` on; the sets of earlier
    nodes are read from ``known`` (which may be ``out`` itself)."""
    ndim = graph.ndim
    inputs_rf: NodeRF = (INPUT_RF,) * ndim
    passing = (Transfer.NEUTRAL, Transfer.MERGE)  # the sets after are the union before
    for layer, sources in graph.nodes_with_inputs(start):
        if changed:
            layer = changed.get(layer.name, layer)
        before: NodeRF
        if layer.transfer is Transfer.INPUT:
            before = inputs_rf
        elif len(sources) == 1:
            source = next(iter(sources))
            before = out[source] if source in out else known[source]
        else:
            feeds = [out[p] if p in out else known[p] for p in sources]
            first = feeds[0]
            if all(f is first for f in feeds):
                before = first
            else:
                before = tuple(union([f[a] for f in feeds], with_max) for a in range(ndim))
        out[layer.name] = before if layer.transfer in passing else apply(layer, before, with_max)
