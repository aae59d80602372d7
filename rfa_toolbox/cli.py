"""The ``rfa`` command: a thin shell over the public API."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .analysis import SCHEMA, Analysis, Report, Status
from .api import analysis_of
from .errors import RFAError
from .formats import FORMATS, format_report, format_zoo, suggestion_lines, summary_lines
from .resolution import parse_resolution

F = TypeVar("F", bound=Callable[..., Any])

#: --fail-on: the statuses that fail, by the option's value.
FAIL_ON = {
    Status.UNPRODUCTIVE.value: (Status.UNPRODUCTIVE,),
    Status.UNDERUTILIZED.value: (Status.UNPRODUCTIVE, Status.UNDERUTILIZED),
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rfa")
def cli() -> None:
    """Receptive-field analysis: find the layers of a CNN that cannot add context at an input
    resolution, before training it.

    Exit codes: 0 success, 1 findings when --fail-on asks for it, 2 bad input.
    """


def model_options(fn: F) -> F:
    """MODEL, --res, --input-shape, --strict, --allow-unknown and --structure: how to read
    the model."""
    fn = click.option("--structure", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      metavar="FILE",
                      help="A dilation-search structure file (rfsearch / mmcv JSON) to apply to a"
                           " PyTorch model before analysing it.")(fn)
    fn = click.option("--allow-unknown", is_flag=True,
                      help="Treat ops without a handler as neutral even when they change the"
                           " spatial shape.")(fn)
    fn = click.option("--strict", is_flag=True,
                      help="Treat every op without a handler as an error (default: neutral when"
                           " it keeps the spatial shape, and listed under unknown ops).")(fn)
    fn = click.option("--input-shape", metavar="SHAPE",
                      help="Full input shape without batch for framework models, such as"
                           " 3x224x224, 1x16000 (audio) or 3x16x112x112 (video).")(fn)
    fn = click.option("--res", "-r", "resolution", metavar="R",
                      help="Input resolution: one size for every axis (224) or one per axis"
                           " (800x1333). Required unless --input-shape is given.")(fn)
    return click.argument("model", metavar="MODEL")(fn)


def output_options(formats: tuple[str, ...], what: str) -> Callable[[F], F]:
    """--format (one of ``formats``) and --output for a command that prints ``what``."""
    def decorate(fn: F) -> F:
        fn = click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
                          default=None, help=f"Write the {what} to this file instead of standard output.")(fn)
        return click.option("--format", "-f", "fmt", type=click.Choice(formats), default=formats[0],
                            show_default=True,
                            help="table for people, json for programs (versioned schema,"
                                 " rfa-toolbox/report/v1 for reports), the others for documents.")(fn)
    return decorate


@cli.command("analyze")
@model_options
@output_options(FORMATS, "report")
@click.option("--fail-on", type=click.Choice(list(FAIL_ON)), default=None,
              help="Exit with code 1 when the model has unproductive layers (or, with"
                   " 'underutilized', unproductive or underutilized ones).")
@click.option("--all-layers", is_flag=True,
              help="List every op in the table, not only the layers that compute.")
@click.option("--depth", type=click.IntRange(min=1), default=None, metavar="N",
              help="Show the table by module at depth N of the module paths (a module is as bad"
                   " as its worst layer); the analysis still runs on every op.")
@click.option("--suggest/--no-suggest", default=True, show_default=True,
              help="When the model is not fully utilized, add verified edits that fix it.")
@click.option("--render", "render_to", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Also draw the highlighted diagram to FILE (.svg, .png, .pdf or .dot).")
def analyze_command(model: str, resolution: str | None, input_shape: str | None, strict: bool,
                    allow_unknown: bool, structure: Path | None, fmt: str, output: Path | None, fail_on: str | None,
                    all_layers: bool, depth: int | None, suggest: bool, render_to: Path | None) -> None:
    """Analyze MODEL at resolution R: r, max resolution, unproductive, underutilized and
    border layers.

    MODEL is an architecture file (.yaml, .yml or .json), a Python file defining a PyTorch
    model (model.py, or model.py:NAME to pick one), torchvision:NAME, timm:NAME, a Keras
    model saved as .keras or as model.to_json() in a .json file, or keras:NAME (a
    keras.applications model).
    """
    analysis = _analysis(model, resolution, input_shape, strict, allow_unknown, structure,
                         suggestions=suggest)
    report = analysis.report
    _emit(format_report(report, fmt, all_layers, color=_color(output, fmt), depth=depth), output)
    if render_to is not None:
        _draw(analysis, render_to, depth, "TB")
    _exit_for_findings(report, fail_on)


@cli.command("render")
@model_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              metavar="FILE", help="The diagram file: .svg, .png, .pdf, or .dot (graphviz source).")
@click.option("--depth", type=click.IntRange(min=1), default=None, metavar="N",
              help="Draw one node per module at depth N, coloured by its worst layer.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom or left to right.")
def render_command(model: str, resolution: str | None, input_shape: str | None, strict: bool,
                   allow_unknown: bool, structure: Path | None, output: Path, depth: int | None, rankdir: str) -> None:
    """Draw MODEL at resolution R with its findings highlighted: unproductive red,
    underutilized orange, border yellow, head grey. Chains of neutral ops are folded into the
    layer they follow."""
    _draw(_analysis(model, resolution, input_shape, strict, allow_unknown, structure), output,
          depth, rankdir)


def _analysis(model: str, resolution: str | None, input_shape: str | None, strict: bool,
              allow_unknown: bool, structure: Path | None, suggestions: bool = False,
              limit: int = 10) -> Analysis:
    """The analysis of MODEL at the resolution (from --res or --input-shape)."""
    return analysis_of(model, resolution_for(resolution, input_shape), suggestions=suggestions,
                       limit=limit, input_shape=input_shape, strict=strict,
                       allow_unknown=allow_unknown, structure=structure)


def _draw(analysis: Analysis, output: Path, depth: int | None, rankdir: str) -> None:
    from .render import save_diagram

    written, message = save_diagram(analysis.diagram(depth=depth, rankdir=rankdir), output)
    click.echo(f"wrote {written}" + (f" ({message})" if message else ""), err=True)


@cli.command("suggest")
@model_options
@output_options(FORMATS, "suggestions")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many suggestions to show.")
def suggest_command(model: str, resolution: str | None, input_shape: str | None, strict: bool,
                    allow_unknown: bool, structure: Path | None, fmt: str, output: Path | None, top: int) -> None:
    """Suggest stride, stem-kernel and depth edits that make MODEL fully utilized at R.

    Each candidate is applied to a copy of the graph and analyzed again; the list is ranked:
    fully utilized first, then fewest edits, then r closest below R, then the smallest MACs
    increase.
    """
    report = _analysis(model, resolution, input_shape, strict, allow_unknown, structure,
                       suggestions=True, limit=top).report
    found = report.suggestions or []
    if fmt == "json":
        text = json.dumps({"schema": SCHEMA, "model": report.model, "resolution": list(report.resolution),
                           "r": list(report.r), "fully_utilized": report.fully_utilized,
                           "suggestions": [s.to_dict() for s in found]}, indent=2) + "\n"
    else:
        head = summary_lines(report)
        if report.fully_utilized:
            head.append("nothing to suggest: the model is fully utilized")
        text = "\n".join(head + [""] + suggestion_lines(found)) + "\n"
    _emit(text, output)


@cli.command("zoo")
@click.argument("library", type=click.Choice(["torchvision", "timm", "keras"]))
@click.option("--res", "-r", "resolution", required=True, metavar="R",
              help="Input resolution: one size (224) or one per axis (800x1333).")
@output_options(("table", "json", "csv", "markdown"), "results")
@click.option("--timeout", type=click.FloatRange(min=0), default=300, show_default=True,
              help="Seconds allowed per model (0: no limit); slower models are listed as failures.")
@click.option("--models", "only", metavar="NAMES",
              help="Only these models: names without the library prefix, comma separated.")
def zoo_command(library: str, resolution: str, fmt: str, output: Path | None, timeout: float,
                only: str | None) -> None:
    """Analyze every model of LIBRARY (weights never downloaded) at resolution R: a table
    like table 7 of Richter et al., sorted by r, and the failures with their reason."""
    from .encoders import zoo_scan

    parse_resolution(resolution)
    names = zoo_scan.model_names(library)
    if only:
        wanted = {f"{library}:{n.strip()}" for n in only.split(",") if n.strip()}
        unknown = sorted(wanted - set(names))
        if unknown:
            raise RFAError(f"unknown {library} models: {', '.join(n.split(':', 1)[1] for n in unknown)}")
        names = [n for n in names if n in wanted]
    rows, failures = zoo_scan.scan(names, resolution, timeout or None, progress=sys.stderr.isatty())
    _emit(format_zoo(rows, failures, library, resolution, fmt), output)


@cli.group("structure")
def structure_group() -> None:
    """Dilation-search structure files (rfa_toolbox.rfsearch, mmcv's rfsearch format)."""


@structure_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
def structure_show(path: Path) -> None:
    """Print the search settings and the dilation of every layer in FILE."""
    from .rfsearch.structure import format_structure, load_structure

    click.echo(format_structure(load_structure(path)))


def _color(output: Path | None, fmt: str) -> bool:
    return output is None and fmt == "table" and sys.stdout.isatty()


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


def resolution_for(resolution: str | None, input_shape: str | None) -> str:
    """--res, or the spatial sizes of --input-shape; one of them is required."""
    if resolution is not None:
        return resolution
    if input_shape is None:
        raise click.UsageError("give the input resolution with --res (or --input-shape)")
    sizes = parse_resolution(input_shape)
    if len(sizes) < 2:
        raise RFAError(f"input shape {input_shape!r} needs channels and at least one spatial size")
    return "x".join(map(str, sizes[1:]))


def _exit_for_findings(report: Report, fail_on: str | None) -> None:
    if fail_on is None:
        return
    found = [row.name for row in report.layers if row.status in FAIL_ON[fail_on]]
    if found:
        kinds = " or ".join(FAIL_ON[fail_on])
        click.echo(f"rfa: {len(found)} {kinds} layer(s) at {'x'.join(map(str, report.resolution))}:"
                   f" {', '.join(found[:10])}{' ...' if len(found) > 10 else ''}", err=True)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``rfa`` console script: bad input ends in one line and exit code 2."""
    try:
        cli.main(args=argv, prog_name="rfa", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("rfa: aborted", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"rfa: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except RFAError as exc:
        click.echo(f"rfa: error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("RFA_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"rfa: error: {type(exc).__name__}: {first} (set RFA_DEBUG=1 for the traceback)",
                   err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
