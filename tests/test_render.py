"""Diagrams: colours, folding, grouping, files and the missing ``dot`` program (real graphviz)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rfa_toolbox import GraphBuilder, RFAError, Status, analysis_of, analyze, load_spec
from rfa_toolbox.grouping import group_rows
from rfa_toolbox.render import COLORS, render_analysis, save_diagram

from conftest import EXAMPLES

SVG = "{http://www.w3.org/2000/svg}"
SHAPES = {f"{SVG}polygon", f"{SVG}ellipse", f"{SVG}path"}

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("dot") is None, reason="graphviz's dot program is not installed"
)


def parse_svg(path: Path) -> tuple[dict[str, str], set[tuple[str, str]]]:
    """The fill colour of every layer node by its id (the layer name), and the edges by name."""
    root = ET.parse(path).getroot()
    fills: dict[str, str] = {}
    by_title: dict[str, str] = {}
    edges = []
    for g in root.iter(f"{SVG}g"):
        classes = g.get("class", "").split()
        if "node" in classes and "legend" not in classes:
            name = g.get("id")
            assert name not in fills, f"two nodes with id {name!r}"
            by_title[g.find(f"{SVG}title").text] = name
            fill = next(
                (el.get("fill") for el in g.iter() if el.tag in SHAPES and el.get("fill") != "none"),
                None,
            )
            fills[name] = fill
        elif "edge" in classes:
            edges.append(g.find(f"{SVG}title").text)
    named = set()
    for title in edges:
        a, b = title.split("->")
        named.add((by_title[a], by_title[b]))
    return fills, named


def legend_fills(path: Path) -> dict[str, str]:
    root = ET.parse(path).getroot()
    out = {}
    for g in root.iter(f"{SVG}g"):
        if "legend" in g.get("class", "").split():
            shape = next(el for el in g.iter() if el.tag in SHAPES)
            out[g.get("id")] = shape.get("fill")
    return out


def with_color(fills: dict[str, str], status: str) -> set[str]:
    return {name for name, fill in fills.items() if fill == COLORS[status]}


@pytest.fixture(scope="module")
def resnet18():
    pytest.importorskip("torchvision")
    from rfa_toolbox.sources import load_graph

    graph = load_graph("torchvision:resnet18", 32)
    return graph, analyze(graph, 32)


def chain_graph() -> GraphBuilder:
    """22 3x3 convs with ReLUs and a residual add over conv6 (the shortest path skips it): at
    24x40 the convs of r_min 25..39 are border."""
    b = GraphBuilder(name="chain")
    x = b.input(name="image", shape=(3, 24, 40))
    for i in range(1, 23):
        y = b.conv(x, 3, name=f"conv{i}", module=f"body.{i}.conv", shape=(8, 24, 40))
        y = b.neutral(y, "relu", name=f"relu{i}", module=f"body.{i}.act")
        x = b.add(y, x, name=f"add{i}") if i == 6 else y
    b.dense(b.global_pool(x, name="gap"), name="fc")
    return b


def test_colours_are_distinct():
    assert len(set(COLORS.values())) == len(COLORS)
    assert set(COLORS) == {Status.OK, Status.UNPRODUCTIVE, Status.UNDERUTILIZED, Status.BORDER, Status.HEAD}


def test_resnet18_colours_are_the_findings(resnet18, tmp_path):
    graph, report = resnet18
    assert len(report.unproductive) == 3 and len(report.underutilized) == 6
    path, message = save_diagram(render_analysis(analysis_of(graph, report.resolution)), tmp_path / "resnet18.svg")
    assert (path, message) == (tmp_path / "resnet18.svg", None)
    fills, edges = parse_svg(path)

    assert with_color(fills, Status.UNPRODUCTIVE) == set(report.unproductive)
    assert with_color(fills, Status.UNDERUTILIZED) == set(report.underutilized)
    assert with_color(fills, Status.BORDER) == set(report.border) == set()
    assert with_color(fills, Status.HEAD) == {"avgpool", "fc"}
    for name, fill in fills.items():
        assert fill == COLORS[report.layer(name).status], name

    # folded: only computing layers, merges, inputs and heads are drawn
    expected = {row.name for row in report.layers if row.computes or row.op in ("input", "add")}
    assert set(fills) == expected
    assert "layer1.0.relu:1" not in fills and "bn1" not in fills
    # edges go through the folded ops; the ReLU after an add feeds two nodes and keeps both
    assert {("x", "conv1"), ("conv1", "maxpool"), ("maxpool", "layer1.0.conv1"),
            ("maxpool", "layer1.0"), ("layer1.0.conv2", "layer1.0"),
            ("layer1.0", "layer1.1.conv1"), ("layer1.0", "layer1.1"),
            ("layer1.1", "layer2.0.downsample.0"), ("layer4.1", "avgpool"),
            ("avgpool", "fc")} <= edges
    # 4 edges into each plain block, 5 into each downsampling one, plus stem and head
    assert len(edges) == 2 * 4 + 3 * (5 + 4) + 4
    assert all(a != b for a, b in edges)

    assert legend_fills(path) == {f"legend-{s}": COLORS[s] for s in COLORS}
    text = path.read_text()
    assert "torchvision:resnet18" in text and "3 unproductive, 6 underutilized, 0 border" in text
    assert "r = 139" in text and "R = 32" in text


def test_unfolded_diagram_has_every_op(resnet18, tmp_path):
    graph, report = resnet18
    analysis = analysis_of(graph, report.resolution)
    path, _ = save_diagram(render_analysis(analysis, fold_neutral=False), tmp_path / "all.svg")
    fills, edges = parse_svg(path)
    assert set(fills) == {row.name for row in report.layers}  # layer1.0.relu:1 included
    assert edges == set(graph.nx.edges)
    for name, fill in fills.items():
        assert fill == COLORS[report.layer(name).status], name


def test_labels_show_window_rf_and_shape(resnet18):
    graph, report = resnet18
    source = render_analysis(analysis_of(graph, report.resolution)).source
    line = next(text for text in source.splitlines() if 'id="layer2.0.conv1"' in text)
    assert "conv k3 s2" in line and "r_min 19, r_max 51" in line and "128x4x4" in line
    assert "+ norm, relu" in line
    assert "folded: layer2.0.bn1 (norm), layer2.0.relu (relu)" in line  # in the tooltip
    assert "layer1.0.relu:1 (relu)" in source  # folded ops are named in their node's tooltip
    # names with ':' never become node ids (':' is a port in dot)
    assert 'n0 [' in source and '"layer1.0.relu:1" [' not in source


def test_nonsquare_resolution_border_layers(tmp_path):
    graph = chain_graph().build()
    report = analyze(graph, "24x40")
    assert report.border == [f"conv{i}" for i in range(13, 21)]
    assert report.underutilized == ["conv21"]
    assert report.unproductive == ["conv22"]
    path, _ = save_diagram(render_analysis(analysis_of(graph, report.resolution)), tmp_path / "chain.svg")
    fills, edges = parse_svg(path)
    assert with_color(fills, Status.BORDER) == set(report.border)
    assert with_color(fills, Status.UNDERUTILIZED) == {"conv21"}
    assert with_color(fills, Status.UNPRODUCTIVE) == {"conv22"}
    assert with_color(fills, Status.HEAD) == {"gap", "fc"}
    assert set(fills) == {"image", "add6", "gap", "fc"} | {f"conv{i}" for i in range(1, 23)}
    # relu5 (folded into conv5) fed conv6 and add6; relu6 feeds add6
    assert {("conv5", "conv6"), ("conv5", "add6"), ("conv6", "add6"), ("add6", "conv7"),
            ("conv22", "gap"), ("gap", "fc")} <= edges
    text = path.read_text()
    assert "R = 24x40" in text and "0 border" not in text and "8 border" in text


def test_odd_names_are_safe(tmp_path):
    names = ['a:b', 'q"uote', "back\\slash\\N", "<tag>&amp", "node", "edge", "graph", "n0"]
    b = GraphBuilder(name='odd "model"')
    x = b.input(name="in:put")
    for name in names:
        x = b.conv(x, 3, name=name)
    graph = b.build()
    report = analyze(graph, 8)
    for fold in (True, False):
        diagram = render_analysis(analysis_of(graph, report.resolution), fold_neutral=fold)
        path, _ = save_diagram(diagram, tmp_path / "odd.svg")
        fills, edges = parse_svg(path)
        assert set(fills) == {"in:put", *names}
        assert ("in:put", "a:b") in edges
        red = with_color(fills, Status.UNPRODUCTIVE)
        assert len(red) == len(report.unproductive) > 0


def test_png_pdf_dot_files(tmp_path):
    graph = load_spec(EXAMPLES / "vgg_style.yaml")
    diagram = render_analysis(analysis_of(graph, 224))
    magic = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}
    for fmt, head in magic.items():
        path, message = save_diagram(diagram, tmp_path / f"vgg.{fmt.upper()}")
        assert message is None and path.stat().st_size > 1000
        assert path.read_bytes().startswith(head)
    path, message = save_diagram(diagram, str(tmp_path / "sub" / "vgg.dot"))
    assert message is None and path == tmp_path / "sub" / "vgg.dot"
    assert path.read_text().startswith("digraph vgg_style {")
    # no intermediate source files beside the outputs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "vgg.PDF", "vgg.PNG", "vgg.SVG"]


def test_depth_groups_modules(resnet18, tmp_path):
    graph, report = resnet18
    path, _ = save_diagram(render_analysis(analysis_of(graph, report.resolution), depth=1), tmp_path / "d1.svg")
    fills, edges = parse_svg(path)
    assert set(fills) == {"x", "conv1", "maxpool", "layer1", "layer2", "layer3", "layer4",
                          "avgpool", "fc"}
    assert fills["layer1"] == fills["conv1"] == COLORS[Status.OK]
    assert fills["layer2"] == COLORS[Status.UNDERUTILIZED]
    assert fills["layer3"] == fills["layer4"] == COLORS[Status.UNPRODUCTIVE]
    assert fills["avgpool"] == fills["fc"] == COLORS[Status.HEAD]
    worst = {row.name: row.status for row in group_rows(report, 1)}
    assert all(fill == COLORS[worst[name]] for name, fill in fills.items())
    chain = ["x", "conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"]
    assert edges == set(zip(chain, chain[1:]))

    path, _ = save_diagram(render_analysis(analysis_of(graph, report.resolution), depth=1, fold_neutral=False),
                           tmp_path / "d1all.svg")
    fills, edges = parse_svg(path)
    assert {"bn1", "relu", "view"} <= set(fills)
    assert ("conv1", "bn1") in edges and ("avgpool", "view") in edges

    source = render_analysis(analysis_of(graph, report.resolution), depth=2).source
    assert 'id="layer3.1"' in source and 'id="layer3.1.conv2"' not in source


def test_rankdir_and_bad_arguments(tmp_path):
    graph = load_spec(EXAMPLES / "vgg_style.yaml")
    report = analyze(graph, 224)
    assert "rankdir=LR" in render_analysis(analysis_of(graph, report.resolution), rankdir="LR").source
    assert "rankdir=TB" in render_analysis(analysis_of(graph, report.resolution)).source
    with pytest.raises(RFAError, match="rankdir"):
        render_analysis(analysis_of(graph, report.resolution), rankdir="BT")
    with pytest.raises(RFAError, match="depth"):
        render_analysis(analysis_of(graph, report.resolution), depth=0)
    diagram = render_analysis(analysis_of(graph, report.resolution))
    with pytest.raises(RFAError, match=r"\.svg, \.png, \.pdf, \.dot"):
        save_diagram(diagram, tmp_path / "vgg.jpg")
    assert "image/svg+xml" in diagram._repr_mimebundle_()  # shows itself in Jupyter


def test_missing_dot_writes_source(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    script = textwrap.dedent(f"""
        import json
        from rfa_toolbox import analysis_of, load_spec
        from rfa_toolbox.render import render_analysis, save_diagram
        graph = load_spec({str(EXAMPLES / "vgg_style.yaml")!r})
        path, message = save_diagram(render_analysis(analysis_of(graph, 224)),
                                     {str(tmp_path / "out" / "vgg.svg")!r})
        print(json.dumps([str(path), message]))
    """)
    env = {**os.environ, "PATH": str(empty)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    path, message = json.loads(done.stdout.strip().splitlines()[-1])
    assert path == str(tmp_path / "out" / "vgg.dot")
    assert Path(path).read_text().startswith("digraph vgg_style {")
    assert not (tmp_path / "out" / "vgg.svg").exists()
    assert "install graphviz" in message and "apt-get install graphviz" in message
    assert "brew install graphviz" in message and "conda" in message
    assert "dot -Tsvg" in message


def residual_graph(blocks: int = 70):
    """About 500 ops: a residual network with norms, activations and downsampling shortcuts."""
    b = GraphBuilder(name="residual500")
    x = b.conv(b.input(name="image"), 3, name="stem", module="stem")
    for i in range(blocks):
        m = f"stage{i // 18}.block{i}"
        stride = 2 if i % 18 == 0 and i else 1
        y = b.conv(x, 3, stride=stride, module=f"{m}.conv1")
        y = b.neutral(y, "batch_norm", module=f"{m}.bn1")
        y = b.neutral(y, "relu", module=f"{m}.relu1")
        y = b.conv(y, 3, module=f"{m}.conv2")
        y = b.neutral(y, "batch_norm", module=f"{m}.bn2")
        shortcut = b.conv(x, 1, stride=stride, module=f"{m}.down") if stride > 1 else x
        x = b.layer("add", [y, shortcut], name=f"{m}.add", module=f"{m}.add")
        x = b.neutral(x, "relu", module=f"{m}.relu2")
    b.dense(b.flatten(b.global_pool(x, module="head.pool")), module="head.fc")
    return b.build()


def test_500_ops_render(tmp_path):
    graph = residual_graph()
    assert len(graph) >= 490
    report = analyze(graph, 16)
    assert report.unproductive
    computing = sum(1 for row in report.layers if row.computes or row.op in ("input", "add"))
    # depth 2: image, stem, 70 blocks, head.pool (with the flatten folded in), head.fc
    analysis = analysis_of(graph, report.resolution)
    for options, nodes in (({}, computing), ({"fold_neutral": False}, len(graph)), ({"depth": 2}, 74)):
        path, _ = save_diagram(render_analysis(analysis, **options), tmp_path / "big.svg")
        fills, _ = parse_svg(path)
        assert len(fills) == nodes
        assert with_color(fills, Status.UNPRODUCTIVE) == (
            {row.name for row in group_rows(report, 2) if row.status == Status.UNPRODUCTIVE}
            if "depth" in options else set(report.unproductive)
        )


def test_folding_rules(tmp_path):
    """Neutral ops and flattens fold into what they follow, keeping every edge; ops that change
    the receptive field, merges, and neutral ops with two inputs stay."""
    b = GraphBuilder(name="folding")
    x = b.input(name="in")
    c1 = b.conv(x, 3, name="c1")
    r1 = b.neutral(b.neutral(c1, "batch_norm", name="bn1"), "relu", name="r1")
    p = b.layer("max_pool", [r1], name="pool", kernel=2, computes=False)  # changes the RF
    c2 = b.conv(r1, 3, name="c2")
    c3 = b.conv(r1, 1, name="c3")
    two = b.layer("neutral", [c2, c3], name="two_inputs")
    s = b.add(b.neutral(two, "dropout", name="drop"), p, name="sum")
    b.dense(b.flatten(b.global_pool(s, name="gap"), name="flat"), name="fc")
    graph = b.build()
    report = analyze(graph, 64)
    path, _ = save_diagram(render_analysis(analysis_of(graph, report.resolution)), tmp_path / "fold.svg")
    fills, edges = parse_svg(path)
    assert set(fills) == {"in", "c1", "pool", "c2", "c3", "two_inputs", "sum", "gap", "fc"}
    assert edges == {("in", "c1"), ("c1", "pool"), ("c1", "c2"), ("c1", "c3"),
                     ("c2", "two_inputs"), ("c3", "two_inputs"), ("two_inputs", "sum"),
                     ("pool", "sum"), ("sum", "gap"), ("gap", "fc")}
    source = render_analysis(analysis_of(graph, report.resolution)).source
    assert "folded: bn1 (batch_norm), r1 (relu)" in source
    assert "folded: flat (flatten)" in source
