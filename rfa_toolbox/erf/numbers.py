"""Numbers of an effective receptive field (a non-negative map of input contributions, one axis
per spatial axis): its spread per axis, the boxes around the unit's centre that hold 20, 30, 50
and 99% of the contribution (the high-contribution area ratios of RepLKNet, Ding et al. 2022),
and how it compares with the theoretical boxes of the same unit. numpy only."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

#: The shares of the total contribution whose boxes are reported.
SHARES = (0.2, 0.3, 0.5, 0.99)

Interval = Optional[tuple[int, int]]


@dataclass(frozen=True)
class ERFNumbers:
    """What an ERF map says, per axis where it has axes (see the module docstring)."""

    std: tuple[float, ...]           #: standard deviation of the contribution along each axis
    mean: tuple[float, ...]          #: where the contribution is centred, per axis (pixels)
    #: per share: the half-width r of the smallest box [c - r, c + r] around the map's centre c
    #: (the same r on every axis, cut to the input) that holds that share of the contribution
    radius: dict[float, int]
    #: per share: that box's area over the input's (RepLKNet's high-contribution area ratio)
    area_ratio: dict[float, float]
    #: the 99% box's area over the area of the unit's theoretical union box (cut to the input)
    ratio_to_theoretical: Optional[float]
    share_in_smallest: Optional[float]  #: contribution inside the smallest path's box

    def to_dict(self) -> dict[str, Any]:
        """Plain data (shares as percentages, ``"99"``)."""
        return {"std": [round(v, 4) for v in self.std], "mean": [round(v, 4) for v in self.mean],
                "radius": {_pct(t): r for t, r in self.radius.items()},
                "area_ratio": {_pct(t): round(a, 6) for t, a in self.area_ratio.items()},
                "ratio_to_theoretical": _rounded(self.ratio_to_theoretical),
                "share_in_smallest": _rounded(self.share_in_smallest)}


def _rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 6)


def _pct(share: float) -> str:
    return f"{share * 100:g}"


def erf_numbers(heat: np.ndarray, centre: Optional[Sequence[float]], union: Sequence[Interval],
                smallest: Sequence[Interval]) -> ERFNumbers:
    """The numbers of ``heat`` around ``centre`` (input pixels, per axis; default: the map's own
    centre, its mean) for a unit whose union box and smallest path's box, cut to the input, are
    ``union`` and ``smallest`` (None on an axis: the whole axis for the union, nothing for the
    smallest). The map's mean is the unit's centre where fields are symmetric; after
    upsampling, the union box is not, and the mean is where the contribution is."""
    heat = np.asarray(heat, dtype=np.float64)
    total = float(heat.sum())
    if not total > 0:
        raise ValueError("the map holds no contribution")
    mean, std = [], []
    for axis in range(heat.ndim):
        marginal = heat.sum(axis=tuple(a for a in range(heat.ndim) if a != axis)) / total
        positions = np.arange(heat.shape[axis], dtype=np.float64)
        m = float((marginal * positions).sum())
        mean.append(m)
        std.append(math.sqrt(max(float((marginal * (positions - m) ** 2).sum()), 0.0)))
    centre = list(mean) if centre is None else list(centre)
    table = _summed_area(heat)
    radius: dict[float, int] = {}
    area: dict[float, float] = {}
    limit = max(heat.shape)
    for share in SHARES:
        r = _smallest_radius(table, heat.shape, centre, share * total, limit)
        box = _box(centre, r, heat.shape)
        radius[share] = r
        area[share] = math.prod(hi - lo + 1 for lo, hi in box) / math.prod(heat.shape)
    whole = [(0, n - 1) if b is None else b for b, n in zip(union, heat.shape)]
    theoretical = math.prod(hi - lo + 1 for lo, hi in whole)
    box99 = _box(centre, radius[0.99], heat.shape)
    ratio = math.prod(hi - lo + 1 for lo, hi in box99) / theoretical if theoretical > 0 else None
    inside: Optional[float] = None
    if all(b is not None for b in smallest):
        inside = _sum_box(table, [b for b in smallest if b is not None]) / total
    elif smallest:
        inside = 0.0
    return ERFNumbers(tuple(std), tuple(mean), radius, area, ratio, inside)


def _summed_area(heat: np.ndarray) -> np.ndarray:
    """Cumulative sums along every axis, padded with a leading zero on each."""
    table = np.pad(heat, [(1, 0)] * heat.ndim)
    for axis in range(heat.ndim):
        table = np.cumsum(table, axis=axis)
    return table


def _sum_box(table: np.ndarray, box: Sequence[tuple[int, int]]) -> float:
    """The sum of the map over ``box`` (inclusive per axis), by inclusion-exclusion."""
    total = 0.0
    for corner in range(2 ** len(box)):
        index, sign = [], 1
        for axis, (lo, hi) in enumerate(box):
            if corner >> axis & 1:
                index.append(lo)
                sign = -sign
            else:
                index.append(hi + 1)
        total += sign * float(table[tuple(index)])
    return total


def _box(centre: Sequence[float], r: int, shape: Sequence[int]) -> list[tuple[int, int]]:
    """[c - r, c + r] per axis, in whole pixels, cut to the input."""
    return [(max(0, math.ceil(c - r)), min(n - 1, math.floor(c + r))) for c, n in zip(centre, shape)]


def _smallest_radius(table: np.ndarray, shape: Sequence[int], centre: Sequence[float],
                     needed: float, limit: int) -> int:
    """The smallest r whose box holds ``needed`` (binary search: the sums grow with r)."""
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi) // 2
        if _sum_box(table, _box(centre, mid, shape)) >= needed * (1 - 1e-12):
            hi = mid
        else:
            lo = mid + 1
    return lo
