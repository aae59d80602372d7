"""Reports for people (rich table, markdown) and for programs (JSON)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import LayerResult, Report, Status
from .grouping import group_rows

if TYPE_CHECKING:
    from .edits import Suggestion
    from .encoders.zoo_scan import ZooRow

FORMATS = ("table", "json", "markdown")
STATUS_STYLE = {Status.UNPRODUCTIVE: "bold red", Status.UNDERUTILIZED: "dark_orange",
                Status.BORDER: "yellow", Status.HEAD: "grey50", Status.OK: ""}


def axes(values: Optional[Iterable[Any]]) -> str:
    """Per-axis values as text: ``268`` when all equal, ``268x300`` otherwise, ``inf`` for None."""
    if values is None:
        return "-"
    texts = ["inf" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    return texts[0] if len(set(texts)) == 1 else "x".join(texts)


def window(row: LayerResult) -> str:
    """Kernel, stride and dilation as ``k3 s2 d1``, or empty for ops without a window."""
    if not row.kernel:
        return ""
    parts = [f"k{axes(row.kernel)}", f"s{axes(row.stride)}"]
    if row.dilation and any(d != 1 for d in row.dilation):
        parts.append(f"d{axes(row.dilation)}")
    return " ".join(parts)


def summary_lines(report: Report) -> list[str]:
    """The summary shown above the layer table: r, utilization and counts of findings."""
    res = axes(report.resolution)
    verdict = "yes" if report.fully_utilized else f"no (needs an input larger than {axes(report.r)})"
    heads = sum(1 for row in report.layers if row.status is Status.HEAD and row.computes)
    lines = [
        f"model: {report.model}",
        f"resolution: {res}",
        f"r (minimal feasible resolution): {axes(report.r)}",
        f"max resolution (largest r_max): {axes(report.max_resolution)}",
        f"fully utilized at {res}: {verdict}",
        f"findings: {len(report.unproductive)} unproductive, {len(report.underutilized)}"
        f" underutilized, {len(report.border)} border ({heads} head layers not counted)",
    ]
    if report.unknown_ops:
        lines.append(f"unknown ops treated as neutral: {', '.join(report.unknown_ops)}")
    lines += [f"note: {note}" for note in report.notes]
    return lines


def _count(value: Optional[int]) -> str:
    if value is None:
        return "?"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return str(value)


def suggestion_lines(suggestions: list[Suggestion]) -> list[str]:
    """One line per suggestion: the edits, r after, utilization, MACs and parameters."""
    lines = []
    for number, s in enumerate(suggestions, 1):
        verdict = "fully utilized" if s.fully_utilized else "not fully utilized"
        line = f"{number}. {s.description} -> r {axes(s.r)}, {verdict}"
        if s.macs_before is not None:
            line += f"; MACs {_count(s.macs_before)} -> {_count(s.macs_after)}"
        if s.params_before is not None:
            line += f"; params {_count(s.params_before)} -> {_count(s.params_after)}"
        if s.new_widths:
            line += "; widen " + ", ".join(f"{n} to {w}" for n, w in list(s.new_widths.items())[:4])
        lines.append(line + "".join(f" ({note})" for note in s.notes))
    return lines


def shown_rows(report: Report, all_layers: bool, depth: int | None = None) -> list[LayerResult]:
    """The rows a table shows: computing layers (and heads), or every layer; with ``depth``,
    one row per module at that depth."""
    rows = group_rows(report, depth) if depth else report.layers
    return [row for row in rows if all_layers or row.computes or row.op == "input"]


def format_table(report: Report, all_layers: bool = False, width: int | None = None,
                 color: bool = False, depth: int | None = None) -> str:
    """The report as a rich table (summary first, then one row per layer)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or 140, force_terminal=color, no_color=not color,
                      highlight=False)
    for line in summary_lines(report):
        key, _, value = line.partition(": ")
        console.print(Text.assemble((key + ": ", "bold"), value))
    rows = shown_rows(report, all_layers, depth)
    columns = ["#", "layer", "op", "window", "r_min", "r_max", "input r_min", "status"]
    with_shape = any(row.shape for row in rows)
    if with_shape:
        columns.append("shape")
    table = Table(show_lines=False, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="right" if column in ("#", "r_min", "r_max", "input r_min") else "left")
    for number, row in enumerate(rows, 1):
        cells: list[str | Text] = [
            str(number), row.name, row.op, window(row), axes(row.r_min), axes(row.r_max),
            axes(row.input_r_min), Text(row.status, style=STATUS_STYLE.get(row.status, ""))]
        if with_shape:
            cells.append("x".join(map(str, row.shape)) if row.shape else "")
        table.add_row(*cells)
    console.print(table)
    if report.suggestions:
        console.print(Text("suggestions (each verified by analyzing the edited graph):", style="bold"))
        for line in suggestion_lines(report.suggestions[:5]):
            console.print(line)
    return buffer.getvalue()


def format_markdown(report: Report, all_layers: bool = False, depth: int | None = None) -> str:
    """The report as Markdown: a summary list, then a table of layers."""
    out = [f"# Receptive-field analysis: {report.model}", ""]
    out += [f"- {line}" for line in summary_lines(report)]
    out += ["", "| # | layer | op | window | r_min | r_max | input r_min | status |",
            "|---:|---|---|---|---:|---:|---:|---|"]
    for number, row in enumerate(shown_rows(report, all_layers, depth), 1):
        status = f"**{row.status}**" if row.is_finding else row.status
        out.append(f"| {number} | `{row.name}` | {row.op} | {window(row)} | {axes(row.r_min)} |"
                   f" {axes(row.r_max)} | {axes(row.input_r_min)} | {status} |")
    if report.suggestions:
        out += ["", "## Suggestions", ""] + suggestion_lines(report.suggestions[:5])
    return "\n".join(out) + "\n"


def format_report(report: Report, fmt: str, all_layers: bool = False, color: bool = False,
                  depth: int | None = None) -> str:
    """The report in ``fmt`` (one of `FORMATS`); ``depth`` groups the rows of a table or
    markdown by module (JSON always lists every op)."""
    if fmt == "json":
        return report.to_json() + "\n"
    if fmt == "markdown":
        return format_markdown(report, all_layers, depth)
    return format_table(report, all_layers, color=color, depth=depth)


def format_zoo(rows: list[ZooRow], failures: list[tuple[str, str]], library: str, resolution: str,
               fmt: str) -> str:
    """A library scan (rows of `ZooRow`) as a table, JSON, CSV or Markdown."""
    if fmt == "json":
        import json

        return json.dumps({"schema": "rfa-toolbox/zoo/v1", "library": library, "resolution": resolution,
                           "models": [row.to_dict() for row in rows],
                           "failures": [{"model": m, "reason": r} for m, r in failures]}, indent=2) + "\n"
    columns = ["model", "r", "max resolution", f"fully utilized at {resolution}", "unproductive",
               "underutilized", "encode s"]
    cells = [[row.model, axes([row.r]), axes([row.max_resolution]), "yes" if row.fully_utilized else "no",
              str(row.unproductive), str(row.underutilized), f"{row.encode_s:.2f}"] for row in rows]
    if fmt == "csv":
        import csv

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns + ["failure"])
        writer.writerows(cells)
        writer.writerows([[m] + [""] * (len(columns) - 1) + [r] for m, r in failures])
        return buffer.getvalue()
    if fmt == "markdown":
        out = [f"# {library} at {resolution}", "", "| " + " | ".join(columns) + " |",
               "|" + "---|" * len(columns)]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        if failures:
            out += ["", "## Failures", ""] + [f"- `{m}`: {r}" for m, r in failures]
        return "\n".join(out) + "\n"
    buffer = io.StringIO()
    console = Console(file=buffer, width=140, no_color=True, highlight=False)
    table = Table(title=f"{library} at {resolution}: {len(rows)} analyzed, {len(failures)} failed",
                  header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in cells:
        table.add_row(*row)
    console.print(table)
    for model, reason in failures:
        console.print(f"failed: {model}: {reason}")
    return buffer.getvalue()
