"""Small readers shared by the handlers: argument lists, element counts, op ranks."""

from __future__ import annotations

import math
import re
from typing import Any, Optional


def ints(value: Any, count: int) -> list[int]:
    """A traced int-or-list argument as ``count`` values (``[]`` when absent)."""
    if value is None or value == []:
        return []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * count if len(values) == 1 else values


def numel(sizes: Optional[tuple[int, ...]]) -> int:
    """The number of elements of a tensor of ``sizes`` (0 when unknown)."""
    return math.prod(sizes) if sizes else 0


def rank_of(kind: str) -> int:
    """The number of spatial dims an op kind names (``max_pool2d`` -> 2)."""
    match = re.search(r"(\d)d", kind)
    if match is None:
        raise ValueError(f"{kind} names no spatial rank")
    return int(match.group(1))
