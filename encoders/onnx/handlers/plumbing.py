"""Handlers of ONNX plumbing and mixing: reshapes and transposes (with layout tracking),
concatenation, splits, gathers, merges, elementwise ops and norms (neutral), reductions,
softmax, matrix products, einsum and attention."""

from __future__ import annotations

from typing import Any

from rfa_toolbox.encoders.layout import axes_of
from rfa_toolbox.encoders.pending import Op, Traced

from rfa_toolbox.graph import Transfer

from ..ir import DEFAULT_HANDLERS, OnnxNode, handles
from .common import as_aten, dims, int_list, ints_or, rank

_RESHAPES = {"Reshape": "reshape", "Flatten": "flatten", "Squeeze": "squeeze", "Unsqueeze": "unsqueeze",
             "Expand": "expand", "Tile": "tile", "Cast": "to", "CastLike": "to", "Dropout": "dropout"}


@handles(*_RESHAPES)
def _reshape(node: OnnxNode) -> Op:
    """Neutral; the layout follows the inferred shapes, as PyTorch's views do (a reshape that
    moves blocks of positions into the channels is a window, see the PyTorch handler)."""
    return as_aten(node, _RESHAPES[node.op_type], [node.inputs[0], None])


@handles("Transpose")
def _transpose(node: OnnxNode) -> Op:
    perm = int_list(node.attr("perm")) or list(reversed(range(rank(node))))
    return as_aten(node, "permute", [node.inputs[0], perm])


@handles("Concat")
def _concat(node: OnnxNode) -> Op:
    return as_aten(node, "cat", [list(node.inputs), int(node.attr("axis", 0))])


@handles("Split", "SplitToSequence")
def _split(node: OnnxNode) -> Op:
    return as_aten(node, "split", [node.inputs[0], None, int(node.attr("axis", 0))])


@handles("Gather")
def _gather(node: OnnxNode) -> Op:
    """Picking one index of a dim drops it; picking several keeps the dim (a selection)."""
    if not isinstance(node.inputs[0], Traced):  # a lookup table indexed by the input: neutral
        return Op("gather")
    axis = dims(node, [int(node.attr("axis", 0))])[0]
    indices = node.sizes[1]
    if indices is not None and len(indices) == 0:
        return as_aten(node, "select", [node.inputs[0], axis, 0])
    if indices is not None and len(indices) == 1:
        return as_aten(node, "index_select", [node.inputs[0], axis, None])
    return as_aten(node, "reshape", [node.inputs[0], None])


_MERGES = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Max": "maximum",
           "Min": "minimum", "Sum": "add", "Mean": "add", "Where": "where", "Equal": "eq", "Less": "lt",
           "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge", "And": "__and__", "Or": "__or__",
           "Xor": "__or__", "Mod": "remainder", "BitwiseAnd": "__and__", "BitwiseOr": "__or__",
           "PRelu": "mul"}


def _merge(node: OnnxNode) -> Op:
    if len(node.tensors) < 2 and node.op_type == "PRelu":
        return as_aten(node, "prelu", [node.inputs[0], None])
    return as_aten(node, _MERGES[node.op_type], list(node.inputs))


handles(*_MERGES)(_merge)

#: ONNX op -> the PyTorch op of the same computation (neutral: element by element or per
#: position), with the input positions of its learned parameters in PyTorch's argument order.
_NEUTRAL: dict[str, tuple[str, tuple[int, ...]]] = {
    **{op: (name, ()) for op, name in {
        "Relu": "relu", "LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu", "Celu": "celu",
        "Gelu": "gelu", "Sigmoid": "sigmoid", "HardSigmoid": "hardsigmoid", "HardSwish": "hardswish",
        "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign", "Mish": "mish", "Clip": "clamp",
        "ThresholdedRelu": "threshold", "Erf": "erf", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
        "Neg": "neg", "Abs": "abs", "Sign": "sign", "Sin": "sin", "Cos": "cos", "Reciprocal": "reciprocal",
        "Floor": "floor", "Ceil": "ceil", "Round": "round", "Not": "logical_not", "IsNaN": "logical_not",
        "IsInf": "logical_not", "Shrink": "threshold", "Swish": "silu", "BitwiseNot": "bitwise_not",
        "QuantizeLinear": "to", "DequantizeLinear": "to", "DynamicQuantizeLinear": "to",
        "LRN": "local_response_norm", "LpNormalization": "normalize",
        "MeanVarianceNormalization": "instance_norm"}.items()},
    "BatchNormalization": ("batch_norm", (1, 2)),
    "InstanceNormalization": ("instance_norm", (1, 2)),
    "LayerNormalization": ("layer_norm", (2, 3)),
    "GroupNormalization": ("group_norm", (2, 3)),
    "RMSNormalization": ("rms_norm", (2,)),
    "SimplifiedLayerNormalization": ("rms_norm", (2,)),
}


def _neutral(node: OnnxNode) -> Op:
    kind, params = _NEUTRAL[node.op_type]
    args: list[Any] = [node.inputs[0]] + [None] * 3
    sizes: list[Any] = [node.sizes[0]] + [None] * 3
    for k, position in enumerate(params):  # ONNX lists the parameters right after the input
        sizes[position] = node.sizes[k + 1] if k + 1 < len(node.sizes) else None
    return as_aten(node, kind, args, sizes)


for _name in _NEUTRAL:
    DEFAULT_HANDLERS[_name] = _neutral

_REDUCE = {"ReduceMean": "mean", "ReduceMax": "amax", "ReduceMin": "amin", "ReduceSum": "sum",
           "ReduceProd": "prod", "ReduceL1": "sum", "ReduceL2": "sum", "ReduceLogSum": "sum",
           "ReduceLogSumExp": "logsumexp", "ReduceSumSquare": "sum", "ArgMax": "argmax", "ArgMin": "argmin"}


@handles(*_REDUCE)
def _reduce(node: OnnxNode) -> Op:
    """Global on the axes carried by the reduced dims (all dims when none are named)."""
    keep = bool(node.attr("keepdims", 1))
    if node.op_type.startswith("Arg"):
        axes: Any = [int(node.attr("axis", 0))]
    else:
        axes = ints_or(node, "axes", 1)
        if not axes and node.attr("noop_with_empty_axes"):
            return Op("identity")
    if not axes:
        return as_aten(node, _REDUCE[node.op_type], [node.inputs[0]])
    return as_aten(node, _REDUCE[node.op_type], [node.inputs[0], axes, keep])


@handles("Softmax", "LogSoftmax", "Hardmax", "CumSum", "TopK")
def _along_dim(node: OnnxNode) -> Op:
    """Ops along one dim (softmax of attention maps): global on its axes. Before opset 13 the
    softmax family flattened the dims from ``axis`` on and worked along all of them."""
    kind = {"LogSoftmax": "log_softmax", "CumSum": "cumsum", "TopK": "topk"}.get(node.op_type, "softmax")
    if node.op_type == "CumSum":
        axis = int((int_list(node.const(1)) or [0])[0])
    else:
        axis = int(node.attr("axis", -1 if node.opset >= 13 or node.op_type == "TopK" else 1))
    if node.opset < 13 and node.op_type in ("Softmax", "LogSoftmax", "Hardmax"):
        carried = axes_of(node.x.layout, list(range(dims(node, [axis])[0], rank(node))))
        if carried:
            return Op(kind, Transfer.GLOBAL, True, global_axes=sorted(carried))
        return Op(kind)
    if kind == "topk":
        return as_aten(node, kind, [node.inputs[0], None, axis])
    return as_aten(node, kind, [node.inputs[0], axis])


@handles("MatMul", "MatMulInteger", "Gemm", "QLinearMatMul")
def _matmul(node: OnnxNode) -> Op:
    """a @ b: global on the axes the contracted dims carry (Gemm may transpose its operands)."""
    at = [0, 3] if node.op_type == "QLinearMatMul" else [0, 1]
    operands, sizes = [node.inputs[i] for i in at], [node.sizes[i] for i in at]
    weight = sizes[1]
    if isinstance(operands[0], Traced) and not isinstance(operands[1], Traced) and not node.attr("transA") \
            and weight is not None and len(weight) == 2:  # a dense layer: PyTorch's linear, weights (out, in)
        out_in = weight if node.attr("transB") else tuple(reversed(weight))
        bias = node.sizes[2] if node.op_type == "Gemm" and len(node.sizes) > 2 else None
        return as_aten(node, "linear", [operands[0], None, None], [sizes[0], out_in, bias])
    if node.op_type == "Gemm":
        for i, flag in enumerate(("transA", "transB")):
            if node.attr(flag):
                t = operands[i]
                if isinstance(t, Traced):
                    operands[i] = Traced(t.node, tuple(reversed(t.layout)), t.shape)
                shape = sizes[i]
                sizes[i] = tuple(reversed(shape)) if shape is not None else None
    operands = [t if isinstance(t, Traced) else None for t in operands]
    return as_aten(node, "matmul", operands, sizes)


@handles("Einsum")
def _einsum(node: OnnxNode) -> Op:
    return as_aten(node, "einsum", [str(node.attr("equation")), list(node.inputs)])


@handles("Attention", "com.microsoft::MultiHeadAttention", "com.microsoft::Attention")
def _attention(node: OnnxNode) -> Op:
    """Attention mixes the token dim of the keys into every query."""
    q = node.inputs[0]
    k = node.inputs[1] if len(node.inputs) > 1 and isinstance(node.inputs[1], Traced) else q
    if node.kind == "com.microsoft::Attention":  # one input, projected inside the op
        k = q
    sizes = [node.sizes[0], node.sizes[0] if k is q else node.sizes[1]]
    return as_aten(node, "scaled_dot_product_attention", [q, k], sizes)

