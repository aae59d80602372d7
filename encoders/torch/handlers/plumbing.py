"""Handlers of plumbing: merges, concatenation, views and reshapes (with layout tracking),
permutes, selection, splits, and the neutral ops (activations, norms, padding)."""

from __future__ import annotations

import math
from typing import Any

from rfa_toolbox.encoders.layout import NONE, Layout, dim_index, reshape_layout

from rfa_toolbox.graph import Transfer

from ..ir import Call, Op, Traced, handles
from .common import numel


def merge(call: Call) -> Op:
    """Elementwise ops of several inputs: the union of their paths (one input: neutral)."""
    tensors = call.tensors
    if len(tensors) < 2:
        return Op(call.kind.split("::")[1].rstrip("_"))
    rank = len(call.out_sizes[0]) if call.out_sizes and call.out_sizes[0] is not None else 0
    return Op(call.kind.split("::")[1].rstrip("_"), Transfer.MERGE, layout=broadcast_layout(tensors, rank))


def broadcast_layout(tensors: list[Traced], rank: int = 0) -> Layout:
    """The layout of an elementwise result: its dims line up from the right (broadcasting),
    and each carries the axes of every operand's dim there, so that a squeeze-excitation gate
    (a 1x1 map) times the features keeps the features' axes whichever comes first."""
    rank = max([rank, *(len(t.layout) for t in tensors)])
    dims: list[frozenset[int]] = [NONE] * rank
    for t in tensors:
        for k, axes in enumerate(reversed(t.layout)):
            if axes:
                dims[rank - 1 - k] = dims[rank - 1 - k] | axes
    longest = max(tensors, key=lambda t: len(t.layout)).layout
    if len(longest) == rank and all(set(a) == set(b) for a, b in zip(longest, dims)):
        return longest  # keeps how its dims were composed (reshape factors)
    return tuple(dims)


handles("add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "maximum", "minimum",
        "where", "addcmul", "addcdiv", "lerp", "pow", "floor_divide", "remainder", "fmod", "atan2",
        "masked_fill", "masked_fill_", "copy_", "expand_as", "__and__", "__or__", "eq", "ne", "lt",
        "gt", "le", "ge", "mul_scalar")(merge)


@handles("cat", "concat", "concatenate")
def _cat(call: Call) -> Op:
    op = merge(call)
    op.op = "concat"
    return op


@handles("stack")
def _stack(call: Call) -> Op:
    tensors = call.tensors
    dim = dim_index(call.args[1], len(tensors[0].layout) + 1)
    layout = tensors[0].layout[:dim] + (NONE,) + tensors[0].layout[dim:]
    return Op("stack", Transfer.MERGE if len(tensors) > 1 else Transfer.NEUTRAL, layout=layout)


@handles("view", "reshape", "flatten", "unflatten", "_unsafe_view", "view_as", "reshape_as",
         "squeeze", "squeeze_", "unsqueeze", "unsqueeze_", "expand", "repeat", "tile",
         "contiguous", "clone", "to", "detach", "type_as", "float", "half", "dropout",
         "feature_dropout", "alpha_dropout", "dropout_", "channel_shuffle", "native_channel_shuffle",
         "flip", "roll", "narrow")
def _view(call: Call) -> Op:
    """Views and copies: neutral; the layout follows the traced shapes."""
    kind = call.kind.split("::")[1]
    before, after = call.sizes[0], call.out_sizes[0]
    layout = call.x.layout
    if after is not None and before is not None and tuple(after) != tuple(before):
        if kind in ("expand", "repeat", "tile") and len(after) >= len(before):
            layout = (NONE,) * (len(after) - len(before)) + layout
        else:
            layout = reshape_layout(layout, before, after)
            blocks = _blocks_to_depth(layout)
            if blocks is not None:
                return blocks
    short = {"channel_shuffle": "channel_shuffle", "native_channel_shuffle": "channel_shuffle"}
    return Op(short.get(kind, "view" if kind not in ("dropout", "feature_dropout", "alpha_dropout",
                                                    "dropout_") else "dropout"), layout=layout)


def _pure(dim: Any, axis: int) -> bool:
    """Does the dim carry ``axis`` alone, in every factor it was composed of?"""
    factors = getattr(dim, "factors", None)
    return set(dim) == {axis} and (factors is None or all(set(axes) == {axis} for axes, _ in factors))


def _blocks_to_depth(layout: Layout) -> Op | None:
    """A reshape that leaves one dim with an axis's positions and moves blocks of that axis into
    another dim (space-to-depth written as view, permute, reshape; PyTorch's ONNX export of
    pixel_unshuffle) is a window of the block with that stride; None for any other reshape."""
    found = list(layout)
    window: dict[int, tuple[int, Any, int]] = {}
    for axis in sorted(set().union(*layout)):
        holders = [i for i, dim in enumerate(layout) if axis in dim]
        pure = [i for i in holders if _pure(layout[i], axis)]
        mixed = [i for i in holders if i not in pure]
        block = math.prod(n for i in mixed for axes, n in getattr(layout[i], "factors", ()) if set(axes) == {axis})
        if len(pure) != 1 or not mixed or block <= 1:
            continue
        window[axis] = (block, block, 1)
        for i in mixed:
            found[i] = frozenset(found[i] - {axis})
    if not window:
        return None
    return Op("space_to_depth", Transfer.WINDOW, True, window=window, layout=tuple(found))


@handles("permute", "transpose", "transpose_", "t", "swapaxes", "movedim", "numpy_T")
def _permute(call: Call) -> Op:
    layout = list(call.x.layout)
    kind = call.kind.split("::")[1]
    if kind == "permute":
        order = [dim_index(d, len(layout)) for d in call.args[1]]
        layout = [layout[d] for d in order]
    elif kind == "movedim":
        src, dst = call.args[1], call.args[2]
        src = [src] if isinstance(src, int) else list(src)
        dst = [dst] if isinstance(dst, int) else list(dst)
        moved = {dim_index(d, len(layout)): layout[dim_index(s, len(layout))] for s, d in zip(src, dst)}
        rest = [a for i, a in enumerate(layout) if i not in {dim_index(s, len(layout)) for s in src}]
        layout = [moved[i] if i in moved else rest.pop(0) for i in range(len(layout))]
    else:
        a, b = (call.args[1], call.args[2]) if kind != "t" and len(call.args) > 2 else (0, 1)
        a, b = dim_index(a, len(layout)), dim_index(b, len(layout))
        layout[a], layout[b] = layout[b], layout[a]
    return Op("permute", layout=tuple(layout))


@handles("select", "index_select")
def _select(call: Call) -> Op:
    dim = dim_index(call.args[1], len(call.x.layout))
    layout = call.x.layout
    if call.kind.endswith("::select"):
        layout = layout[:dim] + layout[dim + 1:]
    return Op("select", layout=layout)


@handles("chunk", "split", "split_with_sizes", "unbind", "tensor_split", "unsafe_split",
         "unsafe_chunk")
def _split(call: Call) -> Op:
    layout = call.x.layout
    if call.kind.endswith("unbind"):
        dim = dim_index(call.args[1], len(layout))
        layout = layout[:dim] + layout[dim + 1:]
    return Op("split", layout=layout)


_NEUTRAL = (
    "relu relu_ relu6 hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ selu celu gelu gelu_ silu "
    "silu_ mish mish_ sigmoid sigmoid_ hardsigmoid hardsigmoid_ hardswish hardswish_ tanh tanh_ "
    "softplus softsign prelu rrelu glu logsigmoid threshold threshold_ clamp clamp_ clamp_min "
    "clamp_max clip neg exp exp_ log log_ log1p sqrt rsqrt square abs sign sin cos erf reciprocal "
    "floor ceil round trunc frac nan_to_num logical_not bitwise_not "
    "batch_norm instance_norm layer_norm group_norm native_batch_norm native_layer_norm "
    "local_response_norm normalize rms_norm "
    "circular_pad "
    "detach_"
).split()
_NORMS = {"batch_norm", "instance_norm", "layer_norm", "group_norm", "native_batch_norm",
          "native_layer_norm", "local_response_norm", "normalize", "rms_norm"}
_PADS = {k for k in _NEUTRAL if "pad" in k}


#: Positions of the learned affine parameters of the norms (running statistics are not counted).
_NORM_PARAMS = {"batch_norm": (1, 2), "instance_norm": (1, 2), "native_batch_norm": (1, 2),
                "layer_norm": (2, 3), "native_layer_norm": (2, 3), "group_norm": (2, 3),
                "rms_norm": (2,)}


def _neutral(call: Call) -> Op:
    kind = call.kind.split("::")[1]
    name = "norm" if kind in _NORMS else "pad" if kind in _PADS else kind.rstrip("_")
    rank = len(call.out_sizes[0]) if call.out_sizes and call.out_sizes[0] is not None else None
    layout = call.x.layout
    if rank is not None and rank != len(layout):
        layout = reshape_layout(layout, call.sizes[0], call.out_sizes[0])
    params = sum(numel(call.sizes[i]) for i in _NORM_PARAMS.get(kind, ())
                 if i < len(call.sizes) and call.args[i] is None and call.sizes[i])
    return Op(name, layout=layout, params=params or None)


handles(*_NEUTRAL)(_neutral)
