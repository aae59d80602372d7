"""`rfa locate` run as a subprocess: boxes as a table and JSON, pictures, and one-line errors."""

from __future__ import annotations

import json

import pytest

from test_cli import assert_one_line_error

# unit i of c2 reads [2i - 2, 2i + 2] through c1 (k3, padding 1: offset -1) then c2 (k3, stride
# 2, padding 1: offset -1 - 1 = -2, r 3 + 2 = 5); the smallest path is the same, there is one
NET = """\
name: net
layers:
  - {name: x, op: input}
  - {name: c1, op: conv, kernel: 3, padding: 1}
  - {name: c2, op: conv, kernel: 3, stride: 2, padding: 1}
  - {name: gap, op: global_avg_pool}
"""


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(NET)
    return path


def _json(rfa, *args):
    result = rfa("locate", *args, "-f", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_table_and_json(rfa, net):
    result = rfa("locate", str(net), "--res", "16x20", "--at", "3,9")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    # layer, unit, axis, jump, offset, union, smallest path, reads, centre
    assert [cell.strip() for cell in lines[0].split("│")[1:-1]] == [
        "c2", "3, 9 of 8x10", "0", "2", "-2", "4..8 (5)", "4..8 (5)", "4..8 (5)", "6"]
    assert "16..20 (5)" in lines[1] and "16..19 (4)" in lines[1]  # cut at column 19
    data = _json(rfa, str(net), "--res", "16x20", "--at", "3,9", "--pixel", "5,0")
    assert data["schema"] == "rfa-toolbox/locate/v1"
    (unit,) = data["units"]
    assert unit["layer"] == "c2" and unit["index"] == [3, 9] and unit["units"] == [8, 10]
    assert unit["jump"] == [2, 2] and unit["offset"] == [-2, -2] and unit["centre"] == [6, 18]
    assert unit["boxes"][1] == {"union": [16, 20], "smallest": [16, 20], "union_clipped": [16, 19],
                                "smallest_clipped": [16, 19]}
    # row 5 is read by units with 2i - 2 <= 5 <= 2i + 2: 2..3; column 0 by 0..1
    assert data["pixels"] == [{"position": [5, 0], "layer": "c2", "units": [[2, 3], [0, 1]]}]


def test_defaults_are_the_last_spatial_layer_and_its_centre_unit(rfa, net):
    data = _json(rfa, str(net), "--res", "16")
    (unit,) = data["units"]
    assert (unit["layer"], unit["index"]) == ("c2", [4, 4])
    assert unit["boxes"][0]["union"] == [6, 10]


def test_several_layers_and_units(rfa, net):
    data = _json(rfa, str(net), "--res", "16", "--layer", "c1", "--layer", "c2", "--at", "0", "--at", "2,3")
    assert [(u["layer"], u["index"]) for u in data["units"]] == [
        ("c1", [0, 0]), ("c1", [2, 3]), ("c2", [0, 0]), ("c2", [2, 3])]
    assert data["units"][0]["boxes"][0] == {"union": [-1, 1], "smallest": [-1, 1], "union_clipped": [0, 1],
                                            "smallest_clipped": [0, 1]}


def test_torchvision_resnet18(rfa):
    """The centre unit of layer4 of ResNet-18 at 224: offset -217, jump 32, r 435, so unit 3
    reads -217 + 3*32 = -121 .. -121 + 434 = 313; the smallest path (stem, pool, 1x1 shortcuts)
    is 11 wide around pixel 96."""
    pytest.importorskip("torchvision")
    (unit,) = _json(rfa, "torchvision:resnet18", "--res", "224")["units"]
    assert unit["layer"] == "layer4.1.relu:1" and unit["index"] == [3, 3]
    assert unit["boxes"][0] == {"union": [-121, 313], "smallest": [91, 101], "union_clipped": [0, 223],
                                "smallest_clipped": [91, 101]}


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_pictures(rfa, net, tmp_path):
    pytest.importorskip("matplotlib")
    blank = tmp_path / "out" / "blank.png"
    result = rfa("locate", str(net), "--res", "16", "--at", "0", "--at", "7", "-o", str(blank))
    assert result.returncode == 0, result.stderr
    assert f"wrote {blank}" in result.stderr and "c2" in result.stdout
    width, height = _png_size(blank)
    assert width > 400 and height > 300

    from PIL import Image

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 30), (200, 40, 40)).save(photo)
    svg = tmp_path / "over.svg"
    result = rfa("locate", str(net), "--res", "16x20", "--image", str(photo), "-o", str(svg))
    assert result.returncode == 0, result.stderr
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<image" in text  # the photo is in the picture


def test_one_dimensional_strip(rfa, tmp_path):
    pytest.importorskip("matplotlib")
    spec = tmp_path / "audio.yaml"
    spec.write_text("name: audio\nndim: 1\nlayers:\n  - {name: x, op: input}\n"
                    "  - {name: c, op: conv, kernel: 9, stride: 4, padding: 4}\n")
    out = tmp_path / "strip.png"
    result = rfa("locate", str(spec), "--res", "400", "--at", "0", "--at", "50", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "196..204 (9)" in result.stdout  # unit 50: 50*4 - 4 .. 50*4 + 4
    assert _png_size(out)[0] > 400


@pytest.mark.parametrize("args, words", [
    (["--layer", "nope"], ["no layer 'nope'"]),
    (["--layer", "gap"], ["sees the whole input"]),
    (["--at", "a,b"], ["--at", "not integers"]),
    (["--at", "8,0"], ["outside layer 'c2'", "0..7"]),
    (["--at", "1,2,3"], ["one integer per spatial axis"]),
    (["--pixel", "16,0"], ["outside the input"]),
    (["--image", "photo.png"], ["--image needs --output"]),
    (["-o", "boxes.txt"], ["boxes.txt", ".png"]),
])
def test_bad_questions(rfa, net, args, words):
    assert_one_line_error(rfa("locate", str(net), "--res", "16", *args), *words)


def test_bad_images_and_dimensions(rfa, net, tmp_path):
    pytest.importorskip("matplotlib")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    out = str(tmp_path / "o.png")
    assert_one_line_error(rfa("locate", str(net), "--res", "16", "--image", str(not_image), "-o", out),
                          "is not an image")
    assert_one_line_error(rfa("locate", str(net), "--res", "16", "--image", str(tmp_path / "none.png"),
                              "-o", out), "no such file")
    video = tmp_path / "video.yaml"
    video.write_text("name: v\nndim: 3\nlayers:\n  - {name: x, op: input}\n  - {name: c, op: conv, kernel: 3}\n")
    assert_one_line_error(rfa("locate", str(video), "--res", "8", "-o", out), "1-D and 2-D", "--format json")
    data = _json(rfa, str(video), "--res", "8")  # 3-D boxes are fine as text
    assert data["units"][0]["boxes"][2]["union"] == [3, 5]


def test_hostile_names_in_the_picture(rfa, tmp_path):
    """Names are data: mathtext dollars, markup and braces reach the legend as plain text."""
    pytest.importorskip("matplotlib")
    name = "c$1_{x}^$[b]"
    spec = tmp_path / "odd.yaml"
    spec.write_text("name: 'odd$model'\nlayers:\n  - {name: x, op: input}\n"
                    f"  - {{name: '{name}', op: conv, kernel: 3, stride: 2, padding: 1}}\n")
    out = tmp_path / "odd.svg"
    result = rfa("locate", str(spec), "--res", "16", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "c$1_{x}^$[b]" in out.read_text()  # drawn as text, not typeset
