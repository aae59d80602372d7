"""Findings for an input resolution: unproductive, underutilized and border layers, r, max resolution."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .graph import Graph, Layer, plain
from .receptive_field import propagate, without_gc
from .resolution import ResolutionLike, parse_resolution

SCHEMA = "rfa-toolbox/report/v1"

OK, UNPRODUCTIVE, UNDERUTILIZED, BORDER, HEAD = "ok", "unproductive", "underutilized", "border", "head"
SEVERITY = {OK: 0, HEAD: 0, BORDER: 1, UNDERUTILIZED: 2, UNPRODUCTIVE: 3}

PerAxis = tuple[Optional[float], ...]

RESAMPLING_NOTE = (
    "after upsampling or transposed convolutions ({layers}) receptive fields depend on the"
    " position; the values are the standard estimate, and the exact extent of a unit can differ"
    " from it by about one jump of the coarser level (d jumps after a transposed conv with"
    " dilation d), in either direction"
)


@dataclass(slots=True)
class LayerResult:
    """One layer's receptive field and status; per-axis values are None where infinite."""

    name: str
    module: Optional[str]
    op: str
    kernel: Optional[tuple]
    stride: Optional[tuple]
    dilation: Optional[tuple]
    r_min: PerAxis
    r_max: PerAxis
    input_r_min: Optional[PerAxis]
    status: str
    shape: Optional[tuple]
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
    suggestions: Optional[list] = None  #: verified edits (`rfa_toolbox.suggest.Suggestion`), when asked for

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
            **({"suggestions": [s.to_dict() for s in self.suggestions]}
               if self.suggestions is not None else {}),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (see `to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent)


def _row_dict(row: LayerResult) -> dict[str, Any]:
    out = asdict(row)
    for key in ("kernel", "stride", "dilation", "r_min", "r_max", "input_r_min", "shape"):
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


def _largest_of(values: list[tuple], ndim: int) -> PerAxis:
    """Per axis, the largest value that is not None (None when there is none), for display."""
    out = []
    for a in range(ndim):
        finite = [v[a] for v in values if v[a] is not None]
        out.append(plain(max(finite)) if finite else None)
    return tuple(out)


@without_gc
def analyze_graph(graph: Graph, resolution: ResolutionLike, model: str | None = None) -> Report:
    """Analyze a `Graph` at ``resolution``; see `rfa_toolbox.analyze`."""
    res = parse_resolution(resolution, graph.ndim)
    rf = propagate(graph)
    layers = graph._layers
    pred = graph.nx._pred  # plain dicts: nx.pred[name] builds a view per call
    # A node's sets are shared with every node that leaves them unchanged (norms, activations,
    # 1x1 convs, single-input merges): describe each distinct one once, keyed by id (rf keeps
    # them alive). Per entry: raw r_min, raw r_max, and both for display.
    seen: dict[int, tuple[tuple, tuple, PerAxis, PerAxis]] = {}
    rows = []
    for name in graph.topological_order():
        layer = layers[name]
        node = rf[name]
        info = seen.get(id(node))
        if info is None:
            lo = tuple(a.r_min for a in node)
            hi = tuple(a.r_max for a in node)
            info = seen[id(node)] = (lo, hi, _per_axis(lo), _per_axis(hi))
        sources = pred[name]
        if not sources:
            inputs = None
        elif len(sources) == 1:  # every input precedes its node in topological order
            inputs = seen[id(rf[next(iter(sources))])][2]
        else:
            feeds = [seen[id(rf[p])][0] for p in sources]
            inputs = _per_axis(
                min((v for v in axis if v is not None), default=None) for axis in zip(*feeds)
            )
        r_min = info[2]
        rows.append(
            LayerResult(
                name=name,
                module=layer.module,
                op=layer.op,
                kernel=layer.kernel or None,
                stride=tuple(map(plain, layer.stride)) or None,
                dilation=layer.dilation or None,
                r_min=r_min,
                r_max=info[3],
                input_r_min=inputs,
                status=status_of(layer, r_min, inputs, res),
                shape=layer.shape,
                computes=layer.computes,
            )
        )
    r = _largest_of([info[0] for info in seen.values()], graph.ndim)
    max_resolution = _largest_of([info[1] for info in seen.values()], graph.ndim)
    resampling = [layer.name for layer in graph if layer.is_resampling]
    notes = []
    if resampling:
        shown = ", ".join(resampling[:5]) + (f" and {len(resampling) - 5} more" if len(resampling) > 5 else "")
        notes.append(RESAMPLING_NOTE.format(layers=shown))
    return Report(
        model=model or graph.name,
        resolution=res,
        r=r,
        max_resolution=max_resolution,
        fully_utilized=fully_utilized(r, res),
        layers=rows,
        unknown_ops=list(graph.unknown_ops),
        notes=notes,
    )


def fully_utilized(r: PerAxis, resolution: tuple[int, ...]) -> bool:
    """R > r on every axis (an axis with no finite layer does not count)."""
    return all(v is None or R > v for v, R in zip(r, resolution))


def graph_r(graph: Graph) -> PerAxis:
    """r per axis (the largest finite r_min, as plain numbers), computed with min sets only."""
    rf = propagate(graph, with_max=False)
    distinct = {id(node): node for node in rf.values()}.values()
    return _largest_of([tuple(a.r_min for a in node) for node in distinct], graph.ndim)
