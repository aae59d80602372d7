"""Parsing of input resolutions: one size for every axis, or one per axis (``800x1333``)."""

from __future__ import annotations

import numbers
import re
from collections.abc import Sequence
from typing import Any, Union

from .errors import ResolutionError, shown

ResolutionLike = Union[int, str, Sequence[int]]

#: The largest size accepted on one axis (larger inputs are not images, and their receptive
#: fields would be numbers no one can read).
MAX_SIZE = 2**31 - 1

_SIZES = re.compile(r"\s*[0-9]+(\s*[x×]\s*[0-9]+)*\s*", re.IGNORECASE)


def parse_resolution(value: ResolutionLike, ndim: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints, one per spatial axis.

    Accepts an int (numpy integers too: same size on every axis), a string such as ``"224"``
    or ``"800x1333"`` (digits only), or a sequence of ints. With ``ndim`` given, a single size
    is repeated on every axis and a per-axis value must have exactly ``ndim`` entries.
    """
    sizes: list[Any]
    if isinstance(value, (bool, bytes, bytearray)):
        raise ResolutionError(f"resolution must be a positive integer, got {shown(value)}")
    if isinstance(value, numbers.Integral):
        sizes = [value]
    elif isinstance(value, str):
        if len(value) > 100 or not _SIZES.fullmatch(value):
            raise ResolutionError(
                f"resolution {shown(value)} is not a size: use a positive integer such as 224,"
                " or one per axis such as 800x1333"
            )
        sizes = [int(p) for p in re.split(r"[x×]", value.strip().lower())]
    elif isinstance(value, Sequence):
        sizes = [*value]
    else:
        raise ResolutionError(f"resolution must be an int, a string or a sequence, got {shown(value)}")
    out = []
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
            raise ResolutionError(
                f"resolution {shown(value)} must be positive integers (pixels per axis),"
                f" got {shown(size)}"
            )
        if int(size) > MAX_SIZE:
            raise ResolutionError(f"resolution {shown(value)}: a size above {MAX_SIZE} pixels is not an image")
        out.append(int(size))
    if not out:
        raise ResolutionError("resolution is empty: give one size (224) or one per axis (800x1333)")
    if ndim is not None:
        if len(out) == 1:
            out = out * ndim
        elif len(out) != ndim:
            raise ResolutionError(
                f"resolution {shown(value)} has {len(out)} axes but the model has {ndim} spatial"
                f" axes: give one size or {ndim} sizes joined by 'x'"
            )
    return tuple(out)


def resolution_of(resolution: ResolutionLike | None, input_shape: ResolutionLike | None) -> tuple[int, ...]:
    """The resolution to analyze: ``resolution``, or the spatial sizes of ``input_shape`` (the
    full shape without batch, channels first). When both are given they must agree: a report
    must never name one resolution and analyze another."""
    shape = None
    if input_shape is not None:
        shape = parse_resolution(input_shape)
        if len(shape) < 2:
            raise ResolutionError(f"input shape {shown(input_shape)} needs channels and at least one"
                                  " spatial size, such as 3x224x224 or 1x16000")
    if resolution is None:
        if shape is None:
            raise ResolutionError("give the input resolution (--res) or the input shape (--input-shape)")
        return shape[1:]
    sizes = parse_resolution(resolution, None if shape is None else len(shape) - 1)
    if shape is not None and sizes != shape[1:]:
        raise ResolutionError(
            f"--res {'x'.join(map(str, sizes))} and --input-shape {'x'.join(map(str, shape))} disagree"
            f" (its spatial sizes are {'x'.join(map(str, shape[1:]))}): give one of them, or the same"
            " sizes in both")
    return sizes
