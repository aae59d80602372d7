"""Handlers of ONNX ops that slide a window or resample: convolutions, pooling, resizing,
depth-to-space, padding and strided slicing."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from rfa_toolbox.encoders.layout import axes_of
from rfa_toolbox.encoders.pending import Op

from rfa_toolbox.graph import Transfer

from ..ir import OnnxFormatError, OnnxNode, Unsupported, handles
from .common import as_aten, dims, int_list, ints_or, rank


def _pads(node: OnnxNode, kernel: list[int], strides: list[int], dilations: list[int],
          transposed: bool) -> list[tuple[int, int]]:
    """(before, after) per spatial dim: explicit ``pads``, or what ``auto_pad`` SAME_UPPER /
    SAME_LOWER (or a transposed conv's ``output_shape``) make of the inferred sizes."""
    n = len(kernel)
    auto = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto == "VALID":
        return [(0, 0)] * n
    if auto == "NOTSET" and not (transposed and node.attr("output_shape")):
        pads = int_list(node.attr("pads")) or [0] * (2 * n)
        return list(zip(pads[:n], pads[n:]))
    sizes_in, sizes_out = node.sizes[0], node.out_sizes[0]
    if sizes_in is None or sizes_out is None:
        raise OnnxFormatError(f"auto_pad {auto} needs the shapes around the node, which shape inference"
                              " did not give")
    extra = int_list(node.attr("output_padding")) or [0] * n
    found = []
    for i in range(n):
        size_in, size_out, k, s, d = sizes_in[-n + i], sizes_out[-n + i], kernel[i], strides[i], dilations[i]
        if transposed:
            total = max(s * (size_in - 1) + extra[i] + (k - 1) * d + 1 - size_out, 0)
        else:
            total = max((size_out - 1) * s + (k - 1) * d + 1 - size_in, 0)
        before = total // 2 if auto != "SAME_LOWER" else total - total // 2
        found.append((before, total - before))
    return found


def _with_pads(node: OnnxNode, op: Op, pads: list[tuple[int, int]]) -> Op:
    """``op`` with its padding set per spatial axis from ONNX's (before, after) pairs."""
    if op.transfer not in (Transfer.WINDOW, Transfer.TRANSPOSED):
        return op
    for carried, pair in zip(node.spatial_dims(len(pads)), pads):
        if len(carried) == 1:
            op.padding[next(iter(carried))] = pair
    return op


#: where the weight and the bias are among a convolution's inputs
_CONV_INPUTS = {"Conv": (1, 2), "ConvTranspose": (1, 2), "ConvInteger": (1, None), "QLinearConv": (3, 8)}


@handles(*_CONV_INPUTS)
def _conv(node: OnnxNode) -> Op:
    at_weight, at_bias = _CONV_INPUTS[node.op_type]
    weight = node.sizes[at_weight] if at_weight < len(node.sizes) else None
    if weight is None:
        raise OnnxFormatError("the shape of its weight is not known")
    n = len(weight) - 2
    kernel = int_list(node.attr("kernel_shape")) or list(weight[2:])
    strides = int_list(node.attr("strides")) or [1] * n
    dilations = int_list(node.attr("dilations")) or [1] * n
    transposed = node.op_type == "ConvTranspose"
    output_padding = int_list(node.attr("output_padding")) or [0] * n
    args = [node.inputs[0], None, None, strides, [0] * n, dilations, transposed, output_padding,
            int(node.attr("group", 1))]
    bias = node.sizes[at_bias] if at_bias is not None and at_bias < len(node.sizes) else None
    op = as_aten(node, "_convolution", args, [node.sizes[0], weight, bias] + [None] * 6)
    return _with_pads(node, op, _pads(node, kernel, strides, dilations, transposed))


@handles("MaxPool", "AveragePool", "LpPool", "MaxRoiPool")
def _pool(node: OnnxNode) -> Op:
    if node.op_type == "MaxRoiPool":
        raise Unsupported("region-of-interest pooling reads boxes given at run time")
    kernel = int_list(node.attr("kernel_shape"))
    if not kernel:
        raise OnnxFormatError("it has no kernel_shape")
    n = len(kernel)
    strides = int_list(node.attr("strides")) or [1] * n
    dilations = int_list(node.attr("dilations")) or [1] * n
    op = as_aten(node, f"max_pool{n}d", [node.inputs[0], kernel, strides, [0] * n, dilations,
                                         bool(node.attr("ceil_mode", 0))])
    if node.op_type != "MaxPool" and op.transfer is not Transfer.GLOBAL:
        op.op = "avg_pool"
    return _with_pads(node, op, _pads(node, kernel, strides, dilations, False))


@handles("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(node: OnnxNode) -> Op:
    kind = "max" if node.op_type == "GlobalMaxPool" else "avg"
    axes = axes_of(node.x.layout, list(range(2, rank(node))))
    if not axes:
        return Op(f"global_{kind}_pool")
    return Op(f"global_{kind}_pool", Transfer.GLOBAL, True, global_axes=sorted(axes))


_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
#: coordinate modes whose mapping PyTorch's (or TensorFlow's) resampling shares
_HALF_PIXEL = ("half_pixel", "pytorch_half_pixel")


@handles("Resize", "Upsample")
def _resize(node: OnnxNode) -> Op:
    """A factor per spatial axis from the inferred sizes; the coordinate mode, nearest mode and
    the given scales say how output units map to input ones: PyTorch's computation where a
    framework shares the rule, ONNX's own formulas elsewhere."""
    sizes_in, sizes_out = node.sizes[0], node.out_sizes[0]
    if sizes_in is None or sizes_out is None:
        raise OnnxFormatError("the sizes before and after it are not known (shape inference gave none)")
    scales = node.const(2 if node.op_type == "Resize" and node.opset >= 11 else 1)
    scales = node.attr("scales", scales)
    layout = node.x.layout
    factor: dict[int, Any] = {}
    given: dict[int, float] = {}
    for d, (carried, size_in, size_out) in enumerate(zip(layout, sizes_in, sizes_out)):
        if len(carried) == 1 and size_in != size_out:
            axis = next(iter(carried))
            factor[axis] = Fraction(size_out, size_in)
            if scales is not None and len(scales) == len(layout):
                given[axis] = float(scales[d])
    if not factor:
        return Op("upsample")
    mode = str(node.attr("mode", "nearest"))
    if node.attr("antialias") and all(f < 1 for f in factor.values()) and mode != "nearest":
        raise Unsupported("antialiased downsampling")
    coordinates = str(node.attr("coordinate_transformation_mode",
                                "half_pixel" if node.op_type == "Resize" and node.opset >= 11 else "asymmetric"))
    nearest = str(node.attr("nearest_mode", "round_prefer_floor"))
    meta: dict[str, Any] = {"align_corners": coordinates == "align_corners", "framework": "torch",
                            "scale": tuple(given.get(a) for a in range(node.ndim)), "coordinates": coordinates}
    if mode == "nearest":
        kind = "nearest"
        meta["nearest_exact"] = coordinates in _HALF_PIXEL and nearest == "round_prefer_ceil"
        shared = (coordinates, nearest) == ("asymmetric", "floor") or meta["nearest_exact"]
        meta["nearest_mode"] = nearest
    else:
        kind = "bicubic" if mode == "cubic" else _LINEAR.get(len(factor), "linear")
        meta["cubic_a"] = float(node.attr("cubic_coeff_a", -0.75))
        meta["exclude_outside"] = bool(node.attr("exclude_outside", 0))
        shared = coordinates in (*_HALF_PIXEL, "align_corners")
    meta["onnx_rule"] = not shared  # ONNX's own coordinate rule (see rfa_toolbox.taps)
    if coordinates == "tf_crop_and_resize":
        meta["approximate"] = "tf_crop_and_resize (its region of interest is not read)"
    return Op("upsample", Transfer.UPSAMPLE, True, factor=factor, mode=kind, meta=meta)


@handles("DepthToSpace")
def _depth_to_space(node: OnnxNode) -> Op:
    return as_aten(node, "pixel_shuffle", [node.inputs[0], int(node.attr("blocksize"))])


@handles("SpaceToDepth")
def _space_to_depth(node: OnnxNode) -> Op:
    return as_aten(node, "pixel_unshuffle", [node.inputs[0], int(node.attr("blocksize"))])


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@handles("Pad")
def _pad(node: OnnxNode) -> Op:
    """Padding moves the positions by its before side (negative pads crop)."""
    r = rank(node)
    pads = ints_or(node, "pads", 1) or int_list(node.attr("paddings"))
    axes = dims(node, int_list(node.const(3)) or list(range(r)))
    mode = _PAD_MODES.get(str(node.attr("mode", "constant")))
    if mode is None:
        raise OnnxFormatError(f"unknown pad mode {node.attr('mode')!r}")
    if pads is None:  # computed at run time: the inferred sizes tell the growth; taken at the end
        before_sizes, after_sizes = node.sizes[0], node.out_sizes[0]
        if before_sizes is None or after_sizes is None:
            raise OnnxFormatError("its pads are computed at run time and the shapes are not known")
        pads = [0] * len(axes) + [after_sizes[d] - before_sizes[d] for d in axes]
    padded: dict[int, tuple[int, int]] = {}
    for i, d in enumerate(axes):
        carried = node.x.layout[d]
        if len(carried) == 1 and (pads[i] or pads[i + len(axes)]):
            padded[next(iter(carried))] = (pads[i], pads[i + len(axes)])
    return Op("pad", padding=padded, meta={"pad_mode": mode})


@handles("Slice")
def _slice(node: OnnxNode) -> Op:
    """A step on a spatial dim subsamples it (a 1-wide window with that stride); a start moves
    the positions (a crop: negative padding before)."""
    sizes_in, sizes_out = node.sizes[0], node.out_sizes[0]
    starts = ints_or(node, "starts", 1)
    r = rank(node)
    axes = dims(node, ints_or(node, "axes", 3) or list(range(len(starts or []))))
    steps = ints_or(node, "steps", 4) or [1] * len(axes)
    window: dict[int, tuple[int, Any, int]] = {}
    padding: dict[int, tuple[int, int]] = {}
    offsets: dict[int, int] = {}
    for i, d in enumerate(axes):
        carried = node.x.layout[d] if d < r else frozenset()
        if len(carried) != 1 or sizes_in is None or sizes_out is None or sizes_in[d] == sizes_out[d] == 1:
            continue
        size, kept, axis = sizes_in[d], sizes_out[d], next(iter(carried))
        if starts is None:
            if size != kept:
                raise Unsupported("a slice of a spatial dim with bounds computed at run time")
            continue
        step = steps[i]
        if step < 0:
            raise Unsupported("a reversed slice of a spatial dim")
        start = min(max(starts[i] + size if starts[i] < 0 else starts[i], 0), size)
        if step == 1 and not start and kept == size:
            continue
        after = -(size - start - (kept - 1) * step - 1) if kept else 0
        window[axis] = (1, step, 1)
        padding[axis] = (-start, after)
        if step > 1:
            offsets[axis] = start
    if not window:
        return Op("slice")
    strided = any(s > 1 for _, s, _ in window.values())
    if not strided:  # a crop: it moves the positions only
        return Op("slice", Transfer.WINDOW, False, window=window, padding=padding)
    return Op("slice", Transfer.WINDOW, True, window=window, padding=padding, meta={"offset": offsets})
