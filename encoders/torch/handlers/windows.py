"""Handlers of ops that slide a window or resample: convolutions, pooling, upsampling, pixel
(un)shuffle, strided slicing."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from rfa_toolbox.graph import Transfer

from ..ir import Call, Op, handles
from ..layout import dim_index
from .common import ints, numel, rank_of


def _window(call: Call, kernel: list[int], stride: list[int], dilation: list[int], op: str,
            transposed: bool = False, **meta: Any) -> Op:
    """An op sliding a window over the last len(kernel) dims of its input.

    A dim that carries one axis gets the window; a dim that carries several (flattened
    positions) is mixed in an order that is not spatial, so its axes become global.
    """
    n = len(kernel)
    stride = stride or kernel
    dilation = dilation or [1] * n
    window: dict[int, tuple[int, Any, int]] = {}
    collapsed: set[int] = set()
    for axes, k, s, d in zip(call.spatial_dims(n), kernel, stride, dilation):
        if len(axes) == 1:
            window[next(iter(axes))] = (k, s, d)
        elif len(axes) > 1 and (k > 1 or s > 1):
            collapsed |= axes
    if collapsed:
        return Op(op, Transfer.GLOBAL, True, global_axes=sorted(collapsed), **meta)
    transfer = Transfer.TRANSPOSED if transposed else Transfer.WINDOW
    return Op(op, transfer, True, window=window, **meta)


# -- convolution and pooling ----------------------------------------------------------------

def _conv(call: Call, stride: Any, dilation: Any, groups: Any, transposed: bool) -> Op:
    weight = call.sizes[1]
    n = len(weight) - 2
    kernel = list(weight[2:])
    out_ch = weight[1] * groups if transposed else weight[0]
    in_ch = weight[0] if transposed else weight[1] * groups
    params = numel(weight) + (numel(call.sizes[2]) if call.sizes[2] else 0)
    op = "conv_transpose" if transposed else "conv"
    return _window(call, kernel, ints(stride, n), ints(dilation, n), op, transposed,
                   in_channels=in_ch, out_channels=out_ch, groups=groups, params=params)


@handles("_convolution", "convolution")
def _convolution(call: Call) -> Op:
    _, _, _, stride, _, dilation, transposed, _, groups = call.args[:9]
    return _conv(call, stride, dilation, groups, bool(transposed))


@handles("conv1d", "conv2d", "conv3d")
def _conv_nd(call: Call) -> Op:
    stride, dilation, groups = call.args[3], call.args[5], call.args[6]
    return _conv(call, stride, dilation, groups, False)


@handles("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose_nd(call: Call) -> Op:
    stride, groups, dilation = call.args[3], call.args[6], call.args[7]
    return _conv(call, stride, dilation, groups, True)


@handles("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
         "max_pool2d_with_indices", "max_pool3d_with_indices")
def _max_pool(call: Call) -> Op:
    n = rank_of(call.kind)
    kernel = ints(call.args[1], n)
    return _window(call, kernel, ints(call.args[2], n), ints(call.args[4], n), "max_pool")


@handles("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(call: Call) -> Op:
    n = rank_of(call.kind)
    kernel = ints(call.args[1], n)
    return _window(call, kernel, ints(call.args[2], n), [], "avg_pool")


@handles("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
         "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
def _adaptive_pool(call: Call) -> Op:
    """Global on the axes pooled to 1; elsewhere the window that maps the traced sizes."""
    kind = "avg" if "avg" in call.kind else "max"
    n = rank_of(call.kind)
    sizes_in = call.sizes[0][-n:]
    sizes_out = call.out_sizes[0][-n:]
    axes = call.spatial_dims(n)
    collapsed, window = [], {}
    for carried, size_in, size_out in zip(axes, sizes_in, sizes_out):
        if size_out == 1:  # pooled to one position: global whatever the traced input size
            collapsed += sorted(carried)
            continue
        if len(carried) != 1 or size_in == size_out:
            continue
        # PyTorch's windows: [floor(i*I/O), ceil((i+1)*I/O)); the widest one is the kernel
        kernel = max(-((-(i + 1) * size_in) // size_out) - (i * size_in) // size_out
                     for i in range(size_out))
        window[next(iter(carried))] = (kernel, Fraction(size_in, size_out), 1)
    if collapsed:  # (a window on the other axes, if any, is dropped: global dominates there)
        return Op(f"global_{kind}_pool", Transfer.GLOBAL, True, global_axes=collapsed)
    if not window:
        return Op(f"adaptive_{kind}_pool")
    return Op(f"adaptive_{kind}_pool", Transfer.WINDOW, True, window=window)


@handles("pixel_unshuffle")
def _pixel_unshuffle(call: Call) -> Op:
    r = call.args[1]
    return Op("pixel_unshuffle", Transfer.WINDOW, True,
              window={next(iter(a)): (r, r, 1) for a in call.spatial_dims(2) if len(a) == 1})


# -- resampling -----------------------------------------------------------------------------

_MODES = {"nearest": "nearest", "nearest_exact": "nearest", "linear": "linear",
          "bilinear": "bilinear", "trilinear": "trilinear", "bicubic": "bicubic"}


@handles("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
         "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
         "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d",
         "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa")
def _upsample(call: Call) -> Op:
    """The factor per axis is the ratio of the traced sizes (scale or size alike).

    Antialiased downsampling (``antialias=True``) widens its filter by the scale: it reads a
    window of about 2 (bilinear) or 4 (bicubic) times the scale, stepping by the scale; it is
    a window op then, with the widest window of its output positions."""
    name = re.sub(r"^_?upsample_|\d+d(_aa)?$", "", call.kind.split("::")[1])
    n = len(call.sizes[0]) - 2
    factor = {}
    for carried, size_in, size_out in zip(call.spatial_dims(n), call.sizes[0][-n:], call.out_sizes[0][-n:]):
        if len(carried) == 1 and size_in != size_out:
            factor[next(iter(carried))] = Fraction(size_out, size_in)
    if not factor:
        return Op("upsample")
    if call.kind.endswith("_aa") and all(f < 1 for f in factor.values()):
        taps = 4 if "bicubic" in call.kind else 2
        sizes = dict(zip((next(iter(a)) for a in call.spatial_dims(n) if len(a) == 1), call.sizes[0][-n:]))
        window = {axis: (_aa_width(sizes[axis], f, taps), 1 / f, 1) for axis, f in factor.items()}
        return Op("downsample_aa", Transfer.WINDOW, True, window=window)
    return Op("upsample", Transfer.UPSAMPLE, True, factor=factor, mode=_MODES.get(name, "linear"))


def _aa_width(size_in: int, factor: Fraction, taps: int) -> int:
    """The widest run of input positions with a non-zero weight in antialiased downsampling
    (PyTorch's filter: support taps/2 * scale around each output centre)."""
    scale = float(1 / factor)
    support = taps / 2 * scale
    size_out = int(size_in * factor)
    widest = 1
    for i in range(size_out):
        centre = scale * (i + 0.5)
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), size_in) - 1
        weights = [_aa_filter((j - centre + 0.5) / scale, taps) for j in range(first, last + 1)]
        nonzero = [j for j, w in zip(range(first, last + 1), weights) if w != 0]
        if nonzero:
            widest = max(widest, nonzero[-1] - nonzero[0] + 1)
    return widest


def _aa_filter(x: float, taps: int) -> float:
    x = abs(x)
    if taps == 2:
        return 1 - x if x < 1 else 0.0
    a = -0.5  # PyTorch's bicubic
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    return (((x - 5) * x + 8) * x - 4) * a if x < 2 else 0.0


@handles("pixel_shuffle")
def _pixel_shuffle(call: Call) -> Op:
    r = call.args[1]
    return Op("pixel_shuffle", Transfer.UPSAMPLE, True,
              factor={next(iter(a)): r for a in call.spatial_dims(2) if len(a) == 1})


@handles("slice")
def _slice(call: Call) -> Op:
    """A step on a spatial dim subsamples it (a 1-wide window with that stride)."""
    dim, step = call.args[1], call.args[4]
    axes = call.x.layout[dim_index(dim, len(call.x.layout))]
    if step is None or step == 1 or len(axes) != 1:
        return Op("slice")
    axis = next(iter(axes))
    return Op("slice", Transfer.WINDOW, True, window={axis: (1, step, 1)},
              meta={"offset": {axis: call.args[2] or 0}})
