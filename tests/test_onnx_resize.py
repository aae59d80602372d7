"""ONNX Resize, position by position, against the ONNX reference implementation (part of the
onnx package; nothing else runs): for every mode, coordinate transformation and nearest mode,
the input units each output unit reads (the support of a one-hot input's response) are the
taps rfa computes."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402
from rfa_toolbox.encoders.onnx import graph_from_onnx  # noqa: E402

from rfa_toolbox.taps import taps  # noqa: E402

CASES = [(mode, coordinates, nearest)
         for coordinates in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                             "half_pixel_symmetric")
         for mode, nearest in (("nearest", "round_prefer_floor"), ("nearest", "round_prefer_ceil"),
                               ("nearest", "floor"), ("nearest", "ceil"), ("linear", ""), ("cubic", ""))]
# (opset 11's tf_half_pixel_for_nn is not in the reference implementation; test_onnx_ops checks it)


def _model(n: int, m: int, mode: str, coordinates: str, nearest: str, exclude: int, by_scale: bool) -> bytes:
    attrs = dict(mode=mode, coordinate_transformation_mode=coordinates, exclude_outside=exclude)
    if nearest:
        attrs["nearest_mode"] = nearest
    if by_scale:
        inputs, extra = ["x", "", "scales"], [numpy_helper.from_array(np.array([1, 1, m / n, 1], np.float32), "scales")]
    else:
        inputs, extra = ["x", "", "", "sizes"], [numpy_helper.from_array(np.array([1, 1, m, 1], np.int64), "sizes")]
    node = helper.make_node("Resize", inputs, ["y"], name="up", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, n, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], extra)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model.SerializeToString()


def _reference(data: bytes, n: int, m: int) -> list[set[int]]:
    session = ReferenceEvaluator(onnx.load_from_string(data))
    read: list[set[int]] = [set() for _ in range(m)]
    for j in range(n):
        x = np.zeros((1, 1, n, 1), np.float32)
        x[0, 0, j, 0] = 1
        y = session.run(None, {"x": x})[0][0, 0, :, 0]
        for i in np.flatnonzero(np.abs(y) > 1e-6):
            read[i].add(j)
    return read


@pytest.mark.parametrize("n, m, by_scale", [(5, 8, False), (7, 3, False), (6, 12, True)])
@pytest.mark.parametrize("mode, coordinates, nearest", CASES)
def test_resize_taps_match_the_onnx_reference(mode, coordinates, nearest, n, m, by_scale):
    data = _model(n, m, mode, coordinates, nearest, 0, by_scale)
    graph = graph_from_onnx(data, (n, 1))
    index, exists = taps(graph["up"], 0, m, n)
    ours = [set(index[i][exists[i]].tolist()) for i in range(m)]
    assert ours == _reference(data, n, m)


@pytest.mark.parametrize("coordinates", ["half_pixel", "asymmetric"])
def test_cubic_exclude_outside_drops_the_taps_beyond_the_border(coordinates):
    data = _model(6, 10, "cubic", coordinates, "", 1, False)
    graph = graph_from_onnx(data, (6, 1))
    index, exists = taps(graph["up"], 0, 10, 6)
    ours = [set(index[i][exists[i]].tolist()) for i in range(10)]
    assert ours == _reference(data, 6, 10)
