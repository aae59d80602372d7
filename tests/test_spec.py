"""Architecture files (YAML / JSON) to and from graphs."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from rfa_toolbox import (
    GraphBuilder,
    RFAError,
    SpecError,
    UnknownOpError,
    analyze,
    graph_from_spec,
    load_spec,
    minimal_feasible_resolution,
    propagate,
    save_spec,
    spec_from_graph,
)
from rfa_toolbox.ops import make_layer

from conftest import pairs

FORMAT = "rfa-toolbox/architecture/v1"


def rich_graph():
    """A graph using every kind of layer, metadata, a custom op, and two outputs."""
    b = GraphBuilder(name="rich")
    x = b.input(name="image", shape=[3, 64, 48])
    c1 = b.conv(x, 3, stride=2, name="stem", in_channels=3, out_channels=16, params=448,
                module="stem.conv")
    bn = b.neutral(c1, "batch_norm", name="stem_bn")
    f1 = b.conv(bn, (1, 7), dilation=(1, 2), name="f1x7", groups=16)
    f2 = b.conv(f1, [7, 1], name="f7x1")
    p = b.max_pool(bn, 3, stride=2, name="pool")
    a = b.avg_pool(p, (2, 3), stride=(1, 2), name="avg")
    up = b.upsample(a, factor="3/2", mode="bilinear", name="up")
    up2 = b.upsample(f2, factor=(2, 1), name="up2")
    t = b.conv_transpose(up, 4, stride=2, name="tconv")
    cat = b.concat(up2, t, f2, name="cat")
    gp = b.layer("global_avg_pool", [cat], name="gp_h", axes=[0])
    g_all = b.global_pool(cat, name="gp")
    se = b.conv(g_all, 1, name="se_fc")
    gate = b.mul(cat, se, name="gate")
    custom = b.graph.add(make_layer("custom", "my_window", 2, transfer="window", kernel=3,
                                    stride=(2, 1)), [gate])
    quiet = b.graph.add(make_layer("quiet", "conv", 2, computes=False, kernel=5), [custom])
    s = b.add(quiet, b.conv(custom, 5, name="c5"), name="sum")
    out1 = b.dense(b.flatten(s, name="flat"), name="fc")
    return b.build(outputs=[out1, gp])


def assert_same_graph(g1, g2):
    assert (g1.name, g1.ndim, g1.outputs) == (g2.name, g2.ndim, g2.outputs)
    assert [layer.name for layer in g1] == [layer.name for layer in g2]
    for layer in g1:
        other = g2[layer.name]
        assert layer == other, layer.name
        assert layer.meta == other.meta, layer.name
        assert g1.predecessors(layer.name) == g2.predecessors(layer.name), layer.name
    assert sorted(g1.nx.edges) == sorted(g2.nx.edges)
    for res in (8, "64x48", 1000):
        assert analyze(g1, res).to_dict() == analyze(g2, res).to_dict()


def test_rich_graph_values():
    # a few hand-checked values, so the round trip compares something non-trivial
    rf = propagate(rich_graph())
    # stem 3/2: (3, 2); f1x7 with dilation (1, 2): (3, 3 + 2*6*2) = (3, 27); f7x1: (3 + 6*2, 27)
    assert tuple(a.r_min for a in rf["f1x7"]) == (3, 27)
    assert tuple(a.r_min for a in rf["f7x1"]) == (15, 27)
    # pool 3/2 after stem: (3 + 2*2, 4) = 7; avg (2, 3) stride (1, 2): (7 + 4, 7 + 8) = (11, 15)
    # with jumps (4, 8); bilinear up by 3/2: (11 + 4, 15 + 8) = (15, 23), j (8/3, 16/3)
    assert tuple(pairs(a.mins) for a in rf["up"]) == (((15, Fraction(8, 3)),), ((23, Fraction(16, 3)),))
    # tconv 4/2: ceil(4/2)-1 = 1: (15 + 8/3, 23 + 16/3) = (53/3, 85/3)
    assert tuple(a.r_min for a in rf["tconv"]) == (Fraction(53, 3), Fraction(85, 3))
    # cat of up2 (15, 27), tconv (53/3, 85/3), f7x1 (15, 27): r_min (15, 27), r_max (53/3, 85/3)
    assert tuple(a.r_min for a in rf["cat"]) == (15, 27)
    assert tuple(a.r_max for a in rf["cat"]) == (Fraction(53, 3), Fraction(85, 3))
    # global over axis 0 only
    assert tuple(a.r_min for a in rf["gp_h"]) == (None, 27)
    assert rf["gate"][0].infinite and rf["gate"][0].finite


def test_round_trip_in_memory():
    g = rich_graph()
    data = spec_from_graph(g)
    assert data["format"] == FORMAT and data["name"] == "rich" and data["ndim"] == 2
    assert data["outputs"] == ["fc", "gp_h"]
    entries = {e["name"]: e for e in data["layers"]}
    # inputs are written only when they are not the previous layer
    assert "inputs" not in entries["stem"] and "inputs" not in entries["stem_bn"]
    assert entries["pool"]["inputs"] == ["stem_bn"]
    assert entries["cat"]["inputs"] == ["up2", "tconv", "f7x1"]
    # per-axis values are compacted when equal; fractions as strings
    assert entries["stem"]["kernel"] == 3 and entries["f1x7"]["kernel"] == [1, 7]
    assert entries["up"]["factor"] == "3/2" and entries["up"]["mode"] == "bilinear"
    assert entries["up2"]["factor"] == [2, 1] and entries["up2"]["mode"] == "nearest"
    assert entries["gp_h"]["axes"] == [0]
    assert entries["custom"]["transfer"] == "window"
    assert entries["quiet"]["computes"] is False
    assert entries["stem"]["module"] == "stem.conv" and entries["stem"]["params"] == 448
    assert entries["image"]["shape"] == [3, 64, 48]
    g2 = graph_from_spec(data)
    assert_same_graph(g, g2)
    assert spec_from_graph(g2) == data
    # the data survive JSON and YAML text unchanged
    assert json.loads(json.dumps(data)) == data
    assert yaml.safe_load(yaml.safe_dump(data)) == data


GEOMETRY = """\
ndim: 2
layers:
  - {name: x, op: input}
  - {name: pad, op: pad, padding: [[1, 0], [0, 2]], pad_mode: reflect}
  - {name: same, op: conv, kernel: 3, stride: 2, padding: same}
  - {name: pool, op: avg_pool, kernel: 2, padding: [1, 0], ceil_mode: true}
  - {name: up, op: conv_transpose, kernel: 3, stride: 2, padding: 1, output_padding: [1, 0]}
  - {name: lin, op: upsample, factor: 2, mode: bilinear, align_corners: true}
"""


def test_geometry_keys_round_trip_and_place_the_boxes():
    graph = graph_from_spec(yaml.safe_load(GEOMETRY))
    entries = {e["name"]: e for e in spec_from_graph(graph)["layers"]}
    assert entries["pad"]["padding"] == [[1, 0], [0, 2]] and entries["pad"]["pad_mode"] == "reflect"
    assert entries["same"]["padding"] == "same"
    assert entries["pool"]["padding"] == [1, 0] and entries["pool"]["ceil_mode"] is True
    assert entries["up"]["output_padding"] == [1, 0] and entries["up"]["padding"] == 1
    assert entries["lin"]["align_corners"] is True
    assert spec_from_graph(graph_from_spec(spec_from_graph(graph))) == spec_from_graph(graph)
    report = analyze(graph, (9, 12))
    # rows: pad 1 before (10 rows), "same" 3x3 stride 2 on 10: total (5-1)*2+3-10 = 1, 0 before:
    # offset -1; columns: 14 wide, total (7-1)*2+3-14 = 1, 0 before: offset 0
    assert report.layer("same").offset == (-1, 0)
    # the pool pads a row before (jump 2): rows -1 - 2 = -3, columns 0
    assert report.layer("pool").offset == (-3, 0)
    # pool sizes: rows ceil((5+2-2)/2)+1 = 4, but (4-1)*2 = 6 >= 5+1: 3; columns ceil((7-2)/2)+1
    # = 4, the last window starting at 6, inside
    assert report.units("pool") == (3, 4)
    # transposed, stride 2, padding 1, output_padding (1, 0): (n-1)*2 - 2 + 3 + (1, 0)
    assert report.units("up") == (6, 7)


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_and_load(tmp_path, suffix):
    g = rich_graph()
    path = tmp_path / f"model{suffix}"
    save_spec(g, path)
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        assert json.loads(text)["format"] == FORMAT
    else:
        assert yaml.safe_load(text)["format"] == FORMAT
    g2 = load_spec(path)
    assert_same_graph(g, g2)
    # the public API reads the path too
    report = analyze(path, 64)
    assert report.model == str(path)
    assert report.to_dict()["layers"] == analyze(g, 64).to_dict()["layers"]
    assert minimal_feasible_resolution(path) == minimal_feasible_resolution(g)


def test_default_name_is_the_file_stem(tmp_path):
    path = tmp_path / "tiny_net.yaml"
    path.write_text("layers:\n  - {name: x, op: input}\n  - {op: conv, kernel: 3}\n")
    g = load_spec(path)
    assert g.name == "tiny_net"
    # an unnamed layer is called op + position (1-based)
    assert [layer.name for layer in g] == ["x", "conv2"]
    assert g.predecessors("conv2") == ["x"]


def test_default_inputs_are_the_previous_layer():
    g = graph_from_spec({"layers": [
        {"name": "x", "op": "input"},
        {"name": "a", "op": "conv", "kernel": 3},                   # 3
        {"name": "b", "op": "conv", "kernel": 3, "stride": 2},      # 5, j 2
        {"name": "c", "op": "relu"},
        {"name": "d", "op": "conv", "kernel": 3},                   # 9
        {"name": "e", "op": "add", "inputs": ["d", "b"]},           # 5 .. 9
        {"name": "f", "op": "conv", "kernel": 2, "inputs": "e"},    # a string: one input
    ]})
    assert [g.predecessors(n) for n in "abcdef"] == [["x"], ["a"], ["b"], ["c"], ["d", "b"], ["e"]]
    assert g.output_nodes == ["f"]
    rf = propagate(g)
    assert (rf["e"][0].r_min, rf["e"][0].r_max) == (5, 9)
    assert (rf["f"][0].r_min, rf["f"][0].r_max) == (7, 11)  # + (2-1)*2


def test_first_layer_must_be_an_input_or_name_inputs():
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "c", "op": "conv", "kernel": 3}]})
    assert "'c'" in str(info.value) and "first" in str(info.value)


def test_forward_references():
    g = graph_from_spec({"ndim": 1, "outputs": "head", "layers": [
        {"name": "head", "op": "conv", "kernel": 3, "inputs": ["body"]},
        {"name": "x", "op": "input"},
        {"name": "body", "op": "conv", "kernel": 5, "stride": 2, "inputs": ["x"]},
    ]})
    assert g.outputs == ["head"]
    assert g.topological_order() == ["x", "body", "head"]
    rf = propagate(g)
    assert pairs(rf["head"][0].mins) == ((9, 2),)  # body (5, 2) + 2*2
    # written back in topological order, with the input first
    assert [e["name"] for e in spec_from_graph(g)["layers"]] == ["x", "body", "head"]


def test_unknown_ops_are_listed(tmp_path):
    data = {"layers": [
        {"name": "x", "op": "input"},
        {"name": "a", "op": "convv", "kernel": 3},
        {"name": "b", "op": "swish2"},
        {"name": "c", "op": "convv", "kernel": 3},
        {"name": "d", "op": "mystery", "transfer": "neutral"},  # explicit transfer: accepted
    ]}
    with pytest.raises(UnknownOpError) as info:
        graph_from_spec(data)
    assert sorted(set(info.value.unknown)) == ["convv", "swish2"]
    message = str(info.value)
    assert "unknown ops: convv, swish2" in message
    assert "known ops:" in message and "conv_transpose" in message
    assert "mystery" not in message.split("(known")[0]
    assert isinstance(info.value, RFAError)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UnknownOpError):
        load_spec(path)


def test_unknown_transfer():
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "x", "op": "input"},
                                    {"name": "a", "op": "thing", "transfer": "sideways"}]})
    assert "sideways" in str(info.value)


def test_unknown_keys():
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "x", "op": "input"}], "extra": 1, "zzz": 2})
    assert "unknown top-level keys: 'extra', 'zzz'" in str(info.value)
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "x", "op": "input"},
                                    {"name": "c", "op": "conv", "kernal": 3}]})
    assert "'c'" in str(info.value) and "kernal" in str(info.value)
    # a known key that the op does not take
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "x", "op": "input"},
                                    {"name": "c", "op": "conv", "kernel": 3, "factor": 2}]})
    assert "'c'" in str(info.value) and "factor" in str(info.value)


@pytest.mark.parametrize("entry, words", [
    ({"name": "c", "op": "conv"}, ["'c'", "kernel"]),
    ({"name": "c", "op": "conv", "kernel": 0}, ["'c'", "kernel", "positive"]),
    ({"name": "c", "op": "conv", "kernel": 3.5}, ["'c'", "kernel"]),
    ({"name": "c", "op": "conv", "kernel": [3, 3, 3]}, ["'c'", "kernel", "2 values"]),
    ({"name": "c", "op": "conv", "kernel": 3, "stride": -1}, ["'c'", "stride"]),
    ({"name": "c", "op": "conv", "kernel": 3, "stride": 0}, ["'c'", "stride", "positive"]),
    ({"name": "c", "op": "upsample", "factor": 0}, ["'c'", "factor", "positive"]),
    ({"name": "c", "op": "input", "inputs": ["x"]}, ["'c'", "input"]),
    ({"name": "c", "op": "upsample", "factor": "x"}, ["'c'", "factor"]),
    ({"name": "c", "op": "upsample", "mode": "cubic-ish"}, ["'c'", "cubic-ish"]),
    ({"name": "c", "op": "global_avg_pool", "axes": [2]}, ["'c'", "axes"]),
    ({"name": "c", "op": "conv", "kernel": 3, "inputs": ["nowhere"]}, ["nowhere"]),
    ({"name": "x", "op": "relu"}, ["duplicate", "'x'"]),
    ({"name": "c", "op": "conv", "kernel": 3, "padding": "valid"}, ["'c'", "padding", "valid"]),
    ({"name": "c", "op": "conv", "kernel": 3, "padding": [1, [0, 1, 2]]}, ["'c'", "padding"]),
    ({"name": "c", "op": "conv_transpose", "kernel": 3, "padding": "same"}, ["'c'", "'same'", "window"]),
    ({"name": "c", "op": "max_pool", "kernel": 2, "ceil_mode": "yes"}, ["'c'", "ceil_mode", "true or false"]),
    ({"name": "c", "op": "conv", "kernel": 3, "ceil_mode": True}, ["'c'", "ceil_mode"]),
    ({"name": "c", "op": "conv_transpose", "kernel": 3, "stride": 2, "output_padding": 2},
     ["'c'", "output_padding", "below the stride"]),
    ({"name": "c", "op": "upsample", "align_corners": 1}, ["'c'", "align_corners"]),
    ({"name": "c", "op": "pad", "padding": 1, "pad_mode": "wrap"}, ["'c'", "pad_mode", "reflect"]),
])
def test_invalid_layer_fields(entry, words):
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "x", "op": "input"}, entry]})
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("data, words", [
    ([1, 2], ["not an architecture file"]),
    ({"name": "no layers"}, ["not an architecture file"]),
    ({"layers": []}, ["non-empty"]),
    ({"layers": [{"name": "x", "op": "input"}], "ndim": 4}, ["ndim", "4"]),
    ({"layers": [{"name": "x", "op": "input"}], "format": "other/v9"}, ["other/v9"]),
    ({"layers": [{"name": "x", "op": "input"}, "conv"]}, ["#2", "mapping"]),
    ({"layers": [{"name": "x", "op": "input"}], "outputs": ["y"]}, ["'y'"]),
])
def test_invalid_files(data, words):
    with pytest.raises(SpecError) as info:
        graph_from_spec(data)
    for word in words:
        assert word in str(info.value)


def test_missing_op_names_the_layer():
    # the layer without an op should be reported as such, not as an unknown op "None"
    with pytest.raises(SpecError) as info:
        graph_from_spec({"layers": [{"name": "x", "op": "input"}, {"name": "c", "kernel": 3}]})
    assert "no 'op'" in str(info.value)


_X = {"name": "x", "op": "input"}


@pytest.mark.parametrize("data, words", [
    ({"layers": [_X, {"name": "c", "op": ["conv"], "kernel": 3}]}, ["'c'", "op"]),
    ({"layers": [_X, {"name": "c", "op": "conv", "kernel": 3, "inputs": 3}]}, ["'c'", "inputs"]),
    ({"layers": [_X, {"name": "c", "op": "conv", "kernel": 3}], "outputs": 3}, ["outputs"]),
    ({"layers": [_X, {"name": "c", "op": "conv", "kernel": 3}], "ndim": 2.0}, ["ndim"]),
    ({"layers": [_X, {"name": "c", "op": "conv", "kernel": 3}], "ndim": True}, ["ndim"]),
    ({"layers": [_X, {"name": "c", "op": "conv", "kernel": 3, "computes": "no"}]},
     ["'c'", "computes"]),
])
def test_fields_of_the_wrong_type_are_clean_errors(data, words):
    # bad input never ends in a traceback: a SpecError naming the field, not a TypeError
    # (and not a silently accepted value: ndim True would be 1, computes "no" would be true)
    with pytest.raises(SpecError) as info:
        graph_from_spec(data)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name, text, line", [
    ("bad.yaml", "layers:\n  - {name: x, op: input}\n  - {name: c, op: conv, kernel: [3, 3}\n", 3),
    ("bad.yml", "name: m\nlayers:\n  - name: x\n    op: input\n  - name: c\n    op: conv\n"
                "   kernel: 3\n", 7),
    ("bad.json", '{\n  "layers": [\n    {"name": "x", "op": "input"},\n    {"name": "c",, }\n  ]\n}', 4),
    ("bad2.json", '{"layers": [\n{"name": "x"\n"op": "input"}]}', 3),
])
def test_malformed_files_give_a_line_number(tmp_path, name, text, line):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"line {line}" in message
    assert str(path) in message
    assert ("YAML" if name.endswith(("yaml", "yml")) else "JSON") in message


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "no such file" in str(info.value)


def test_errors_in_files_name_the_file(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("layers:\n  - {name: x, op: input}\n  - {name: c, op: conv}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value) and "'c'" in str(info.value)


def test_cyclic_spec_names_the_nodes(tmp_path):
    data = {"layers": [
        {"name": "x", "op": "input"},
        {"name": "stem", "op": "conv", "kernel": 3},
        {"name": "loop_a", "op": "add", "inputs": ["stem", "loop_c"]},
        {"name": "loop_b", "op": "conv", "kernel": 3},
        {"name": "loop_c", "op": "conv", "kernel": 3},
        {"name": "tail", "op": "conv", "kernel": 3},
    ]}
    with pytest.raises(RFAError) as info:
        graph_from_spec(data)
    message = str(info.value)
    assert "cycle" in message
    for name in ("loop_a", "loop_b", "loop_c"):
        assert name in message
    assert "stem" not in message and "tail" not in message
    path = tmp_path / "cyclic.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RFAError) as info:
        load_spec(path)
    assert "loop_a" in str(info.value) and "cycle" in str(info.value)


# ---------------------------------------------------------------------------------------------
# random graphs round-trip too
# ---------------------------------------------------------------------------------------------
from test_properties import build, dags  # noqa: E402  (the random DAG strategy)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(dags(ndim=2, square=False, max_nodes=25))
def test_random_graphs_round_trip(nodes):
    g = build(nodes, 2)
    data = spec_from_graph(g)
    g2 = graph_from_spec(yaml.safe_load(yaml.safe_dump(data)))
    assert [layer.name for layer in g] == [layer.name for layer in g2]
    for layer in g:
        assert layer == g2[layer.name] and layer.meta == g2[layer.name].meta
        assert g.predecessors(layer.name) == g2.predecessors(layer.name)
    assert analyze(g, "33x17").to_dict() == analyze(g2, "33x17").to_dict()
    g3 = graph_from_spec(json.loads(json.dumps(data)))
    assert spec_from_graph(g3) == data


def test_the_documented_vocabulary_is_the_real_one():
    """docs/architecture-files.md lists every op with its transfer, computes and parameters."""
    from rfa_toolbox.graph import Transfer
    from rfa_toolbox.ops import OPS

    from conftest import ROOT

    rows = {}
    for line in (ROOT / "docs" / "architecture-files.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`") and cells[1] in {t.value for t in Transfer}:
            params = () if cells[3] == "–" else tuple(p.strip(" `") for p in cells[3].split(","))
            rows[cells[0].strip("`")] = (cells[1], cells[2] == "yes", params)
    assert rows == {op: (info.transfer.value, info.computes, info.params) for op, info in OPS.items()}
