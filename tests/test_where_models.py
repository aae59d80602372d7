"""Where units of real models look, against their gradient: the centre unit of the last spatial
layer of classifiers, and units of a U-Net's and a feature pyramid's outputs (resampling).

The analysis runs on the model as users build it (weights=None). The measurement runs on a
copy made linear and positive (no activations or dropout, max pooling replaced by average
pooling with the same window, convolution weights positive and scaled by the square root of
their fan-in, batch norms the identity), in float64 where nothing resamples (nothing cancels or
underflows) and in float32 through bilinear upsampling, whose coordinates PyTorch computes in
the input's precision as users run it. The input pixels with a non-zero gradient are exactly the
pixels the unit reads; their extent must equal the unit's union box clipped to the input
(``union_clipped``), on both axes of a non-square input. The resolutions are chosen so the box
lies inside the input (its offset and size both show), except for the models whose field is
far larger than any input (marked ``clipped``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

from rfa_toolbox import analyze  # noqa: E402
from rfa_toolbox.graph import Transfer  # noqa: E402

#: model -> (resolution, module whose output feeds the global pool, hook side)
TORCHVISION = {
    "resnet18": (448, "avgpool", "input"),
    "resnet50": (448, "avgpool", "input"),
    "vgg11": (224, "avgpool", "output"),  # adaptive 7x7 pooling, then the flatten
    "alexnet": (320, "avgpool", "output"),
    "squeezenet1_1": (224, "classifier.3", "input"),
    "mobilenet_v2": (512, "features", "output"),
    "googlenet": (416, "avgpool", "input"),
    "shufflenet_v2_x0_5": (576, "conv5", "output"),
    "regnet_x_400mf": (224, "avgpool", "input"),  # clipped: r = 975
    "densenet121": (160, "features", "output"),   # clipped: r = 2071
}
CLIPPED = {"regnet_x_400mf", "densenet121", "DenseNet121"}
KERAS = {"VGG16": 256, "ResNet50": 512, "MobileNet": 352, "DenseNet121": 160}


def _extent(grad: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) row and column where a (rows, columns) gradient is non-zero."""
    rows, cols = np.flatnonzero(grad.sum(1) > 0), np.flatnonzero(grad.sum(0) > 0)
    return [(int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))]


def _feeding_the_head(report) -> str:
    """The layer whose output the first global op (pool, flatten) reads."""
    graph = report.locator.graph
    first = next(n for n in graph.topological_order() if graph[n].transfer is Transfer.GLOBAL)
    (source,) = graph.predecessors(first)
    return source


#: The fields of the clipped models, which their gradients cannot show (the whole input).
CLIPPED_R = {"regnet_x_400mf": 975, "densenet121": 2071, "DenseNet121": 2071}


def _check(report, layer, centre, measured, name):
    boxes = report.box(layer, centre)
    assert [b["union_clipped"] for b in boxes] == measured, (name, layer, centre, boxes)
    if name not in CLIPPED:  # the whole box inside the input: offset and size both measured
        assert [b["union"] for b in boxes] == measured, (name, boxes)
    else:  # the box reaches beyond the input on every side, and is as wide as the field
        r = CLIPPED_R[name]
        assert report.layer(layer).r_max == (r, r), name
        assert [b["union"][1] - b["union"][0] + 1 for b in boxes] == [r, r], (name, boxes)
        assert all(lo < 0 and hi >= n for (lo, hi), n in zip((b["union"] for b in boxes), report.resolution))


def _torch_linear_positive(model, dtype=torch.float64):
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode))
            elif isinstance(child, (nn.ReLU, nn.ReLU6, nn.Dropout)):
                setattr(parent, child_name, nn.Identity())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                weight = torch.rand(module.weight.shape, generator=generator) + 0.5
                module.weight.copy_(weight / module.weight[0].numel() ** 0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
    return model.to(dtype).eval()


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_centre_unit_reads_its_box(name):
    res, module, side = TORCHVISION[name]
    options = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    model = getattr(torchvision.models, name)(weights=None, **options).eval()
    report = analyze(model, (res, res + 32))
    layer = _feeding_the_head(report)

    linear = _torch_linear_positive(model)
    seen = {}

    def keep(_module, inputs, output):
        seen["t"] = inputs[0] if side == "input" else output

    hook = linear.get_submodule(module).register_forward_hook(keep)
    x = torch.rand(1, 3, res, res + 32, dtype=torch.float64, requires_grad=True)
    linear(x)
    hook.remove()
    features = seen["t"]
    assert tuple(features.shape[-2:]) == report.units(layer)
    centre = (features.shape[-2] // 2, features.shape[-1] // 2)
    (grad,) = torch.autograd.grad(features[0, :, centre[0], centre[1]].sum(), x)
    _check(report, layer, centre, _extent(grad[0].abs().sum(0).numpy()), name)


def _measured_boxes(outputs, x, positions):
    """Per position of ``outputs`` (N, C, H, W), the extent of its input gradient."""
    boxes = []
    for position in positions:
        (grad,) = torch.autograd.grad(outputs[(0, slice(None), *position)].sum(), x, retain_graph=True)
        boxes.append(_extent(grad[0].abs().sum(0).numpy()))
    return boxes


def _load_example(name):
    import importlib.util

    from conftest import EXAMPLES

    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unet_units_read_their_exact_boxes():
    """examples/unet.py (bilinear x2, align_corners): boxes vary with the position (the field
    of the head is 236 pixels at its widest, 230 by the standard rules)."""
    model = _load_example("unet").UNet(width=2).eval()
    res = (320, 352)
    report = analyze(model, res)
    assert report.exact and report.layer("head").r_max == (236, 236)
    positions = [(0, 0), (160, 176), (161, 177), (150, 163), (130, 131), (300, 20), (319, 351)]
    x = torch.rand(1, 3, *res, requires_grad=True)
    outputs = _torch_linear_positive(model, torch.float32)(x)
    measured = _measured_boxes(outputs, x, positions)
    assert [[b["union_clipped"] for b in report.box("head", p)] for p in positions] == measured
    assert measured[3] == [(34, 269), (50, 285)]  # 236 rows: the widest box, inside the input


def test_feature_pyramid_units_read_their_exact_boxes():
    """torchvision's ResNet-18 FPN backbone (nearest upsampling to the finer level's size):
    units of P2 and P3 against their gradients."""
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    model = resnet_fpn_backbone(backbone_name="resnet18", weights=None, trainable_layers=5).eval()
    res = (512, 544)
    report = analyze(model, res)
    x = torch.rand(1, 3, *res, dtype=torch.float64, requires_grad=True)
    outputs = _torch_linear_positive(model)(x)
    for key, layer, positions in (("0", "fpn.layer_blocks.0.0", [(5, 5), (67, 69)]),
                                  ("1", "fpn.layer_blocks.1.0", [(35, 35)])):
        measured = _measured_boxes(outputs[key], x, positions)
        assert [[b["union_clipped"] for b in report.box(layer, p)] for p in positions] == measured, layer
    assert report.box("fpn.layer_blocks.1.0", (35, 35))[0]["union"] == (39, 505)  # 467 wide, inside


def _keras_linear_positive(model):
    """A float64 copy of ``model`` from its JSON: linear activations, average pooling,
    positive fan-in-scaled kernels, identity batch norms, zero biases."""
    import keras

    def rewrite(node):
        if isinstance(node, list):
            for item in node:
                rewrite(item)
        if not isinstance(node, dict):
            return
        if node.get("class_name") == "MaxPooling2D":
            node["class_name"] = "AveragePooling2D"
        if node.get("class_name") == "ReLU":  # ReLU6 layers: a linear activation instead
            config = node["config"]
            node["class_name"] = "Activation"
            node["config"] = {k: config[k] for k in ("name", "trainable", "dtype") if k in config}
        config = node.get("config")
        if isinstance(config, dict) and (node.get("class_name") == "Activation"
                                         or isinstance(config.get("activation"), str)):
            config["activation"] = "linear"
        for value in node.values():
            rewrite(value)

    spec = json.loads(model.to_json())
    rewrite(spec)
    copy = keras.models.model_from_json(json.dumps(spec).replace('"float32"', '"float64"'))
    rng = np.random.default_rng(0)
    for layer in copy.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if type(layer).__name__ == "BatchNormalization":  # gamma, beta, mean, variance
            layer.set_weights([np.ones_like(weights[0]), np.zeros_like(weights[1]),
                               np.zeros_like(weights[2]), np.ones_like(weights[3])])
            continue
        depthwise = type(layer).__name__ == "DepthwiseConv2D"
        layer.set_weights([
            (rng.random(w.shape) + 0.5) / np.prod(w.shape[:2] if depthwise else w.shape[:-1])
            if w.ndim >= 3 else np.zeros_like(w) for w in weights])
    return copy


@pytest.mark.parametrize("name", sorted(KERAS))
def test_keras_application_centre_unit_reads_its_box(name):
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    res = KERAS[name]
    model = getattr(keras.applications, name)(weights=None, include_top=False,
                                              input_shape=(res, res + 32, 3))
    report = analyze(model, (res, res + 32))
    layer = model.layers[-1].name

    x = tf.Variable(np.random.default_rng(1).random((1, res, res + 32, 3)))
    with tf.GradientTape() as tape:
        features = _keras_linear_positive(model)(x)
        assert tuple(features.shape[1:3]) == report.units(layer)
        centre = (features.shape[1] // 2, features.shape[2] // 2)
        total = tf.reduce_sum(features[0, centre[0], centre[1], :])
    grad = np.abs(tape.gradient(total, x).numpy()[0]).sum(-1)
    _check(report, layer, centre, _extent(grad), name)
