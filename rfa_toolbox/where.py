"""Answers to "where does this unit look" for people and programs: the units asked about, their
boxes per axis as a table or JSON (schema ``rfa-toolbox/locate/v1``), and the units that look at
an input pixel. `rfa_toolbox.boxes_picture` draws them."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import Report
from .errors import GraphError, shown
from .formats import WIDTH, axes, printable
from .graph import Number, plain
from .locate import centre_of

SCHEMA = "rfa-toolbox/locate/v1"

Interval = Optional[tuple[Number, Number]]


@dataclass
class Unit:
    """One unit of one layer and where it looks, per axis."""

    layer: str
    index: tuple[int, ...]
    units: tuple[Optional[int], ...]  #: the layer's units per axis
    jump: tuple[Any, ...]
    offset: tuple[Any, ...]
    boxes: list[Optional[dict[str, Any]]]  #: per axis (see `Report.box`); None: sees all
    centre: tuple[Optional[Number], ...]


@dataclass
class Covering:
    """The units of one layer whose union box holds one input pixel, per axis."""

    position: tuple[int, ...]
    layer: str
    units: list[Optional[tuple[int, int]]]


@dataclass
class Located:
    """Everything one ``rfa locate`` run answers."""

    report: Report
    units: list[Unit]
    pixels: list[Covering]

    def to_dict(self) -> dict[str, Any]:
        """Plain data following the ``rfa-toolbox/locate/v1`` schema."""
        return {"schema": SCHEMA, "model": self.report.model, "resolution": list(self.report.resolution),
                "units": [{"layer": u.layer, "index": list(u.index), "units": list(u.units),
                           "jump": list(u.jump), "offset": list(u.offset),
                           "boxes": [None if b is None else {k: _pair(v) for k, v in b.items()} for b in u.boxes],
                           "centre": [None if c is None else plain(c) for c in u.centre]} for u in self.units],
                "pixels": [{"position": list(p.position), "layer": p.layer,
                            "units": [None if u is None else list(u) for u in p.units]} for p in self.pixels]}


def _pair(interval: Interval) -> Optional[list[int | float]]:
    return None if interval is None else [plain(interval[0]), plain(interval[1])]


def _layer_names(report: Report, names: Sequence[str]) -> list[str]:
    """Layer names, with the names of outputs (``P3/cls_logits``) replaced by their layers."""
    known = {row.name for row in report.layers}
    outputs = {f.label: f.layer for f in report.outputs()} if any(n not in known for n in names) else {}
    return [name if name in known else outputs.get(name, name) for name in names]


def last_spatial_layer(report: Report) -> str:
    """The last layer (in topological order) with a finite receptive field on every axis: the
    input of a classifier's global pool."""
    for row in reversed(report.layers):
        if row.op != "input" and all(r is not None for r in row.r_max):
            return row.name
    raise GraphError("the model has no layer with a finite receptive field to locate")


def locate(report: Report, layers: Sequence[str] = (), at: Sequence[tuple[int, ...]] = (),
           pixels: Sequence[tuple[int, ...]] = ()) -> Located:
    """Where units ``at`` (default: the centre unit, n // 2 per axis) of ``layers`` (default:
    `last_spatial_layer`; an output's name, as `Report.outputs` lists it, stands for its layer)
    look, and which of their units look at the input ``pixels``."""
    names = _layer_names(report, layers) if layers else [last_spatial_layer(report)]
    report._locate().prefetch(names)  # one pass over the graph for every layer asked about
    units = []
    for name in names:
        row = report.layer(name)
        if not any(r is not None for r in row.r_max):
            raise GraphError(f"layer {shown(name)} sees the whole input on every axis: there is no box"
                             " to locate (pick a layer before the global pooling)")
        sizes = report.units(name)
        for index in at or [_centre_unit(name, sizes)]:
            index = tuple(index) * len(sizes) if len(index) == 1 else tuple(index)
            try:
                box = report.box(name, index)
            except GraphError as exc:
                hint = "; every unit asked for is located in every layer named" if len(names) > 1 else ""
                raise GraphError(f"{exc}{hint}") from None
            units.append(Unit(name, index, sizes, row.jump, row.offset, box, centre_of(box)))
    pixels = [tuple(p) * len(report.resolution) if len(p) == 1 else tuple(p) for p in pixels]
    for position in pixels:
        if len(position) != len(report.resolution):
            raise GraphError(f"pixel {shown(position)} must be one integer per spatial axis"
                             f" ({len(report.resolution)} of them)")
        for axis, (x, n) in enumerate(zip(position, report.resolution)):
            if not 0 <= x < n:
                raise GraphError(f"pixel {x} on axis {axis} is outside the input, which has {n} there (0..{n - 1})")
    covering = [Covering(tuple(p), name, report.units_covering(name, p)) for p in pixels for name in names]
    return Located(report, units, covering)


def _centre_unit(layer: str, sizes: tuple[Optional[int], ...]) -> tuple[int, ...]:
    if any(n is None for n in sizes):
        raise GraphError(f"the number of units of layer {shown(layer)} is not known: give the unit with --at")
    return tuple(n // 2 for n in sizes if n is not None)


def _number(value: Optional[Number]) -> str:
    return axes([None if value is None else plain(value)])


def _interval(interval: Interval) -> str:
    if interval is None:
        return "none"
    lo, hi = interval
    return f"{_number(lo)}..{_number(hi)} ({_number(hi - lo + 1)})"


def format_located(located: Located, fmt: str, width: Optional[int] = None) -> str:
    """``located`` as JSON or as a table for people (one row per unit and axis)."""
    if fmt == "json":
        return json.dumps(located.to_dict(), indent=2) + "\n"
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or WIDTH, no_color=True, highlight=False)
    report = located.report
    console.print(Text(f"model: {printable(report.model)}, input {axes(report.resolution)}; intervals are"
                       " first..last input pixel (size), 'reads' cut to the input"))
    table = Table(header_style="bold", pad_edge=False)
    for column in ("layer", "unit", "axis", "jump", "offset", "union", "smallest path", "reads", "centre"):
        table.add_column(column, no_wrap=column != "layer", overflow="fold" if column == "layer" else "ellipsis")
    for unit in located.units:
        for axis, box in enumerate(unit.boxes):
            first = axis == 0
            label = Text(printable(unit.layer)) if first else Text("")
            index = f"{', '.join(map(str, unit.index))} of {'x'.join(map(str, unit.units))}" if first else ""
            if box is None:
                table.add_row(label, index, str(axis), "-", "-", "whole input", "", "", "")
                continue
            table.add_row(label, index, str(axis), _number(unit.jump[axis]), _number(unit.offset[axis]),
                          _interval(box["union"]), _interval(box["smallest"]), _interval(box["union_clipped"]),
                          _number(unit.centre[axis]))
    console.print(table)
    for pixel in located.pixels:
        spans = ["none" if u is None else f"{u[0]}..{u[1]}" for u in pixel.units]
        console.print(Text(f"input pixel {', '.join(map(str, pixel.position))}: units {' x '.join(spans)}"
                           f" of {printable(pixel.layer)}"))
    return buffer.getvalue()
