"""Passes over an encoded graph that need more than one op at a time (run by the PyTorch and
the ONNX encoders alike)."""

from __future__ import annotations

from typing import Optional

from rfa_toolbox.graph import Graph


def _slice_chain(graph: Graph, name: str) -> Optional[tuple[str, list[str]]]:
    """(source, strided slice nodes) when ``name`` is a chain of slices of one tensor."""
    chain = []
    while graph[name].op == "slice":  # strided ones, and full-range ones (x[..., ::2, :])
        if "offset" in graph[name].meta:
            chain.append(name)
        sources = graph.predecessors(name)
        if len(sources) != 1:
            return None
        name = sources[0]
    return (name, chain) if chain else None


def join_space_to_depth(graph: Graph) -> None:
    """Strided slices of one tensor at different offsets, concatenated (space-to-depth: Swin's
    patch merging, YOLO's Focus), together read a window as wide as their offsets span; each
    slice gets that window, so the concatenation has the receptive field of the whole block."""
    for name in list(graph.topological_order()):
        if graph[name].op != "concat":
            continue
        found = [_slice_chain(graph, p) for p in graph.predecessors(name)]
        chains = [c for c in found if c is not None]
        if len(chains) < 2 or len(chains) != len(found) or len({source for source, _ in chains}) != 1:
            continue
        offsets: dict[int, set[int]] = {}
        for _, chain in chains:
            for node in chain:
                for axis, start in graph[node].meta["offset"].items():
                    offsets.setdefault(axis, set()).add(start)
        for _, chain in chains:
            for node in chain:
                layer = graph[node]
                kernel = list(layer.kernel)
                padding = list(layer.padding or (0,) * len(kernel))
                for axis in layer.meta["offset"]:
                    kernel[axis] = max(offsets[axis]) - min(offsets[axis]) + 1
                    padding[axis] = -min(offsets[axis])  # every slice now reads the whole block
                graph.replace(layer.with_changes(kernel=tuple(kernel), padding=tuple(padding), op="space_to_depth"))
