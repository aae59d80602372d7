"""Outputs of `rfa suggest` and `rfa zoo`: tables for people, JSON for programs, Markdown and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .analysis import Report
from .formats import WIDTH, axes, md_code, md_text, printable, suggestion_lines, summary_lines

if TYPE_CHECKING:
    from .encoders.zoo_scan import ZooRow

SUGGESTIONS_SCHEMA = "rfa-toolbox/suggestions/v1"
ZOO_SCHEMA = "rfa-toolbox/zoo/v2"
NOTHING = "nothing to suggest: the model is fully utilized"


def format_suggestions(report: Report, fmt: str) -> str:
    """The verified suggestions of ``report`` in ``fmt`` (table, json or markdown)."""
    found = report.suggestions or []
    if fmt == "json":
        return json.dumps({"schema": SUGGESTIONS_SCHEMA, "model": report.model,
                           "resolution": list(report.resolution), "r": list(report.r),
                           "max_resolution": list(report.max_resolution),
                           "fully_utilized": report.fully_utilized, "notes": list(report.notes),
                           "suggestions": [s.to_dict() for s in found]}, indent=2) + "\n"
    head = summary_lines(report) + ([NOTHING] if report.fully_utilized else [])
    if fmt == "markdown":
        out = [f"# Suggestions: {md_text(report.model)}", ""] + [f"- {md_text(line)}" for line in head]
        if found:
            out += ["", "| # | edits | r after | fully utilized | MACs after | params after |",
                    "|---:|---|---:|---|---:|---:|"]
            out += [f"| {i} | {md_text(s.description)} | {axes(s.r)} | {'yes' if s.fully_utilized else 'no'} |"
                    f" {s.macs_after if s.macs_after is not None else '?'} |"
                    f" {s.params_after if s.params_after is not None else '?'} |" for i, s in enumerate(found, 1)]
        return "\n".join(out) + "\n"
    return "\n".join(head + [""] + suggestion_lines(found)) + "\n"


def format_zoo(rows: list[ZooRow], failures: list[tuple[str, str]], library: str, resolution: tuple[int, ...],
               fmt: str) -> str:
    """A library scan (rows of `ZooRow`) as a table, JSON (schema zoo/v2: per-axis lists, as
    in reports), CSV or Markdown."""
    res = axes(resolution)
    if fmt == "json":
        return json.dumps({"schema": ZOO_SCHEMA, "library": library, "resolution": list(resolution),
                           "models": [row.to_dict() for row in rows],
                           "failures": [{"model": m, "reason": r} for m, r in failures]}, indent=2) + "\n"
    columns = ["model", "r", "max resolution", f"fully utilized at {res}", "unproductive",
               "underutilized", "encode s"]
    cells = [[row.model, axes(row.r), axes(row.max_resolution), "yes" if row.fully_utilized else "no",
              str(row.unproductive), str(row.underutilized), f"{row.encode_s:.2f}"] for row in rows]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns + ["failure"])
        writer.writerows(cells)
        writer.writerows([[m] + [""] * (len(columns) - 1) + [r] for m, r in failures])
        return buffer.getvalue()
    if fmt == "markdown":
        out = [f"# {library} at {res}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        out += ["| " + " | ".join([md_code(c[0]), *c[1:]]) + " |" for c in cells]
        if failures:
            out += ["", "## Failures", ""] + [f"- {md_code(m)}: {md_text(r)}" for m, r in failures]
        return "\n".join(out) + "\n"
    buffer = io.StringIO()
    console = Console(file=buffer, width=WIDTH, no_color=True, highlight=False)
    table = Table(title=f"{library} at {res}: {len(rows)} analyzed, {len(failures)} failed",
                  header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in cells:
        table.add_row(*(Text(c) for c in row))
    console.print(table)
    for model, reason in failures:
        console.print(Text(f"failed: {printable(model)}: {printable(reason)}"))
    return buffer.getvalue()
