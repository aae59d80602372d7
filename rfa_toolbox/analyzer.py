"""`analyze_graph`: a graph at a resolution to its `Analysis` (receptive fields, where units
look, statuses), exact position by position wherever resampling makes the rules an estimate."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Optional

from .analysis import (
    ESTIMATE_NOTE,
    RESAMPLING_NOTE,
    Analysis,
    LayerResult,
    PerAxis,
    Report,
    fold_axes,
    for_display,
    fully_utilized,
    status_of,
)
from .graph import Graph, Number, plain, simplify
from .locate import Locator
from .positions import MAX_UNITS
from .receptive_field import AxisRF, NodeRF, propagate, without_gc
from .resolution import ResolutionLike, parse_resolution
from .sizes import spatial_sizes

Exact = dict[str, tuple[Optional[tuple[Number, Number, Number, Number, bool]], ...]]


def _exact_values(graph: Graph, sizes: dict[str, Any]) -> tuple[Exact, dict[str, Any]]:
    """Per node and axis: (r_min, r_max, offset, centre, aligned) computed position by
    position (None where infinite or where the sizes are unknown); and the arrays of the
    outputs, kept for questions about their units."""
    from .positions import exact_tracks

    out: Exact = {}
    every = exact_tracks(graph, sizes, keep=None)
    for name, tracks in every.items():
        values: list[Optional[tuple[Number, Number, Number, Number, bool]]] = []
        for track in tracks:
            if track is None:
                values.append(None)
                continue
            lo, hi = track.union()
            centre = simplify(Fraction(int(lo[0]) + int(hi[0]), 2))
            values.append((track.r_min, track.r_max, int(lo[0]), centre, track.aligned))
        out[name] = tuple(values)
    return out, {name: every[name] for name in graph.output_nodes if name in every}


_NO_GEOMETRY = (None, None, None, None)


def _axis_geometry(a: AxisRF) -> tuple[Any, Any, Any, Optional[bool]]:
    """(jump, offset, centre, aligned) of one axis, for display, read from the spans directly
    (this runs once per distinct node of graphs of 100k layers)."""
    spans = a.spans
    if not spans:
        return _NO_GEOMETRY
    if len(spans) == 1:
        lo, hi = spans[0][1], spans[0][2]
    else:
        lo, hi = min(s[1] for s in spans), max(s[2] for s in spans)
    twice = lo + hi
    jump = a.mins[0][1]
    if type(twice) is int:
        centre: Any = twice // 2 if twice % 2 == 0 else twice / 2
    else:
        centre = plain(Fraction(twice) / 2)
    return (jump if type(jump) is int else plain(jump), lo if type(lo) is int else plain(lo), centre,
            len(spans) == 1 and spans[0][3] is not None)


def _geometry(node: NodeRF) -> tuple[PerAxis, PerAxis, PerAxis, tuple[Optional[bool], ...]]:
    """Jump, offset, centre and alignment per axis, for display."""
    first = _axis_geometry(node[0])
    per_axis = [first] + [first if a is node[0] else _axis_geometry(a) for a in node[1:]]
    return tuple(zip(*per_axis))  # type: ignore[return-value]


def _with_exact(affine: tuple[tuple[Any, ...], tuple[Any, ...]], node: NodeRF,
                exact: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...], PerAxis, tuple[Any, ...]]:
    """(r_min, r_max, offset/centre/aligned) with the exact values where there are some."""
    lo, hi = list(affine[0]), list(affine[1])
    offsets: list[Any] = [a.offset for a in node]
    centres = [a.centre for a in node]
    aligned = [a.aligned for a in node]
    for axis, values in enumerate(exact):
        if values is not None and node[axis].finite:
            lo[axis], hi[axis], offsets[axis], centres[axis], aligned[axis] = values
    return tuple(lo), tuple(hi), for_display(offsets), (for_display(centres), tuple(aligned))


@without_gc
def analyze_graph(graph: Graph, resolution: ResolutionLike, model: str | None = None,
                  exact: bool | None = None) -> Analysis:
    """Analyze a `Graph` at ``resolution``: its `Analysis` (see `rfa_toolbox.analyze`).

    Where upsampling, transposed convolutions or adaptive pooling occur, r_min and r_max are
    computed position by position at this resolution (exact integers; ``exact=False`` keeps
    the standard estimate), and the estimate is kept beside them."""
    res = parse_resolution(resolution, graph.ndim)
    resampling = [layer.name for layer in graph if layer.position_dependent]
    use_exact = bool(resampling) if exact is None else exact and bool(resampling)
    sizes = None  # only when needed now: "same" padding to resolve, or exact values
    if use_exact or any(layer.meta.get("same") for layer in graph):
        sizes, resolved = spatial_sizes(graph, res)
        if resolved:
            graph = graph.copy()
            for layer in resolved.values():
                graph.replace(layer)
    too_long = use_exact and sizes is not None and any(
        s is not None and s > MAX_UNITS for per_axis in sizes.values() for s in per_axis)
    if too_long:  # position by position would take arrays of that length per layer: the estimate
        use_exact = False
    rf = propagate(graph)
    exact_values, output_tracks = _exact_values(graph, sizes) if use_exact and sizes is not None else ({}, {})
    # A node's sets are shared with every node that leaves them unchanged (norms, activations,
    # 1x1 convs, single-input merges): describe each distinct one once, keyed by id (rf keeps
    # them alive), unless exact values (per node) replace them.
    seen: dict[Any, tuple[Any, ...]] = {}
    by_name: dict[str, tuple[Any, ...]] = {}
    rows = []
    for layer, sources in graph.nodes_with_inputs():
        node = rf[layer.name]
        values = exact_values.get(layer.name) if exact_values else None
        key = id(node) if values is None else (id(node), layer.name)
        info = seen.get(key)
        if info is None:
            info = seen[key] = _describe(node, values)
        by_name[layer.name] = info
        inputs: Optional[PerAxis]
        exact_inputs: Optional[tuple[Any, ...]]
        if not sources:
            inputs = exact_inputs = None
        elif len(sources) == 1:  # every input precedes its node in topological order
            source = by_name[next(iter(sources))]
            exact_inputs, inputs = source[0], source[2]
        else:
            exact_inputs = fold_axes([by_name[p][0] for p in sources], min)
            inputs = for_display(exact_inputs)
        jump, offset, centre, aligned = info[4]
        rows.append(LayerResult(
            name=layer.name, module=layer.module, op=layer.op, kernel=layer.kernel or None,
            stride=tuple(map(plain, layer.stride)) or None, dilation=layer.dilation or None,
            r_min=info[2], r_max=info[3], input_r_min=inputs,
            status=status_of(layer, info[0], exact_inputs, res), shape=layer.shape, computes=layer.computes,
            jump=jump, offset=offset, centre=centre, aligned=aligned, r_min_rule=info[5], r_max_rule=info[6],
        ))
    infos = list(seen.values())
    exact_r = fold_axes([info[0] for info in infos], max, graph.ndim)
    max_resolution = for_display(fold_axes([info[1] for info in infos], max, graph.ndim))
    notes = list(graph.notes)
    if resampling:
        shown = ", ".join(resampling[:5]) + (f" and {len(resampling) - 5} more" if len(resampling) > 5 else "")
        notes.append((RESAMPLING_NOTE if use_exact else ESTIMATE_NOTE).format(layers=shown))
    if too_long:
        notes.append(f"an axis is longer than {MAX_UNITS:,} units at this resolution, so r_min and r_max"
                     " after resampling are the standard estimate, not computed position by position")
    report = Report(
        model=model or graph.name, resolution=res, r=for_display(exact_r), max_resolution=max_resolution,
        fully_utilized=fully_utilized(exact_r, res), layers=rows, unknown_ops=list(graph.unknown_ops),
        notes=notes, exact=use_exact, context_layers=_context_layers(graph, rf),
    )
    report.locator = Locator(graph, rf, res, sizes, use_exact, output_tracks)
    return Analysis(graph, rf, report)


def _describe(node: NodeRF, exact: Optional[tuple[Any, ...]]) -> tuple[Any, ...]:
    """(exact r_min, exact r_max, shown r_min, shown r_max, geometry, rule r_min, rule r_max);
    the rule's values only where exact values replace them."""
    rule = (tuple(a.r_min for a in node), tuple(a.r_max for a in node))
    if exact is None:
        return (rule[0], rule[1], for_display(rule[0]), for_display(rule[1]), _geometry(node), None, None)
    lo, hi, offset, (centre, aligned) = _with_exact(rule, node, exact)
    jump = for_display(a.jump for a in node)
    return (lo, hi, for_display(lo), for_display(hi), (jump, offset, centre, aligned),
            for_display(rule[0]), for_display(rule[1]))


def _context_layers(graph: Graph, rf: dict[str, NodeRF]) -> list[str]:
    """Computing layers with an infinite receptive field from which a finite layer is reached.

    Only the successors of infinite layers are looked at (a classifier's head: two layers)."""
    reaches: dict[str, bool] = {}
    for name in reversed(graph.topological_order()):
        if not _finite(rf[name]):  # its infinite successors come later: already known
            reaches[name] = any(_finite(rf[s]) or reaches[s] for s in graph.successors(name))
    return [layer.name for layer in graph if layer.computes and reaches.get(layer.name, False)]


def _finite(node: tuple[AxisRF, ...]) -> bool:
    return any(a.finite for a in node)
