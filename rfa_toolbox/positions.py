"""Exact receptive fields position by position, at a concrete resolution.

Through upsampling, transposed convolutions and other resampling, what a unit reads depends on
its position, and the affine rules of `rfa_toolbox.receptive_field` are an estimate. Here
every node keeps, per axis, arrays over its units instead of one rule:

- *classes* of paths, each a pair of arrays (lo, hi): the interval of input pixels the unit
  reads along those paths (unclipped: padding extends it beyond the image, with the class's
  jump), and the jump used for that. A class whose interval contains another's at every unit
  (and has the same jump) can never give a smaller box, nor the other a larger one, whatever
  follows (a later layer takes the hull over its taps, which keeps containment), so the
  smallest-box list drops it and the largest-box list drops the other. r_min is the smallest
  box of the first list over all units, r_max the largest of the second: integers.
- *reads*: the hull of the input pixels a unit actually reads (padding reads nothing); with
  positive weights, exactly the extent of its input gradient.

Cost: the length of the arrays times the taps per layer, per class; classes stay few.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from .graph import Graph, Layer, Transfer
from .sizes import Sizes
from .taps import taps

MAX_CLASSES = 32  #: classes kept per list; more are merged into their hull (a note says so)
MAX_UNITS = 2**22  #: longer axes are left to the standard estimate (arrays of that size per class)


@dataclass(frozen=True)
class Box:
    """A class of paths on one axis: the interval unit i reads is [lo[i], hi[i]]."""

    lo: np.ndarray
    hi: np.ndarray
    jump: Fraction  #: how far one unit moves the interval (extends it over padding)


@dataclass
class Track:
    """What the units of one node read on one axis."""

    n: int
    smallest: list[Box]   #: classes that may give the smallest box somewhere
    largest: list[Box]    #: classes that may give the largest box somewhere (their hull: the union)
    reads_lo: np.ndarray  #: first input pixel actually read (-1 where none)
    reads_hi: np.ndarray  #: last input pixel actually read (-2 where none)
    capped: bool = False  #: classes were merged (MAX_CLASSES): sizes are bounds there

    def union(self) -> tuple[np.ndarray, np.ndarray]:
        """The hull of all paths, per unit."""
        lo = np.min(np.stack([b.lo for b in self.largest]), axis=0)
        hi = np.max(np.stack([b.hi for b in self.largest]), axis=0)
        return lo, hi

    def smallest_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Per unit, the box of the smallest path there."""
        sizes = np.stack([b.hi - b.lo for b in self.smallest])
        pick = np.argmin(sizes, axis=0)
        units = np.arange(self.n)
        return (np.stack([b.lo for b in self.smallest])[pick, units],
                np.stack([b.hi for b in self.smallest])[pick, units])

    @property
    def r_min(self) -> int:
        return int(min((b.hi - b.lo).min() for b in self.smallest)) + 1

    @property
    def r_max(self) -> int:
        return int(max((b.hi - b.lo).max() for b in self.largest)) + 1

    @property
    def aligned(self) -> bool:
        """Do all kept classes share one centre at every unit?"""
        centres = [b.lo + b.hi for b in self.smallest + self.largest]
        return all(np.array_equal(centres[0], c) for c in centres[1:])


def _input(n: int) -> Track:
    units = np.arange(n, dtype=np.int64)
    box = Box(units, units, Fraction(1))
    return Track(n, [box], [box], units, units)


def _extended(values: np.ndarray, index: np.ndarray, jump: Fraction, upward: bool) -> Any:
    """``values`` at ``index``, continued beyond the ends with ``jump`` per unit (rounded
    outward: down for starts, up for ends)."""
    n = len(values)
    inside = np.clip(index, 0, n - 1)
    beyond = index - inside
    out = values[inside].copy()
    for step in np.unique(beyond[beyond != 0]):
        shift = Fraction(int(step)) * jump
        whole = -(-shift.numerator // shift.denominator) if upward else shift.numerator // shift.denominator
        out[beyond == step] += whole
    return out


def _through(box: Box, index: np.ndarray, exists: np.ndarray, jump: Fraction) -> Box:
    lo = _extended(box.lo, index, box.jump, upward=False)
    hi = _extended(box.hi, index, box.jump, upward=True)
    big = np.iinfo(np.int64).max // 4
    lo = np.where(exists, lo, big).min(axis=1)
    hi = np.where(exists, hi, -big).max(axis=1)
    empty = ~exists.any(axis=1)
    if empty.any():  # a unit that reads nothing (a dilated transposed conv): its neighbour's box
        lo, hi = _filled(lo, empty), _filled(hi, empty)
    return Box(lo, hi, box.jump * jump)


def _filled(values: Any, empty: Any) -> Any:
    good = np.flatnonzero(~empty)
    nearest = good[np.clip(np.searchsorted(good, np.arange(len(values))), 0, len(good) - 1)]
    return values[nearest]


def _reads(track: Track, index: np.ndarray, exists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    real = exists & (index >= 0) & (index < track.n)
    real &= np.take(track.reads_lo, np.clip(index, 0, track.n - 1)) >= 0
    inside = np.clip(index, 0, track.n - 1)
    big = np.iinfo(np.int64).max // 4
    lo = np.where(real, track.reads_lo[inside], big).min(axis=1)
    hi = np.where(real, track.reads_hi[inside], -big).max(axis=1)
    none = ~real.any(axis=1)
    return np.where(none, -1, lo), np.where(none, -2, hi)


def _pruned(boxes: list[Box], keep_small: bool) -> tuple[list[Box], bool]:
    """Drop duplicate classes, and classes another contains (``keep_small``) or is contained
    in; above MAX_CLASSES, the widest are merged into their hull."""
    kept: list[Box] = []
    for box in boxes:
        dominated = False
        for other in kept:
            if other.jump != box.jump or len(other.lo) != len(box.lo):
                continue
            inside = bool(np.all(other.lo >= box.lo) and np.all(other.hi <= box.hi))
            outside = bool(np.all(other.lo <= box.lo) and np.all(other.hi >= box.hi))
            if (inside and keep_small) or (outside and not keep_small):
                dominated = True
                break
        if dominated:
            continue
        kept = [o for o in kept if not (o.jump == box.jump and len(o.lo) == len(box.lo) and (
            (np.all(box.lo >= o.lo) and np.all(box.hi <= o.hi)) if keep_small
            else (np.all(box.lo <= o.lo) and np.all(box.hi >= o.hi))))]
        kept.append(box)
    if len(kept) <= MAX_CLASSES:
        return kept, False
    kept.sort(key=lambda b: int((b.hi - b.lo).max()), reverse=not keep_small)
    rest = kept[MAX_CLASSES - 1:]
    hull = Box(np.min(np.stack([b.lo for b in rest]), axis=0), np.max(np.stack([b.hi for b in rest]), axis=0),
               rest[0].jump)
    return kept[: MAX_CLASSES - 1] + [hull], True


def _broadcast(track: Track, n: int) -> Track:
    if track.n == n:
        return track
    def wide(a: np.ndarray) -> np.ndarray:
        return np.broadcast_to(a, (n,)).copy()
    return Track(n, [Box(wide(b.lo), wide(b.hi), b.jump) for b in track.smallest],
                 [Box(wide(b.lo), wide(b.hi), b.jump) for b in track.largest],
                 wide(track.reads_lo), wide(track.reads_hi), track.capped)


def _merge(tracks: list[Track]) -> Track:
    n = max(t.n for t in tracks)
    tracks = [_broadcast(t, n) for t in tracks]
    smallest, capped_a = _pruned([b for t in tracks for b in t.smallest], keep_small=True)
    largest, capped_b = _pruned([b for t in tracks for b in t.largest], keep_small=False)
    reads_lo = np.min(np.stack([np.where(t.reads_lo >= 0, t.reads_lo, np.iinfo(np.int64).max) for t in tracks]),
                      axis=0)
    reads_hi = np.max(np.stack([t.reads_hi for t in tracks]), axis=0)
    reads_lo = np.where(reads_hi >= 0, reads_lo, -1)
    return Track(n, smallest, largest, reads_lo, reads_hi,
                 capped_a or capped_b or any(t.capped for t in tracks))


def _apply(layer: Layer, axis: int, track: Track, m: int) -> Track:
    index, exists = taps(layer, axis, m, track.n, clamp=False)
    jump = Fraction(track.n, m) if layer.transfer is not Transfer.WINDOW or not isinstance(
        layer.stride[axis], int) else Fraction(layer.stride[axis])
    if layer.transfer is Transfer.NEUTRAL:
        jump = Fraction(1)
    smallest, capped_a = _pruned([_through(b, index, exists, jump) for b in track.smallest], keep_small=True)
    largest, capped_b = _pruned([_through(b, index, exists, jump) for b in track.largest], keep_small=False)
    reads_lo, reads_hi = _reads(track, *taps(layer, axis, m, track.n, clamp=True))
    return Track(m, smallest, largest, reads_lo, reads_hi, capped_a or capped_b or track.capped)


def _track_of(layer: Layer, axis: int, m: Optional[int], feeds: list[Optional[Track]]) -> Optional[Track]:
    """The track of ``layer`` on ``axis`` (m units), from its inputs' tracks."""
    if layer.transfer is Transfer.INPUT:
        return _input(m) if m is not None else None
    collapsed = layer.transfer is Transfer.GLOBAL and (not layer.global_axes or axis in layer.global_axes)
    known = [f for f in feeds if f is not None]
    if m is None or collapsed or not feeds or len(known) < len(feeds):
        return None
    if layer.transfer is Transfer.MERGE or len(known) > 1:
        fits = all(f.n in (1, m) for f in known)  # inputs of other sizes: no unit matches
        return _merge(known) if fits else None
    moves = layer.transfer is Transfer.NEUTRAL and (bool(layer.padding) or "padding_after" in layer.meta)
    if layer.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED, Transfer.UPSAMPLE) or moves:
        return _apply(layer, axis, known[0], m)
    if known[0].n not in (1, m):  # an op that changes the size in a way no rule says
        return None
    return _broadcast(known[0], m)


def exact_tracks(graph: Graph, sizes: dict[str, Sizes], keep: Optional[set[str]] = None,
                 ) -> dict[str, tuple[Optional[Track], ...]]:
    """The tracks of every node (per axis; None where infinite or where sizes are unknown).

    With ``keep``, only those nodes' tracks are returned (the others are freed as soon as no
    later node needs them)."""
    tracks: dict[str, tuple[Optional[Track], ...]] = {}
    remaining = {layer.name: len(graph.successors(layer.name)) for layer in graph}
    out: dict[str, tuple[Optional[Track], ...]] = {}
    for layer, sources in graph.nodes_with_inputs():
        here = sizes[layer.name]
        result: list[Optional[Track]] = []
        for axis in range(graph.ndim):
            m = here[axis]
            result.append(_track_of(layer, axis, None if m is None or m > MAX_UNITS else m,
                                    [tracks[s][axis] for s in sources]))
        tracks[layer.name] = tuple(result)
        if keep is None or layer.name in keep:
            out[layer.name] = tracks[layer.name]
        for source in sources:
            remaining[source] -= 1
            if remaining[source] == 0 and keep is not None:
                del tracks[source]
    return out
