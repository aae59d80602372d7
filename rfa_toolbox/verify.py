"""Verifying and ranking edits: every candidate of `rfa_toolbox.edits` is applied and its
receptive fields are computed again, exactly, before it is suggested.

Stride, patch and kernel edits keep the structure: only the nodes from the first edited one
on are propagated again (`rfa_toolbox.receptive_field.repropagate`), and r, the maximum
resolution and the MACs of the unchanged prefix are read from sums and maxima computed once.
Removals change the structure and are propagated in full. At most ``budget`` candidates are
verified, in the order single edits, stem kernels, removals, pairs of sites; pairs are skipped
when enough single edits already make the model fully utilized. So the cost is at most
``budget`` passes over the graph: linear in its size.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any, Optional

from .analysis import Analysis, PerAxis, fold_axes, fully_utilized
from .edits import (
    Edit,
    EditKind,
    Suggestion,
    _remove_edit,
    _stem_kernel_edits,
    _stride_edits,
    apply_to_graph,
    changed_layers,
    downsampling_sites,
    jump_of,
    layer_macs,
    removable_modules,
    total_params,
)
from .graph import Graph, Number, plain
from .receptive_field import NodeRF, repropagate, without_gc

#: Candidates verified at most per model; above it a note says how many were left out.
BUDGET = 64

ADAPTIVE_NOTE = ("an estimate: the adaptive pooling ({}) adapts its window to the feature-map"
                 " size, which this edit changes; analyze the edited model to confirm")

Extremes = tuple[Optional[Number], ...]


def _extremes(node: NodeRF) -> tuple[Extremes, Extremes]:
    return tuple(a.r_min for a in node), tuple(a.r_max for a in node)


def _fold(a: Extremes, b: Extremes) -> Extremes:
    return fold_axes([a, b], max)


class _Baseline:
    """What every candidate shares: per position in topological order, the largest r_min and
    r_max of the nodes before it, and the MACs of the nodes before it."""

    def __init__(self, analysis: Analysis):
        graph, rf = analysis.graph, analysis.rf
        self.graph, self.rf = graph, rf
        self.resolution = analysis.report.resolution
        ndim = graph.ndim
        lo: Extremes = (None,) * ndim
        hi: Extremes = (None,) * ndim
        macs, known = 0, False
        self.lo, self.hi, self.macs, self.macs_known = [lo], [hi], [0], [False]
        for layer, _ in graph.nodes_with_inputs():
            node_lo, node_hi = _extremes(rf[layer.name])
            lo, hi = _fold(lo, node_lo), _fold(hi, node_hi)
            m = layer_macs(layer)
            if m is not None:
                macs, known = macs + m, True
            self.lo.append(lo)
            self.hi.append(hi)
            self.macs.append(macs)
            self.macs_known.append(known)
        self.total_macs = macs if known else None
        self.params = total_params(graph)


def _scaled(graph: Graph, base: dict[str, NodeRF], after: dict[str, NodeRF], names: Any,
            kernel_scale: dict[str, float]) -> tuple[float, bool]:
    """MACs of the layers ``names`` after an edit: output positions scale with 1/jump."""
    total, known = 0.0, False
    for name in names:
        macs = layer_macs(graph[name])
        if macs is None:
            continue
        known = True
        factor: float = kernel_scale.get(name, 1.0)
        for j0, j1 in zip(jump_of(base[name]), jump_of(after[name])):
            if j0 and j1:
                factor *= float(j0) / float(j1)
        total += macs * factor
    return total, known


def _kernel_scale(edits: list[Edit]) -> dict[str, float]:
    return {n: math.prod(e.after[n]) / math.prod(e.before[n])
            for e in edits if e.kind in (EditKind.KERNEL, EditKind.PATCH) for n in e.layers}


def _verify(base: _Baseline, edits: list[Edit]) -> tuple[Extremes, Extremes, Optional[int]]:
    """(r_min maxima, r_max maxima, MACs) of the graph with ``edits`` applied."""
    graph, scale = base.graph, _kernel_scale(edits)
    changed = changed_layers(graph, edits)
    start = min(graph.position(n) for n in changed)
    suffix = repropagate(graph, base.rf, changed)
    lo, hi = _largest(suffix.values(), graph.ndim)
    lo, hi = _fold(lo, base.lo[start]), _fold(hi, base.hi[start])
    removed = {n for e in edits if e.kind is EditKind.REMOVE for n in e.layers}
    total, known = _scaled(graph, base.rf, suffix, [n for n in suffix if n not in removed], scale)
    total += base.macs[start]
    known = known or base.macs_known[start]
    return lo, hi, round(total) if known else None


def _largest(nodes: Any, ndim: int) -> tuple[Extremes, Extremes]:
    """Per axis, the largest r_min and the largest r_max over ``nodes`` (None: all infinite)."""
    lo: list[Optional[Number]] = [None] * ndim
    hi: list[Optional[Number]] = [None] * ndim
    for node in {id(n): n for n in nodes}.values():  # nodes that change nothing share their sets
        for a, axis in enumerate(node):
            if axis.mins:
                r_min, r_max = axis.mins[0][0], axis.maxs[0][0]
                if lo[a] is None or r_min > lo[a]:
                    lo[a] = r_min
                if hi[a] is None or r_max > hi[a]:
                    hi[a] = r_max
    return tuple(lo), tuple(hi)


def _widening(graph: Graph, rf: dict[str, NodeRF], removed: list[str]) -> dict[str, int]:
    """New output widths of the stage before the removed layers that keep the parameter count
    (conv parameters grow with the square of the width)."""
    removed_set = set(removed)
    order = graph.topological_order()
    first = min(graph.position(n) for n in removed)
    before = [n for n in order[:first] if graph[n].computes and graph[n].out_channels
              and graph[n].params and n not in removed_set]
    gone = sum(graph[n].params or 0 for n in removed)
    if not before or not gone:
        return {}
    stage_jump = jump_of(rf[before[-1]])
    stage = [n for n in before if jump_of(rf[n]) == stage_jump]
    kept = sum(graph[n].params or 0 for n in stage)
    scale = math.sqrt((kept + gone) / kept)
    return {n: max(8, int(round((graph[n].out_channels or 0) * scale / 8)) * 8) for n in stage}


def _distance(r: PerAxis, resolution: tuple[int, ...]) -> float:
    """How far r is below R (the smallest margin over the axes); infinite when not below."""
    margins = [R - v for v, R in zip(r, resolution) if v is not None]
    return min(margins) if margins and min(margins) > 0 else math.inf


def _suggestion(base: _Baseline, edits: list[Edit], adaptive: list[str]) -> Suggestion:
    graph = base.graph
    lo, hi, macs_after = _verify(base, edits)
    scale = _kernel_scale(edits)
    params_after = base.params
    removed = [n for e in edits if e.kind is EditKind.REMOVE for n in e.layers]
    widths: dict[str, int] = {}
    if removed:
        widths = _widening(graph, base.rf, removed)
        if not widths and params_after is not None:  # without widening the parameters go
            params_after -= sum(graph[n].params or 0 for n in removed)
    elif params_after is not None and scale:
        params_after -= sum(round((graph[n].params or 0) * (1 - s)) for n, s in scale.items())
    notes = [ADAPTIVE_NOTE.format(", ".join(adaptive[:3]))] if adaptive and any(
        e.kind is not EditKind.KERNEL for e in edits) else []
    r = tuple(None if v is None else plain(v) for v in lo)
    max_resolution = tuple(None if v is None else plain(v) for v in hi)
    return Suggestion(edits, r, max_resolution, fully_utilized(lo, base.resolution), base.params,
                      params_after, base.total_macs, macs_after, widths, notes)


def _singles(analysis: Analysis) -> tuple[list[list[Edit]], Iterator[list[Edit]], int]:
    """(single-edit candidates in order, an iterator of pairs of sites, the number of pairs)."""
    graph = analysis.graph
    site_edits = [_stride_edits(graph, site) for site in downsampling_sites(graph, analysis.rf)]
    singles = [[edit] for edits in site_edits for edit in edits]
    singles += [[edit] for edit in _stem_kernel_edits(graph)]
    groups = removable_modules(analysis)
    if groups:
        singles.append([_remove_edit(graph, groups)])
        if len(groups) > 1:  # the last first: the shortest to verify, and often just enough
            singles += [[_remove_edit(graph, [group])] for group in reversed(groups)]
    pairs = ([ea, eb] for a, b in itertools.combinations(range(len(site_edits)), 2)
             for ea in site_edits[a] for eb in site_edits[b])
    count = sum(len(site_edits[a]) * len(site_edits[b])
                for a, b in itertools.combinations(range(len(site_edits)), 2))
    return singles, pairs, count


@without_gc
def rank_suggestions(analysis: Analysis, limit: int = 10, budget: int = BUDGET,
                     notes: Optional[list[str]] = None) -> list[Suggestion]:
    """Ranked, verified suggestions for the analyzed model: fully utilized first, then fewest
    edits, then r closest below R (just enough), then the smallest MACs increase. A model that
    is already fully utilized gets none. At most ``budget`` candidates are verified; when some
    are left out, a sentence saying so is appended to ``notes``."""
    report = analysis.report
    if report.fully_utilized:
        return []
    base = _Baseline(analysis)
    adaptive = [layer.name for layer in analysis.graph if layer.op.startswith("adaptive_")]
    singles, pairs, pair_count = _singles(analysis)
    out = [_suggestion(base, edits, adaptive) for edits in singles[:budget]]
    enough = sum(s.fully_utilized for s in out) >= limit
    if not enough:
        out += [_suggestion(base, edits, adaptive) for edits in itertools.islice(pairs, budget - len(out))]
    tried = len(out)
    total = len(singles) + (0 if enough else pair_count)
    if tried < total and notes is not None:
        notes.append(f"suggestions: {tried} of {total} candidate edits were verified (the budget is"
                     f" {budget}); the others were not tried")
    macs = base.total_macs or 0

    def rank(s: Suggestion) -> tuple[Any, ...]:
        return (not s.fully_utilized, len(s.edits), _distance(s.r, report.resolution), (s.macs_after or macs) - macs)

    out.sort(key=rank)
    best = out[:limit]
    if report.exact:  # the rules ranked them; the shown ones get the exact values, as the report has
        for s in best:
            _exactly(analysis, s)
        best.sort(key=rank)
    return best


def _exactly(analysis: Analysis, suggestion: Suggestion) -> None:
    """Replace the rules' r, max resolution and verdict of ``suggestion`` by the exact ones."""
    from .analyzer import analyze_graph

    edited = analyze_graph(apply_to_graph(analysis.graph, suggestion.edits), analysis.report.resolution).report
    suggestion.r, suggestion.max_resolution = edited.r, edited.max_resolution
    suggestion.fully_utilized = edited.fully_utilized
