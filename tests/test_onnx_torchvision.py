"""The ONNX encoder against the JIT encoder: torchvision models exported with PyTorch's
exporter give the same r, maximal resolution and per-layer values (matched by name) as the
traced model, under several exporter settings. The whole zoo runs in
benchmarks/bench_onnx.py."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
pytest.importorskip("onnx")
from rfa_toolbox.encoders.onnx import graph_from_onnx  # noqa: E402

from rfa_toolbox import Transfer, analyze  # noqa: E402

#: model -> resolution: CNNs with branches (googlenet, inception, densenet), dilation
#: (deeplabv3), upsampling (the segmentation models), depthwise convs (mobilenets,
#: efficientnet, mnasnet), channel shuffles, squeeze-excitation, ceil-mode pools (squeezenet),
#: a ConvNeXt (channels-last linear layers), torchvision's ViT and MaxViT classes at a small
#: size, and a Swin (attention, window partitions, shifted windows, patch merging).
MODELS = {
    "resnet18": 96, "densenet121": 64, "googlenet": 96, "inception_v3": 96, "mobilenet_v2": 96,
    "mobilenet_v3_small": 96, "efficientnet_b0": 96, "regnet_x_400mf": 96, "shufflenet_v2_x0_5": 96,
    "squeezenet1_0": 96, "mnasnet0_5": 96, "convnext_tiny": 96, "small:vit": 64, "small:maxvit": 64,
    "small:swin": 64,
    "seg:deeplabv3_mobilenet_v3_large": 96, "seg:lraspp_mobilenet_v3_large": 96,
}

#: exporter settings beyond the default (opset 17, constant folding on)
SETTINGS = {"opset 13, no folding": (13, False), "opset 20": (20, True)}


class _Out(torch.nn.Module):
    """A segmentation model's ``out`` map (its forward returns a dict)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def _build(name: str) -> torch.nn.Module:
    models = torchvision.models
    if name == "small:vit":  # torchvision's ViT class, small enough for the suite
        return models.VisionTransformer(image_size=64, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                        mlp_dim=64).eval()
    if name == "small:swin":  # shifted windows: shapes computed at run time, patch merging by slices
        return models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[1, 2],
                                      window_size=[4, 4], stochastic_depth_prob=0.0).eval()
    if name == "small:maxvit":
        return models.MaxVit(input_size=(64, 64), stem_channels=16, partition_size=4, block_channels=[16, 32],
                             block_layers=[1, 1], head_dim=8, stochastic_depth_prob=0.0).eval()
    if name.startswith("seg:"):
        builder = getattr(models.segmentation, name[4:])
        return _Out(builder(weights=None, weights_backbone=None)).eval()
    options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    return getattr(models, name)(weights=None, **options).eval()


def _exported(model: torch.nn.Module, resolution: int, opset: int, folding: bool) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, resolution, resolution), buffer, dynamo=False,
                          opset_version=opset, do_constant_folding=folding)
    return buffer.getvalue()


def _unique(layers) -> dict:
    """Layers by name, leaving out names numbered within a module (``m.concat:1``): their
    numbers follow each encoder's op order, which may differ."""
    counts = Counter(layer.name.split(":")[0] for layer in layers)
    return {layer.name: layer for layer in layers if counts[layer.name.split(":")[0]] == 1}


def _same_answers(name: str, resolution: int, opset: int = 17, folding: bool = True) -> None:
    model = _build(name)
    traced = analyze(model, resolution)
    graph = graph_from_onnx(_exported(model, resolution, opset, folding), resolution)
    report = analyze(graph, resolution)
    assert report.unknown_ops == []
    assert (report.r, report.max_resolution, report.fully_utilized) == (
        traced.r, traced.max_resolution, traced.fully_utilized)
    ours, theirs = _unique(report.layers), _unique(traced.layers)
    common = [n for n in theirs if n in ours]
    for n in common:
        a, b = theirs[n], ours[n]
        assert (b.r_min, b.r_max, b.jump, b.offset, b.status) == (a.r_min, a.r_max, a.jump, a.offset, a.status), n
    # every window layer of the trace (convs, pools, resampling) is in the ONNX graph by name
    windows = {layer.name for layer in traced.layers if layer.kernel and layer.name in theirs}
    assert windows and windows <= set(ours), sorted(windows - set(ours))[:5]
    assert len(common) >= len(windows)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_exported_torchvision_model_matches_the_trace(name):
    _same_answers(name, MODELS[name])


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", ["googlenet", "seg:deeplabv3_mobilenet_v3_large", "shufflenet_v2_x0_5"])
def test_exporter_settings_give_the_same_answers(name, setting):
    opset, folding = SETTINGS[setting]
    _same_answers(name, MODELS[name], opset, folding)


def test_batch_norm_unfolded_is_neutral_and_named_like_its_module():
    model = _build("resnet18")
    graph = graph_from_onnx(_exported(model, 64, 13, False), 64)
    assert graph["bn1"].op == "norm" and graph["bn1"].transfer is Transfer.NEUTRAL
    assert graph["layer1.0.conv1"].module == "layer1.0.conv1"


def test_dynamic_spatial_axes_take_the_resolution():
    model = _build("resnet18")
    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(1, 3, 64, 64), buffer, dynamo=False, opset_version=17,
                          input_names=["image"], dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    for resolution in (64, 200):
        traced = analyze(model, resolution)
        report = analyze(graph_from_onnx(buffer.getvalue(), resolution), resolution)
        assert report.layers[0].name == "image"
        assert (report.r, report.max_resolution) == (traced.r, traced.max_resolution)
        assert report.layer("layer4.1.conv2").shape == traced.layer("layer4.1.conv2").shape
