"""Where a unit looks: the input interval of any unit of any layer, and the units that look at
an input position, per axis, exact (ints and Fractions).

Without resampling, a unit's union box follows from the spans of its layer (one per jump j:
unit i covers [lo + i*j, hi + i*j]) and its smallest path's box from that path's offset and
size. Through resampling, the boxes are read from the position-by-position arrays of
`rfa_toolbox.positions`, computed for the layer asked about.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Optional

from .errors import GraphError, shown
from .graph import Graph, Number, simplify
from .receptive_field import NodeRF
from .sizes import Sizes


class Locator:
    """Answers where units look, for one analyzed graph at one resolution."""

    def __init__(self, graph: Graph, rf: dict[str, NodeRF], resolution: tuple[int, ...],
                 sizes: Optional[dict[str, Sizes]], exact: bool, tracks: Optional[dict[str, Any]] = None):
        self.graph, self.rf, self.resolution, self.exact = graph, rf, resolution, exact
        self._sizes = sizes
        self._tracks: dict[str, Any] = dict(tracks or {})  #: exact arrays per layer, once computed

    @property
    def sizes(self) -> dict[str, Sizes]:
        """The units of every node per axis (computed at the first question when the analysis
        did not need them)."""
        if self._sizes is None:
            from .sizes import spatial_sizes

            self._sizes = spatial_sizes(self.graph, self.resolution)[0]
        return self._sizes

    def _node(self, layer: str) -> NodeRF:
        if layer not in self.rf:
            raise GraphError(f"the model has no layer {shown(layer)}")
        return self.rf[layer]

    def units(self, layer: str) -> tuple[Optional[int], ...]:
        """Units of ``layer`` per axis (None where unknown)."""
        self._node(layer)
        return tuple(self.sizes.get(layer) or (None,) * self.graph.ndim)

    def _index(self, layer: str, index: Any, what: str = "index") -> tuple[int, ...]:
        values = list(index) if isinstance(index, (list, tuple)) else [index] * self.graph.ndim
        if len(values) != self.graph.ndim or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      for v in values):
            raise GraphError(f"{what} {shown(index)} must be one integer per spatial axis"
                             f" ({self.graph.ndim} of them)")
        units = self.sizes.get(layer)
        if what == "index" and units is not None:
            for axis, (v, n) in enumerate(zip(values, units)):
                if n is not None and not 0 <= v < n:
                    raise GraphError(f"unit {v} on axis {axis} is outside layer {shown(layer)},"
                                     f" which has {n} units there (0..{n - 1})")
        return tuple(values)

    def _track(self, layer: str, axis: int) -> Any:
        """The exact arrays of ``layer`` on ``axis`` (None where the sizes are unknown)."""
        if layer not in self._tracks:
            from .positions import exact_tracks

            self._tracks[layer] = exact_tracks(self.graph, self.sizes, keep={layer})[layer]
        return self._tracks[layer][axis]

    def box(self, layer: str, index: Any) -> list[Optional[dict[str, Any]]]:
        """Per axis: ``union`` and ``smallest`` (the interval of all paths, and of the smallest
        path), unclipped (padding makes it reach beyond the input); ``union_clipped``, the
        first and last input pixel the unit actually reads (with positive weights, the extent of
        its input gradient); ``smallest_clipped``, the smallest box cut to the input (None when
        nothing is left). None on an axis where the unit sees everything."""
        node, where = self._node(layer), self._index(layer, index)
        out: list[Optional[dict[str, Any]]] = []
        for axis, i in enumerate(where):
            a = node[axis]
            if not a.finite:
                out.append(None)
                continue
            track = self._track(layer, axis)
            reads: Optional[tuple[Number, Number]] = None
            if track is not None:
                lo, hi = track.union()
                s_lo, s_hi = track.smallest_box()
                union: tuple[Number, Number] = (int(lo[i]), int(hi[i]))
                smallest: tuple[Number, Number] = (int(s_lo[i]), int(s_hi[i]))
                if track.reads_lo[i] >= 0:
                    reads = (int(track.reads_lo[i]), int(track.reads_hi[i]))
            else:
                union = _affine_union(a, i)
                r, j, off = a.mins[0]
                start = simplify(off + i * j)
                smallest = (start, simplify(start + r - 1))
            n = self.resolution[axis]
            out.append({"union": union, "smallest": smallest,
                        "union_clipped": reads if track is not None else _clip(union, n),
                        "smallest_clipped": _clip(smallest, n)})
        return out

    def union(self, layer: str, index: Any) -> list[Optional[tuple[Number, Number]]]:
        """Per axis, the union box of unit ``index`` (unclipped; None where infinite), without
        a pass over the graph unless the values are position dependent."""
        node, where = self._node(layer), self._index(layer, index)
        out: list[Optional[tuple[Number, Number]]] = []
        for axis, i in enumerate(where):
            a = node[axis]
            track = self._track(layer, axis) if a.finite and (self.exact or layer in self._tracks) else None
            if track is not None:
                lo, hi = track.union()
                out.append((int(lo[i]), int(hi[i])))
            else:
                out.append(_affine_union(a, i) if a.finite else None)
        return out

    def centre(self, layer: str, index: Any) -> tuple[Optional[Number], ...]:
        """The centre of the union box of the unit, per axis (None where infinite)."""
        return centre_of(self.box(layer, index))

    def prefetch(self, layers: Sequence[str]) -> None:
        """Compute the exact arrays of several layers in one pass over the graph (a question
        about a new layer otherwise makes its own pass)."""
        missing = {name for name in layers if name not in self._tracks and name in self.rf}
        if missing:
            from .positions import exact_tracks

            self._tracks.update(exact_tracks(self.graph, self.sizes, keep=missing))

    def units_covering(self, layer: str, position: Any) -> list[Optional[tuple[int, int]]]:
        """Per axis, (first, last) unit of ``layer`` whose union box holds input ``position``."""
        node, where = self._node(layer), self._index(layer, position, "position")
        units = self.units(layer)
        out: list[Optional[tuple[int, int]]] = []
        for axis, x in enumerate(where):
            a, n = node[axis], units[axis]
            if not a.finite:
                out.append(None)
                continue
            track = self._track(layer, axis)
            if track is not None:
                import numpy as np

                lo, hi = track.union()
                hits = np.flatnonzero((lo <= x) & (hi >= x))
                out.append((int(hits[0]), int(hits[-1])) if len(hits) else None)
                continue
            first = min(_ceil(Fraction(x - s[2]) / s[0]) for s in a.spans)
            last = max(_floor(Fraction(x - s[1]) / s[0]) for s in a.spans)
            first, last = max(first, 0), last if n is None else min(last, n - 1)
            out.append((first, last) if first <= last else None)
        return out


def centre_of(boxes: Sequence[Optional[dict[str, Any]]]) -> tuple[Optional[Number], ...]:
    """The centre of the union boxes `Locator.box` gives, per axis (None where infinite)."""
    return tuple(None if b is None else simplify(Fraction(b["union"][0] + b["union"][1], 2)) for b in boxes)


def _affine_union(a: Any, i: int) -> tuple[Number, Number]:
    """Unit i's union box from the spans of an axis (exact where nothing resamples)."""
    return (min(simplify(s[1] + i * s[0]) for s in a.spans), max(simplify(s[2] + i * s[0]) for s in a.spans))


def _clip(box: tuple[Number, Number], n: int) -> Optional[tuple[Number, Number]]:
    lo, hi = max(box[0], 0), min(box[1], n - 1)
    return (lo, hi) if lo <= hi else None


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


def _floor(x: Fraction) -> int:
    return x.numerator // x.denominator
