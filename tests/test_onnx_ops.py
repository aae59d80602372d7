"""The ONNX encoder op by op: small PyTorch modules exported to ONNX give the trace's answers
(every layer, exact positions included), and hand-written ONNX graphs cover what PyTorch does
not export (channels-last inputs, auto_pad, old opsets' attributes, TensorFlow's resizing)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from rfa_toolbox.encoders.onnx import graph_from_onnx, module_path  # noqa: E402
from torch import nn  # noqa: E402

from rfa_toolbox import analyze  # noqa: E402


class Fn(nn.Module):
    """A conv, then ``fn``, then a conv: the op under test between two window layers."""

    def __init__(self, fn, out_channels: int = 4):
        super().__init__()
        self.first = nn.Conv2d(3, 4, 3, padding=1)
        self.fn = fn
        self.last = nn.Conv2d(out_channels, 2, 3)

    def forward(self, x):
        return self.last(self.fn(self.first(x)))


OPS = {
    "nearest x2": (lambda x: F.interpolate(x, scale_factor=2), 4),
    "nearest x1.5": (lambda x: F.interpolate(x, scale_factor=1.5), 4),
    "bilinear": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), 4),
    "bilinear align_corners": (lambda x: F.interpolate(x, size=(37, 29), mode="bilinear", align_corners=True), 4),
    "bicubic": (lambda x: F.interpolate(x, scale_factor=2, mode="bicubic"), 4),
    "bilinear down": (lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear"), 4),
    "pixel shuffle": (nn.PixelShuffle(2), 1),
    "pixel unshuffle": (nn.PixelUnshuffle(2), 16),
    "strided slice": (lambda x: x[:, :, 1::2, ::3], 4),
    "crop": (lambda x: x[:, :, 2:-3, 1:], 4),
    "reflect pad": (lambda x: F.pad(x, (1, 2, 3, 0), mode="reflect"), 4),
    "replicate pad": (lambda x: F.pad(x, (2, 2, 1, 1), mode="replicate"), 4),
    "zero pad": (lambda x: F.pad(x, (0, 3, 2, 0)), 4),
    "max pool ceil": (nn.MaxPool2d(3, 2, ceil_mode=True), 4),
    "avg pool pad": (nn.AvgPool2d(3, 2, padding=1), 4),
    "dilated max pool": (nn.MaxPool2d(3, 1, dilation=2), 4),
    "transposed conv": (nn.ConvTranspose2d(4, 4, 4, 2, 1, output_padding=1, dilation=2), 4),
    "spatial mean": (lambda x: x - x.mean(dim=(2, 3), keepdim=True), 4),
    "max over rows": (lambda x: x * x.amax(dim=2, keepdim=True), 4),
    "einsum over width": (lambda x: torch.einsum("bchw,bcgw->bchg", x, x), 4),
}


def _export(model: nn.Module, resolution: int, opset: int = 17) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.randn(1, 3, resolution, resolution), buffer, dynamo=False,
                          opset_version=opset)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(OPS))
def test_exported_op_matches_the_trace(name):
    fn, channels = OPS[name]
    model = Fn(fn if isinstance(fn, nn.Module) else _Lambda(fn), channels)
    traced = analyze(model, 24)
    report = analyze(graph_from_onnx(_export(model, 24), 24), 24)
    expected = traced.layer("last")
    got = report.layer("last")
    assert (got.r_min, got.r_max, got.jump, got.offset, got.shape) == (
        expected.r_min, expected.r_max, expected.jump, expected.offset, expected.shape)
    assert (report.r, report.max_resolution) == (traced.r, traced.max_resolution)
    assert report.unknown_ops == []


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


# -- hand-written graphs ---------------------------------------------------------------------

def _weight(name: str, shape: tuple[int, ...]) -> TensorProto:
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model.SerializeToString()


def _tensor(name: str, dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def test_channels_last_input_wrapped_in_transposes():
    """A TensorFlow converter's graph: NHWC input, Transpose to NCHW, convs, Transpose back."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="model/to_nchw"),
             helper.make_node("Conv", ["t", "w1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2],
                              pads=[1, 1, 1, 1], name="model/conv1/Conv2D"),
             helper.make_node("Conv", ["c1", "w2"], ["c2"], kernel_shape=[3, 3], name="model/conv2/Conv2D"),
             helper.make_node("Transpose", ["c2"], ["y"], perm=[0, 2, 3, 1], name="model/to_nhwc")]
    data = _model(nodes, [_tensor("x", ["N", "H", "W", 3])], [_tensor("y", None)],
                  [_weight("w1", (8, 3, 3, 3)), _weight("w2", (8, 8, 3, 3))])
    report = analyze(graph_from_onnx(data, 40), 40)
    conv2 = report.layer("model.conv2")
    assert conv2.r_max == (7, 7) and conv2.jump == (2, 2) and conv2.offset == (-1, -1)
    assert conv2.shape == (8, 18, 18)
    assert report.layer("x").shape == (3, 40, 40)


@pytest.mark.parametrize("auto_pad, before", [("SAME_UPPER", 0), ("SAME_LOWER", 1), ("VALID", 0)])
def test_auto_pad_pads_as_the_spec_says(auto_pad, before):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad=auto_pad,
                              name="conv")]
    data = _model(nodes, [_tensor("x", [1, 3, 32, 32])], [_tensor("y", None)], [_weight("w", (4, 3, 3, 3))])
    layer = analyze(graph_from_onnx(data, 32), 32).layer("conv")
    assert layer.offset == (-before, -before)
    assert layer.shape == ((4, 16, 16) if auto_pad != "VALID" else (4, 15, 15))


def test_opset_9_upsample_and_slice_attributes():
    """Opset 9 gives Upsample its scales as an input and Slice its bounds as attributes."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    nodes = [helper.make_node("Slice", ["x"], ["s"], starts=[2], ends=[30], axes=[3], name="crop"),
             helper.make_node("Upsample", ["s", "scales"], ["u"], mode="nearest", name="up"),
             helper.make_node("Conv", ["u", "w"], ["y"], kernel_shape=[3, 3], name="conv")]
    data = _model(nodes, [_tensor("x", [1, 3, 32, 32])], [_tensor("y", None)], [scales, _weight("w", (2, 3, 3, 3))],
                  opset=9)
    report = analyze(graph_from_onnx(data, 32), 32)
    assert report.layer("up").shape == (3, 64, 56)
    conv = report.layer("conv")
    assert conv.r_max == (2, 2) and conv.jump == (0.5, 0.5)
    assert conv.offset[1] == 2  # the crop moved the columns by its start


def test_tensorflow_half_pixel_nearest_and_space_to_depth():
    nodes = [helper.make_node("SpaceToDepth", ["x"], ["d"], blocksize=2, name="s2d"),
             helper.make_node("Resize", ["d", "", "scales"], ["u"], mode="nearest",
                              coordinate_transformation_mode="tf_half_pixel_for_nn", name="up"),
             helper.make_node("DepthToSpace", ["u"], ["y"], blocksize=2, mode="CRD", name="d2s")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    data = _model(nodes, [_tensor("x", [1, 4, 16, 16])], [_tensor("y", None)], [scales])
    report = analyze(graph_from_onnx(data, 16), 16)
    assert report.layer("s2d").r_max == (2, 2) and report.layer("s2d").jump == (2, 2)
    assert report.layer("d2s").shape == (4, 32, 32)
    assert report.layer("d2s").jump == (0.5, 0.5)


def test_reduce_over_spatial_axes_is_global_and_over_channels_is_not():
    nodes = [helper.make_node("ReduceMean", ["x"], ["c"], axes=[1], keepdims=1, name="channels"),
             helper.make_node("ReduceMax", ["c"], ["y"], axes=[2, 3], keepdims=1, name="spatial")]
    data = _model(nodes, [_tensor("x", [1, 3, 8, 8])], [_tensor("y", None)], opset=13)
    graph = graph_from_onnx(data, 8)
    assert graph["channels"].transfer.value == "neutral"
    assert graph["spatial"].transfer.value == "global"


@pytest.mark.parametrize("name, module", [
    ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),
    ("/features/features.1/features.1.0/attn/Slice", "features.1.0.attn"),
    ("/encoder/layers/encoder_layer_0/self_attention/MatMul", "encoder.layers.encoder_layer_0.self_attention"),
    ("model/block1_conv1/Conv2D", "model.block1_conv1"),
    ("/Flatten", ""),
    ("resnetv17_conv0_fwd", "resnetv17_conv0_fwd"),
])
def test_module_paths_from_node_names(name, module):
    assert module_path(name) == module


def test_dynamo_export_module_paths_from_its_metadata():
    """PyTorch's ``dynamo=True`` exporter names nodes ``node_Conv_3``; the module paths come from
    the scopes it records in each node's metadata."""
    pytest.importorskip("onnxscript")
    model = Fn(nn.MaxPool2d(3, 2), 4).eval()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.randn(1, 3, 24, 24),), dynamo=True, optimize=False)
    data = program.model_proto.SerializeToString()
    report = analyze(graph_from_onnx(data, 24), 24)
    traced = analyze(model, 24)
    assert [layer.name for layer in report.layers] == ["x", "first", "fn", "last"]
    for name in ("first", "fn", "last"):
        ours, theirs = report.layer(name), traced.layer(name)
        assert (ours.r_max, ours.jump) == (theirs.r_max, theirs.jump)


def test_gate_before_the_features_keeps_their_axes_in_onnx():
    """The Mul of a squeeze-excitation gate (1x1, first operand) and the features."""
    model = Fn(_Lambda(lambda x: x.mean((2, 3), keepdim=True).sigmoid() * x), 4)
    report = analyze(graph_from_onnx(_export(model, 24), 24), 24)
    assert report.layer("last").r_min == (5, 5) and report.layer("last").shape == (2, 22, 22)


def test_folded_shape_arithmetic_keeps_its_types():
    """Resize scales computed from the input's shape (Shape, Slice, Cast to float, Div): the
    folded constants keep the types the graph declares, so shape inference accepts them."""
    consts = {"starts": np.array([2], np.int64), "ends": np.array([4], np.int64),
              "target": np.array([16.0], np.float32), "ones": np.array([1.0, 1.0], np.float32)}
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Slice", ["shape", "starts", "ends"], ["hw"]),
             helper.make_node("Cast", ["hw"], ["hw_float"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["target", "hw_float"], ["factor"]),
             helper.make_node("Concat", ["ones", "factor"], ["scales"], axis=0),
             helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest", name="up")]
    data = _model(nodes, [_tensor("x", [1, 3, 8, 8])], [_tensor("y", None)],
                  [numpy_helper.from_array(v, k) for k, v in consts.items()])
    assert analyze(graph_from_onnx(data, 8), 8).layer("up").shape == (3, 16, 16)
