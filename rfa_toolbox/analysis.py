"""Findings for an input resolution: unproductive, underutilized and border layers, r, max resolution."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .graph import Graph, Layer, Number, Transfer, plain
from .receptive_field import NodeRF, input_r_min, propagate
from .resolution import ResolutionLike, parse_resolution

SCHEMA = "rfa-toolbox/report/v1"

OK, UNPRODUCTIVE, UNDERUTILIZED, BORDER, HEAD = "ok", "unproductive", "underutilized", "border", "head"
STATUSES = (OK, UNPRODUCTIVE, UNDERUTILIZED, BORDER, HEAD)
SEVERITY = {OK: 0, HEAD: 0, BORDER: 1, UNDERUTILIZED: 2, UNPRODUCTIVE: 3}

PerAxis = tuple[Optional[float], ...]

RESAMPLING_NOTE = (
    "after upsampling or transposed convolutions ({layers}) receptive fields depend on the"
    " position; the values are the standard estimate, and the exact extent of a unit can differ"
    " from it by about one jump of the coarser level (d jumps after a transposed conv with"
    " dilation d), in either direction"
)


@dataclass
class LayerResult:
    """One layer's receptive field and status; per-axis values are None where infinite."""

    name: str
    module: Optional[str]
    op: str
    kernel: Optional[list]
    stride: Optional[list]
    dilation: Optional[list]
    r_min: PerAxis
    r_max: PerAxis
    input_r_min: Optional[PerAxis]
    status: str
    shape: Optional[list]
    computes: bool

    @property
    def is_finding(self) -> bool:
        """True for unproductive, underutilized and border layers."""
        return self.status in (UNPRODUCTIVE, UNDERUTILIZED, BORDER)


@dataclass
class Report:
    """The analysis of one model at one resolution (see `analyze`)."""

    model: str
    resolution: tuple[int, ...]
    r: PerAxis
    max_resolution: PerAxis
    fully_utilized: bool
    layers: list[LayerResult]
    unknown_ops: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def names(self, status: str) -> list[str]:
        """Names of the layers with ``status``, in topological order."""
        return [row.name for row in self.layers if row.status == status]

    @property
    def unproductive(self) -> list[str]:
        """Layers whose input already sees the whole image on every axis."""
        return self.names(UNPRODUCTIVE)

    @property
    def underutilized(self) -> list[str]:
        """Productive layers whose own r_min reaches the resolution on every axis."""
        return self.names(UNDERUTILIZED)

    @property
    def border(self) -> list[str]:
        """Layers whose r_min reaches the resolution on some axes but not all."""
        return self.names(BORDER)

    @property
    def findings(self) -> list[LayerResult]:
        """Rows of the unproductive, underutilized and border layers."""
        return [row for row in self.layers if row.is_finding]

    def layer(self, name: str) -> LayerResult:
        """The row of the layer called ``name``."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data following the ``rfa-toolbox/report/v1`` schema."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "resolution": list(self.resolution),
            "r": list(self.r),
            "max_resolution": list(self.max_resolution),
            "fully_utilized": self.fully_utilized,
            "layers": [_row_dict(row) for row in self.layers],
            "unproductive": self.unproductive,
            "underutilized": self.underutilized,
            "border": self.border,
            "unknown_ops": list(self.unknown_ops),
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)


def _row_dict(row: LayerResult) -> dict[str, Any]:
    out = asdict(row)
    for key in ("r_min", "r_max", "input_r_min", "shape"):
        if out[key] is not None:
            out[key] = list(out[key])
    return out


def _per_axis(values) -> PerAxis:
    return tuple(None if v is None else plain(v) for v in values)


def status_of(layer: Layer, r_min: PerAxis, inputs: Optional[PerAxis], resolution: tuple[int, ...]) -> str:
    """The status of one layer at ``resolution`` (see the concepts page for the definitions).

    Axes on which every path is infinite (collapsed by a global op) are left out, as heads are.
    """
    finite = [a for a, v in enumerate(r_min) if v is not None]
    if not finite:
        return HEAD
    if not layer.computes:
        return OK
    if inputs is not None and all(inputs[a] >= resolution[a] for a in finite):
        return UNPRODUCTIVE
    reached = [r_min[a] >= resolution[a] for a in finite]
    if all(reached):
        return UNDERUTILIZED
    if any(reached):
        return BORDER
    return OK


def _largest(rf: dict[str, NodeRF], ndim: int, attr: str) -> PerAxis:
    out = []
    for a in range(ndim):
        values = [getattr(node[a], attr) for node in rf.values() if node[a].finite]
        out.append(plain(max(values)) if values else None)
    return tuple(out)


def analyze_graph(graph: Graph, resolution: ResolutionLike, model: str | None = None) -> Report:
    """Analyze a `Graph` at ``resolution``; see `rfa_toolbox.analyze`."""
    res = parse_resolution(resolution, graph.ndim)
    rf = propagate(graph)
    r = _largest(rf, graph.ndim, "r_min")
    rows = []
    for name in graph.topological_order():
        layer = graph[name]
        node = rf[name]
        r_min = _per_axis(a.r_min for a in node)
        inputs = input_r_min(rf, graph, name)
        inputs = None if inputs is None else _per_axis(inputs)
        rows.append(
            LayerResult(
                name=name,
                module=layer.module,
                op=layer.op,
                kernel=list(layer.kernel) or None,
                stride=[plain(s) for s in layer.stride] or None,
                dilation=list(layer.dilation) or None,
                r_min=r_min,
                r_max=_per_axis(a.r_max for a in node),
                input_r_min=inputs,
                status=status_of(layer, r_min, inputs, res),
                shape=list(layer.shape) if layer.shape is not None else None,
                computes=layer.computes,
            )
        )
    resampling = [layer.name for layer in graph if layer.is_resampling]
    notes = []
    if resampling:
        shown = ", ".join(resampling[:5]) + (f" and {len(resampling) - 5} more" if len(resampling) > 5 else "")
        notes.append(RESAMPLING_NOTE.format(layers=shown))
    return Report(
        model=model or graph.name,
        resolution=res,
        r=r,
        max_resolution=_largest(rf, graph.ndim, "r_max"),
        fully_utilized=_fully_utilized(r, res),
        layers=rows,
        unknown_ops=list(graph.unknown_ops),
        notes=notes,
    )


def _fully_utilized(r: PerAxis, resolution: tuple[int, ...]) -> bool:
    return all(v is None or R > v for v, R in zip(r, resolution))


def graph_r(graph: Graph) -> tuple[Number | None, ...]:
    """r per axis (the largest finite r_min), computed with min sets only."""
    rf = propagate(graph, with_max=False)
    return _largest(rf, graph.ndim, "r_min")
