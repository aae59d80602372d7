"""Propagation of min/max receptive-field sets over the graph, in one topological pass.

Every path from an input to a node has, per axis, a size r, a jump j and an offset o: along
it, unit i of the node reads the input interval [o + i*j, o + i*j + r - 1] (for integer
strides; through resampling the rules below are the standard estimate). Instead of
enumerating paths, each node keeps per axis the Pareto-minimal paths (no other has both r and
j smaller or equal), the Pareto-maximal finite paths, and a flag for infinite paths. All
transfers are monotone in (r, j), so dominated paths can never become extreme later and
r_min / r_max are exact. For where units look, each node also keeps its *spans*: per jump, the
interval unit 0 covers over all paths with that jump, and twice their common centre (an
integer wherever the strides are: or None when the paths of that jump are centred differently).
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any, Optional, TypeVar

from .errors import GraphError
from .graph import Graph, Layer, Number, Transfer, simplify

Path = tuple[Number, Number, Number]  #: (r, j, offset) of a path
Span = tuple[Number, Number, Number, Optional[Number]]  #: (j, lo of unit 0, hi of unit 0, 2 * centre)


class AxisRF:
    """The receptive-field sets of one node on one axis (immutable, shared between nodes)."""

    __slots__ = ("mins", "maxs", "infinite", "spans")

    def __init__(self, mins: tuple[Path, ...], maxs: tuple[Path, ...], infinite: bool,
                 spans: tuple[Span, ...] = ()):
        self.mins = mins  #: Pareto-minimal (r, j, offset) paths, r ascending
        self.maxs = maxs  #: Pareto-maximal finite (r, j, offset) paths, r descending
        self.infinite = infinite  #: some path into the node has an infinite receptive field
        self.spans = spans  #: per jump: (j, lo, hi, centre) of unit 0 over the finite paths

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

    @property
    def jump(self) -> Number | None:
        """The effective stride: the jump of the smallest path (None when infinite)."""
        return self.mins[0][1] if self.mins else None

    @property
    def offset(self) -> Number | None:
        """Where unit 0's receptive field starts, over all paths (google's effective padding
        with the opposite sign)."""
        return min(span[1] for span in self.spans) if self.spans else None

    @property
    def centre(self) -> Number | None:
        """The centre of unit 0's receptive field (the interval over all paths)."""
        if not self.spans:
            return None
        return simplify(Fraction(min(s[1] for s in self.spans) + max(s[2] for s in self.spans), 2))

    @property
    def aligned(self) -> bool | None:
        """Do all finite paths share one centre, for every unit (one jump, one centre)?"""
        if not self.spans:
            return None
        return len(self.spans) == 1 and self.spans[0][3] is not None

    def __repr__(self) -> str:
        return f"AxisRF(mins={self.mins}, maxs={self.maxs}, infinite={self.infinite}, spans={self.spans})"


INPUT_RF = AxisRF(((1, 1, 0),), ((1, 1, 0),), False, ((1, 0, 0, 0),))
INFINITE_RF = AxisRF((), (), True)

NodeRF = tuple[AxisRF, ...]


def pareto_min(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The paths not dominated by another with both r and j smaller or equal, r ascending (of
    paths with the same r and j, the one with the smallest offset)."""
    kept: list[Path] = []
    best_j = None
    for path in sorted(paths):
        if best_j is None or path[1] < best_j:
            kept.append(path)
            best_j = path[1]
    return tuple(kept)


def _descending(path: Path) -> tuple[Number, Number, Number]:
    return (-path[0], -path[1], path[2])


def pareto_max(paths: Iterable[Path]) -> tuple[Path, ...]:
    """The paths not dominated by another with both r and j larger or equal, r descending (of
    paths with the same r and j, the one with the smallest offset)."""
    kept: list[Path] = []
    best_j = None
    for path in sorted(paths, key=_descending):
        if best_j is None or path[1] > best_j:
            kept.append(path)
            best_j = path[1]
    return tuple(kept)


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Spans of several inputs as one per jump: the widest interval; the centre when all agree."""
    by_jump: dict[Number, Span] = {}
    for j, lo, hi, centre in spans:
        seen = by_jump.get(j)
        if seen is None:
            by_jump[j] = (j, lo, hi, centre)
        else:
            same = seen[3] is not None and seen[3] == centre
            by_jump[j] = (j, min(seen[1], lo), max(seen[2], hi), seen[3] if same else None)
    return tuple(by_jump[j] for j in sorted(by_jump))


def union(sets: Sequence[AxisRF], with_max: bool = True) -> AxisRF:
    """The sets of a node fed by several nodes: the union of their paths."""
    first = sets[0]
    if all(s is first for s in sets):
        return first
    mins = pareto_min(p for s in sets for p in s.mins)
    maxs = pareto_max(p for s in sets for p in s.maxs) if with_max else ()
    spans = merge_spans(span for s in sets for span in s.spans) if with_max else ()
    return AxisRF(mins, maxs, any(s.infinite for s in sets), spans)


def _map(paths: tuple[Path, ...], c: Number, m: Number, t: Number) -> list[Path]:
    if type(m) is int and type(c) is int and type(t) is int and all(type(p[1]) is int for p in paths):
        return [(r + c * j, j * m, o + t * j) for r, j, o in paths]
    return [(simplify(r + c * j), simplify(j * m), simplify(o + t * j)) for r, j, o in paths]


def _map_spans(spans: tuple[Span, ...], c: Number, m: Number, t: Number) -> tuple[Span, ...]:
    out = []
    exact_ints = type(m) is int and type(c) is int and type(t) is int
    for j, lo, hi, twice in spans:
        if exact_ints and type(j) is int and type(lo) is int and type(hi) is int:
            shift = t * j
            out.append((j * m, lo + shift, hi + shift + c * j, None if twice is None else twice + 2 * shift + c * j))
            continue
        shift = simplify(t * j)
        out.append((simplify(j * m), simplify(lo + shift), simplify(hi + shift + c * j),
                    None if twice is None else simplify(twice + 2 * shift + c * j)))
    return tuple(out)


def apply(layer: Layer, before: NodeRF, with_max: bool = True) -> NodeRF:
    """The sets after ``layer``, given the union of its inputs' sets ``before``."""
    if layer.transfer is Transfer.GLOBAL:
        axes = layer.global_axes or range(len(before))
        return tuple(INFINITE_RF if a in axes else s for a, s in enumerate(before))
    affine = layer.affine
    if not affine or all(c == 0 and m == 1 and t == 0 for c, m, t in affine):  # e.g. 1x1 convs
        return before  # the same object: nodes that change nothing share their sets
    out: list[AxisRF] = []
    done: dict[tuple[int, Number, Number, Number], AxisRF] = {}
    for s, (c, m, t) in zip(before, affine):
        if c == 0 and m == 1 and t == 0:
            out.append(s)
            continue
        key = (id(s), c, m, t)
        result = done.get(key)
        if result is None:
            mins: Sequence[Path] = _map(s.mins, c, m, t)
            maxs: Sequence[Path] = _map(s.maxs, c, m, t) if with_max else ()
            if c:  # r grew by c*j: paths may now dominate each other
                if len(mins) > 1:
                    mins = pareto_min(mins)
                if len(maxs) > 1:
                    maxs = pareto_max(maxs)
            spans = _map_spans(s.spans, c, m, t) if with_max else ()
            result = AxisRF(tuple(mins), tuple(maxs), s.infinite, spans)
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
    for paths in (s.mins, s.maxs):
        if paths:
            for v in (paths[0][0], paths[0][1], paths[-1][0], paths[-1][1]):  # r and j bound offsets too
                if v > LIMIT or v < -LIMIT or (type(v) is not int and v.denominator > LIMIT):
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
        keeps = layer.transfer in passing and not layer.padding
        out[layer.name] = before if keeps else apply(layer, before, with_max)
