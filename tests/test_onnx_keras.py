"""Keras models converted to ONNX with tf2onnx (channels-last inputs wrapped in Transposes,
TensorFlow's "same" padding as explicit asymmetric pads, half-pixel resizing) give the answers
of the Keras encoder on the same model. TensorFlow runs in a subprocess of its own (importing
it next to torch aborts)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import pytest

from rfa_toolbox import analyze

pytest.importorskip("onnx")
if importlib.util.find_spec("tf2onnx") is None:  # found, not imported: it imports tensorflow
    pytest.skip("tf2onnx is not installed", allow_module_level=True)
from rfa_toolbox.encoders.onnx import graph_from_onnx

CONVERT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf, keras, tf2onnx
    from rfa_toolbox import analyze
    from rfa_toolbox.encoders.keras import graph_from_keras_json
    L = keras.layers
    x = L.Input((64, 64, 3), batch_size=1)
    a = L.Conv2D(8, 3, strides=2, padding="same", name="stem")(x)
    b = L.DepthwiseConv2D(3, padding="same", name="dw")(a)
    c = L.ZeroPadding2D(((1, 0), (0, 1)), name="pad")(b)
    c = L.Conv2D(8, 2, name="after_pad")(c)
    u = L.UpSampling2D(2, interpolation="bilinear", name="up")(c)
    y = L.Concatenate(name="cat")([u, L.Conv2D(8, 5, padding="same", name="side")(x)])
    y = L.Conv2D(4, 3, strides=2, name="head")(y)
    models = {"small": keras.Model(x, y),
              "mobilenet": keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3))}
    out = {}
    for name, model in models.items():
        size = model.input_shape[1]
        path = os.path.join(sys.argv[1], name + ".onnx")
        spec = (tf.TensorSpec((1, size, size, 3), tf.float32, name="input"),)
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=13, output_path=path)
        report = analyze(graph_from_keras_json(model.to_json()), size)
        out[name] = {"path": path, "size": size, "r": report.r, "max_resolution": report.max_resolution,
                     "last": [report.layers[-1].r_max, report.layers[-1].jump] if name == "small" else None}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_onnx")
    done = subprocess.run([sys.executable, "-c", CONVERT, str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["small", "mobilenet"])
def test_tf2onnx_export_matches_the_keras_encoder(converted, name):
    expected = converted[name]
    report = analyze(graph_from_onnx(expected["path"], expected["size"]), expected["size"])
    assert report.unknown_ops == []
    assert list(report.r) == expected["r"] and list(report.max_resolution) == expected["max_resolution"]
    if expected["last"] is not None:  # the head after "same" pads, padding, upsampling and concat
        head = report.layers[-1]
        assert [list(head.r_max), list(head.jump)] == expected["last"]
        assert report.layers[0].shape == (3, 64, 64)  # the NHWC input, read through its Transpose
