"""Findings for an input resolution: unproductive, underutilized and border layers, r, max resolution."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .errors import GraphError, shown
from .graph import Graph, Layer, Number, TextEnum, plain
from .receptive_field import NodeRF, propagate, without_gc

if TYPE_CHECKING:
    from .edits import Suggestion
    from .levels import OutputField
    from .locate import Locator

SCHEMA = "rfa-toolbox/report/v2"


class Status(TextEnum):
    """What a layer is at a resolution (see the concepts page); in JSON, its value."""

    OK = "ok"                        #: adds context
    UNPRODUCTIVE = "unproductive"    #: its input already sees the whole image on every axis
    UNDERUTILIZED = "underutilized"  #: productive, but its own r_min reaches R on every axis
    BORDER = "border"                #: r_min reaches R on some axes but not all
    HEAD = "head"                    #: infinite receptive field (global pooling, classifier)

    @property
    def severity(self) -> int:
        """0 for ok and head, 1 border, 2 underutilized, 3 unproductive."""
        return _SEVERITY[self]

    @property
    def is_finding(self) -> bool:
        """True for unproductive, underutilized and border."""
        return _SEVERITY[self] > 0


_SEVERITY = {Status.OK: 0, Status.HEAD: 0, Status.BORDER: 1, Status.UNDERUTILIZED: 2,
             Status.UNPRODUCTIVE: 3}

PerAxis = tuple[Optional[float], ...]

RESAMPLING_NOTE = (
    "after upsampling, transposed convolutions or adaptive pooling ({layers}) receptive fields"
    " depend on the position: r_min and r_max are exact (the smallest and largest over all unit"
    " positions, computed position by position at this resolution); the standard estimate is"
    " in r_min_rule and r_max_rule"
)
ESTIMATE_NOTE = (
    "after upsampling, transposed convolutions or adaptive pooling ({layers}) receptive fields"
    " depend on the position; the values are the standard estimate, and the exact extent of a"
    " unit can differ from it by about one jump of the coarser level, in either direction"
)


@dataclass(slots=True)
class LayerResult:
    """One layer's receptive field and status; per-axis values are None where infinite."""

    name: str
    module: Optional[str]
    op: str
    kernel: Optional[tuple[int, ...]]
    stride: Optional[tuple[int | float, ...]]
    dilation: Optional[tuple[int, ...]]
    r_min: PerAxis
    r_max: PerAxis
    input_r_min: Optional[PerAxis]
    status: Status
    shape: Optional[tuple[int, ...]]
    computes: bool
    jump: PerAxis = ()    #: effective stride: input pixels between neighbouring units
    offset: PerAxis = ()  #: first input pixel unit 0 reads (minus google's effective padding)
    centre: PerAxis = ()  #: centre of unit 0's receptive field, in input pixels
    aligned: tuple[Optional[bool], ...] = ()  #: do all paths share one centre (per axis)
    r_min_rule: Optional[PerAxis] = None  #: the standard estimate, where r_min is exact
    r_max_rule: Optional[PerAxis] = None

    @property
    def is_finding(self) -> bool:
        """True for unproductive, underutilized and border layers."""
        return self.status.is_finding


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
    suggestions: Optional[list[Suggestion]] = None  #: verified edits, when asked for
    exact: bool = False  #: r_min and r_max were computed position by position (resampling)
    #: layers of infinite receptive field whose output feeds finite layers again (squeeze-
    #: excitation pools, attention pooling): heads in status, but not the model's head
    context_layers: list[str] = field(default_factory=list)
    locator: Optional[Locator] = field(default=None, repr=False, compare=False)

    def _locate(self) -> Locator:
        if self.locator is None:
            raise GraphError("this report was not made by an analysis, so it cannot locate units")
        return self.locator

    def box(self, layer: str, index: Any) -> list[Optional[dict[str, Any]]]:
        """Where unit ``index`` (one index per axis, or one for every axis) of ``layer`` looks:
        per axis, the union box of all its paths and the box of its smallest path, unclipped
        and clipped to the input (see `rfa_toolbox.locate.Locator.box`)."""
        return self._locate().box(layer, index)

    def centre(self, layer: str, index: Any) -> tuple[Optional[Number], ...]:
        """The centre of the union box of unit ``index`` of ``layer``, per axis."""
        return self._locate().centre(layer, index)

    def units_covering(self, layer: str, position: Any) -> list[Optional[tuple[int, int]]]:
        """Per axis, the first and last unit of ``layer`` whose union box holds the input
        ``position`` (None on an axis where no unit does)."""
        return self._locate().units_covering(layer, position)

    def units(self, layer: str) -> tuple[Optional[int], ...]:
        """The number of units of ``layer`` per axis at this resolution (None where unknown)."""
        return self._locate().units(layer)

    def outputs(self) -> list[OutputField]:
        """Every output of the model (pyramid levels, heads, dict keys, list items) with its
        stride, r_min, r_max, the box of its centre unit and, for detectors, its level's
        largest anchor and whether r_max covers it (see `rfa_toolbox.levels`)."""
        from .levels import output_fields

        return output_fields(self)

    def names(self, status: Status) -> list[str]:
        """Names of the layers with ``status``, in topological order."""
        return [row.name for row in self.layers if row.status == status]

    @property
    def unproductive(self) -> list[str]:
        """Layers whose input already sees the whole image on every axis."""
        return self.names(Status.UNPRODUCTIVE)

    @property
    def underutilized(self) -> list[str]:
        """Productive layers whose own r_min reaches the resolution on every axis."""
        return self.names(Status.UNDERUTILIZED)

    @property
    def border(self) -> list[str]:
        """Layers whose r_min reaches the resolution on some axes but not all."""
        return self.names(Status.BORDER)

    @property
    def findings(self) -> list[LayerResult]:
        """Rows of the unproductive, underutilized and border layers."""
        return [row for row in self.layers if row.is_finding]

    def layer(self, name: str) -> LayerResult:
        """The row of the layer called ``name``."""
        for row in self.layers:
            if row.name == name:
                return row
        import difflib

        close = difflib.get_close_matches(str(name), [row.name for row in self.layers], n=3)
        hint = f"; did you mean {', '.join(map(shown, close))}?" if close else ""
        raise GraphError(f"the report has no layer {shown(name)}{hint}")

    @without_gc  # 100k rows allocate 100k dicts and lists, and free none of them
    def to_dict(self) -> dict[str, Any]:
        """The report as plain data following the ``rfa-toolbox/report/v2`` schema (v1's
        fields, same meaning; per layer also jump, offset, centre, aligned, and the standard
        estimate where the values are exact; per output of the model, see `outputs`)."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "resolution": list(self.resolution),
            "r": list(self.r),
            "max_resolution": list(self.max_resolution),
            "fully_utilized": self.fully_utilized,
            "exact": self.exact,
            "layers": [_row_dict(row, self.exact) for row in self.layers],
            "outputs": [f.to_dict() for f in self.outputs()] if self.locator is not None else [],
            "unproductive": self.unproductive,
            "underutilized": self.underutilized,
            "border": self.border,
            "unknown_ops": list(self.unknown_ops),
            "notes": list(self.notes),
            **({"suggestions": [s.to_dict() for s in self.suggestions]}
               if self.suggestions is not None else {}),
        }

    @without_gc
    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text (see `to_dict`): indented, with one layer (and one output)
        per line (so that large reports are written fast and read well in a diff)."""
        data = self.to_dict()
        if indent is None:
            return json.dumps(data)
        items = {key: data[key] for key in _ONE_PER_LINE}
        for key in _ONE_PER_LINE:
            data[key] = _ONE_PER_LINE[key]
        text = json.dumps(data, indent=indent)
        if any(text.count(json.dumps(mark)) != 1 for mark in _ONE_PER_LINE.values()):
            data.update(items)  # a name that is a placeholder itself
            return json.dumps(data, indent=indent)
        pad = " " * indent
        for key, mark in _ONE_PER_LINE.items():
            rows = items[key]
            lines = ",\n".join(pad * 2 + json.dumps(row) for row in rows)
            listed = f"[\n{lines}\n{pad}]" if rows else "[]"
            text = text.replace(json.dumps(mark), listed, 1)
        return text


#: The lists `Report.to_json` writes one item per line, and their placeholders.
_ONE_PER_LINE = {"layers": "\x00layers\x00", "outputs": "\x00outputs\x00"}


def _row_dict(row: LayerResult, exact: bool) -> dict[str, Any]:
    """One row as plain data, written out field by field (``asdict`` deep-copies every value
    and cost more than the analysis at 50k layers)."""
    data = {"name": row.name, "module": row.module, "op": row.op, "kernel": _listed(row.kernel),
            "stride": _listed(row.stride), "dilation": _listed(row.dilation), "r_min": list(row.r_min),
            "r_max": list(row.r_max), "input_r_min": _listed(row.input_r_min), "status": row.status.value,
            "shape": _listed(row.shape), "computes": row.computes, "jump": list(row.jump),
            "offset": list(row.offset), "centre": list(row.centre), "aligned": list(row.aligned)}
    if exact:
        data["r_min_rule"] = _listed(row.r_min_rule)
        data["r_max_rule"] = _listed(row.r_max_rule)
    return data


def _listed(values: Optional[tuple[Any, ...]]) -> Optional[list[Any]]:
    return None if values is None else list(values)


@dataclass
class Analysis:
    """A graph, its receptive-field sets and its report at one resolution: what every consumer
    (suggestions, diagrams, formats) takes, so that nothing is computed twice."""

    graph: Graph
    rf: dict[str, NodeRF]  #: per node, the min/max sets per axis (`rfa_toolbox.propagate`)
    report: Report

    def diagram(self, depth: int | None = None, rankdir: str = "TB", fold_neutral: bool = True) -> Any:
        """The highlighted graphviz diagram (see `rfa_toolbox.render.render_analysis`)."""
        from .render import render_analysis

        return render_analysis(self, depth=depth, rankdir=rankdir, fold_neutral=fold_neutral)


def for_display(values: Iterable[Number | None]) -> PerAxis:
    """Exact per-axis values as plain numbers for display and JSON (None stays None)."""
    return tuple([v if v is None or type(v) is int else plain(v) for v in values])


def fold_axes(values: Sequence[Sequence[Any]], pick: Callable[[list[Any]], Any],
              ndim: int | None = None) -> tuple[Any, ...]:
    """Per axis, ``pick`` (min or max) over the values that are not None; None on an axis where
    all are (infinite), and on every axis when there are no values (``ndim`` gives the count)."""
    count = len(values[0]) if values else (ndim or 0)
    out = []
    for a in range(count):
        finite = [v[a] for v in values if v[a] is not None]
        out.append(pick(finite) if finite else None)
    return tuple(out)


def status_of(layer: Layer, r_min: Sequence[Number | None], inputs: Optional[Sequence[Number | None]],
              resolution: tuple[int, ...]) -> Status:
    """The status of one layer at ``resolution`` (see the concepts page for the definitions),
    decided on the exact values (ints and Fractions, never values rounded for display).

    Axes on which every path is infinite (collapsed by a global op) are left out, as heads are.
    """
    finite = [a for a, v in enumerate(r_min) if v is not None]
    if not finite:
        return Status.HEAD
    if not layer.computes:
        return Status.OK
    if inputs is not None and all(_reaches(inputs[a], resolution[a]) for a in finite):
        return Status.UNPRODUCTIVE
    reached = [_reaches(r_min[a], resolution[a]) for a in finite]
    if all(reached):
        return Status.UNDERUTILIZED
    if any(reached):
        return Status.BORDER
    return Status.OK


def _reaches(value: Number | None, size: int) -> bool:
    return value is not None and value >= size


def fully_utilized(r: Sequence[Number | float | None], resolution: tuple[int, ...]) -> bool:
    """R > r on every axis (an axis with no finite layer does not count)."""
    return all(v is None or v < R for v, R in zip(r, resolution))


def exact_r(graph: Graph) -> tuple[Number | None, ...]:
    """r per axis (the largest finite r_min), exact, computed with min sets only."""
    rf = propagate(graph, with_max=False)
    distinct = {id(node): node for node in rf.values()}.values()
    return fold_axes([tuple(a.r_min for a in node) for node in distinct], max, graph.ndim)
