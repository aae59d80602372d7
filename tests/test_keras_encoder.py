"""The Keras encoder: model JSON (Keras 3 and Keras 2 formats) to graph, without running code."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402
from rfa_toolbox.encoders.keras import (  # noqa: E402
    KerasFormatError,
    graph_from_keras_json,
)

from rfa_toolbox import analyze  # noqa: E402
from rfa_toolbox.sources import load_graph  # noqa: E402

from conftest import paper_values, rf  # noqa: E402

PAPER = paper_values()
KERAS_R = {k.split(":", 1)[1]: v for k, v in PAPER["r"].items() if k.startswith("keras:")}



@pytest.mark.parametrize("name", sorted(KERAS_R))
def test_published_r_at_224(name):
    assert analyze(f"keras:{name}", 224).r == (KERAS_R[name],) * 2


@pytest.mark.parametrize("keras_name, torch_name", [
    ("VGG19", "vgg19"), ("MobileNetV2", "mobilenet_v2"), ("EfficientNetB0", "efficientnet_b0"),
    ("ConvNeXtTiny", "convnext_tiny"),
])
def test_same_values_as_torchvision(keras_name, torch_name):
    pytest.importorskip("torch")
    k = analyze(f"keras:{keras_name}", 224)
    t = analyze(f"torchvision:{torch_name}", 224)
    assert (k.r, k.max_resolution) == (t.r, t.max_resolution)
    assert not k.unknown_ops


def test_convnext_nested_stem_and_downsampling_are_counted():
    graph = load_graph("keras:ConvNeXtTiny")
    stems = [layer for layer in graph if layer.module and layer.module.startswith("convnext_tiny_stem")]
    assert any(layer.kernel == (4, 4) and layer.stride == (4, 4) for layer in stems)
    assert analyze(graph, 224).r == (224, 224)


@pytest.mark.parametrize("name", ["ResNet50", "DenseNet121", "InceptionV3", "Xception",
                                  "MobileNetV3Small", "NASNetMobile", "EfficientNetV2B0"])
def test_representative_applications_analyze(name):
    report = analyze(f"keras:{name}", 224)
    assert report.r[0] is not None and report.r[0] > 3
    assert report.max_resolution[0] >= report.r[0]


def test_sequential_model():
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(4, 3, name="c1"),
                              layers.MaxPooling2D(name="p1"), layers.Conv2D(4, 3, dilation_rate=2, name="c2"),
                              layers.Flatten(name="flat"), layers.Dense(10, name="fc")])
    graph = load_graph(model)
    # c1 3; pool 2/2: 4 (j 2); dilated 3x3: 4 + 2*2*2 = 12
    assert rf(graph, "c2") == ((12, 12), (12, 12))
    report = analyze(graph, 32)
    assert report.layer("flat").status == "head" and report.layer("fc").status == "head"
    assert graph["c1"].params == 3 * 3 * 3 * 4 + 4 and graph["c1"].in_channels == 3


def test_shared_layer_calls_are_separate_nodes():
    inp = keras.Input((32, 32, 3), name="img")
    x = layers.Conv2D(8, 3, strides=2, name="c1")(inp)
    shared = layers.Conv2D(8, 3, padding="same", name="shared")
    a = shared(x)
    b = shared(a)
    out = layers.Add(name="add")([a, b])
    graph = load_graph(keras.Model(inp, out))
    assert "shared" in graph and "shared:1" in graph
    assert graph["c1"].shape == (15, 15, 8)  # shapes come from the tensors the next layers read
    # c1 3 (j 2); shared 3 + 4 = 7; shared:1 11; add keeps both paths
    assert rf(graph, "add") == ((7, 7), (11, 11))


def test_two_inputs_and_nested_submodel():
    sub = keras.Sequential([keras.Input((16, 16, 8)), layers.Conv2D(8, 3, padding="same", name="inner"),
                            layers.AveragePooling2D(2, name="pool")], name="sub")
    a = keras.Input((32, 32, 3), name="a")
    b = keras.Input((16, 16, 1), name="b")
    x = layers.Conv2D(8, 5, strides=2, padding="same", name="stem")(a)
    y = layers.Conv2D(8, 1, name="proj")(b)
    merged = layers.Concatenate(name="cat")([x, y])
    out = sub(layers.Conv2D(8, 1, name="mix")(merged))
    graph = load_graph(keras.Model([a, b], out))
    assert set(graph.inputs) == {"a", "b"}
    assert graph["sub.inner"].module == "sub.inner"
    # from a: 5 (j 2) -> inner 5 + 4 = 9 -> pool 2/2: 9 + 2 = 11; from b: 1 -> 3 -> 3 + 1 = 4
    assert rf(graph, "sub.pool") == ((4, 4), (11, 11))


def test_conv1d_and_conv3d_models():
    m1 = keras.Sequential([keras.Input((400, 1)), layers.Conv1D(4, 9, strides=4, name="a"),
                           layers.Conv1D(4, 3, dilation_rate=2, name="b")])
    g1 = load_graph(m1)
    assert g1.ndim == 1 and rf(g1, "b") == ((25,), (25,))    # 9 (j 4) + 2*2*4
    m3 = keras.Sequential([keras.Input((8, 32, 32, 3)), layers.Conv3D(4, (3, 7, 7), strides=(1, 2, 2), name="a"),
                           layers.MaxPooling3D((1, 3, 3), strides=(1, 2, 2), name="p"),
                           layers.Conv3D(4, 3, name="b")])
    g3 = load_graph(m3)
    assert g3.ndim == 3 and rf(g3, "b") == ((5, 19, 19), (5, 19, 19))


def test_round_trip_json_file_and_keras_archive(tmp_path):
    model = keras.Sequential([keras.Input((64, 64, 3)), layers.Conv2D(4, 3, strides=2, name="c1"),
                              layers.UpSampling2D(interpolation="bilinear", name="up"),
                              layers.Conv2D(4, 3, name="c2")])
    json_path = tmp_path / "model.json"
    json_path.write_text(model.to_json())
    keras_path = tmp_path / "model.keras"
    model.save(keras_path)
    reports = [analyze(source, 64).to_dict() for source in (model, str(json_path), str(keras_path))]
    for report in reports:
        report.pop("model")
    assert reports[0] == reports[1] == reports[2]
    # c1: 3, j 2; bilinear x2: 3 + j = 5, j 1; c2: 5 + 2 = 7
    assert reports[0]["r"] == reports[0]["max_resolution"] == [7, 7]


KERAS2 = {
    "class_name": "Functional",
    "config": {
        "name": "k2", "layers": [
            {"class_name": "InputLayer", "name": "input_1",
             "config": {"batch_input_shape": [None, 32, 32, 3], "name": "input_1"}, "inbound_nodes": []},
            {"class_name": "Conv2D", "name": "conv",
             "config": {"name": "conv", "filters": 4, "kernel_size": [3, 3], "strides": [2, 2],
                        "dilation_rate": [1, 1]},
             "inbound_nodes": [[["input_1", 0, 0, {}]]]},
            {"class_name": "Conv2D", "name": "conv_b",
             "config": {"name": "conv_b", "filters": 4, "kernel_size": [5, 5], "strides": [1, 1],
                        "dilation_rate": [1, 1]},
             "inbound_nodes": [[["conv", 0, 0, {}]]]},
            {"class_name": "Add", "name": "add", "config": {"name": "add"},
             "inbound_nodes": [[["conv", 0, 0, {}], ["conv_b", 0, 0, {}]]]},
            {"class_name": "TFOpLambda", "name": "tf.math.multiply", "config": {"name": "tf.math.multiply"},
             "inbound_nodes": [[["add", 0, 0, {}]]]},
        ],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["tf.math.multiply", 0, 0]],
    },
    "keras_version": "2.15.0", "backend": "tensorflow",
}


def test_keras2_nested_list_format():
    graph = graph_from_keras_json(json.dumps(KERAS2))
    # conv 3 (j 2); conv_b 3 + 4*2 = 11; add keeps both; the unknown TFOpLambda is neutral
    assert rf(graph, "tf.math.multiply") == ((3, 3), (11, 11))
    assert graph.unknown_ops == ["TFOpLambda (tf.math.multiply)"]


@pytest.mark.parametrize("text, words", [
    ('{"class_name": "Functional", "config": {"layers": [', "malformed JSON"),
    ('{"hello": 1}', "not a Keras model"),
    ('{"class_name": "Dense", "config": {}}', "not a Keras model"),
])
def test_bad_json(text, words):
    with pytest.raises(KerasFormatError, match=words):
        graph_from_keras_json(text)


def test_unknown_inbound_format():
    data = json.loads(json.dumps(KERAS2))
    data["config"]["layers"][1]["inbound_nodes"] = [["nonsense"]]
    with pytest.raises(KerasFormatError, match="unknown inbound node format"):
        graph_from_keras_json(data)


def test_cli_bad_keras_files(rfa, tmp_path):
    from test_cli import assert_one_line_error

    archive = tmp_path / "empty.keras"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("metadata.json", "{}")
    assert_one_line_error(rfa("analyze", str(archive), "--res", "224"), "without config.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"class_name": "Functional", "config": {"layers": [')
    assert_one_line_error(rfa("analyze", str(broken), "--res", "224"), "malformed JSON")
    not_zip = tmp_path / "fake.keras"
    not_zip.write_text("hello")
    assert_one_line_error(rfa("analyze", str(not_zip), "--res", "224"), "not a .keras archive")


def test_cli_keras_application(rfa):
    result = rfa("analyze", "keras:MobileNet", "--res", "224", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["r"] == [315, 315]


def test_registered_handler_for_a_custom_layer():
    from rfa_toolbox.encoders.keras import KOp, register_handler
    from rfa_toolbox.encoders.keras.ir import REGISTERED

    data = json.loads(json.dumps(KERAS2))
    data["config"]["layers"][4] = {"class_name": "BlurPool2D", "name": "blur",
                                   "config": {"name": "blur", "kernel_size": 3, "stride": 2},
                                   "inbound_nodes": [[["add", 0, 0, {}]]]}
    data["config"]["output_layers"] = [["blur", 0, 0]]
    assert graph_from_keras_json(data).unknown_ops == ["BlurPool2D (blur)"]
    def blur(config, inputs, ndim):
        return KOp("avg_pool", dict(kernel=[config["kernel_size"]] * ndim,
                                    stride=[config["stride"]] * ndim))

    # for one call only: add: (3, 11) at j 2; blur 3/2: + 2*2 -> (7, 15)
    graph = graph_from_keras_json(data, handlers={"BlurPool2D": blur})
    assert not graph.unknown_ops and rf(graph, "blur") == ((7, 7), (15, 15))
    assert graph_from_keras_json(data).unknown_ops == ["BlurPool2D (blur)"]
    register_handler("BlurPool2D", blur)  # for every later call
    try:
        graph = graph_from_keras_json(data)
        assert not graph.unknown_ops and rf(graph, "blur") == ((7, 7), (15, 15))
    finally:
        del REGISTERED["BlurPool2D"]


def test_channels_first_model():
    model = keras.Sequential([keras.Input((3, 32, 32)),
                              layers.Conv2D(4, (3, 5), strides=2, data_format="channels_first", name="c")])
    graph = load_graph(model)
    assert graph.ndim == 2 and graph["c"].in_channels == 3 and graph["c"].kernel == (3, 5)
    assert graph["c"].params == 3 * 5 * 3 * 4 + 4
    assert rf(graph, "c") == ((3, 5), (3, 5))


@pytest.mark.parametrize("model", ["keras:MobileNetV2", "model.keras"])
def test_input_shape_is_refused_for_keras_models(model):
    """Keras orders its input (height, width, channels); an --input-shape read channels-first
    would analyze a 160x3 image: refused, the file has the channels."""
    from rfa_toolbox.errors import RFAError

    with pytest.raises(RFAError, match="applies to PyTorch and ONNX models"):
        analyze(model, None, input_shape="160x160x3")
