"""Which input units each output unit of a layer reads, position by position.

For an output of m units on an axis and an input of n units, `taps` gives an (m, T) integer
array of input unit indices and an (m, T) mask of the taps that exist (non-zero weight). Two
views: *real* taps are what the framework reads (window layers' padding taps fall outside
[0, n) and read nothing; interpolations clamp to the border), so that the mask is the
gradient's support; *unclipped* taps (``clamp=False``) continue the pattern beyond the border
instead of clamping, so that a border unit's box is as large as an inner one's. Zero-weight taps
(a sample that falls on a unit exactly) are left out in both. The coordinate arithmetic of the
resampling ops follows PyTorch (in float32, as it computes it) or, for Keras layers,
TensorFlow's half-pixel resize.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

from .graph import Layer, Transfer

Taps = tuple[np.ndarray, np.ndarray]  #: (indices (m, T), exists (m, T))

CUBIC_A = {"torch": -0.75, "keras": -0.5}  #: the bicubic kernel's parameter per framework


def _window(m: int, k: int, s: int, d: int, p: int) -> Taps:
    index = np.arange(m)[:, None] * s - p + d * np.arange(k)[None, :]
    return index, np.ones_like(index, dtype=bool)


def _adaptive(m: int, n: int) -> Taps:
    starts = (np.arange(m) * n) // m
    ends = -((-(np.arange(m) + 1) * n) // m)
    width = int((ends - starts).max())
    index = starts[:, None] + np.arange(width)[None, :]
    return index, index < ends[:, None]


def _transposed(m: int, n: int, k: int, s: int, d: int, p: int) -> Taps:
    numerator = np.arange(m)[:, None] + p - d * np.arange(k)[None, :]
    return numerator // s, numerator % s == 0


def _scale(layer: Layer, axis: int, n: int, m: int, align_corners: bool) -> np.float32:
    """The coordinate scale from output to input, as the framework computes it."""
    if align_corners:
        return np.float32((n - 1) / (m - 1)) if m > 1 else np.float32(0)
    given = layer.meta.get("scale")
    if given is not None and given[axis] is not None:
        return np.float32(1.0 / float(given[axis]))
    return np.float32(n / m)


def _source(scale: np.float32, m: int, align_corners: bool) -> np.ndarray:
    """The input coordinate of each of the m output units, in float32. Without align_corners,
    scale * (o + 0.5) - 0.5 is rounded once, as the fused multiply-add that PyTorch's CPU
    kernels (and TensorFlow's) compile to on current CPUs: a sample meant to fall on a unit can
    land 1e-8 beside it and read a neighbour."""
    out = np.arange(m)
    if align_corners:
        return scale * out.astype(np.float32)
    return (np.float64(scale) * (out + 0.5) - 0.5).astype(np.float32)


#: ONNX Resize's nearest_mode: how a coordinate becomes a unit
_ROUNDING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round_prefer_floor": lambda x: np.ceil(x - 0.5), "round_prefer_ceil": lambda x: np.floor(x + 0.5),
    "floor": np.floor, "ceil": np.ceil}


def _onnx_source(layer: Layer, axis: int, m: int, n: int) -> np.ndarray:
    """The input coordinate of each output unit by ONNX Resize's coordinate_transformation_mode
    (the modes PyTorch's and TensorFlow's resampling do not share), in float32."""
    given = layer.meta.get("scale")
    scale = float(given[axis]) if given and given[axis] else m / n
    out = np.arange(m, dtype=np.float64)
    mode = layer.meta["coordinates"]
    if mode == "align_corners":
        source = out * ((n - 1) / (m - 1)) if m > 1 else out * 0
    elif mode == "asymmetric":
        source = out / scale
    elif mode == "tf_half_pixel_for_nn":
        source = (out + 0.5) / scale
    elif mode == "half_pixel_symmetric":
        adjustment = m / (scale * n)
        source = n / 2 * (1 - adjustment) + (out + 0.5) / scale - 0.5
    elif mode == "pytorch_half_pixel" and m == 1:
        source = out * 0
    else:  # half_pixel, pytorch_half_pixel
        source = (out + 0.5) / scale - 0.5
    return source.astype(np.float32)


def _nearest(layer: Layer, axis: int, m: int, n: int, clamp: bool) -> Taps:
    out = np.arange(m)
    if layer.meta.get("onnx_rule"):
        rounding = _ROUNDING.get(str(layer.meta.get("nearest_mode")), _ROUNDING["round_prefer_floor"])
        index = rounding(_onnx_source(layer, axis, m, n)).astype(np.int64)
        return (np.clip(index, 0, n - 1) if clamp else index)[:, None], np.ones((m, 1), dtype=bool)
    if layer.op == "pixel_shuffle" or layer.meta.get("framework") == "keras":
        factor = Fraction(m, n)
        index = out * factor.denominator // factor.numerator
    elif m == n:
        index = out
    elif m == 2 * n:
        index = out >> 1
    else:
        scale = _scale(layer, axis, n, m, False)
        shift = np.float32(0.5) if layer.meta.get("nearest_exact") else np.float32(0)
        index = np.floor((out.astype(np.float32) + shift) * scale).astype(np.int64)
        if clamp:
            index = np.minimum(index, n - 1)
    return index[:, None], np.ones((m, 1), dtype=bool)


def _sources(layer: Layer, axis: int, m: int, n: int) -> np.ndarray:
    """The input coordinate of each output unit: ONNX's rule where the file asks for one no
    framework shares, else PyTorch's (TensorFlow's half-pixel resize samples the same points)."""
    if layer.meta.get("onnx_rule"):
        return _onnx_source(layer, axis, m, n)
    align = bool(layer.meta.get("align_corners"))
    return _source(_scale(layer, axis, n, m, align), m, align)


def _linear(layer: Layer, axis: int, m: int, n: int, clamp: bool) -> Taps:
    if m == n and not layer.meta.get("onnx_rule"):
        index = np.arange(m)
        return index[:, None], np.ones((m, 1), dtype=bool)
    source = _sources(layer, axis, m, n)
    if clamp:
        source = np.maximum(source, 0)
    first = np.floor(source).astype(np.int64)
    if clamp:
        first = np.minimum(first, n - 1)
    weight = np.clip(source - first, 0, 1)
    second = np.where(first < n - 1, first + 1, first) if clamp else first + 1
    index = np.stack([first, second], axis=1)
    exists = np.stack([weight < 1, weight > 0], axis=1)
    return index, exists


def _cubic_weight(x: np.ndarray, a: float) -> np.ndarray:
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _cubic(layer: Layer, axis: int, m: int, n: int, clamp: bool) -> Taps:
    source = _sources(layer, axis, m, n)
    first = np.floor(source).astype(np.int64)
    t = (source - first).astype(np.float64)
    offsets = np.arange(-1, 3)
    a = float(layer.meta.get("cubic_a", CUBIC_A.get(str(layer.meta.get("framework", "torch")), -0.75)))
    weights = _cubic_weight(t[:, None] - offsets[None, :], a)
    index = first[:, None] + offsets[None, :]
    exists = weights != 0
    if layer.meta.get("exclude_outside"):  # ONNX: taps outside the input get no weight
        exists &= (index >= 0) & (index < n)
    return (np.clip(index, 0, n - 1) if clamp else index), exists


def antialiased(mode: str, m: int, n: int) -> Taps:
    """PyTorch's antialiased downsampling: a triangle (bilinear) or cubic filter widened by the
    scale, support taps/2 * scale around each output centre."""
    taps = 4 if mode == "bicubic" else 2
    scale = n / m
    support = taps / 2 * scale
    rows = []
    for i in range(m):
        centre = scale * (i + 0.5)
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), n) - 1
        positions = np.arange(first, last + 1)
        x = np.abs((positions - centre + 0.5) / scale)
        weight = np.where(x < 1, 1 - x, 0.0) if taps == 2 else _cubic_weight(x, -0.5)
        rows.append(positions[weight != 0])
    width = max(1, max(len(r) for r in rows))
    index = np.zeros((m, width), dtype=np.int64)
    exists = np.zeros((m, width), dtype=bool)
    for i, row in enumerate(rows):
        index[i, : len(row)] = row
        exists[i, : len(row)] = True
    return index, exists


def _pad(layer: Layer, axis: int, m: int, n: int, clamp: bool) -> Taps:
    """Padding: unit o is input unit o - before; the real taps of the border units follow the
    mode (zeros, a mirror, the nearest unit, the other side), the unclipped ones continue."""
    source = np.arange(m) - (int(layer.padding[axis]) if layer.padding else 0)
    mode = layer.meta.get("pad_mode", "constant") if clamp else "constant"
    if mode == "reflect" and n > 1:
        period = 2 * (n - 1)
        source = np.abs(((source % period) + period) % period)
        source = np.where(source >= n, period - source, source)
    elif mode == "replicate":
        source = np.clip(source, 0, n - 1)
    elif mode == "circular":
        source = source % n
    return source[:, None], np.ones((m, 1), dtype=bool)


def taps(layer: Layer, axis: int, m: int, n: int, clamp: bool = True) -> Taps:
    """The input units (m, T) and the mask of existing taps of ``layer`` on ``axis``: the real
    ones, or with ``clamp=False`` the unclipped ones (see the module docstring)."""
    t = layer.transfer
    if t is Transfer.WINDOW:
        if layer.op == "downsample_aa":
            return antialiased(str(layer.meta.get("mode", "bilinear")), m, n)
        k, s, d = layer.kernel[axis], layer.stride[axis], layer.dilation[axis]
        if not isinstance(s, int):
            return _adaptive(m, n)
        return _window(m, k, s, d, int(layer.padding[axis]) if layer.padding else 0)
    if t is Transfer.TRANSPOSED:
        k, s, d = layer.kernel[axis], int(layer.stride[axis]), layer.dilation[axis]
        return _transposed(m, n, k, s, d, int(layer.padding[axis]) if layer.padding else 0)
    if t is Transfer.UPSAMPLE:
        if layer.mode in ("nearest", "area") or layer.op == "pixel_shuffle":
            return _nearest(layer, axis, m, n, clamp) if layer.mode == "nearest" else _adaptive(m, n)
        if layer.mode == "bicubic":
            return _cubic(layer, axis, m, n, clamp)
        return _linear(layer, axis, m, n, clamp)
    return _pad(layer, axis, m, n, clamp)
