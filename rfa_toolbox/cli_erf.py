"""``rfa erf``: the effective receptive field of a PyTorch model next to its theoretical one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .console import model_prints_to_stderr, progress, terminal_width, write_output
from .formats import printable

ERF_MODEL_HELP = """MODEL is a PyTorch model: a Python file defining it (model.py, or model.py:NAME),
    torchvision:NAME or timm:NAME (options after ?, as for rfa analyze)."""


def _floats(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[float, ...] | None:
    """Numbers separated by commas (one per input channel)."""
    if value is None:
        return None
    try:
        numbers = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{printable(value)!r} is not numbers separated by commas", ctx, param) from None
    if not all(abs(v) < 1e6 for v in numbers):
        raise click.BadParameter(f"{printable(value)!r}: give finite numbers", ctx, param)
    if param.name == "std" and not all(v > 0 for v in numbers):
        raise click.BadParameter(f"{printable(value)!r}: a standard deviation is above 0", ctx, param)
    return numbers


def _writable(picture: Path) -> None:
    """The picture's name and folder checked (the folder made when missing) before the work."""
    import os

    from .boxes_picture import picture_path
    from .errors import RFAError
    from .files import reason

    folder = picture_path(picture).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RFAError(f"cannot write {picture}: {reason(exc)}") from None
    if not os.access(folder, os.W_OK):
        raise RFAError(f"cannot write {picture}: the folder {folder} is not writable")


@click.command("erf", epilog=ERF_MODEL_HELP)
@click.argument("model", metavar="MODEL")
@click.option("--res", "-r", "resolution", metavar="R", help="Input resolution (224, or 800x1333).")
@click.option("--input-shape", metavar="SHAPE", help="Full input shape without batch, such as 3x224x224.")
@click.option("--layer", "-l", "layers", multiple=True, metavar="NAME",
              help="A layer (as rfa analyze names it) or a module path (as named_modules() lists it)"
                   " whose centre unit to measure (repeatable: one panel each). Default: the last"
                   " layer with a finite receptive field that a module called once makes.")
@click.option("--output", "outputs", multiple=True, metavar="NAME",
              help="An output of the model (as the outputs table of rfa analyze names it) whose centre"
                   " unit to measure (repeatable).")
@click.option("--weights", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Trained weights: a state dict (.pt/.pth, read with weights_only=True: no code runs)"
                   " or .safetensors. Default: the randomly initialised network.")
@click.option("--images", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="A folder of images to average over, resized to R and normalized with --mean and"
                   " --std. Default: Gaussian noise.")
@click.option("--samples", type=click.IntRange(min=1, max=100_000), default=32, show_default=True,
              help="How many inputs to average over (at most the number of images).")
@click.option("--batch", type=click.IntRange(min=1, max=4096), default=8, show_default=True,
              help="Inputs per forward and backward pass.")
@click.option("--mean", callback=_floats, default=None, metavar="M,M,M",
              help="Per-channel mean of image normalization (default ImageNet's 0.485,0.456,0.406).")
@click.option("--std", callback=_floats, default=None, metavar="S,S,S",
              help="Per-channel std of image normalization (default ImageNet's 0.229,0.224,0.225).")
@click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True,
              help="Seed of the Gaussian noise and of the random initialisation of a model built"
                   " from its name (so a run can be repeated).")
@click.option("--float64", is_flag=True, help="Run the model in float64 (default float32).")
@click.option("--log", is_flag=True, help="Draw 2-D maps on a logarithmic colour scale.")
@click.option("--picture", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Draw the maps (.png, .svg, .pdf, .jpg) with the theoretical boxes over them.")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table for people, json for programs (schema rfa-toolbox/erf/v1).")
def erf_command(**kwargs: Any) -> None:
    """The effective receptive field of a PyTorch MODEL at R (Luo et al. 2016): the mean absolute
    input gradient of a centre unit, summed over channels, over many inputs; with its spread, the
    boxes holding 20/30/50/99% of it, and how it compares with the unit's theoretical boxes."""
    from .erf import effective_receptive_field
    from .erf.inputs import IMAGENET_MEAN, IMAGENET_STD
    from .erf.report import format_erf

    picture = kwargs.pop("picture")
    if picture is not None:
        _writable(picture)  # a bad name or folder is said before any work
    with model_prints_to_stderr(), progress(sys.stderr.isatty()) as step:
        erf = effective_receptive_field(
            kwargs["model"], kwargs["resolution"], layers=kwargs["layers"], outputs=kwargs["outputs"],
            weights=kwargs["weights"], images=kwargs["images"], samples=kwargs["samples"], batch=kwargs["batch"],
            mean=kwargs["mean"] or IMAGENET_MEAN, std=kwargs["std"] or IMAGENET_STD, float64=kwargs["float64"],
            seed=kwargs["seed"], input_shape=kwargs["input_shape"], on_step=step)
    write_output(format_erf(erf, kwargs["fmt"], terminal_width()), None)
    if picture is not None:
        from .erf.picture import draw_erf

        click.echo(f"wrote {draw_erf(erf, picture, log=kwargs['log'])}", err=True)
