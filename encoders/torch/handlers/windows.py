"""Handlers of ops that slide a window or resample: convolutions, pooling, upsampling, pixel
(un)shuffle, strided slicing."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from rfa_toolbox.encoders.layout import dim_index

from rfa_toolbox.graph import Transfer
from rfa_toolbox.taps import antialiased

from ..ir import Call, Op, handles
from .common import ints, numel, rank_of


def _window(call: Call, kernel: list[int], stride: list[int], dilation: list[int], op: str,
            transposed: bool = False, padding: Any = None, extra: dict[str, Any] | None = None,
            **meta: Any) -> Op:
    """An op sliding a window over the last len(kernel) dims of its input, with ``padding``
    (an int or one per dim, on both sides).

    A dim that carries one axis gets the window; a dim that carries several (flattened
    positions) is mixed in an order that is not spatial, so its axes become global.
    """
    n = len(kernel)
    stride = stride or kernel
    dilation = dilation or [1] * n
    pads = ints(padding, n) if isinstance(padding, (int, list, tuple)) else [0] * n
    window: dict[int, tuple[int, Any, int]] = {}
    padded: dict[int, tuple[int, int]] = {}
    collapsed: set[int] = set()
    for axes, k, s, d, p in zip(call.spatial_dims(n), kernel, stride, dilation, pads or [0] * n):
        if len(axes) == 1:
            window[next(iter(axes))] = (k, s, d)
            padded[next(iter(axes))] = (p, p)
        elif len(axes) > 1 and (k > 1 or s > 1):
            collapsed |= axes
    if collapsed:
        return Op(op, Transfer.GLOBAL, True, global_axes=sorted(collapsed), **meta)
    transfer = Transfer.TRANSPOSED if transposed else Transfer.WINDOW
    return Op(op, transfer, True, window=window, padding=padded, meta=extra or {}, **meta)


# -- convolution and pooling ----------------------------------------------------------------

def _conv(call: Call, stride: Any, dilation: Any, groups: Any, transposed: bool, padding: Any,
          output_padding: Any = None) -> Op:
    weight = call.sizes[1]
    n = len(weight) - 2
    kernel = list(weight[2:])
    out_ch = weight[1] * groups if transposed else weight[0]
    in_ch = weight[0] if transposed else weight[1] * groups
    params = numel(weight) + (numel(call.sizes[2]) if call.sizes[2] else 0)
    op = "conv_transpose" if transposed else "conv"
    if isinstance(padding, str):  # "same" (stride 1: d(k-1) in all, the odd one after) or "valid"
        padding = [d * (k - 1) // 2 for k, d in zip(kernel, ints(dilation, n) or [1] * n)] if padding == "same" else 0
    extra = {"output_padding": ints(output_padding, n)} if transposed and output_padding else None
    return _window(call, kernel, ints(stride, n), ints(dilation, n), op, transposed, padding, extra,
                   in_channels=in_ch, out_channels=out_ch, groups=groups, params=params)


@handles("_convolution", "convolution", "_convolution_mode")
def _convolution(call: Call) -> Op:
    if call.kind.endswith("_convolution_mode"):  # (input, weight, bias, stride, padding: str, dilation, groups)
        stride, padding, dilation, groups = call.args[3], call.args[4], call.args[5], call.args[6]
        return _conv(call, stride, dilation, groups, False, padding)
    _, _, _, stride, padding, dilation, transposed, output_padding, groups = call.args[:9]
    return _conv(call, stride, dilation, groups, bool(transposed), padding, output_padding)


@handles("conv1d", "conv2d", "conv3d")
def _conv_nd(call: Call) -> Op:
    stride, padding, dilation, groups = call.args[3], call.args[4], call.args[5], call.args[6]
    return _conv(call, stride, dilation, groups, False, padding)


@handles("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose_nd(call: Call) -> Op:
    stride, padding, output_padding, groups, dilation = call.args[3:8]
    return _conv(call, stride, dilation, groups, True, padding, output_padding)


@handles("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
         "max_pool2d_with_indices", "max_pool3d_with_indices")
def _max_pool(call: Call) -> Op:
    n = rank_of(call.kind)
    kernel = ints(call.args[1], n)
    return _window(call, kernel, ints(call.args[2], n), ints(call.args[4], n), "max_pool", False,
                   call.args[3], {"ceil_mode": bool(call.args[5])})


@handles("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(call: Call) -> Op:
    n = rank_of(call.kind)
    kernel = ints(call.args[1], n)
    return _window(call, kernel, ints(call.args[2], n), [], "avg_pool", False, call.args[3],
                   {"ceil_mode": bool(call.args[4])} if len(call.args) > 4 else None)


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
        mode = "bicubic" if "bicubic" in call.kind else "bilinear"
        sizes = dict(zip((next(iter(a)) for a in call.spatial_dims(n) if len(a) == 1), call.sizes[0][-n:]))
        window = {axis: (_aa_width(sizes[axis], f, mode), 1 / f, 1) for axis, f in factor.items()}
        return Op("downsample_aa", Transfer.WINDOW, True, window=window, meta={"mode": mode})
    return Op("upsample", Transfer.UPSAMPLE, True, factor=factor, mode=_MODES.get(name, "linear"),
              meta=_coordinates(call, name, n))


def _coordinates(call: Call, name: str, n: int) -> dict[str, Any]:
    """How the op maps output to input coordinates: align_corners, and the scale factors it
    was given (PyTorch maps with 1/scale_factor then, not with the ratio of the sizes)."""
    nearest = name.startswith("nearest")
    align = not nearest and len(call.args) > 2 and call.args[2] is True
    given = call.args[2 if nearest else 3] if len(call.args) > (2 if nearest else 3) else None
    scale: list[Any] = [None] * call.ndim
    if isinstance(given, (list, tuple)) and len(given) == n:
        for carried, factor in zip(call.spatial_dims(n), given):
            if len(carried) == 1 and factor:
                scale[next(iter(carried))] = factor
    return {"align_corners": align, "scale": tuple(scale), "nearest_exact": name == "nearest_exact",
            "framework": "torch"}


def _aa_width(size_in: int, factor: Fraction, mode: str) -> int:
    """The widest run of input positions an output position of antialiased downsampling reads."""
    index, exists = antialiased(mode, int(size_in * factor), size_in)
    return int(max(int(row[mask].max() - row[mask].min() + 1) for row, mask in zip(index, exists) if mask.any()))


@handles("pixel_shuffle")
def _pixel_shuffle(call: Call) -> Op:
    r = call.args[1]
    return Op("pixel_shuffle", Transfer.UPSAMPLE, True,
              factor={next(iter(a)): r for a in call.spatial_dims(2) if len(a) == 1})


@handles("slice")
def _slice(call: Call) -> Op:
    """A step on a spatial dim subsamples it (a 1-wide window with that stride); a start moves
    the positions (a crop: negative padding before)."""
    dim, step = call.args[1], call.args[4]
    index = dim_index(dim, len(call.x.layout))
    axes = call.x.layout[index]
    size = call.sizes[0][index] if call.sizes[0] else None
    start = call.args[2] or 0
    if start < 0 and size is not None:
        start = max(size + start, 0)
    if len(axes) != 1 or ((step is None or step == 1) and not start):
        return Op("slice")
    axis = next(iter(axes))
    step = step or 1
    kept = call.out_sizes[0][index] if call.out_sizes[0] else None
    after = -(size - start - (kept - 1) * step - 1) if size is not None and kept else 0
    return Op("slice", Transfer.WINDOW, step > 1, window={axis: (1, step, 1)}, padding={axis: (-start, after)},
              meta={"offset": {axis: start}} if step > 1 else {})


_PAD_MODES = {"constant_pad_nd": "constant", "zero_pad2d": "constant", "reflection": "reflect",
              "replication": "replicate", "circular": "circular"}


@handles("constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
         "replication_pad1d", "replication_pad2d", "replication_pad3d", "zero_pad2d", "_pad_circular")
def _pad(call: Call) -> Op:
    """Padding moves the positions: unit i of the output is unit i - before of the input (the
    border units read zeros, a mirror, the nearest unit, or the other side, by the mode)."""
    pads = list(call.args[1] or [])
    name = call.name
    mode = next((m for key, m in _PAD_MODES.items() if key in name), "constant")
    if name == "pad" and isinstance(call.args[2], str):
        mode = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}.get(call.args[2], "constant")
    padded: dict[int, tuple[int, int]] = {}
    rank = len(call.x.layout)
    for k in range(len(pads) // 2):  # pairs from the last dim backwards
        dim = rank - 1 - k
        axes = call.x.layout[dim]
        if len(axes) != 1:
            continue
        before, after = pads[2 * k], pads[2 * k + 1]
        if before is None or after is None:  # computed from shapes: the traced sizes tell the total;
            grown = (call.out_sizes[0][dim] - call.sizes[0][dim]) if call.out_sizes[0] and call.sizes[0] else 0
            before = before or 0  # an unknown side is taken as the end (Swin pads to window multiples)
            after = grown - before
        padded[next(iter(axes))] = (int(before), int(after))
    return Op("pad", padding=padded, meta={"pad_mode": mode})
