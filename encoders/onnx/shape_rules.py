"""Output shapes of common ops from their input shapes and constant inputs, for the tensors ONNX
shape inference leaves unknown: it stops at a reshape whose target is computed at run time
(``x.view(b, h // w, w, ...)`` in windowed attention), and everything after it stays unknown
until folding makes the target a constant. Filling those shapes as the folding walks the
graph lets one round of folding reach the end of the graph instead of one block per round."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Optional

import numpy as np

Shape = tuple[int, ...]

_SAME = set(
    "Relu Sigmoid Tanh Erf Exp Log Sqrt Neg Abs Softmax LogSoftmax Hardmax LayerNormalization "
    "BatchNormalization InstanceNormalization GroupNormalization RMSNormalization Cast CastLike Identity "
    "Dropout Gelu HardSwish HardSigmoid LeakyRelu Elu Selu Celu Clip Softplus Softsign Mish Not IsNaN IsInf "
    "Sign Floor Ceil Round Reciprocal LRN LpNormalization QuantizeLinear DequantizeLinear CumSum "
    "Sin Cos ThresholdedRelu Shrink".split())
_BROADCAST = set(
    "Add Sub Mul Div Pow Max Min Sum Mean Where Equal Less Greater LessOrEqual GreaterOrEqual And Or Xor "
    "Mod PRelu BitwiseAnd BitwiseOr".split())


def reshaped(shape: Optional[Sequence[int]], target: Any, attrs: dict[str, Any]) -> Optional[Shape]:
    """The shape a Reshape of ``shape`` to the constant ``target`` gives."""
    if not shape or target is None or not isinstance(target, np.ndarray):
        return None
    sizes = [int(t) for t in target.reshape(-1)]
    sizes = [shape[i] if t == 0 and not attrs.get("allowzero") and i < len(shape) else t for i, t in enumerate(sizes)]
    total, known = math.prod(shape), math.prod(t for t in sizes if t != -1)
    if sizes.count(-1) == 1 and known and total % known == 0:
        sizes[sizes.index(-1)] = total // known
    return tuple(sizes) if -1 not in sizes and math.prod(sizes) == total else None


def _axes(attrs: dict[str, Any], values: Sequence[Any], index: int, rank: int) -> Optional[list[int]]:
    axes = attrs.get("axes")
    if axes is None and len(values) > index and values[index] is not None:
        axes = values[index].reshape(-1).tolist()
    return None if axes is None else [int(a) + rank if int(a) < 0 else int(a) for a in axes]


def _matmul(a: Shape, b: Shape) -> Optional[Shape]:
    if len(a) < 2 or len(b) < 2:
        return None
    batch = tuple(np.broadcast_shapes(a[:-2], b[:-2]))
    return (*batch, a[-2], b[-1])


def _slice(shape: Shape, attrs: dict[str, Any], values: Sequence[Any]) -> Optional[Shape]:
    if "starts" in attrs:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    elif len(values) >= 3 and values[1] is not None and values[2] is not None:
        starts, ends = values[1].reshape(-1).tolist(), values[2].reshape(-1).tolist()
        axes = values[3].reshape(-1).tolist() if len(values) > 3 and values[3] is not None else None
        steps = values[4].reshape(-1).tolist() if len(values) > 4 and values[4] is not None else None
    else:
        return None
    out = list(shape)
    axes = list(range(len(starts))) if axes is None else axes
    for i, axis in enumerate(axes):
        axis = int(axis) + len(shape) if int(axis) < 0 else int(axis)
        step = int(steps[i]) if steps is not None else 1
        out[axis] = len(range(*slice(int(starts[i]), int(ends[i]), step).indices(shape[axis])))
    return tuple(out)


def _pad(shape: Shape, attrs: dict[str, Any], values: Sequence[Any]) -> Optional[Shape]:
    pads = attrs.get("pads")
    if pads is None and len(values) > 1 and values[1] is not None:
        pads = values[1].reshape(-1).tolist()
    if pads is None:
        return None
    axes = _axes({}, values, 3, len(shape)) or list(range(len(shape)))
    out = list(shape)
    for i, axis in enumerate(axes):
        out[axis] += int(pads[i]) + int(pads[i + len(axes)])
    return tuple(out)


def _window(shape: Shape, attrs: dict[str, Any], kernel: Sequence[int], channels: int) -> Optional[Shape]:
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET") or attrs.get("ceil_mode"):
        return None
    n = len(kernel)
    strides, dilations = attrs.get("strides") or [1] * n, attrs.get("dilations") or [1] * n
    pads = attrs.get("pads") or [0] * (2 * n)
    spatial = [(size + pads[i] + pads[i + n] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1
               for i, size in enumerate(shape[2:])]
    return (shape[0], channels, *spatial)


def _one(op_type: str, attrs: dict[str, Any], shapes: Sequence[Optional[Shape]], values: Sequence[Any],
         ) -> Optional[Shape]:
    first = shapes[0] if shapes else None
    known = [s for s in shapes if s is not None]
    if op_type in _BROADCAST:
        return tuple(np.broadcast_shapes(*known)) if len(known) == len(shapes) else None
    if first is None:
        return None
    rank = len(first)
    rules: dict[str, Callable[[], Optional[Shape]]] = {
        "Reshape": lambda: reshaped(first, values[1] if len(values) > 1 else None, attrs),
        "Transpose": lambda: tuple(first[p] for p in (attrs.get("perm") or reversed(range(rank)))),
        "Flatten": lambda: (math.prod(first[:attrs.get("axis", 1)]), math.prod(first[attrs.get("axis", 1):])),
        "Unsqueeze": lambda: _unsqueeze(first, _axes(attrs, values, 1, 0)),
        "Squeeze": lambda: _squeeze(first, _axes(attrs, values, 1, rank)),
        "Concat": lambda: _concat(shapes, int(attrs.get("axis", 0))),
        "Slice": lambda: _slice(first, attrs, values),
        "Pad": lambda: _pad(first, attrs, values),
        "Gather": lambda: _gather(first, shapes, int(attrs.get("axis", 0))),
        "MatMul": lambda: _matmul(first, shapes[1]) if len(shapes) > 1 and shapes[1] is not None else None,
        "Conv": lambda: _window(first, attrs, shapes[1][2:], shapes[1][0]) if len(shapes) > 1 and shapes[1] else None,
        "MaxPool": lambda: _window(first, attrs, attrs.get("kernel_shape") or [], first[1]),
        "AveragePool": lambda: _window(first, attrs, attrs.get("kernel_shape") or [], first[1]),
        "Expand": lambda: tuple(np.broadcast_shapes(first, tuple(int(v) for v in values[1].reshape(-1))))
        if len(values) > 1 and values[1] is not None else None,
        "Tile": lambda: tuple(s * int(r) for s, r in zip(first, values[1].reshape(-1)))
        if len(values) > 1 and values[1] is not None else None,
        "GlobalAveragePool": lambda: (*first[:2], *([1] * (rank - 2))),
        "GlobalMaxPool": lambda: (*first[:2], *([1] * (rank - 2))),
    }
    if op_type in _SAME:
        return first
    if op_type.startswith("Reduce") or op_type in ("ArgMax", "ArgMin"):
        return _reduce(first, attrs, values, op_type)
    rule = rules.get(op_type)
    return rule() if rule is not None else None


def _reduce(shape: Shape, attrs: dict[str, Any], values: Sequence[Any], op_type: str) -> Optional[Shape]:
    rank = len(shape)
    if op_type.startswith("Arg"):
        axes: Optional[list[int]] = [int(attrs.get("axis", 0)) % rank]
    else:
        axes = _axes(attrs, values, 1, rank)
        if not axes:
            if attrs.get("noop_with_empty_axes"):
                return shape
            axes = list(range(rank))
    reduced = set(axes or ())
    if attrs.get("keepdims", 1):
        return tuple(1 if i in reduced else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in reduced)


def _unsqueeze(shape: Shape, axes: Optional[list[int]]) -> Optional[Shape]:
    """Unsqueeze's axes count in the output's rank (negative ones from its end)."""
    if axes is None:
        return None
    rank = len(shape) + len(axes)
    out = list(shape)
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        out.insert(axis, 1)
    return tuple(out)


def _squeeze(shape: Shape, axes: Optional[list[int]]) -> Shape:
    return tuple(s for i, s in enumerate(shape) if not (s == 1 and (axes is None or i in axes)))


def _concat(shapes: Sequence[Optional[Shape]], axis: int) -> Optional[Shape]:
    if any(s is None for s in shapes) or not shapes:
        return None
    known = [s for s in shapes if s is not None]
    axis = axis + len(known[0]) if axis < 0 else axis
    return (*known[0][:axis], sum(s[axis] for s in known), *known[0][axis + 1:])


def _gather(data: Shape, shapes: Sequence[Optional[Shape]], axis: int) -> Optional[Shape]:
    if len(shapes) < 2 or shapes[1] is None:
        return None
    axis = axis + len(data) if axis < 0 else axis
    return (*data[:axis], *shapes[1], *data[axis + 1:])


def output_shape(op_type: str, attrs: dict[str, Any], shapes: Sequence[Optional[Shape]],
                 values: Sequence[Any]) -> Optional[Shape]:
    """The shape of the first output of ``op_type`` (None when no rule here tells it or the
    inputs do not fit)."""
    try:
        shape = _one(op_type, attrs, shapes, values)
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError):
        return None
    if shape is None or not all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape):
        return None
    return tuple(int(s) for s in shape)
