"""Parsing of input resolutions: one size for every axis, or one per axis (``800x1333``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from .errors import ResolutionError

ResolutionLike = Union[int, str, Sequence[int]]


def parse_resolution(value: ResolutionLike, ndim: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of positive ints, one per spatial axis.

    Accepts an int (same size on every axis), a string such as ``"224"`` or ``"800x1333"``,
    or a sequence of ints. With ``ndim`` given, a single size is repeated on every axis and a
    per-axis value must have exactly ``ndim`` entries.
    """
    if isinstance(value, bool):
        raise ResolutionError(f"resolution must be a positive integer, got {value!r}")
    if isinstance(value, int):
        sizes = [value]
    elif isinstance(value, str):
        parts = value.strip().lower().replace("×", "x").split("x")
        try:
            sizes = [int(p) for p in parts]
        except ValueError:
            raise ResolutionError(
                f"resolution {value!r} is not a size: use a positive integer such as 224,"
                " or one per axis such as 800x1333"
            ) from None
    elif isinstance(value, Sequence):
        sizes = [*value]
    else:
        raise ResolutionError(f"resolution must be an int, a string or a sequence, got {value!r}")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ResolutionError(
                f"resolution {value!r} must be positive integers (pixels per axis), got {size!r}"
            )
    if ndim is not None:
        if len(sizes) == 1:
            sizes = sizes * ndim
        elif len(sizes) != ndim:
            raise ResolutionError(
                f"resolution {value!r} has {len(sizes)} axes but the model has {ndim} spatial"
                f" axes: give one size or {ndim} sizes joined by 'x'"
            )
    return tuple(sizes)
