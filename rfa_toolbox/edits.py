"""Architecture edits that lower r below the input resolution, each verified on a copy.

Candidates (Richter et al.: just enough change): stride reductions of downsampling layers (one
or two sites at a time; the parallel layers of a site change together so shapes still match),
kernel reductions in the stem, and removal of modules whose layers are all unproductive, with
the widening of the preceding stage that keeps the parameter count. Every candidate is applied
to a copy of the graph and analyzed again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .analysis import Analysis, PerAxis, Status, analyze_graph
from .graph import Graph, Layer, TextEnum, Transfer, plain
from .receptive_field import NodeRF


class EditKind(TextEnum):
    """What an `Edit` changes."""

    STRIDE = "stride"  #: the stride of downsampling layers
    KERNEL = "kernel"  #: the kernel of the stem
    REMOVE = "remove"  #: whole modules, bypassed


@dataclass
class Edit:
    """One change: its ``kind``; ``layers`` the graph nodes it touches; ``before``/``after``
    the per-axis values (stride, kernel) of each layer."""

    kind: EditKind
    layers: list[str]
    description: str
    before: dict[str, list[Any]] = field(default_factory=dict)
    after: dict[str, list[Any]] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = EditKind(self.kind)  # "stride" is accepted for EditKind.STRIDE


@dataclass
class Suggestion:
    """A verified set of edits and what they do to the model."""

    edits: list[Edit]
    r: PerAxis
    max_resolution: PerAxis
    fully_utilized: bool
    params_before: Optional[int]
    params_after: Optional[int]
    macs_before: Optional[int]  #: multiply-accumulates of the convs and dense layers
    macs_after: Optional[int]
    new_widths: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        """The edits in words."""
        return "; ".join(edit.description for edit in self.edits)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report (schema v1 names the MACs ``flops_before`` and
        ``flops_after``)."""
        return {
            "edits": [asdict(edit) for edit in self.edits],
            "r": list(self.r),
            "max_resolution": list(self.max_resolution),
            "fully_utilized": self.fully_utilized,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "flops_before": self.macs_before,
            "flops_after": self.macs_after,
            "new_widths": dict(self.new_widths),
            "notes": list(self.notes),
            "description": self.description,
        }


# -- cost ---------------------------------------------------------------------------------------

def layer_macs(layer: Layer) -> Optional[int]:
    """Multiply-accumulates of a conv or dense layer, from its output shape and channels."""
    if not layer.computes or layer.shape is None or not layer.in_channels or not layer.out_channels:
        return None
    if layer.op == "dense":
        return math.prod(layer.shape) * layer.in_channels
    if layer.op not in ("conv", "conv_transpose"):
        return None
    per_output = (layer.in_channels // (layer.groups or 1)) * math.prod(layer.kernel)
    macs = math.prod(layer.shape) * per_output
    if layer.transfer is Transfer.TRANSPOSED:
        macs = macs // max(1, math.prod(int(s) for s in layer.stride))
    return macs


def total_params(graph: Graph) -> Optional[int]:
    """The parameter count of the graph, when the encoder recorded any."""
    counts = [layer.params for layer in graph if layer.params is not None]
    return sum(counts) if counts else None


def total_macs(graph: Graph) -> Optional[int]:
    """The multiply-accumulates of the graph's convs and dense layers, when shapes are known."""
    counts = [m for m in map(layer_macs, graph) if m is not None]
    return sum(counts) if counts else None


def _jump(node: NodeRF) -> tuple[Any, ...]:
    return tuple(a.mins[0][1] if a.mins else None for a in node)


def _scaled_macs(before: Graph, after: Graph, rf_before: dict[str, NodeRF],
                 rf_after: dict[str, NodeRF], kernel_scale: dict[str, float]) -> Optional[int]:
    """MACs after an edit: a layer's output positions scale with 1/jump on each axis."""
    total, known = 0.0, False
    for layer in after:
        macs = layer_macs(before[layer.name]) if layer.name in before else None
        if macs is None:
            continue
        known = True
        factor: float = kernel_scale.get(layer.name, 1.0)
        for j0, j1 in zip(_jump(rf_before[layer.name]), _jump(rf_after[layer.name])):
            if j0 and j1:
                factor *= float(j0) / float(j1)
        total += macs * factor
    return round(total) if known else None


# -- candidates -------------------------------------------------------------------------------

def _input_jump(graph: Graph, rf: dict[str, NodeRF], name: str) -> Optional[tuple[Any, ...]]:
    preds = graph.predecessors(name)
    return _jump(rf[preds[0]]) if preds else None


def downsampling_sites(graph: Graph, rf: dict[str, NodeRF]) -> list[list[str]]:
    """Strided windows grouped by the jump they start from: the parallel layers of one
    transition (a block's strided conv and its shortcut) share a site and change together."""
    sites: dict[tuple[Any, ...], list[str]] = {}
    for name in graph.topological_order():
        layer = graph[name]
        if layer.transfer is Transfer.WINDOW and layer.computes and any(s > 1 for s in layer.stride):
            key = _input_jump(graph, rf, name)
            if key is not None and None not in key:
                sites.setdefault(key, []).append(name)
    return list(sites.values())


def _stride_edits(graph: Graph, site: list[str]) -> list[Edit]:
    edits = []
    strides = {name: list(graph[name].stride) for name in site}
    changes: tuple[tuple[str, Callable[[Any], Any]], ...] = (
        ("to 1", lambda s: 1), ("halved", lambda s: s // 2 if s >= 4 else s))
    for label, change in changes:
        after = {name: [change(s) if s > 1 else s for s in ss] for name, ss in strides.items()}
        if after != strides and all(all(s >= 1 for s in ss) for ss in after.values()):
            shown = ", ".join(site[:3]) + (f" (+{len(site) - 3})" if len(site) > 3 else "")
            edits.append(Edit(EditKind.STRIDE, list(site), f"stride of {shown} {label}",
                              {n: [plain(s) for s in strides[n]] for n in site},
                              {n: [plain(s) for s in after[n]] for n in site},
                              sorted({m for n in site if (m := graph[n].module)})))
    return edits


def _stem_kernel_edits(graph: Graph) -> list[Edit]:
    for name in graph.topological_order():
        layer = graph[name]
        if layer.transfer is Transfer.WINDOW and layer.computes:
            if max(layer.kernel) <= 3 or layer.op != "conv":
                return []
            edits = []
            for target in sorted({max(3, k - 2) for k in layer.kernel} | {3}, reverse=True):
                new = [min(k, target) if k > 3 else k for k in layer.kernel]
                if new != list(layer.kernel) and all(k >= s for k, s in zip(new, layer.stride)):
                    shown = f"{'x'.join(map(str, layer.kernel))} -> {'x'.join(map(str, new))}"
                    edits.append(Edit(EditKind.KERNEL, [name], f"stem kernel of {name} {shown}",
                                      {name: list(layer.kernel)}, {name: new},
                                      [layer.module] if layer.module else []))
            return edits
    return []


def _module_of(layer: Layer) -> str:
    return layer.module or layer.name


def removable_modules(analysis: Analysis) -> list[list[str]]:
    """Node groups of the largest modules whose computing layers are all unproductive."""
    graph = analysis.graph
    status = {row.name: row.status for row in analysis.report.layers}
    members: dict[str, list[str]] = {}
    for name in graph.topological_order():
        parts = _module_of(graph[name]).split(".")
        for depth in range(1, len(parts) + 1):
            members.setdefault(".".join(parts[:depth]), []).append(name)
    bad = {m for m, names in members.items()
           if any(graph[n].computes for n in names)
           and all(status[n] is Status.UNPRODUCTIVE for n in names
                   if graph[n].computes and status[n] is not Status.HEAD)
           and not any(status[n] is Status.HEAD for n in names)}
    maximal = [m for m in bad if not any(m.startswith(p + ".") for p in bad)]
    order = {name: i for i, name in enumerate(graph.topological_order())}
    groups = [members[m] for m in maximal if _keeps_shape(graph, members[m])]
    return sorted(groups, key=lambda names: order[names[0]])


def _keeps_shape(graph: Graph, names: list[str]) -> bool:
    """Can the nodes be bypassed: same shape in and out (or shapes unknown)?"""
    sources = graph.predecessors(names[0])
    before = graph[sources[0]].shape if sources else None
    after = graph[names[-1]].shape
    return before is None or after is None or before == after


def _remove_edit(graph: Graph, groups: list[list[str]]) -> Edit:
    names = [n for group in groups for n in group]
    modules = sorted({_common_module(graph, group) for group in groups})
    return Edit(EditKind.REMOVE, names, f"remove {', '.join(modules[:4])}"
                + (f" (+{len(modules) - 4})" if len(modules) > 4 else "")
                + " (all unproductive)", modules=modules)


def _common_module(graph: Graph, group: list[str]) -> str:
    paths = [_module_of(graph[n]).split(".") for n in group]
    common = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return ".".join(common) or group[0]


# -- applying edits to a graph ------------------------------------------------------------------

def apply_to_graph(graph: Graph, edits: list[Edit]) -> Graph:
    """A copy of ``graph`` with ``edits`` applied (strides and kernels set, modules bypassed)."""
    out = graph.copy()
    for edit in edits:
        if edit.kind is EditKind.STRIDE:
            for name in edit.layers:
                out.replace(out[name].with_changes(stride=tuple(edit.after[name])))
        elif edit.kind is EditKind.KERNEL:
            for name in edit.layers:
                out.replace(out[name].with_changes(kernel=tuple(edit.after[name])))
        elif edit.kind is EditKind.REMOVE:
            for name in edit.layers:
                out.bypass(name)
    return out


def _widening(graph: Graph, rf: dict[str, NodeRF], removed: list[str]) -> dict[str, int]:
    """New output widths of the stage before the removed layers that keep the parameter count
    (conv parameters grow with the square of the width)."""
    removed_set = set(removed)
    order = graph.topological_order()
    first = min(order.index(n) for n in removed)
    before = [n for n in order[:first] if graph[n].computes and graph[n].out_channels
              and graph[n].params and n not in removed_set]
    gone = sum(graph[n].params or 0 for n in removed)
    if not before or not gone:
        return {}
    stage_jump = _jump(rf[before[-1]])
    stage = [n for n in before if _jump(rf[n]) == stage_jump]
    kept = sum(graph[n].params or 0 for n in stage)
    scale = math.sqrt((kept + gone) / kept)
    return {n: max(8, int(round((graph[n].out_channels or 0) * scale / 8)) * 8) for n in stage}


ADAPTIVE_NOTE = ("an estimate: the adaptive pooling ({}) adapts its window to the feature-map"
                 " size, which this edit changes; analyze the edited model to confirm")


# -- the search -------------------------------------------------------------------------------

def _distance(r: tuple[Any, ...], resolution: tuple[int, ...]) -> float:
    """How far r is below R (the smallest margin over the axes); infinite when not below."""
    margins = [R - v for v, R in zip(r, resolution) if v is not None]
    return min(margins) if margins and min(margins) > 0 else math.inf


def rank_suggestions(analysis: Analysis, limit: int = 10) -> list[Suggestion]:
    """Ranked, verified suggestions for the analyzed model: fully utilized first, then fewest
    edits, then r closest below R (just enough), then the smallest MACs increase. A model that
    is already fully utilized gets none."""
    graph, rf, report = analysis.graph, analysis.rf, analysis.report
    if report.fully_utilized:
        return []
    candidates: list[list[Edit]] = []
    site_edits = [_stride_edits(graph, site) for site in downsampling_sites(graph, rf)]
    singles = [edit for edits in site_edits for edit in edits]
    candidates += [[edit] for edit in singles]
    for a, b in itertools.combinations(range(len(site_edits)), 2):
        candidates += [[ea, eb] for ea in site_edits[a] for eb in site_edits[b]]
    candidates += [[edit] for edit in _stem_kernel_edits(graph)]
    groups = removable_modules(analysis)
    if groups:
        candidates += [[_remove_edit(graph, groups)]]
        if len(groups) > 1:
            candidates += [[_remove_edit(graph, [group])] for group in groups]
    params, macs = total_params(graph), total_macs(graph)
    adaptive = [layer.name for layer in graph if layer.op.startswith("adaptive_")]
    out = []
    for edits in candidates:
        edited = analyze_graph(apply_to_graph(graph, edits), report.resolution, model=report.model)
        after = edited.report
        kernel_scale = {n: math.prod(e.after[n]) / math.prod(e.before[n])
                        for e in edits if e.kind is EditKind.KERNEL for n in e.layers}
        widths = {}
        params_after = total_params(edited.graph)
        macs_after = _scaled_macs(graph, edited.graph, rf, edited.rf, kernel_scale)
        removed = [n for e in edits if e.kind is EditKind.REMOVE for n in e.layers]
        if removed:
            widths = _widening(graph, rf, removed)
            if widths and params is not None:
                params_after = params  # the widening gives the removed parameters back
        elif params_after is not None and kernel_scale:
            params_after = params_after - sum(
                round((graph[n].params or 0) * (1 - s)) for n, s in kernel_scale.items())
        notes = [ADAPTIVE_NOTE.format(", ".join(adaptive[:3]))] if adaptive and any(
            e.kind is not EditKind.KERNEL for e in edits) else []
        out.append(Suggestion(edits, after.r, after.max_resolution, after.fully_utilized,
                              params, params_after, macs, macs_after, widths, notes))
    base = macs or 0
    out.sort(key=lambda s: (not s.fully_utilized, len(s.edits), _distance(s.r, report.resolution),
                            (s.macs_after or base) - base))
    return out[:limit]
