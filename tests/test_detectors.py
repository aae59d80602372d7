"""Detectors and feature pyramids: every output level's receptive field, stride and anchors.

torchvision's detectors are traced up to their dense outputs (backbone, FPN, dense heads per
level); the RetinaNet levels are checked against input gradients (positive weights, float64,
as in test_where_models.py), the Faster R-CNN backbone against the plain ResNet-50, and the
anchors against torchvision's own generators.
"""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from rfa_toolbox.encoders.torch.detection import dense_part  # noqa: E402
from test_where_models import _extent, _torch_linear_positive  # noqa: E402

from rfa_toolbox import analyze  # noqa: E402

from test_cli import assert_one_line_error  # noqa: E402

LEVELS = ["P3", "P4", "P5", "P6", "P7"]


@pytest.fixture(scope="module")
def retinanet():
    return torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None).eval()


def test_retinanet_levels_strides_and_anchors(retinanet):
    report = analyze(retinanet, (512, 640))
    fields = {f.label: f for f in report.outputs()}
    assert list(fields) == [f"{level}{head}" for level in LEVELS
                            for head in ("", "/cls_logits", "/bbox_regression")]
    for n, level in enumerate(LEVELS, start=3):
        assert fields[level].stride == (2**n, 2**n)
        cls = fields[f"{level}/cls_logits"]
        assert cls.stride == (2**n, 2**n) and cls.level == level
        # the anchors of the level: sizes 2^(n+2) * (1, 2^(1/3), 2^(2/3)), ratios 1/2, 1, 2,
        # rounded by torchvision to even extents; the largest is 2^(n+2) * 2^(2/3) * sqrt(2)
        largest = 2**(n + 2) * 2 ** (2 / 3) * math.sqrt(2)
        assert all(abs(a - largest) <= 2 for a in cls.anchor), (level, cls.anchor)
        assert cls.covers is True  # every head covers its anchors
    # the pyramid's own P6 and P7 do not (r_max 555 and 683 against 574 and 1148): their heads do
    assert [fields[level].covers for level in LEVELS] == [True, True, True, False, False]
    # by the standard rules, the head adds 5 3x3 convs at the level's stride to its level's
    # field (the exact values vary with the position after the FPN's upsampling)
    rule = {f.label: f for f in analyze(retinanet, (512, 640), exact=False).outputs()}
    for n, level in enumerate(LEVELS, start=3):
        for bound in ("r_min", "r_max"):
            assert getattr(rule[f"{level}/cls_logits"], bound) == tuple(
                r + 5 * 2 * 2**n for r in getattr(rule[level], bound)), (level, bound)


def test_retinanet_levels_against_gradients(retinanet):
    """At 64x896 (sizes divisible by 128, so the FPN's nearest upsampling repeats with the
    period of its coarsest level), along the long axis: r_max of P3-P5's heads equals the
    widest gradient over one period of units, and every level's centre unit reads exactly
    its clipped union box."""
    res = (64, 896)
    report = analyze(retinanet, res)
    linear = _torch_linear_positive(retinanet)
    dense, _ = dense_part(linear, "retinanet", torch.zeros(1, 3, *res))
    x = torch.rand(1, 3, *res, dtype=torch.float64, requires_grad=True)
    outputs = dense(x)
    fields = {f.label: f for f in report.outputs()}
    for n, key in enumerate(["map0", "map1", "map2", "map3", "map4"], start=3):
        level = f"P{n}"
        field = fields[f"{level}/cls_logits"]
        out = outputs[f"{key}/cls_logits"]
        units = report.units(field.layer)
        assert tuple(out.shape[-2:]) == units
        row, centre = units[0] // 2, units[1] // 2
        period = max(1, 2 ** (5 - n)) if n <= 5 else 1  # upsampled from P5 down to P3
        widths = []
        for column in range(centre, centre + period):
            (grad,) = torch.autograd.grad(out[0, :, row, column].sum(), x, retain_graph=True)
            measured = _extent(grad[0].abs().sum(0).numpy())
            boxes = report.box(field.layer, (row, column))
            assert [b["union_clipped"] for b in boxes] == measured, (level, column)
            widths.append(measured[1][1] - measured[1][0] + 1)
        if field.r_max[1] < res[1] - 2 * 8:  # the widest box fits inside the long axis
            assert max(widths) == field.r_max[1], (level, widths, field.r_max)


def test_faster_rcnn_levels_backbone_and_roi_note():
    model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    report = analyze(model, 800)
    fields = {f.label: f for f in report.outputs()}
    assert [f for f in fields if "/" not in f] == ["P2", "P3", "P4", "P5", "P6"]
    assert fields["P6"].stride == (64, 64) and fields["P2/rpn.objectness"].stride == (4, 4)
    assert any("roi_heads (box_head, box_predictor)" in note for note in report.notes)
    # the backbone part shares every layer of the plain ResNet-50 (up to its 'body.' prefix)
    backbone = analyze(model, 800, module="backbone")
    assert backbone.model.endswith("--module backbone") and backbone.resolution == (800, 800)
    plain = {row.name: row for row in analyze("torchvision:resnet50", 800).layers}
    shared = [row for row in backbone.layers if row.name.startswith("body.") and row.name[5:] in plain]
    assert len(shared) > 150
    for row in shared:
        other = plain[row.name[5:]]
        assert (row.r_min, row.r_max, row.jump, row.offset) == \
            (other.r_min, other.r_max, other.jump, other.offset), row.name


def test_submodule_input_comes_from_the_model():
    """The detector resizes a 320x480 image to 800x1200 and pads it to 800x1216 before its
    backbone: the analysis of --module backbone is at that size, and says so."""
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    report = analyze(model, (320, 480), module="backbone")
    assert report.resolution == (800, 1216)
    assert any("an input of 800x1216" in note for note in report.notes)


def test_ssdlite_maps_and_default_boxes():
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    report = analyze(model, 320)
    fields = {f.label: f for f in report.outputs()}
    maps = [f for f in fields if "/" not in f]
    assert maps == [f"map{i}" for i in range(6)]
    assert [fields[m].stride[0] for m in maps] == [16, 32, 64, 128, 256, 512]
    # default boxes: scales 0.2 .. 0.95 of the image, aspect ratios up to 3 (w = s * sqrt(3)),
    # cut to the image (clip=True): the widest of the last level is the whole image
    assert fields["map5/cls_logits"].anchor == (320.0, 320.0)
    assert fields["map0/cls_logits"].anchor[0] == pytest.approx(0.2 * math.sqrt(3) * 320, abs=0.01)


def test_cli_detector_json_and_errors(rfa, tmp_path):
    result = rfa("analyze", "torchvision:retinanet_resnet50_fpn", "--res", "256", "-f", "json", "--no-suggest")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    outputs = {o["label"]: o for o in data["outputs"]}
    assert outputs["P7/cls_logits"]["stride"] == [128, 128] and outputs["P7/cls_logits"]["level"] == "P7"
    assert outputs["P3/cls_logits"]["covers_anchor"] is True and outputs["P7"]["covers_anchor"] is False

    result = rfa("analyze", "torchvision:retinanet_resnet50_fpn", "--res", "256", "--module", "bakbone")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "did you mean backbone" in result.stderr and len(result.stderr.strip().splitlines()) == 1

    model = tmp_path / "decoder.py"
    model.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Detector(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.backbone = nn.Conv2d(3, 8, 3, 2, 1)\n"
        "        self.head = nn.Conv2d(8, 4, 1)\n\n"
        "    def forward(self, x):\n"
        "        scores = self.head(self.backbone(x))\n"
        "        keep = int((scores > 0).sum())\n"
        "        return scores.flatten()[:keep]\n")
    result = rfa("analyze", str(model), "--res", "64")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--module NAME (its parts: backbone, head)" in result.stderr
    result = rfa("analyze", str(model), "--res", "64", "--module", "backbone", "-f", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["r"] == [3, 3]


def test_timm_features_only_levels():
    pytest.importorskip("timm")
    report = analyze("timm:resnet50?features_only=True&out_indices=1,2,3,4", 224)
    fields = report.outputs()
    assert [f.label for f in fields] == ["0", "1", "2", "3"]
    assert [f.stride[0] for f in fields] == [4, 8, 16, 32]
    plain = {row.name: row for row in analyze("timm:resnet50", 224).layers}
    for f in fields:
        assert f.r_max == plain[f.layer].r_max


def test_render_draws_the_levels(tmp_path):
    from rfa_toolbox import analysis_of

    model = torchvision.models.detection.retinanet_resnet50_fpn(weights=None, weights_backbone=None)
    source = analysis_of(model, 256).diagram().source
    assert source.count('class=output') == 15
    assert "<B>P7/cls_logits</B><BR/>stride 128" in source


def test_regnet_design_space_levels_match_the_torchvision_pyramid():
    """examples/regnet_detection.py (the design-space builder, no torch) and
    examples/regnet_fpn.py (torchvision's RegNetX-3.2GF with mmdetection's FPN) agree on
    C2-C5; P2-P6 follow at strides 4 to 64."""
    from rfa_toolbox.zoo.regnet import PRESETS, regnet_graph

    from conftest import EXAMPLES

    res = (320, 416)
    built = analyze(regnet_graph(PRESETS["regnet_x_3_2gf"], backbone=True), res).outputs()
    traced = {f.label: f for f in analyze(str(EXAMPLES / "regnet_fpn.py"), res).outputs()}
    assert [traced[f"C{n}"].layer for n in range(2, 6)] == [f.layer for f in built]
    for n, field in enumerate(built, start=2):
        other = traced[f"C{n}"]
        assert (field.stride, field.r_min, field.r_max) == (other.stride, other.r_min, other.r_max)
    assert [traced[f"P{n}"].stride for n in range(2, 7)] == [(2**n, 2**n) for n in range(2, 7)]
    assert built[-1].r_max == (663, 663)  # C5 of RegNetX-3.2GF


def test_model_file_anchors(rfa, tmp_path):
    """examples/custom_detector.py names its outputs LEVEL/HEAD and gives anchors per level."""
    from conftest import EXAMPLES

    result = rfa("analyze", str(EXAMPLES / "custom_detector.py"), "--res", "256", "-f", "json", "--no-suggest")
    assert result.returncode == 0, result.stderr
    outputs = {o["label"]: o for o in json.loads(result.stdout)["outputs"]}
    assert outputs["P3/cls"]["anchor"] == [33, 30] and outputs["P3/cls"]["covers_anchor"] is True
    assert outputs["P5/cls"]["anchor"] == [373, 326] and outputs["P5/cls"]["covers_anchor"] is False
    assert outputs["P5/cls"]["stride"] == [32, 32] and outputs["P5/cls"]["r_max"] == [127, 127]

    model = tmp_path / "bad_anchors.py"
    model.write_text("from torch import nn\nmodel = nn.Conv2d(3, 4, 3)\nanchors = {'P3': ['big']}\n")
    result = rfa("analyze", str(model), "--res", "32")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "anchors['P3']: ('big',) is not a size" in result.stderr


def test_output_names_and_anchor_levels(rfa, tmp_path):
    """Every name a tensor is returned under is kept (an empty key leaves the layer's name);
    anchors must name levels the outputs have; outputs name layers in rfa locate."""
    model = tmp_path / "named.py"
    model.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a, self.b = nn.Conv2d(3, 4, 3, 2, 1), nn.Conv2d(4, 4, 3, 2, 1)\n\n"
        "    def forward(self, x):\n"
        "        y = self.a(x)\n"
        "        return {'P3': y, 'P3copy': y, '': self.b(y)}\n\n"
        "model = Net()\n"
        "anchors = {'P3': [(10, 13)]}\n")
    result = rfa("analyze", str(model), "--res", "64", "-f", "json", "--no-suggest")
    assert result.returncode == 0, result.stderr
    outputs = json.loads(result.stdout)["outputs"]
    assert [(o["label"], o["level"], o["anchor"]) for o in outputs] == [("P3, P3copy", "P3", [10, 13]),
                                                                        ("b", None, None)]
    located = rfa("locate", str(model), "--res", "64", "--layer", "P3, P3copy", "-f", "json")
    assert json.loads(located.stdout)["units"][0]["layer"] == "a"

    model.write_text(model.read_text().replace("anchors = {'P3'", "anchors = {'P9'"))
    assert_one_line_error(rfa("analyze", str(model), "--res", "64"), "anchors name levels no output has (P9)",
                          "the outputs' levels: P3")
    model.write_text(model.read_text().replace("[(10, 13)]", "[(10, -1)]"))
    assert_one_line_error(rfa("analyze", str(model), "--res", "64"), "anchors['P9']: (10, -1) is not a size")


@pytest.mark.parametrize("query, words", [
    ("weights=DEFAULT", ["option weights is not accepted", "never downloaded"]),
    ("num_classes=3&num_classes=4", ["num_classes is given twice"]),
    ("_private=1", ["names starting with _ are private"]),
    ("features_only", ["name=value pairs"]),
])
def test_builder_option_errors(rfa, query, words):
    pytest.importorskip("timm")
    assert_one_line_error(rfa("analyze", f"timm:resnet18?{query}", "--res", "64"), *words)


def test_builder_options_read_lowercase_booleans():
    pytest.importorskip("timm")
    assert len(analyze("timm:resnet18?features_only=false", 64).outputs()) == 1
    assert len(analyze("timm:resnet18?features_only=true", 64).outputs()) == 5
