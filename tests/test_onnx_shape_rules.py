"""The shape rules the ONNX encoder uses where shape inference stops agree with ONNX shape
inference itself, op by op, on cases where inference can tell."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from rfa_toolbox.encoders.onnx.shape_rules import output_shape  # noqa: E402

#: op, attributes, input shapes, constant inputs (by position)
CASES = [
    ("Transpose", {"perm": [0, 2, 3, 1]}, [(1, 3, 5, 7)], {}),
    ("Transpose", {}, [(2, 3, 4)], {}),
    ("Reshape", {}, [(1, 6, 4, 4), (4,)], {1: np.array([1, -1, 2, 0], np.int64)}),
    ("Flatten", {"axis": 2}, [(2, 3, 4, 5)], {}),
    ("Unsqueeze", {}, [(3, 4), (2,)], {1: np.array([0, -1], np.int64)}),
    ("Squeeze", {}, [(1, 3, 1, 4), (1,)], {1: np.array([2], np.int64)}),
    ("Concat", {"axis": -1}, [(1, 2, 3), (1, 2, 5)], {}),
    ("Slice", {}, [(1, 3, 20, 20), (2,), (2,), (2,), (2,)],
     {1: np.array([1, -3], np.int64), 2: np.array([17, 100], np.int64), 3: np.array([2, 3], np.int64),
      4: np.array([3, 1], np.int64)}),
    ("Pad", {}, [(1, 3, 8, 8), (8,)], {1: np.array([0, 0, 1, 2, 0, 0, 3, -1], np.int64)}),
    ("Gather", {"axis": 1}, [(2, 5, 7), (3, 2)], {1: np.zeros((3, 2), np.int64)}),
    ("MatMul", {}, [(2, 1, 4, 5), (3, 5, 6)], {}),
    ("Add", {}, [(1, 3, 1, 5), (4, 1)], {}),
    ("Where", {}, [(1, 4), (3, 1), (1,)], {}),
    ("ReduceMean", {"axes": [2, 3], "keepdims": 0}, [(1, 3, 5, 7)], {}),
    ("ReduceMax", {"axes": [-1]}, [(1, 3, 5, 7)], {}),
    ("ArgMax", {"axis": 1, "keepdims": 0}, [(2, 3, 4)], {}),
    ("Conv", {"pads": [1, 0, 2, 1], "strides": [2, 3], "dilations": [2, 1]}, [(1, 3, 17, 19), (8, 3, 3, 2)], {}),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, [(1, 3, 15, 16)], {}),
    ("GlobalAveragePool", {}, [(1, 3, 15, 16)], {}),
    ("Relu", {}, [(2, 3)], {}),
    ("Expand", {}, [(3, 1, 5), (4,)], {1: np.array([2, 1, 4, 1], np.int64)}),
    ("Tile", {}, [(2, 3, 1), (3,)], {1: np.array([1, 2, 5], np.int64)}),
]


@pytest.mark.parametrize("op_type, attrs, shapes, constants", CASES, ids=[c[0] for c in CASES])
def test_shape_rule_agrees_with_onnx_shape_inference(op_type, attrs, shapes, constants):
    names = [f"in{i}" for i in range(len(shapes))]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for i, (n, s) in enumerate(zip(names, shapes))
              if i not in constants]
    initializers = [numpy_helper.from_array(v, names[i]) for i, v in constants.items()]
    if op_type == "Where":  # a condition is boolean
        inputs[0] = helper.make_tensor_value_info(names[0], TensorProto.BOOL, shapes[0])
    node = helper.make_node(op_type, names, ["out"], **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("out", TensorProto.UNDEFINED, None)],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output[0]
    expected = tuple(d.dim_value for d in inferred.type.tensor_type.shape.dim)
    values = [constants.get(i) for i in range(len(shapes))]
    assert output_shape(op_type, attrs, shapes, values) == expected
