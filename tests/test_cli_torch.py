"""`rfa analyze` on PyTorch model files and names, run as a subprocess."""

from __future__ import annotations

import json

import pytest

from conftest import EXAMPLES

pytest.importorskip("torch")

from test_cli import assert_one_line_error


def report(rfa, *args):
    result = rfa("analyze", *args, "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_model_file_with_two_inputs(rfa):
    data = report(rfa, str(EXAMPLES / "two_inputs.py"), "--res", "64")
    layers = {row["name"]: row for row in data["layers"]}
    assert layers["image"]["op"] == layers["depth"]["op"] == "input"
    assert layers["depth"]["shape"] == [1, 64, 64]
    # fuse: image path 3 -> 7 (j 2) -> +2*2 = 11; depth path 5 -> 9 (j 4) -> up (j 2) -> 9 + 4 = 13
    assert layers["fuse"]["r_min"] == [11, 11] and layers["fuse"]["r_max"] == [13, 13]
    assert data["notes"]  # upsampling: the estimate caveat


def test_model_file_with_dict_output(rfa):
    data = report(rfa, str(EXAMPLES / "segmentation_dict.py"), "--res", "128")
    # stage1-3: 3 (j2), 7 (j4), 15 (j8); context d2: 15 + 4*8 = 47; both heads upsampled bilinearly
    assert data["max_resolution"] == [55, 55]
    layers = {row["name"]: row for row in data["layers"]}
    assert layers["context"]["r_min"] == [47, 47]
    upsamples = [row for row in data["layers"] if row["op"] == "upsample"]
    assert len(upsamples) == 2  # the "out" and "aux" outputs


def test_torchvision_name_and_depth(rfa):
    result = rfa("analyze", "torchvision:resnet18", "--res", "32", "--depth", "1", "--no-suggest")
    assert result.returncode == 0, result.stderr
    assert "layer4" in result.stdout and "layer4.1.conv2" not in result.stdout
    assert "unproductive" in result.stdout


def test_input_shape_for_a_1d_model(rfa, tmp_path):
    path = tmp_path / "audio.py"
    path.write_text("from torch import nn\n"
                    "model = nn.Sequential(nn.Conv1d(1, 8, 80, stride=16), nn.ReLU(),"
                    " nn.Conv1d(8, 8, 3, stride=2), nn.AdaptiveAvgPool1d(1))\n")
    data = report(rfa, str(path), "--input-shape", "1x16000")
    assert data["resolution"] == [16000]
    assert data["r"] == [80 + 2 * 16]


def test_pick_a_model_by_name(rfa, tmp_path):
    path = tmp_path / "two.py"
    path.write_text("from torch import nn\n"
                    "small = nn.Conv2d(3, 3, 3)\n"
                    "def big():\n    return nn.Sequential(nn.Conv2d(3, 3, 5), nn.Conv2d(3, 3, 5))\n")
    assert report(rfa, f"{path}:small", "--res", "32")["r"] == [3, 3]
    assert report(rfa, f"{path}:big", "--res", "32")["r"] == [9, 9]


def test_file_that_does_not_import(rfa, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import torch\nraise ValueError('boom')\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "32"), "cannot import", "boom")


def test_file_without_a_model_lists_what_it_found(rfa, tmp_path):
    path = tmp_path / "empty.py"
    path.write_text("from torch import nn\n"
                    "class Needs(nn.Module):\n    def __init__(self, width):\n        super().__init__()\n"
                    "def helper():\n    return 1\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "32"), "no model found", "Needs", "helper")


def test_untraceable_model(rfa, tmp_path):
    path = tmp_path / "branchy.py"
    path.write_text("from torch import nn\n"
                    "class Branchy(nn.Module):\n"
                    "    def __init__(self):\n        super().__init__()\n        self.conv = nn.Conv2d(3, 3, 3)\n"
                    "    def forward(self, x):\n        return self.conv(x) if x.sum() > 0 else x\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "32"), "reads a Python value out of a tensor",
                          "branchy.py:7")


def test_wrong_input_shape_and_too_small(rfa):
    assert_one_line_error(rfa("analyze", "torchvision:resnet18", "--input-shape", "1x32x32"), "channels")
    assert_one_line_error(rfa("analyze", "torchvision:vgg11", "--res", "16"), "too small")


def test_unknown_torchvision_name(rfa):
    assert_one_line_error(rfa("analyze", "torchvision:resnet1800", "--res", "32"), "no model", "resnet18")


def test_detection_resolution_end_to_end(rfa):
    data = report(rfa, "torchvision:resnet18", "--res", "800x1333", "--no-suggest")
    assert data["resolution"] == [800, 1333] and data["r"] == [139, 139]
    layers = {row["name"]: row for row in data["layers"]}
    assert layers["layer4.1.conv2"]["shape"] == [512, 25, 42]  # 800/32, ceil(1333/32)


def test_structure_option_and_show(rfa, tmp_path):
    structure = tmp_path / "searched.json"
    structure.write_text(json.dumps({"search": {"step": 11, "num_branches": 3},
                                     "structure": {"module.conv": [4, 2]}}))
    path = tmp_path / "net.py"
    path.write_text("from torch import nn\n"
                    "class Net(nn.Module):\n"
                    "    def __init__(self):\n        super().__init__()\n"
                    "        self.conv = nn.Conv2d(3, 4, 3, padding=1)\n"
                    "    def forward(self, x):\n        return self.conv(x)\n")
    plain = report(rfa, str(path), "--res", "32", "--no-suggest")
    searched = report(rfa, str(path), "--res", "32", "--no-suggest", "--structure", str(structure))
    assert plain["r"] == [3, 3]
    assert searched["r"] == [9, 5]  # dilation (4, 2): 1 + 2*4, 1 + 2*2
    shown = rfa("structure", "show", str(structure))
    assert shown.returncode == 0 and "module.conv" in shown.stdout and "4" in shown.stdout
    assert_one_line_error(rfa("structure", "show", str(tmp_path / "missing.json")), "no such file", "missing.json")
    assert_one_line_error(rfa("analyze", str(EXAMPLES / "vgg_style.yaml"), "--res", "224",
                              "--structure", str(structure)), "PyTorch models")
