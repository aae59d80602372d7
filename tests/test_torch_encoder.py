"""The PyTorch encoder on real torchvision models and hand-written modules."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
import torch.nn.functional as F  # noqa: E402
from rfa_toolbox.encoders.torch import Op, TraceError, encode, register_handler  # noqa: E402
from rfa_toolbox.encoders.torch.ir import REGISTERED  # noqa: E402
from torch import nn  # noqa: E402

from rfa_toolbox import Transfer, analyze, propagate  # noqa: E402

from conftest import pairs, paper_values, rf  # noqa: E402

PAPER = paper_values()
TORCHVISION_R = {k.split(":", 1)[1]: v for k, v in PAPER["r"].items() if k.startswith("torchvision:")}



@pytest.mark.parametrize("name", sorted(TORCHVISION_R))
def test_published_r_at_224(name):
    report = analyze(f"torchvision:{name}", 224)
    assert report.r == (TORCHVISION_R[name],) * 2


def test_resnet18_output_side_r_max_is_435():
    report = analyze("torchvision:resnet18", 224)
    assert report.max_resolution == (435, 435)
    assert report.layer("layer4.1.conv2").r_max == (435, 435)
    # the stem: 7x7/2 conv then 3x3/2 max pool -> 7 + 2*2 = 11
    assert report.layer("maxpool").r_min == (11, 11)
    assert report.layer("avgpool").status == "head" and report.layer("fc").status == "head"


def test_parameter_count_and_metadata_of_resnet18():
    from rfa_toolbox.sources import load_graph

    graph = load_graph("torchvision:resnet18", 224)
    assert sum(layer.params or 0 for layer in graph) == 11_689_512  # torchvision's count
    conv1 = graph["conv1"]
    assert (conv1.kernel, conv1.stride, conv1.in_channels, conv1.out_channels) == ((7, 7), (2, 2), 3, 64)
    assert conv1.shape == (64, 112, 112) and conv1.module == "conv1"


# A representative set of the zoo (the whole zoo runs in benchmarks/zoo.py):
# r values measured with this encoder and checked by hand where noted.
REPRESENTATIVE = {
    "alexnet": None, "squeezenet1_0": None, "shufflenet_v2_x0_5": None, "googlenet": None,
    "densenet121": 103,   # stem 7/2 + pool 3/2 (11), then transitions avg 2/2 on the 1x1 path
    "regnet_x_400mf": 67, "mobilenet_v2": 163, "vit_b_16": 16, "swin_t": None,
    "maxvit_t": None, "efficientnet_v2_s": None,
}


@pytest.mark.parametrize("name", sorted(REPRESENTATIVE))
def test_representative_models_analyze(name):
    report = analyze(f"torchvision:{name}", 224)
    assert report.r[0] is not None and report.r[0] >= 3
    assert report.max_resolution[0] >= report.r[0]
    assert not report.unknown_ops
    if REPRESENTATIVE[name] is not None:
        assert report.r == (REPRESENTATIVE[name],) * 2


def test_vit_patch_embedding_then_attention_is_global():
    report = analyze("torchvision:vit_b_16", 224)
    # the 16x16/16 patch embedding is the only finite layer that computes
    assert report.layer("conv_proj").r_min == (16, 16)
    attention = [row for row in report.layers if row.op in ("attention", "matmul", "softmax")]
    assert attention and all(row.status == "head" for row in attention)


@pytest.mark.parametrize("name", torchvision.models.list_models(module=torchvision.models.segmentation))
def test_segmentation_models_have_all_outputs(name):
    """Every torchvision segmentation model: the dict outputs ("out", and "aux" when built with
    aux_loss) are all outputs, by their keys, at the input's resolution (stride 1)."""
    aux = name != "lraspp_mobilenet_v3_large"  # the only one without an auxiliary head
    report = analyze(f"torchvision:{name}" + ("?aux_loss=True" if aux else ""), 224)
    fields = report.outputs()
    assert [f.label for f in fields] == (["out", "aux"] if aux else ["out"])
    assert all(f.stride == (1, 1) and f.units == (224, 224) for f in fields)
    assert any(row.op == "upsample" for row in report.layers)
    assert report.exact and report.notes  # upsampling: exact values, and the note saying so


class ModuleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, (1, 5), stride=(1, 2), padding=(0, 2), dilation=(1, 1))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x):
        a = F.relu(self.conv1(x))
        b = self.pool(self.conv2(a))
        return self.up(self.conv3(b) + b)


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.rand(8, 3, 3, 3))
        self.w2 = nn.Parameter(torch.rand(8, 8, 1, 5))
        self.w3 = nn.Parameter(torch.rand(8, 8, 3, 3))

    def forward(self, x):
        a = F.relu(F.conv2d(x, self.w1, padding=1))
        b = F.max_pool2d(F.conv2d(a, self.w2, stride=(1, 2), padding=(0, 2)), 3, stride=2, padding=1)
        return F.interpolate(F.conv2d(b, self.w3, padding=2, dilation=2) + b, scale_factor=2, mode="nearest")


def test_modules_and_functional_calls_give_the_same_graph():
    x = torch.rand(1, 3, 32, 32)
    g1, g2 = encode(ModuleNet(), x), encode(FunctionalNet(), x)
    assert [(x.op, x.transfer, x.kernel, x.stride, x.dilation, x.factor) for x in g1] == \
           [(x.op, x.transfer, x.kernel, x.stride, x.dilation, x.factor) for x in g2]
    out1, out2 = g1.output_nodes[0], g2.output_nodes[0]
    # H: 3 -> 3 (1x5 is 1 high) -> pool 3/2: 5, j 2 -> dilated 3x3: 5 + 4*2 = 13; skip keeps 5
    # W: 3 -> 3 + 4 = 7 (j 2) -> pool: 7 + 2*2 = 11 (j 4) -> dilated: 11 + 4*4 = 27; skip 11
    assert rf(g1, out1) == rf(g2, out2) == ((5, 11), (13, 27))
    assert g1[out1].factor == (2, 2) and g1[out1].transfer is Transfer.UPSAMPLE


def test_conv1d_model_per_axis():
    model = nn.Sequential(nn.Conv1d(1, 4, 9, stride=4), nn.ReLU(), nn.Conv1d(4, 4, 3, dilation=2),
                          nn.MaxPool1d(2), nn.Conv1d(4, 4, 3))
    graph = encode(model, torch.rand(1, 1, 400))
    assert graph.ndim == 1
    # 9 (j 4) -> 9 + 2*2*4 = 25 -> pool 2: 25 + 4 = 29 (j 8) -> 29 + 2*8 = 45
    assert rf(graph, graph.output_nodes[0]) == ((45,), (45,))
    assert analyze(graph, 40).fully_utilized is False


def test_conv3d_model_per_axis():
    model = nn.Sequential(nn.Conv3d(3, 4, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)),
                          nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
                          nn.Conv3d(4, 4, 3, padding=1))
    graph = encode(model, torch.rand(1, 3, 8, 32, 32))
    assert graph.ndim == 3
    # T: 3 -> 3 -> 5;  H, W: 7 (j 2) -> 7 + 2*2 = 11 (j 4) -> 11 + 2*4 = 19
    assert rf(graph, graph.output_nodes[0]) == ((5, 19, 19), (5, 19, 19))


class LayoutNet(nn.Module):
    """Channel shuffle, pixel shuffle/unshuffle, a strided slice and a spatial mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)   # channel shuffle
        y = F.pixel_unshuffle(self.conv(x), 2)        # window 2/2: 3 + 1 = 4, j 2
        y = y[:, :, ::2, :]                           # H subsampled: j 4 on H
        z = F.pixel_shuffle(y, 2)                     # nearest x2: j 2 on H, 1 on W
        return z, z.mean(dim=(2, 3))


def test_layout_ops():
    graph = encode(LayoutNet(), torch.rand(1, 4, 16, 16))
    report = analyze(graph, 16)
    # the channel shuffle (view, transpose, reshape) is neutral: the conv still sees one pixel
    assert report.layer("conv").input_r_min == (1, 1) and report.layer("conv").r_min == (3, 3)
    node = propagate(graph)
    shuffled = [n for n in graph.topological_order() if graph[n].op == "pixel_shuffle"][0]
    assert pairs(node[shuffled][0].mins) == ((4, 2),) and pairs(node[shuffled][1].mins) == ((4, 1),)
    mean = [n for n in graph.topological_order() if graph[n].op.startswith("reduce_mean")][0]
    assert report.layer(mean).status == "head"
    assert len(graph.output_nodes) == 2


def test_unknown_op_that_keeps_the_shape_is_neutral_and_listed():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Hardshrink(), nn.Conv2d(4, 4, 3))
    report = analyze(model, 16)
    assert any("hardshrink" in op for op in report.unknown_ops)
    assert report.r == (5, 5)
    with pytest.raises(TraceError, match="hardshrink"):
        analyze(model, 16, strict=True)


class Unfolding(nn.Module):
    def forward(self, x):
        return F.unfold(x, 3).view(1, -1, 14, 14)


def test_unknown_op_that_changes_the_shape_is_an_error():
    with pytest.raises(TraceError, match="im2col.*changes the spatial shape"):
        analyze(Unfolding(), 16)
    assert analyze(Unfolding(), 16, allow_unknown=True).unknown_ops


def _im2col(call):
    return Op("unfold", Transfer.WINDOW, True, window={0: (3, 1, 1), 1: (3, 1, 1)})


def test_handlers_for_one_call_are_not_seen_by_the_next():
    x = torch.rand(1, 3, 16, 16)
    graph = encode(Unfolding(), x, handlers={"im2col": _im2col})  # aten:: is implied
    assert analyze(graph, 16).r == (3, 3) and not graph.unknown_ops
    assert analyze(Unfolding(), 16, handlers={"aten::im2col": _im2col}).r == (3, 3)
    with pytest.raises(TraceError, match="no handler for the op aten::im2col"):
        encode(Unfolding(), x)
    with pytest.raises(TraceError, match="not a function"):
        encode(Unfolding(), x, handlers={"aten::im2col": "unfold"})


UNFOLDING_FILE = """
import torch.nn.functional as F
from torch import nn


class Unfolding(nn.Module):
    def forward(self, x):
        return F.unfold(x, 3).view(1, 27, 14, 14)


model = Unfolding()
"""


def test_registered_handler_is_seen_by_the_api_and_the_cli_in_process(tmp_path, capsys):
    from rfa_toolbox.cli import main

    path = tmp_path / "unfolding.py"
    path.write_text(UNFOLDING_FILE)
    register_handler("aten::im2col", _im2col)
    try:
        report = analyze(Unfolding(), 16)
        assert report.r == (3, 3) and not report.unknown_ops
        try:
            main(["analyze", str(path), "--res", "16", "-f", "json"])
        except SystemExit as done:  # only on failure: success returns
            raise AssertionError(f"rfa exited with {done.code}: {capsys.readouterr().err}") from None
        assert json.loads(capsys.readouterr().out)["r"] == [3, 3]
    finally:
        del REGISTERED["aten::im2col"]
    with pytest.raises(TraceError, match="no handler"):
        analyze(Unfolding(), 16)


READS = {
    "condition": lambda x: x if x.mean() > 0 else -x,
    "item": lambda x: x * x.max().item(),
    "int": lambda x: x[..., : int(x.sum() > 0) + 1],
    "float": lambda x: x * float(x.mean()),
    "tolist": lambda x: x * x.mean().tolist(),
    "index": lambda x: x[..., : (x.mean() > 0).long() + 1],
    "numpy": lambda x: x * x.mean().numpy(),
}


@pytest.mark.parametrize("how", sorted(READS))
def test_reading_a_value_computed_from_the_input_is_an_error(how):
    """Every way a Python value is read out of a tensor that depends on the input's values
    (a condition, .item(), int(), float(), .tolist(), an index, .numpy()) is refused: the trace
    would keep what this one random input gave."""
    class Reads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return READS[how](self.conv(x))

    with pytest.raises(TraceError, match="reads a Python value out of a tensor.*test_torch_encoder.py"):
        analyze(Reads(), 16)


def test_values_computed_from_shapes_are_fine():
    class Shapes(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            half = int(x.shape[-1]) // 2
            return self.conv(x[..., :half]) if x.shape[-1] > 4 else x

    assert analyze(Shapes(), 16).r == (3, 3)


def test_input_too_small():
    with pytest.raises(TraceError, match="too small"):
        analyze("torchvision:vgg11", 16)


class WindowRoundTrip(nn.Module):
    """MaxViT-style window partition, token mixing inside windows, and the reverse."""

    def __init__(self):
        super().__init__()
        self.before = nn.Conv2d(4, 4, 3, padding=1)
        self.after = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        x = self.before(x)
        b, c, h, w = x.shape
        p = 4
        win = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(-1, p * p, c)
        win = win + torch.softmax(win @ win.transpose(1, 2), dim=-1) @ win      # attention
        back = win.view(b, h // p, w // p, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(b, c, h, w)
        return self.after(back)


def test_window_partition_and_reverse_keep_the_axes():
    graph = encode(WindowRoundTrip(), torch.rand(1, 4, 16, 16))
    after = graph["after"]
    # the conv after the round trip is still a 3x3 window on each axis, not a global op
    assert after.transfer is Transfer.WINDOW and after.kernel == (3, 3)
    # skip path: 3 (before) + 2 = 5; the attention path is global (infinite)
    assert rf(graph, "after") == ((5, 5), (5, 5))
    assert propagate(graph)["after"][0].infinite


def test_maxvit_convolutions_after_attention_are_counted():
    report = analyze("torchvision:maxvit_t", 224)
    assert report.r == (131, 131) and report.max_resolution == (283, 283)


def test_timm_model_by_name():
    pytest.importorskip("timm")
    report = analyze("timm:resnet50d", 224)
    # deep stem: 3x3/2 -> 3 (j 2), 3x3 -> 7, 3x3 -> 11; max pool 3/2 -> 11 + 2*2 = 15 (j 4)
    assert report.layer("conv1.6").r_min == (11, 11)
    assert report.layer("maxpool").r_min == (15, 15)
    assert report.r == (107, 107) and not report.unknown_ops


class Focus(nn.Module):
    """YOLO's Focus: four offset strided slices concatenated (space-to-depth), then a conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 8, 3, padding=1)

    def forward(self, x):
        y = torch.cat([x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]], 1)
        return self.conv(y)


def test_space_to_depth_slices_read_a_window():
    graph = encode(Focus(), torch.rand(1, 3, 16, 16))
    # the four pieces together read a 2x2/2 window: r 2, j 2; the 3x3 conv: 2 + 2*2 = 6
    assert rf(graph, "conv") == ((6, 6), (6, 6))
    # Swin's patch merging is the same pattern: 4 (patch embedding) -> 8 -> 16 -> 32
    assert analyze("torchvision:swin_t", 224).r == (32, 32)


@pytest.mark.parametrize("equation, reduce, expected", [
    ("bchw,bcHW->bhwHW", (3, 4), (None, None)),  # a position attends to every other: global
    ("bchw,bchw->bchw", None, (3, 3)),           # elementwise: nothing mixed
    ("...hw,...hw->...h", None, (3, None)),      # w summed over: global on that axis only
    ("bchw,bcxy", None, (3, 3)),                 # implicit output hwxy: only channels summed
])
def test_einsum_tracks_which_axes_its_letters_carry(equation, reduce, expected):
    class Einsum(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            out = torch.einsum(equation, y, y)
            return out.sum(dim=reduce) if reduce else out

    assert analyze(Einsum(), 16).layers[-1].r_min == expected


class _GateFirst(nn.Module):
    """A squeeze-excitation gate written gate * features (the 1x1 map first)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, 2, 1)
        self.c3 = nn.Conv2d(8, 8, 3, 2, 1)

    def forward(self, x):
        x = self.c1(x)
        return self.c3(self.c2(x.mean((2, 3), keepdim=True).sigmoid() * x))


def test_gate_before_the_features_keeps_their_axes():
    """Broadcasting lines dims up from the right: the product carries the features' axes."""
    report = analyze(_GateFirst(), 64)
    assert report.layer("c3").r_min == (9, 9) and report.layer("c3").jump == (4, 4)
    assert report.r == (9, 9)


def test_a_function_named_model_is_a_factory(tmp_path):
    path = tmp_path / "factory.py"
    path.write_text("import torch.nn as nn\n\n\ndef model():\n"
                    "    return nn.Sequential(nn.Conv2d(3, 4, 5), nn.Conv2d(4, 4, 3))\n")
    assert analyze(str(path), 32).r == (7, 7)


class _ManualSpaceToDepth(nn.Module):
    """pixel_unshuffle written by hand: view, permute, reshape, then a 3x3 conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(12, 4, 3)

    def forward(self, x):
        b, c, h, w = x.shape
        x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)
        return self.conv(x)


def test_space_to_depth_by_reshapes_is_a_window():
    """Like nn.PixelUnshuffle(2): a 2x2 window with stride 2, so the conv reads 2 + 2 * 2 = 6."""
    hand = analyze(_ManualSpaceToDepth(), 32)
    module = analyze(nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(12, 4, 3)), 32)
    assert hand.layer("conv").r_min == module.layer("1").r_min == (6, 6)
    assert hand.layer("conv").jump == (2, 2)
