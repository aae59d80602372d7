"""The options every ``rfa`` command that reads a model shares, and running its analysis."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .analysis import Analysis
from .api import analysis_of
from .console import model_prints_to_stderr, progress

F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = """MODEL is an architecture file (.yaml, .yml or .json), a Python file defining a
    PyTorch model (model.py, or model.py:NAME to pick one), torchvision:NAME, timm:NAME, a Keras
    model saved as .keras or as model.to_json() in a .json file, keras:NAME (a
    keras.applications model), or an ONNX file (.onnx, from any exporter)."""



def seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A time limit: finite and not negative (0: no limit)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter("give a number of seconds (0: no limit)", ctx, param)
    return value


def model_options(fn: F) -> F:
    """MODEL, --res, --input-shape, --strict, --allow-unknown, --module, --structure and --timeout:
    how to read the model."""
    fn = click.option("--timeout", type=float, default=None, metavar="SECONDS", callback=seconds,
                      help="Give up building and tracing the model after this many seconds.")(fn)
    fn = click.option("--structure", type=click.Path(dir_okay=False, path_type=Path), default=None,
                      metavar="FILE",
                      help="A dilation-search structure file (rfsearch / mmcv JSON) to apply to a"
                           " PyTorch model before analysing it.")(fn)
    fn = click.option("--module", metavar="PATH", default=None,
                      help="Analyze this submodule of a PyTorch model (such as backbone or"
                           " backbone.body), traced on the inputs the model gives it.")(fn)
    fn = click.option("--allow-unknown", is_flag=True,
                      help="Treat ops without a handler as neutral even when they change the"
                           " spatial shape.")(fn)
    fn = click.option("--strict", is_flag=True,
                      help="Treat every op without a handler as an error (default: neutral when"
                           " it keeps the spatial shape, and listed under unknown ops).")(fn)
    fn = click.option("--input-shape", metavar="SHAPE",
                      help="Full input shape without batch for framework models, such as"
                           " 3x224x224, 1x16000 (audio) or 3x16x112x112 (video); with --res, the"
                           " two must agree.")(fn)
    fn = click.option("--res", "-r", "resolution", metavar="R",
                      help="Input resolution: one size for every axis (224) or one per axis"
                           " (800x1333). Required unless --input-shape is given.")(fn)
    return click.argument("model", metavar="MODEL")(fn)


def output_options(formats: tuple[str, ...], what: str, schema: str) -> Callable[[F], F]:
    """--format (one of ``formats``) and --output for a command that prints ``what``."""
    def decorate(fn: F) -> F:
        fn = click.option("--output", "-o", metavar="FILE", default=None,
                          help=f"Write the {what} to this file instead of standard output (its"
                               " folder is made when missing).")(fn)
        return click.option("--format", "-f", "fmt", type=click.Choice(formats), default=formats[0],
                            show_default=True,
                            help=f"table for people, json for programs (versioned schema, {schema}),"
                                 " the others for documents.")(fn)
    return decorate


def model_analysis(options: dict[str, Any], suggestions: bool = False, limit: int = 10,
              exact: bool = True) -> Analysis:
    """The analysis of the model the options name, with the model's prints on standard error
    and the steps on a spinner when standard error is a terminal."""
    with model_prints_to_stderr(), progress(sys.stderr.isatty()) as step:
        return analysis_of(options.pop("model"), options.pop("resolution"), suggestions=suggestions,
                           limit=limit, on_step=step, exact=exact, **options)


def model_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The model options of a command's arguments (removed from ``kwargs``)."""
    names = ("model", "resolution", "input_shape", "strict", "allow_unknown", "structure", "timeout", "module")
    options = {name: kwargs.pop(name) for name in names}
    if options["strict"] and options["allow_unknown"]:
        raise click.UsageError("--strict and --allow-unknown contradict each other: give one of them")
    return options
