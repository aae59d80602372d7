"""Values known before the model runs: initializers, Constant nodes, and the shape arithmetic
exporters emit (Shape, Gather, Concat, Unsqueeze, ... on them), evaluated with numpy.

Only what handlers read (pads, slice bounds, resize scales, reduction axes) needs a value; an op
outside this small set leaves its outputs unknown (None), never guessed. Sizes are bounded, so
that a hostile file cannot make a constant of gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import numpy as np

MAX_ELEMENTS = 1 << 20  #: a computed constant larger than this is left unknown


def _axes(node_attrs: dict[str, Any], inputs: list[Any], index: int) -> Optional[list[int]]:
    if "axes" in node_attrs:
        return [int(a) for a in node_attrs["axes"]]
    if len(inputs) > index and inputs[index] is not None:
        return [int(a) for a in np.asarray(inputs[index]).reshape(-1)]
    return None


def _slice(attrs: dict[str, Any], x: Any, *rest: Any) -> Any:
    if "starts" in attrs:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    else:
        starts, ends = rest[0], rest[1]
        axes = rest[2] if len(rest) > 2 else None
        steps = rest[3] if len(rest) > 3 else None
    x = np.asarray(x)
    index = [slice(None)] * x.ndim
    axes = list(range(len(starts))) if axes is None else [int(a) for a in np.reshape(axes, -1)]
    steps = [1] * len(axes) if steps is None else [int(s) for s in np.reshape(steps, -1)]
    for a, s, e, st in zip(axes, np.reshape(starts, -1), np.reshape(ends, -1), steps):
        index[a] = slice(int(s), int(e), st)
    return x[tuple(index)]


def _unsqueeze(attrs: dict[str, Any], x: Any, *rest: Any) -> Any:
    out = np.asarray(x)
    axes = _axes(attrs, [x, *rest], 1) or []
    rank = out.ndim + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        out = np.expand_dims(out, a)
    return out


def _squeeze(attrs: dict[str, Any], x: Any, *rest: Any) -> Any:
    axes = _axes(attrs, [x, *rest], 1)
    return np.squeeze(np.asarray(x), axis=tuple(axes) if axes else None)


def _reshape(attrs: dict[str, Any], x: Any, shape: Any) -> Any:
    x = np.asarray(x)
    target = [int(s) for s in np.reshape(shape, -1)]
    target = [x.shape[i] if s == 0 and not attrs.get("allowzero") else s for i, s in enumerate(target)]
    return x.reshape(target)


def _range(attrs: dict[str, Any], start: Any, limit: Any, delta: Any) -> Any:
    count = int(np.ceil((float(limit) - float(start)) / float(delta)))
    if count > MAX_ELEMENTS:
        raise ValueError("too large")
    return np.arange(start, limit, delta)


def _constant_of_shape(attrs: dict[str, Any], shape: Any) -> Any:
    sizes = [int(s) for s in np.reshape(shape, -1)]
    if int(np.prod(sizes)) > MAX_ELEMENTS:
        raise ValueError("too large")
    value = attrs.get("value")
    fill = np.asarray(value).reshape(-1)[0] if value is not None else np.float32(0)
    return np.full(sizes, fill)


def _gather(attrs: dict[str, Any], x: Any, indices: Any) -> Any:
    return np.take(np.asarray(x), np.asarray(indices).astype(np.int64), axis=int(attrs.get("axis", 0)))


def _concat(attrs: dict[str, Any], *xs: Any) -> Any:
    return np.concatenate([np.atleast_1d(np.asarray(x)) for x in xs], axis=int(attrs.get("axis", 0)))


def _cast(attrs: dict[str, Any], x: Any, *like: Any) -> Any:
    """Cast to ``to`` (or to the type of CastLike's second input): the folded constant must have
    the type the graph expects, or shape inference finds the types contradicting."""
    if like:
        return np.asarray(x).astype(np.asarray(like[0]).dtype)
    from onnx import helper

    return np.asarray(x).astype(helper.tensor_dtype_to_np_dtype(int(attrs["to"])))


def _scatter_nd(attrs: dict[str, Any], data: Any, indices: Any, updates: Any) -> Any:
    if attrs.get("reduction", "none") not in ("none", b"none"):
        raise ValueError("a reduction")
    out = np.array(data, copy=True)
    out[tuple(np.moveaxis(np.asarray(indices, dtype=np.int64), -1, 0))] = updates
    return out


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    return lambda attrs, a, b: fn(np.asarray(a), np.asarray(b))


def _div(a: Any, b: Any) -> Any:
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return np.trunc(a / b).astype(a.dtype)  # ONNX integer division truncates
    return a / b


EVALUATORS: dict[str, Callable[..., Any]] = {
    "Identity": lambda attrs, x: np.asarray(x), "Cast": _cast, "CastLike": _cast,
    "Gather": _gather, "Concat": _concat, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze,
    "Slice": _slice, "Reshape": _reshape, "Range": _range, "ConstantOfShape": _constant_of_shape,
    "Add": _binary(np.add), "Sub": _binary(np.subtract), "Mul": _binary(np.multiply), "Div": _binary(_div),
    "Max": _binary(np.maximum), "Min": _binary(np.minimum), "Equal": _binary(np.equal),
    "Mod": _binary(np.fmod), "Neg": lambda attrs, x: -np.asarray(x),
    "Floor": lambda attrs, x: np.floor(x), "Ceil": lambda attrs, x: np.ceil(x),
    "Sqrt": lambda attrs, x: np.sqrt(x), "Not": lambda attrs, x: np.logical_not(x),
    "Where": lambda attrs, c, a, b: np.where(c, a, b),
    "Expand": lambda attrs, x, shape: x * np.ones([int(s) for s in np.reshape(shape, -1)], dtype=np.asarray(x).dtype),
    "Transpose": lambda attrs, x: np.transpose(x, attrs.get("perm")),
    "ScatterND": _scatter_nd, "Pow": _binary(np.power),
    "ReduceProd": lambda attrs, x, *rest: np.prod(x, keepdims=bool(attrs.get("keepdims", 1))),
}


def evaluate(op_type: str, attrs: dict[str, Any], inputs: list[Any]) -> Optional[Any]:
    """The value of an op on known inputs (numpy arrays), or None when it is not one this
    module evaluates, an input is unknown, or the result would be too large."""
    fn = EVALUATORS.get(op_type)
    if fn is None or any(v is None for v in inputs):
        return None
    if any(np.size(v) > MAX_ELEMENTS for v in inputs):
        return None
    try:
        with np.errstate(all="ignore"):
            value = fn(attrs, *inputs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, MemoryError):
        return None
    value = np.asarray(value)
    return value if value.size <= MAX_ELEMENTS else None
