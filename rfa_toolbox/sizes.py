"""The number of units of every node on every spatial axis at an input resolution.

Encoders that traced or read the model record the sizes they saw (``layer.meta["sizes"]``);
for the rest (architecture files) they follow from the input resolution: a window layer gives
floor((n + before + after - d(k-1) - 1) / s) + 1 positions (``after`` defaults to ``before``),
with ``ceil_mode`` the division rounds up but no window may start in the right padding; an
upsampling by f floor(n * f), a transposed conv (n - 1)s - before - after + d(k-1) + 1 plus
its output padding, a merge the largest of its inputs (broadcasting). Keras' "same" padding is
resolved here, from the sizes: total max((ceil(n/s) - 1)s + d(k-1) + 1 - n, 0), of which
total // 2 before.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Optional

from .graph import Graph, Layer, Number, Transfer

Sizes = tuple[Optional[int], ...]  #: units per axis; None where unknown (or collapsed)


def same_padding(n: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of a window layer: (before, after) for an input of n."""
    total = max((math.ceil(n / stride) - 1) * stride + dilation * (kernel - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def _after(layer: Layer, axis: int) -> Number:
    after = layer.meta.get("padding_after")
    if after is not None:
        return after[axis]  # type: ignore[no-any-return]
    return layer.padding[axis] if layer.padding else 0


def _before(layer: Layer, axis: int) -> Number:
    return layer.padding[axis] if layer.padding else 0


def _window_size(layer: Layer, axis: int, n: int) -> int:
    k, s, d = layer.kernel[axis], layer.stride[axis], layer.dilation[axis]
    if not isinstance(s, int):  # adaptive pooling: its output size is n / s
        return max(1, round(n / Fraction(s)))
    span = n + _before(layer, axis) + _after(layer, axis) - d * (k - 1) - 1
    if not layer.meta.get("ceil_mode"):
        return max(int(span // s) + 1, 0)
    out = -(-span // s) + 1
    if (out - 1) * s >= n + _before(layer, axis):  # PyTorch: no window starts in the right padding
        out -= 1
    return max(int(out), 0)


def size_after(layer: Layer, axis: int, inputs: list[Optional[int]]) -> Optional[int]:
    """The units of ``layer`` on ``axis``, given its inputs' units there."""
    known = [n for n in inputs if n is not None]
    if not known:
        return None
    n = max(known)
    t = layer.transfer
    if t is Transfer.WINDOW:
        return _window_size(layer, axis, n)
    if t is Transfer.TRANSPOSED:
        k, s, d = layer.kernel[axis], int(layer.stride[axis]), layer.dilation[axis]
        extra = (layer.meta.get("output_padding") or (0,) * len(layer.kernel))[axis]
        return int((n - 1) * s - _before(layer, axis) - _after(layer, axis) + d * (k - 1) + 1 + extra)
    if t is Transfer.UPSAMPLE:
        return int(math.floor(n * Fraction(layer.factor[axis])))
    if t is Transfer.GLOBAL:
        return None if not layer.global_axes or axis in layer.global_axes else n
    if layer.padding:
        return int(n + _before(layer, axis) + _after(layer, axis))
    return n


def resolve_same(layer: Layer, inputs: Sizes) -> Layer:
    """``layer`` with a "same" padding (``meta["same"]``) made concrete for its inputs' sizes."""
    if not layer.meta.get("same") or layer.transfer is not Transfer.WINDOW:
        return layer
    before, after = [], []
    for axis, n in enumerate(inputs):
        if n is None:
            return layer
        b, a = same_padding(n, layer.kernel[axis], int(layer.stride[axis]), layer.dilation[axis])
        before.append(b)
        after.append(a)
    meta = {**{k: v for k, v in layer.meta.items() if k != "same"}, "padding_after": tuple(after)}
    return layer.with_changes(padding=tuple(before), meta=meta)


_PASSING = (Transfer.NEUTRAL, Transfer.MERGE)  #: ops whose output has their inputs' size


def spatial_sizes(graph: Graph, resolution: tuple[int, ...]) -> tuple[dict[str, Sizes], dict[str, Layer]]:
    """The units per axis of every node, and the layers whose "same" padding was resolved."""
    sizes: dict[str, Sizes] = {}
    resolved: dict[str, Layer] = {}
    # sizes an encoder saw hold at the resolution it traced (inputs of other sizes are theirs)
    traced = [graph[n].meta.get("sizes") for n in graph.inputs]
    trusted = bool(traced) and traced[0] is not None and tuple(traced[0]) == tuple(resolution) and all(
        s is not None for s in traced)
    for layer, sources in graph.nodes_with_inputs():
        if layer.transfer is Transfer.INPUT:
            sizes[layer.name] = tuple(layer.meta.get("sizes") or resolution) if trusted else tuple(resolution)
            continue
        feeds = [sizes[s] for s in sources]
        if layer.transfer in _PASSING and not layer.padding and (not trusted or "sizes" not in layer.meta) \
                and None not in feeds[0] and all(f == feeds[0] for f in feeds):
            sizes[layer.name] = feeds[0]  # norms, activations, merges of equal sizes: it passes on
            continue
        widest = tuple(max((n for f in feeds if (n := f[a]) is not None), default=None) for a in range(graph.ndim))
        fixed = resolve_same(layer, widest)
        if fixed is not layer:
            resolved[layer.name] = layer = fixed
        seen = layer.meta.get("sizes") if trusted else None
        computed = tuple(size_after(layer, a, [f[a] for f in feeds]) for a in range(graph.ndim))
        if seen is not None:
            computed = tuple(s if s is not None else c for s, c in zip(seen, computed))
        sizes[layer.name] = tuple(None if n is None or n < 1 else n for n in computed)
    return sizes, resolved
