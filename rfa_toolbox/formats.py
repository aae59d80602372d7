"""Reports for people (rich table, markdown) and for programs (JSON).

Layer names, module paths and model names are data: every format escapes them (control
characters shown as ``\\n``, ``\\x1b``; rich markup never interpreted; ``|`` and backticks
escaped in Markdown), so a name can neither style a terminal nor forge a line or a cell.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .analysis import LayerResult, Report, Status
from .grouping import group_rows
from .levels import OutputField

if TYPE_CHECKING:
    from .edits import Suggestion

FORMATS = ("table", "json", "markdown")
STATUS_STYLE = {Status.UNPRODUCTIVE: "bold red", Status.UNDERUTILIZED: "dark_orange",
                Status.BORDER: "yellow", Status.HEAD: "grey50", Status.OK: ""}

#: Table columns dropped first when the table is wider than the terminal.
OPTIONAL_COLUMNS = ("offset", "jump", "shape", "input r_min", "window", "op", "r_max")
WIDTH = 140  #: the width of a table that is not shown on a terminal


def printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def md_text(text: str) -> str:
    """``text`` for a Markdown table cell or list item: printable, with ``|`` escaped."""
    return printable(text).replace("\\", "\\\\").replace("|", "\\|")


def md_code(text: str) -> str:
    """``text`` as a Markdown code span (in a table cell), whatever backticks it holds."""
    text = printable(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def axes(values: Optional[Iterable[Any]]) -> str:
    """Per-axis values as text: ``268`` when all equal, ``268x300`` otherwise, ``inf`` for None;
    a fraction (after non-integer resampling) with one decimal, ``19.9``."""
    if values is None:
        return "-"
    texts = ["inf" if v is None else _number(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def _number(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.1f}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def geometry(values: tuple[Any, ...]) -> str:
    """A per-axis jump or offset as text; empty where the field is infinite or not known."""
    return "" if not values or any(v is None for v in values) else axes(values)


def window(row: LayerResult) -> str:
    """Kernel, stride and dilation as ``k3 s2 d1``, or empty for ops without a window."""
    if not row.kernel:
        return ""
    parts = [f"k{axes(row.kernel)}", f"s{axes(row.stride)}"]
    if row.dilation and any(d != 1 for d in row.dilation):
        parts.append(f"d{axes(row.dilation)}")
    return " ".join(parts)


def count(value: Optional[float]) -> str:
    """A count for people: ``169G``, ``2.64T``, ``5.48M``; never an exponent."""
    if value is None:
        return "?"
    for unit, size in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size * 0.9995:
            return f"{value / size:.3g}{unit}" if value < size * 999.5 else f"{value / size:.0f}{unit}"
    return str(round(value))


def summary_lines(report: Report) -> list[str]:
    """The summary shown above the layer table: r, utilization and counts of findings."""
    res = axes(report.resolution)
    verdict = "yes" if report.fully_utilized else f"no (needs an input larger than {axes(report.r)})"
    heads = sum(1 for row in report.layers if row.status is Status.HEAD and row.computes)
    context = len(report.context_layers)
    not_counted = f"{heads - context} head layers"
    if context:
        not_counted += f" and {context} global-context layers such as squeeze-excitation pools"
    lines = [
        f"model: {printable(report.model)}",
        f"resolution: {res}",
        f"r (minimal feasible resolution): {axes(report.r)}",
        f"max resolution (largest r_max): {axes(report.max_resolution)}",
        f"fully utilized at {res}: {verdict}",
        f"findings: {len(report.unproductive)} unproductive, {len(report.underutilized)}"
        f" underutilized, {len(report.border)} border ({not_counted} not counted)",
    ]
    if report.unknown_ops:
        lines.append(f"unknown ops treated as neutral: {printable(', '.join(report.unknown_ops))}")
    lines += [f"note: {printable(note)}" for note in report.notes]
    return lines


def suggestion_lines(suggestions: list[Suggestion]) -> list[str]:
    """One line per suggestion: the edits, r after, utilization, MACs and parameters."""
    lines = []
    for number, s in enumerate(suggestions, 1):
        verdict = "fully utilized" if s.fully_utilized else "not fully utilized"
        line = f"{number}. {printable(s.description)} -> r {axes(s.r)}, {verdict}"
        if s.macs_before is not None:
            line += f"; MACs {count(s.macs_before)} -> {count(s.macs_after)}"
        if s.params_before is not None:
            line += f"; params {count(s.params_before)} -> {count(s.params_after)}"
        if s.new_widths:
            line += "; widen " + ", ".join(f"{printable(n)} to {w}" for n, w in list(s.new_widths.items())[:4])
        lines.append(line + "".join(f" ({note})" for note in s.notes))
    return lines


def shown_rows(report: Report, all_layers: bool, depth: int | None = None) -> list[LayerResult]:
    """The rows a table shows: computing layers (and heads), or every layer; with ``depth``,
    one row per module at that depth."""
    rows = group_rows(report, depth) if depth else report.layers
    return [row for row in rows if all_layers or row.computes or row.op == "input"]


def _cells(number: int, row: LayerResult) -> dict[str, str | Text]:
    return {"#": str(number), "layer": Text(printable(row.name)), "op": Text(printable(row.op)),
            "window": window(row), "r_min": axes(row.r_min), "r_max": axes(row.r_max),
            "input r_min": axes(row.input_r_min), "jump": geometry(row.jump), "offset": geometry(row.offset),
            "status": Text(row.status, style=STATUS_STYLE.get(row.status, "")),
            "shape": "x".join(map(str, row.shape)) if row.shape else ""}


_NUMBERS = ("#", "r_min", "r_max", "input r_min", "jump", "offset", "stride", "anchor")

def output_columns(fields: list[OutputField]) -> list[str]:
    """The columns of the outputs table (the anchor columns only for detectors)."""
    anchors = ["anchor", "covers"] if any(f.anchor is not None for f in fields) else []
    return ["output", "layer", "stride", "r_min", "r_max", "centre unit's box", *anchors]


def shows_outputs(fields: list[OutputField]) -> bool:
    """Tables list the outputs when there are several, or anchors to compare with."""
    return len(fields) > 1 or any(f.anchor is not None for f in fields)


def output_cells(field: OutputField) -> dict[str, str | Text]:
    """One output as table cells (the box per axis as ``first..last``)."""
    box = ", ".join(f"{_number(b[0])}..{_number(b[1])}" if b is not None else "all" for b in field.centre_box)
    covers = "" if field.covers is None else "yes" if field.covers else "no"
    return {"output": Text(printable(field.label)), "layer": Text(printable(field.layer)),
            "stride": geometry(field.stride), "r_min": axes(field.r_min), "r_max": axes(field.r_max),
            "centre unit's box": box, "anchor": "" if field.anchor is None else axes(
                tuple(round(a, 1) for a in field.anchor)),
            "covers": Text(covers, style="" if field.covers is not False else "bold red")}


#: Columns of names, which are cut (with an ellipsis) when a table is too wide; the others keep
#: their full width.
_NAMES = ("layer", "output")


def _table(columns: list[str], rows: list[dict[str, str | Text]]) -> Table:
    table = Table(show_lines=False, header_style="bold", pad_edge=False)
    for column in columns:
        widest = max([cell_len(str(cells[column])) for cells in rows] + [cell_len(column)])
        table.add_column(column, justify="right" if column in _NUMBERS else "left", no_wrap=True,
                         overflow="ellipsis", min_width=min(widest, 12) if column in _NAMES else widest)
    for cells in rows:
        table.add_row(*(cells[c] for c in columns))
    return table


def fitted(console: Console, columns: list[str], rows: list[dict[str, str | Text]],
           optional: tuple[str, ...]) -> Table:
    """The table of ``rows`` that fits the console: ``optional`` columns dropped in that order
    until it does (measured at its natural width), then names cut."""
    columns = list(columns)
    wide = console.options.update_width(10**6)
    for column in optional:
        if Measurement.get(console, wide, _table(columns, rows)).maximum <= console.width:
            break
        if column in columns:
            columns.remove(column)
    return _table(columns, rows)


def format_table(report: Report, all_layers: bool = False, width: int | None = None,
                 color: bool = False, depth: int | None = None) -> str:
    """The report as a rich table (summary first, then one row per layer, then the outputs),
    fitted to ``width`` columns (default 140): optional columns are dropped in `OPTIONAL_COLUMNS`
    order until the table fits, and long names are cut with an ellipsis; numbers are never cut."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or WIDTH, force_terminal=color, no_color=not color,
                      highlight=False)
    for line in summary_lines(report):
        key, _, value = line.partition(": ")
        console.print(Text.assemble((key + ": ", "bold"), value))
    rows = [_cells(number, row) for number, row in enumerate(shown_rows(report, all_layers, depth), 1)]
    columns = ["#", "layer", "op", "window", "r_min", "r_max", "input r_min", "jump", "offset", "status"]
    if any(cells["shape"] for cells in rows):
        columns.append("shape")
    console.print(fitted(console, columns, rows, OPTIONAL_COLUMNS))
    fields = report.outputs() if report.locator is not None else []
    if shows_outputs(fields):
        console.print(Text("outputs:", style="bold"))
        console.print(fitted(console, output_columns(fields), [output_cells(f) for f in fields],
                             ("centre unit's box", "layer")))
    if report.suggestions:
        console.print(Text("suggestions (each verified by analyzing the edited graph):", style="bold"))
        for line in suggestion_lines(report.suggestions[:5]):
            console.print(Text(line))
    return buffer.getvalue()


def format_markdown(report: Report, all_layers: bool = False, depth: int | None = None) -> str:
    """The report as Markdown: a summary list, then a table of layers."""
    out = [f"# Receptive-field analysis: {md_text(report.model)}", ""]
    out += [f"- {md_text(line)}" for line in summary_lines(report)]
    out += ["", "| # | layer | op | window | r_min | r_max | input r_min | jump | offset | status |",
            "|---:|---|---|---|---:|---:|---:|---:|---:|---|"]
    for number, row in enumerate(shown_rows(report, all_layers, depth), 1):
        status = f"**{row.status}**" if row.is_finding else row.status
        out.append(f"| {number} | {md_code(row.name)} | {md_text(row.op)} | {window(row)} | {axes(row.r_min)} |"
                   f" {axes(row.r_max)} | {axes(row.input_r_min)} | {geometry(row.jump)} | {geometry(row.offset)} |"
                   f" {status} |")
    fields = report.outputs() if report.locator is not None else []
    if shows_outputs(fields):
        columns = output_columns(fields)
        out += ["", "## Outputs", "", "| " + " | ".join(columns) + " |",
                "|" + "|".join("---:" if c in _NUMBERS else "---" for c in columns) + "|"]
        for cells in map(output_cells, fields):
            out.append("| " + " | ".join(md_code(str(cells[c])) if c in ("output", "layer") else md_text(str(cells[c]))
                                         for c in columns) + " |")
    if report.suggestions:
        out += ["", "## Suggestions", ""] + [md_text(line) for line in suggestion_lines(report.suggestions[:5])]
    return "\n".join(out) + "\n"


def format_report(report: Report, fmt: str, all_layers: bool = False, color: bool = False,
                  depth: int | None = None, width: int | None = None) -> str:
    """The report in ``fmt`` (one of `FORMATS`); ``depth`` groups the rows of a table or
    markdown by module (JSON always lists every op); ``width`` fits a table to a terminal."""
    if fmt == "json":
        return report.to_json() + "\n"
    if fmt == "markdown":
        return format_markdown(report, all_layers, depth)
    return format_table(report, all_layers, width=width, color=color, depth=depth)
