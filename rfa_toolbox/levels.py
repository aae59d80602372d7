"""The receptive field of every output of a model: per output (a pyramid level, a head of a
level, a dict key, a list item), its stride, r_min, r_max, the box of its centre unit and, for
detectors, the anchors of its level with a verdict: does the field cover the largest one?"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Optional

from .graph import Graph, Number, plain

if TYPE_CHECKING:
    from .analysis import PerAxis, Report

#: ``P3`` in a label, a module path or a node name: the pyramid level of an output.
LEVEL = re.compile(r"(?:^|[./_:, -])P(\d+)(?:$|[./_:,' -])")


@dataclass(frozen=True)
class OutputField:
    """One output of a model and its receptive field, per axis (None where infinite)."""

    label: str    #: as the model names it (``P3/cls_logits``), else the node's name
    layer: str    #: the graph node that makes it
    level: Optional[str]  #: its pyramid level (``P3``) when the label or module names one
    stride: PerAxis       #: input pixels between neighbouring units (the jump)
    units: tuple[Optional[int], ...]
    r_min: PerAxis
    r_max: PerAxis
    #: the union box of the centre unit per axis (None where infinite; empty when the layer's
    #: size is unknown)
    centre_box: tuple[Optional[tuple[Number, Number]], ...]
    anchor: Optional[tuple[float, ...]] = None  #: the level's largest anchor extent per axis
    covers: Optional[bool] = None  #: r_max reaches the largest anchor on every axis

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the ``outputs`` items of the report JSON)."""
        return {"label": self.label, "layer": self.layer, "level": self.level,
                "stride": list(self.stride), "units": list(self.units), "r_min": list(self.r_min),
                "r_max": list(self.r_max),
                "centre_box": [None if b is None else [plain(b[0]), plain(b[1])] for b in self.centre_box],
                "anchor": None if self.anchor is None else [plain_float(a) for a in self.anchor],
                "covers_anchor": self.covers}


def plain_float(value: float) -> float | int:
    """An anchor extent as JSON shows it: an int when whole, else rounded to 2 decimals."""
    return int(value) if float(value).is_integer() else round(float(value), 2)


def level_of(graph: Graph, node: str, label: str) -> Optional[str]:
    """The pyramid level an output belongs to: the first part of its label when the model
    gives that level anchors, else ``P<n>`` in its label, module path or name."""
    if label.split("/")[0] in graph.anchors:
        return label.split("/")[0]
    for text in (label, graph[node].module or "", node):
        match = LEVEL.search(text)
        if match:
            return f"P{match.group(1)}"
    return None


def largest_anchor(anchors: list[tuple[float, ...]]) -> tuple[float, ...]:
    """Per axis, the largest extent over a level's anchors."""
    return tuple(max(a[axis] for a in anchors) for axis in range(len(anchors[0])))


def output_fields(report: Report) -> list[OutputField]:
    """Every output of the analyzed model, in the order the model returns them."""
    locator = report._locate()
    graph = locator.graph
    rows = {row.name: row for row in report.layers}
    fields = []
    for node in graph.output_nodes:
        row = rows[node]
        label = graph.output_labels.get(node, node)
        level = level_of(graph, node, label)
        units = locator.units(node)
        finite = all(r is not None for r in row.r_max)
        if None not in units:
            boxes = locator.union(node, tuple(n // 2 for n in units if n is not None))
        else:  # a head sees everything; otherwise its size is unknown
            boxes = [] if any(r is not None for r in row.r_max) else [None] * graph.ndim
        anchor = largest_anchor(graph.anchors[level]) if level in graph.anchors else None
        covers = None
        if anchor is not None and finite:
            covers = all(r is not None and Fraction(r) >= Fraction(a) for r, a in zip(row.r_max, anchor))
        fields.append(OutputField(label, node, level, row.jump, units, row.r_min, row.r_max,
                                  tuple(boxes), anchor, covers))
    return fields
