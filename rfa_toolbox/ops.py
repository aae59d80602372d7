"""The op vocabulary shared by the Python builder and architecture files."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

from .errors import GraphError, UnknownOpError, shown
from .graph import Layer, Number, Transfer, simplify


@dataclass(frozen=True)
class OpInfo:
    """What an op name means: its transfer, whether it computes, and the parameters it takes."""

    transfer: Transfer
    computes: bool
    params: tuple[str, ...] = ()
    doc: str = ""


_WINDOW = ("kernel", "stride", "dilation", "padding")
_POOL = (*_WINDOW, "ceil_mode")
_META = ("in_channels", "out_channels", "groups", "params", "shape", "module", "meta")

OPS: dict[str, OpInfo] = {
    "input": OpInfo(Transfer.INPUT, False, (), "a network input"),
    "conv": OpInfo(Transfer.WINDOW, True, _WINDOW, "convolution (any kernel, grouped or depthwise)"),
    "conv_transpose": OpInfo(Transfer.TRANSPOSED, True, (*_WINDOW, "output_padding"), "transposed convolution"),
    "max_pool": OpInfo(Transfer.WINDOW, True, _POOL, "max pooling"),
    "avg_pool": OpInfo(Transfer.WINDOW, True, _POOL, "average pooling"),
    "upsample": OpInfo(Transfer.UPSAMPLE, True, ("factor", "mode", "align_corners"), "upsampling by a factor"),
    "global_avg_pool": OpInfo(Transfer.GLOBAL, True, ("axes",), "global average pooling"),
    "global_max_pool": OpInfo(Transfer.GLOBAL, True, ("axes",), "global max pooling"),
    "dense": OpInfo(Transfer.GLOBAL, True, ("axes",), "fully connected layer over all positions"),
    "attention": OpInfo(Transfer.GLOBAL, True, ("axes",), "attention or token mixing over all positions"),
    "flatten": OpInfo(Transfer.GLOBAL, False, ("axes",), "flattening of the spatial axes"),
    "add": OpInfo(Transfer.MERGE, False, (), "elementwise sum"),
    "mul": OpInfo(Transfer.MERGE, False, (), "elementwise product"),
    "sub": OpInfo(Transfer.MERGE, False, (), "elementwise difference"),
    "div": OpInfo(Transfer.MERGE, False, (), "elementwise quotient"),
    "concat": OpInfo(Transfer.MERGE, False, (), "concatenation along channels"),
    "merge": OpInfo(Transfer.MERGE, False, (), "any other merge of several inputs"),
    "neutral": OpInfo(Transfer.NEUTRAL, False, (), "any op that keeps the receptive field"),
    "identity": OpInfo(Transfer.NEUTRAL, False, (), "identity"),
    "activation": OpInfo(Transfer.NEUTRAL, False, (), "elementwise activation"),
    "relu": OpInfo(Transfer.NEUTRAL, False, (), "ReLU"),
    "norm": OpInfo(Transfer.NEUTRAL, False, (), "normalization (batch, layer, group)"),
    "batch_norm": OpInfo(Transfer.NEUTRAL, False, (), "batch normalization"),
    "dropout": OpInfo(Transfer.NEUTRAL, False, (), "dropout"),
    "pad": OpInfo(Transfer.NEUTRAL, False, ("padding", "pad_mode"), "padding (moves the positions; negative: a crop)"),
    "channel_shuffle": OpInfo(Transfer.NEUTRAL, False, (), "channel shuffle"),
}

UPSAMPLE_MODES = ("nearest", "area", "linear", "bilinear", "trilinear", "bicubic")
PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _given(params: dict[str, Any], key: str, default: Any) -> Any:
    """``params[key]`` unless it is missing or None (0 stays 0 and is rejected later)."""
    value = params.get(key)
    return default if value is None else value


#: The largest kernel, stride, dilation or factor (or denominator of one) accepted.
MAX_PARAMETER = 2**31 - 1


def per_axis(value: Any, ndim: int, what: str, layer: str, *,
             rational: bool = False) -> tuple[Number, ...]:
    """``value`` (a number or one per axis) as a tuple of ``ndim`` positive numbers: integers,
    or with ``rational`` also fractions (``1.5``, ``"3/2"``)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * ndim
    if len(values) != ndim:
        raise GraphError(f"layer {layer!r}: {what} {values} needs {ndim} values, one per axis")
    out: list[Number] = []
    for v in values:
        number: Number | None = None
        if isinstance(v, bool):
            pass
        elif isinstance(v, int):
            number = v
        elif rational:
            with contextlib.suppress(ValueError, ZeroDivisionError):
                number = simplify(Fraction(str(v)))
        if number is None or number <= 0:
            kind = "positive numbers" if rational else "positive integers"
            raise GraphError(f"layer {layer!r}: {what} must be {kind}, got {shown(v)}")
        if number > MAX_PARAMETER or (rational and Fraction(number).denominator > MAX_PARAMETER):
            raise GraphError(f"layer {layer!r}: {what} {shown(v)} is beyond {MAX_PARAMETER}: no"
                             " layer has such a window or factor")
        out.append(number)
    return tuple(out)


_TRANSFER_PARAMS = {
    Transfer.WINDOW: _WINDOW,
    Transfer.TRANSPOSED: _WINDOW,
    Transfer.UPSAMPLE: ("factor", "mode"),
    Transfer.GLOBAL: ("axes",),
    Transfer.NEUTRAL: ("padding",),
}


def paddings(value: Any, ndim: int, layer: str) -> tuple[tuple[int, ...], Optional[tuple[int, ...]]]:
    """``padding`` (an int, one per axis, or a [before, after] pair per axis; negative crops)
    as (before per axis, after per axis or None when it equals before)."""
    if isinstance(value, str):
        raise GraphError(f"layer {layer!r}: padding must be numbers (before, or [before, after] per axis),"
                         f" got {shown(value)}")
    values = list(value) if isinstance(value, (list, tuple)) else [value] * ndim
    if len(values) != ndim:
        raise GraphError(f"layer {layer!r}: padding {shown(value)} needs {ndim} values, one per axis")
    before, after = [], []
    for v in values:
        pair = list(v) if isinstance(v, (list, tuple)) else [v, v]
        if len(pair) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) and abs(p) <= MAX_PARAMETER
                                     for p in pair):
            raise GraphError(f"layer {layer!r}: padding must be integers, or [before, after] pairs, got {shown(v)}")
        before.append(pair[0])
        after.append(pair[1])
    return tuple(before), (None if before == after else tuple(after))


def _flag(params: dict[str, Any], key: str, layer: str) -> bool:
    value = params[key]
    if not isinstance(value, bool):
        raise GraphError(f"layer {layer!r}: {key} must be true or false, got {shown(value)}")
    return value


def geometry_meta(params: dict[str, Any], fields: dict[str, Any], transfer: Transfer, ndim: int,
                  layer: str) -> dict[str, Any]:
    """The settings that move or size a layer's windows without changing its receptive field:
    ``padding: same`` (TensorFlow's, resolved from the input size), ``ceil_mode`` of pools,
    ``output_padding`` of transposed convs, ``align_corners`` of upsampling, ``pad_mode``."""
    meta: dict[str, Any] = {}
    if params.get("padding") == "same":
        if transfer is not Transfer.WINDOW:
            raise GraphError(f"layer {layer!r}: padding 'same' is for window layers")
        meta["same"] = True
    for key in ("ceil_mode", "align_corners"):
        if params.get(key) is not None and _flag(params, key, layer):
            meta[key] = True
    if params.get("output_padding") is not None:
        value = params["output_padding"]
        extra = list(value) if isinstance(value, (list, tuple)) else [value] * ndim
        limits = [max(s, d) for s, d in zip(fields["stride"], fields["dilation"])]
        if len(extra) != ndim or not all(isinstance(e, int) and not isinstance(e, bool) and 0 <= e < limit
                                         for e, limit in zip(extra, limits)):
            raise GraphError(f"layer {layer!r}: output_padding must be integers from 0 to below the stride"
                             f" (or dilation), one per axis, got {shown(value)}")
        if any(extra):
            meta["output_padding"] = tuple(extra)
    mode = params.get("pad_mode")
    if mode is not None:
        if mode not in PAD_MODES:
            raise GraphError(f"layer {layer!r}: pad_mode must be one of {', '.join(PAD_MODES)}, got {shown(mode)}")
        if mode != "constant":
            meta["pad_mode"] = mode
    return meta


def op_info(op: str, transfer: str | None = None, computes: bool | None = None) -> OpInfo:
    """The meaning of ``op``; an op outside the vocabulary needs an explicit ``transfer``."""
    info = OPS.get(op)
    if transfer is not None:
        try:
            kind = Transfer(transfer)
        except ValueError:
            raise GraphError(
                f"op {op!r}: unknown transfer {transfer!r} (one of {', '.join(t.value for t in Transfer)})"
            ) from None
        if info is None or info.transfer is not kind:
            default = kind in (Transfer.WINDOW, Transfer.TRANSPOSED, Transfer.UPSAMPLE, Transfer.GLOBAL)
            info = OpInfo(kind, default, _TRANSFER_PARAMS.get(kind, ()), "")
    if info is None:
        raise UnknownOpError([op], sorted(OPS))
    if computes is not None and not isinstance(computes, bool):
        raise GraphError(f"op {op!r}: 'computes' must be true or false, got {computes!r}")
    if computes is not None and computes != info.computes:
        info = OpInfo(info.transfer, bool(computes), info.params, info.doc)
    return info


def _count(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _check_metadata(name: str, fields: dict[str, Any]) -> None:
    """Channels and groups are positive counts, parameters a count; a shape is a list of
    sizes; a module a path."""
    for key, least in (("in_channels", 1), ("out_channels", 1), ("groups", 1), ("params", 0)):
        if key in fields and not _count(fields[key], least):
            raise GraphError(f"layer {name!r}: {key} must be an integer >= {least}, got {shown(fields[key])}")
    shape = fields.get("shape")
    if shape is not None and not (isinstance(shape, (list, tuple)) and all(_count(s) for s in shape)):
        raise GraphError(f"layer {name!r}: shape must be a list of sizes, got {shown(shape)}")
    if "module" in fields and not isinstance(fields["module"], str):
        raise GraphError(f"layer {name!r}: module must be a module path (text), got {shown(fields['module'])}")
    if "meta" in fields and not isinstance(fields["meta"], dict):
        raise GraphError(f"layer {name!r}: meta must be a mapping")


def make_layer(name: str, op: str, ndim: int, transfer: str | None = None,
               computes: bool | None = None, **params: Any) -> Layer:
    """Build a `Layer` from an op name of `OPS` and its parameters.

    Window ops take ``kernel`` (required), ``stride`` (default 1; pools default to the kernel;
    a fraction for adaptive pooling, whose windows step by I/O on average) and ``dilation``
    (default 1); ``upsample`` takes ``factor`` and ``mode``; global ops take optional ``axes``
    (all axes: the same as none). Metadata (channels, params, shape, module, and ``meta``, a
    dict for encoders) is accepted by every op. An op name outside the vocabulary is accepted
    with an explicit ``transfer``. Every encoder builds its layers here.
    """
    try:
        info = op_info(op, transfer, computes)
    except UnknownOpError:
        raise
    except GraphError as exc:
        raise GraphError(f"layer {name!r}: {exc}") from None
    unexpected = set(params) - set(info.params) - set(_META)
    if unexpected:
        raise GraphError(
            f"layer {name!r}: op {op!r} takes no parameter {', '.join(sorted(unexpected))}"
            f" (it takes: {', '.join(info.params + _META)})"
        )
    fields: dict[str, Any] = {k: params[k] for k in _META if params.get(k) is not None}
    _check_metadata(name, fields)
    if "shape" in fields:
        fields["shape"] = tuple(fields["shape"])
    if info.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED):
        if params.get("kernel") is None:
            raise GraphError(f"layer {name!r}: op {op!r} needs a kernel")
        kernel = per_axis(params["kernel"], ndim, "kernel", name)
        default_stride = kernel if op in ("max_pool", "avg_pool") else 1
        fields["kernel"] = kernel
        fields["stride"] = per_axis(_given(params, "stride", default_stride), ndim, "stride", name,
                                    rational=True)
        fields["dilation"] = per_axis(_given(params, "dilation", 1), ndim, "dilation", name)
    geometry = geometry_meta(params, fields, info.transfer, ndim, name)
    if params.get("padding") not in (None, "same") and info.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED,
                                                                          Transfer.NEUTRAL):
        before, after = paddings(params["padding"], ndim, name)
        if any(before) or after is not None:
            fields["padding"] = before
            if after is not None:
                geometry["padding_after"] = after
    if geometry:
        fields["meta"] = {**fields.get("meta", {}), **geometry}
    if info.transfer is Transfer.UPSAMPLE:
        fields["factor"] = per_axis(_given(params, "factor", 2), ndim, "factor", name, rational=True)
        mode = _given(params, "mode", "nearest")
        if mode not in UPSAMPLE_MODES:
            raise GraphError(
                f"layer {name!r}: unknown upsample mode {mode!r} (one of {', '.join(UPSAMPLE_MODES)})"
            )
        fields["mode"] = mode
    elif info.transfer is Transfer.GLOBAL and params.get("axes") is not None:
        axes = params["axes"]
        axes = tuple(axes) if isinstance(axes, (list, tuple)) else (axes,)
        if not all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a < ndim for a in axes):
            raise GraphError(f"layer {name!r}: axes must be spatial axis numbers 0..{ndim - 1}")
        chosen = tuple(sorted(set(axes)))
        fields["global_axes"] = () if len(chosen) == ndim else chosen
    return Layer(name=name, op=op, transfer=info.transfer, computes=info.computes, **fields)
