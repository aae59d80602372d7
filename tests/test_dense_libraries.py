"""Dense prediction from the libraries people use, end to end with the real packages and no
weights: ultralytics YOLO built from its bundled yaml (per-level heads against input
gradients) and segmentation_models_pytorch (encoders against the plain torchvision ResNet)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from test_where_models import _extent, _torch_linear_positive  # noqa: E402

from rfa_toolbox import analyze  # noqa: E402


def _yolo(name: str):
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    cls = tasks.SegmentationModel if "-seg" in name else tasks.DetectionModel
    return cls(name, verbose=False).eval()


@pytest.mark.parametrize("name, heads", [("yolov8n.yaml", ["box", "cls"]),
                                         ("yolov8n-seg.yaml", ["box", "cls", "mask_coefficients"])])
def test_yolo_levels(name, heads):
    report = analyze(_yolo(name), 320)
    fields = {f.label: f for f in report.outputs()}
    expected = [f"P{n}{h}" for n in (3, 4, 5) for h in ["", *(f"/{h}" for h in heads)]]
    if "-seg" in name:  # the mask prototypes, upsampled from the finest level
        expected.insert(len(heads) + 1, "P3/proto")
        assert fields["P3/proto"].stride == (4, 4)
    assert list(fields) == expected
    # ultralytics shares one SiLU among its conv blocks: it is named within each caller
    assert fields["P3"].layer == "model.15.cv2.act"
    for n in (3, 4, 5):
        stride = 2**n
        cls = fields[f"P{n}/cls"]
        assert cls.stride == (stride, stride)
        # anchor-free: the head predicts distances of at most reg_max - 1 = 15 strides a side
        assert cls.anchor == (30.0 * stride, 30.0 * stride)
        # the classification branch adds two 3x3 convs and a 1x1 at the level's stride
        assert report.layer(cls.layer).r_min == tuple(r + 4 * stride for r in fields[f"P{n}"].r_min)


def test_yolo_heads_read_their_boxes():
    """Centre units of each level's class branch against the input gradient (positive
    weights, float64; max pools made average pools, SiLU kept: with positive inputs its
    derivative is never zero)."""
    model = _yolo("yolov8n.yaml")
    res = (256, 320)
    report = analyze(model, res)
    from rfa_toolbox.encoders.torch.yolo import dense_part

    dense = dense_part(_torch_linear_positive(model))
    x = torch.rand(1, 3, *res, dtype=torch.float64, requires_grad=True)
    outputs = dense(x)
    heads = [f for f in report.outputs() if f.label.endswith("/cls")]
    assert [f.label for f in heads] == ["P3/cls", "P4/cls", "P5/cls"]
    for index, field in enumerate(heads):
        out = outputs[f"map{index}/cls"]
        centre = (out.shape[-2] // 2, out.shape[-1] // 2)
        (grad,) = torch.autograd.grad(out[0, :, centre[0], centre[1]].sum(), x, retain_graph=True)
        measured = _extent(grad[0].abs().sum(0).numpy())
        assert [b["union_clipped"] for b in report.box(field.layer, centre)] == measured, field.label


@pytest.mark.parametrize("architecture, shared", [("Unet", "layer4"), ("FPN", "layer4"),
                                                  ("DeepLabV3Plus", "layer3")])
def test_segmentation_models_pytorch(architecture, shared):
    """The resnet34 encoder of each model has the fields of torchvision's resnet34 up to the
    stage it keeps undilated (DeepLabV3+ dilates layer4 for an output stride of 16); the
    segmentation map comes back at the input's resolution (stride 1)."""
    smp = pytest.importorskip("segmentation_models_pytorch")
    model = getattr(smp, architecture)(encoder_name="resnet34", encoder_weights=None).eval()
    report = analyze(model, 256)
    (output,) = report.outputs()
    assert output.stride == (1, 1) and output.units == (256, 256)
    plain = {row.name: row for row in analyze("torchvision:resnet34", 256).layers}
    stages = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    kept = tuple(stages[:stages.index(shared) + 1])
    compared = 0
    for row in report.layers:
        name = row.name.removeprefix("encoder.")
        if row.name.startswith("encoder.") and name.startswith(kept) and name in plain:
            other = plain[name]
            assert (row.r_min, row.r_max, row.jump, row.offset) == \
                (other.r_min, other.r_max, other.jump, other.offset), (architecture, name)
            compared += 1
    assert compared > 40
