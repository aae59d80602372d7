"""An ERF measurement for people (a table) and programs (JSON, ``rfa-toolbox/erf/v1``)."""

from __future__ import annotations

import io
import json
from typing import Optional

from rich.console import Console
from rich.text import Text

from ..formats import WIDTH, axes, fitted, printable
from .measure import ERF
from .numbers import SHARES, Interval


def format_erf(erf: ERF, fmt: str, width: Optional[int] = None) -> str:
    """``erf`` as JSON or as a table (one row per measured unit)."""
    if fmt == "json":
        return json.dumps(erf.to_dict(), indent=2) + "\n"
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or WIDTH, no_color=True, highlight=False)
    console.print(Text(printable(f"model: {erf.model} at {axes(erf.resolution)}; {erf.samples} sample(s) of"
                                 f" {erf.inputs}; {erf.weights}; {erf.dtype}")))
    shares = "/".join(f"{s * 100:g}" for s in SHARES)
    columns = ["layer", "unit", "std px", f"r {shares}%", f"area {shares}% (of input)", "theoretical box",
               "99%/box", "in smallest"]
    rows: list[dict[str, str | Text]] = []
    for m in erf.maps:
        n = m.numbers
        rows.append({"layer": Text(printable(m.source)), "unit": f"{axes(m.unit)} of {axes(m.units)}",
                     "std px": axes(tuple(round(s, 1) for s in n.std)),
                     columns[3]: "/".join(str(n.radius[s]) for s in SHARES),
                     columns[4]: "/".join(f"{n.area_ratio[s] * 100:.3g}" for s in SHARES),
                     "theoretical box": _boxes(m.union),
                     "99%/box": "-" if n.ratio_to_theoretical is None else f"{n.ratio_to_theoretical:.3f}",
                     "in smallest": "-" if n.share_in_smallest is None else f"{n.share_in_smallest:.1%}"})
    table = fitted(console, columns, rows, ("theoretical box", "unit"))
    console.print(table)
    console.print(Text("r: half-width of the box around the map's centre (its mean) holding that share of the"
                       " contribution; area: that box over the input; theoretical box: the union of"
                       " all paths, cut to the input; 99%/box: the 99% box over the theoretical box;"
                       " in smallest: the share inside the smallest path's box"))
    return buffer.getvalue()


def _boxes(boxes: list[Interval]) -> str:
    return ", ".join("all" if b is None else f"{b[0]}..{b[1]}" for b in boxes)
