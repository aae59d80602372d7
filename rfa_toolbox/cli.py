"""The ``rfa`` command: a thin shell over the public API."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__
from .analysis import Analysis, Report, Status
from .cli_erf import erf_command
from .cli_options import MODEL_HELP, model_analysis, model_args, model_options, output_options, seconds
from .console import guard_closed_streams, model_prints_to_stderr, output_path, terminal_width, write_output
from .errors import RFAError
from .formats import FORMATS, format_report, printable
from .listings import format_suggestions, format_zoo
from .render import diagram_format
from .resolution import parse_resolution

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


@cli.command("analyze", epilog=MODEL_HELP)
@model_options
@output_options(FORMATS, "report", "rfa-toolbox/report/v2")
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
@click.option("--estimate", is_flag=True,
              help="Where resampling makes receptive fields depend on the position, report the"
                   " standard rules' estimate instead of the exact values computed position by position.")
def analyze_command(**kwargs: Any) -> None:
    """Analyze MODEL at resolution R: r, max resolution, unproductive, underutilized and
    border layers."""
    if kwargs["render_to"] is not None:
        diagram_format(kwargs["render_to"])  # a bad name is said before any work
    if kwargs["output"] is not None:
        output_path(kwargs["output"])
    analysis = model_analysis(model_args(kwargs), suggestions=kwargs["suggest"], exact=not kwargs["estimate"])
    report, fmt, output = analysis.report, kwargs["fmt"], kwargs["output"]
    color = output is None and fmt == "table" and sys.stdout.isatty()
    text = format_report(report, fmt, kwargs["all_layers"], color=color, depth=kwargs["depth"],
                         width=terminal_width() if output is None else None)
    write_output(text, output)
    if kwargs["render_to"] is not None:
        _draw(analysis, kwargs["render_to"], kwargs["depth"], "TB")
    _exit_for_findings(report, kwargs["fail_on"])


def _positions(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Unit indices or pixels: integers separated by commas, one per axis (or one for all)."""
    out = []
    for value in values:
        try:
            out.append(tuple(int(part) for part in value.split(",")))
        except ValueError:
            raise click.BadParameter(f"{printable(value)!r} is not integers separated by commas, such as 3,5",
                                     ctx, param) from None
    return out


@cli.command("locate", epilog=MODEL_HELP)
@model_options
@click.option("--layer", "-l", "layers", multiple=True, metavar="NAME",
              help="The layer to locate units of (repeatable). Default: the last layer with a finite"
                   " receptive field, the input of a classifier's global pool.")
@click.option("--at", "at", multiple=True, callback=_positions, metavar="I,J",
              help="The unit to locate, one index per axis from 0, or one for every axis"
                   " (repeatable). Default: the centre unit, n // 2 on each axis.")
@click.option("--pixel", "pixels", multiple=True, callback=_positions, metavar="Y,X",
              help="Also list the units of each layer whose box holds this input pixel (row,"
                   " column; repeatable).")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table for people, json for programs (schema rfa-toolbox/locate/v1).")
@click.option("--output", "-o", metavar="FILE", default=None,
              help="Draw the boxes to this picture (.png, .svg, .pdf or .jpg): union dashed,"
                   " smallest path solid, centre a cross. The table or JSON still goes to standard output.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Draw the boxes over this image, resized to the input resolution (default: a blank"
                   " canvas). Needs --output.")
def locate_command(**kwargs: Any) -> None:
    """Where units of MODEL look at resolution R: for each unit, per axis, the input interval of
    all its paths (union, reaching into the padding), of its smallest path, the pixels it really
    reads (cut to the input), its centre, and the layer's effective stride (jump) and offset."""
    from .where import format_located, locate

    picture, image = kwargs.pop("output"), kwargs.pop("image")
    if image is not None and picture is None:
        raise click.UsageError("--image needs --output, the picture file to draw")
    if picture is not None:
        from .boxes_picture import picture_path

        picture_path(picture)  # a bad name is said before any work
    report = model_analysis(model_args(kwargs)).report
    located = locate(report, kwargs["layers"], kwargs["at"], kwargs["pixels"])
    write_output(format_located(located, kwargs["fmt"], terminal_width()), None)
    if picture is not None:
        from .boxes_picture import draw_located

        click.echo(f"wrote {draw_located(located, picture, image)}", err=True)


@cli.command("render", epilog=MODEL_HELP)
@model_options
@click.option("--output", "-o", required=True, metavar="FILE",
              help="The diagram file: .svg, .png, .pdf, or .dot (graphviz source).")
@click.option("--depth", type=click.IntRange(min=1), default=None, metavar="N",
              help="Draw one node per module at depth N, coloured by its worst layer.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom or left to right.")
def render_command(**kwargs: Any) -> None:
    """Draw MODEL at resolution R with its findings highlighted: unproductive red,
    underutilized orange, border yellow, head grey. Chains of neutral ops are folded into the
    layer they follow."""
    diagram_format(kwargs["output"])
    _draw(model_analysis(model_args(kwargs)), kwargs["output"], kwargs["depth"], kwargs["rankdir"])


def _draw(analysis: Analysis, output: str | Path, depth: int | None, rankdir: str) -> None:
    from .render import save_diagram

    written, message = save_diagram(analysis.diagram(depth=depth, rankdir=rankdir), output)
    click.echo(f"wrote {written}" + (f" ({message})" if message else ""), err=True)


@cli.command("suggest", epilog=MODEL_HELP)
@model_options
@output_options(FORMATS, "suggestions", "rfa-toolbox/suggestions/v1")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True,
              help="How many suggestions to show.")
def suggest_command(**kwargs: Any) -> None:
    """Suggest stride, patch, stem-kernel and depth edits that make MODEL fully utilized at R.

    Each candidate is applied and its receptive fields computed again; the list is ranked:
    fully utilized first, then fewest edits, then r closest below R, then the smallest MACs
    increase.
    """
    report = model_analysis(model_args(kwargs), suggestions=True, limit=kwargs["top"]).report
    write_output(format_suggestions(report, kwargs["fmt"]), kwargs["output"])


@cli.command("zoo")
@click.argument("library", type=click.Choice(["torchvision", "timm", "keras"]))
@click.option("--res", "-r", "resolution", required=True, metavar="R",
              help="Input resolution: one size (224) or one per axis (800x1333).")
@output_options(("table", "json", "csv", "markdown"), "results", "rfa-toolbox/zoo/v2")
@click.option("--timeout", type=float, default=300, show_default=True, callback=seconds,
              help="Seconds allowed per model (0: no limit); slower models are listed as failures.")
@click.option("--models", "only", metavar="NAMES",
              help="Only these models: names without the library prefix, comma separated.")
def zoo_command(library: str, resolution: str, fmt: str, output: str | None, timeout: float,
                only: str | None) -> None:
    """Analyze every model of LIBRARY (weights never downloaded) at resolution R: a table
    like table 7 of Richter et al., sorted by r, and the failures with their reason. Progress
    goes to standard error: a bar on a terminal, else a line per model."""
    from .encoders import zoo_scan

    res = parse_resolution(resolution, 2)  # the libraries hold image models
    names = zoo_scan.model_names(library)
    if only is not None:
        wanted = {f"{library}:{n.strip()}" for n in only.split(",") if n.strip()}
        if not wanted:
            raise click.UsageError("--models names no model: give names separated by commas, such as resnet18,vgg19")
        unknown = sorted(wanted - set(names))
        if unknown:
            shown = ", ".join(printable(n.split(":", 1)[1]) for n in unknown)
            raise RFAError(f"unknown {library} models: {shown}")
        names = [n for n in names if n in wanted]
    with model_prints_to_stderr():
        rows, failures = zoo_scan.scan(names, resolution, timeout or None,
                                       progress="bar" if sys.stderr.isatty() else "lines")
    write_output(format_zoo(rows, failures, library, res, fmt), output)


@cli.group("structure")
def structure_group() -> None:
    """Dilation-search structure files (rfa_toolbox.rfsearch, mmcv's rfsearch format)."""


@structure_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
def structure_show(path: Path) -> None:
    """Print the search settings and the dilation of every layer in FILE."""
    from .rfsearch.structure import format_structure, load_structure

    write_output(format_structure(load_structure(path)) + "\n", None)


def _exit_for_findings(report: Report, fail_on: str | None) -> None:
    if fail_on is None:
        return
    found = [row.name for row in report.layers if row.status in FAIL_ON[fail_on]]
    if found:
        kinds = " or ".join(FAIL_ON[fail_on])
        names = printable(", ".join(found[:10]))
        click.echo(f"rfa: {len(found)} {kinds} layer(s) at {'x'.join(map(str, report.resolution))}:"
                   f" {names}{' ...' if len(found) > 10 else ''}", err=True)
        _finish(1)


cli.add_command(erf_command)


def _finish(code: int) -> NoReturn:
    """Exit with ``code`` once the output is flushed, without waiting for the interpreter's
    teardown (about a second after importing torch: the report is already written)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    if os.environ.get("RFA_NO_FAST_EXIT"):
        sys.exit(code)
    os._exit(code)


def _error(message: str) -> NoReturn:
    click.echo(f"rfa: error: {message}", err=True)
    _finish(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``rfa`` console script: bad input ends in one line and exit code 2.

    Called with ``argv`` (in-process, as tests do), it returns after success instead of
    ending the process."""
    guard_closed_streams()
    try:
        cli.main(args=argv, prog_name="rfa", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `rfa` alone: the help, as click does
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message(), err=True)
        _finish(2)
    except click.exceptions.Exit as exc:
        _finish(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        _error("interrupted")
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        _error(f"{printable(exc.format_message())}{hint}")
    except RFAError as exc:
        _error(printable(" ".join(str(exc).split("\n"))))
    except RecursionError:
        _error("the input is nested too deeply to be read (thousands of levels); no real model is")
    except MemoryError:
        _error("the input needs more memory than this machine has")
    except Exception as exc:
        if os.environ.get("RFA_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _error(f"unexpected {type(exc).__name__} ({printable(first)[:200]}); this is a bug of rfa-toolbox"
               " or a model it cannot read yet: set RFA_DEBUG=1 for the traceback and report it")
    if argv is None:
        _finish(0)


if __name__ == "__main__":
    main()
