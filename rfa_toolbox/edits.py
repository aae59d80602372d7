"""Architecture edits that lower r below the input resolution: what they are, the candidates
for a graph, and how they apply to a graph (`rfa_toolbox.verify` checks and ranks them).

Candidates (Richter et al.: just enough change): stride reductions of downsampling layers (one
or two sites at a time; the parallel layers of a site change together so shapes still match),
smaller patches for patchify layers (kernel and stride reduced together), kernel reductions in
the stem, and removal of modules whose layers are all unproductive, with the widening of the
preceding stage that keeps the parameter count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .analysis import Analysis, PerAxis, Status
from .graph import Graph, Layer, TextEnum, Transfer, plain
from .receptive_field import NodeRF


class EditKind(TextEnum):
    """What an `Edit` changes."""

    STRIDE = "stride"  #: the stride of downsampling layers
    PATCH = "patch"    #: kernel and stride of a patchify layer (kernel = stride), together
    KERNEL = "kernel"  #: the kernel of the stem
    REMOVE = "remove"  #: whole modules, bypassed


@dataclass
class Edit:
    """One change: its ``kind``; ``layers`` the graph nodes it touches; ``before``/``after``
    the per-axis values of each layer (the stride, the kernel, or for a patch both: they are
    equal)."""

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
        """Plain data for JSON (the suggestions schema; the report schema v1 names the MACs
        ``flops_before`` and ``flops_after``, see `Report.to_dict`)."""
        return {
            "edits": [asdict(edit) for edit in self.edits],
            "r": list(self.r),
            "max_resolution": list(self.max_resolution),
            "fully_utilized": self.fully_utilized,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "macs_before": self.macs_before,
            "macs_after": self.macs_after,
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


def jump_of(node: NodeRF) -> tuple[Any, ...]:
    """The jump of the smallest path per axis (None where every path is infinite)."""
    return tuple(a.mins[0][1] if a.mins else None for a in node)


# -- candidates -------------------------------------------------------------------------------

def _input_jump(graph: Graph, rf: dict[str, NodeRF], name: str) -> Optional[tuple[Any, ...]]:
    preds = graph.predecessors(name)
    return jump_of(rf[preds[0]]) if preds else None


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


def _halved(s: Any) -> Any:
    return s // 2 if s >= 4 else s


def _stride_edits(graph: Graph, site: list[str]) -> list[Edit]:
    """Stride to 1 and stride halved for a site; for a patchify site (every strided layer has
    its kernel equal to its stride), also the patch halved: kernel and stride together."""
    edits = []
    strides = {name: list(graph[name].stride) for name in site}
    shown = ", ".join(site[:3]) + (f" (+{len(site) - 3})" if len(site) > 3 else "")
    modules = sorted({m for n in site if (m := graph[n].module)})
    changes: tuple[tuple[str, Callable[[Any], Any]], ...] = (("to 1", lambda s: 1), ("halved", _halved))
    for label, change in changes:
        after = {name: [change(s) if s > 1 else s for s in ss] for name, ss in strides.items()}
        if after != strides and all(all(s >= 1 for s in ss) for ss in after.values()):
            edits.append(Edit(EditKind.STRIDE, list(site), f"stride of {shown} {label}",
                              {n: [plain(s) for s in strides[n]] for n in site},
                              {n: [plain(s) for s in after[n]] for n in site}, modules))
    if all(list(graph[n].kernel) == strides[n] for n in site):
        patch = {name: [_halved(s) if s > 1 else s for s in ss] for name, ss in strides.items()}
        if patch != strides:
            sizes = "x".join(map(str, strides[site[0]])) + " -> " + "x".join(map(str, patch[site[0]]))
            edits.append(Edit(EditKind.PATCH, list(site), f"patch of {shown} {sizes} (kernel and stride)",
                              {n: [plain(s) for s in strides[n]] for n in site},
                              {n: [plain(s) for s in patch[n]] for n in site}, modules))
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
    """Node groups of the largest modules whose computing layers are all unproductive, in
    topological order (linear in the graph times the depth of the module paths)."""
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
    maximal = [m for m in bad if not any(".".join(m.split(".")[:d]) in bad for d in range(1, m.count(".") + 1))]
    groups = [members[m] for m in maximal if _keeps_shape(graph, members[m])]
    return sorted(groups, key=lambda names: graph.position(names[0]))


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
    """A copy of ``graph`` with ``edits`` applied (strides, patches and kernels set, modules
    bypassed)."""
    out = graph.copy()
    for edit in edits:
        if edit.kind is EditKind.REMOVE:
            for name in edit.layers:
                out.bypass(name)
        else:
            for layer in changed_layers(out, [edit]).values():
                out.replace(layer)
    return out


def changed_layers(graph: Graph, edits: list[Edit]) -> dict[str, Layer]:
    """The layers that ``edits`` replace. A removed layer becomes a neutral pass-through, which
    has the receptive fields of bypassing it (its inputs feed its consumers)."""
    out: dict[str, Layer] = {}
    for edit in edits:
        for name in edit.layers:
            values = tuple(edit.after.get(name, ()))
            layer = out.get(name, graph[name])
            if edit.kind is EditKind.REMOVE:
                out[name] = layer.with_changes(transfer=Transfer.NEUTRAL, computes=False)
            elif edit.kind is EditKind.STRIDE:
                out[name] = layer.with_changes(stride=values)
            elif edit.kind is EditKind.KERNEL:
                out[name] = layer.with_changes(kernel=values)
            elif edit.kind is EditKind.PATCH:
                out[name] = layer.with_changes(kernel=values, stride=values)
    return out
