"""Where a unit looks: effective stride (jump), offset, centre, aligned, and the boxes of units,
on small networks computed on paper (the arithmetic is in the comments), plus published values.

Unit i of a path reads [offset + i*jump, offset + i*jump + r - 1]; a window layer with kernel k,
stride s, dilation d and left padding p turns (r, j, offset) into (r + d(k-1)j, j*s, offset - p*j).
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from rfa_toolbox import GraphBuilder, GraphError, analyze

from conftest import DATA


def _row(report, name):
    row = report.layer(name)
    return row.jump, row.offset, row.centre, row.r_min


def test_one_dimensional_chain():
    b = GraphBuilder(ndim=1)
    x = b.input("x")
    c1 = b.conv(x, 3, padding=1, name="c1")               # r 3, j 1, offset -1
    c2 = b.conv(c1, 3, stride=2, padding=1, name="c2")    # r 3+2*1 = 5, j 2, offset -1-1*1 = -2
    p = b.max_pool(c2, 2, name="p")                       # r 5+1*2 = 7, j 4, offset -2
    report = analyze(b.build(outputs=[p]), 10)
    assert _row(report, "c1") == ((1,), (-1,), (0,), (3,))
    assert _row(report, "c2") == ((2,), (-2,), (0,), (5,))
    assert _row(report, "p") == ((4,), (-2,), (1,), (7,))  # centre (-2 + 4) / 2
    # sizes: c1 10, c2 (10+2-3)//2+1 = 5, p (5-2)//2+1 = 2; unit 1 of p reads [-2+4, -2+4+6]
    assert report.box("p", 1) == [{"union": (2, 8), "smallest": (2, 8), "union_clipped": (2, 8),
                                   "smallest_clipped": (2, 8)}]
    assert report.box("p", 0)[0]["union"] == (-2, 4)
    assert report.box("p", 0)[0]["union_clipped"] == (0, 4)
    assert report.centre("p", 1) == (5,)
    assert report.units_covering("p", 3) == [(0, 1)]  # [-2, 4] and [2, 8]
    assert report.units_covering("p", 9) == [None]    # unit 2 would start at 6, but p has 2 units
    assert report.units_covering("c2", 9) == [(4, 4)]  # unit i of c2 covers [2i-2, 2i+2]


def test_two_dimensional_non_square_asymmetric_padding_even_kernels_ceil_mode():
    b = GraphBuilder()
    x = b.input("x")
    # 1 row of zeros on top, 2 columns on the right: offset (-1, 0); sizes 9x12 -> 10x14
    pad = b.layer("pad", [x], "pad", padding=[[1, 0], [0, 2]])
    # kernel 2x4, stride (1, 2): rows r 2, j 1, offset -1; columns r 4, j 2, offset 0
    conv = b.conv(pad, (2, 4), stride=(1, 2), name="conv")  # sizes 9, (14-4)//2+1 = 6
    # 2x2 average pool, stride 2, padding 1, ceil_mode: rows r 2+1*1 = 3, j 2, offset -1-1 = -2;
    # columns r 4+1*2 = 6, j 4, offset 0-1*2 = -2. Sizes: rows ceil((9+2-2)/2)+1 = 6, but the
    # sixth window would start at 10 >= 9+1, in the right padding: 5; columns ceil(6/2)+1 = 4
    pool = b.avg_pool(conv, 2, stride=2, padding=1, meta={"ceil_mode": True}, name="pool")
    report = analyze(b.build(outputs=[pool]), (9, 12))
    assert _row(report, "conv") == ((1, 2), (-1, 0), (Fraction(-1, 2), Fraction(3, 2)), (2, 4))
    assert _row(report, "pool") == ((2, 4), (-2, -2), (-1, Fraction(1, 2)), (3, 6))
    assert report.units("pool") == (5, 4)
    box = report.box("pool", (4, 3))  # rows [-2+8, -2+8+2]; columns [-2+12, -2+12+5]
    assert [b["union"] for b in box] == [(6, 8), (10, 15)]
    assert [b["union_clipped"] for b in box] == [(6, 8), (10, 11)]
    with pytest.raises(GraphError, match="outside layer 'pool'.*5 units"):
        report.box("pool", (5, 0))


def test_two_dimensional_against_pytorch():
    """The network above, in PyTorch: its input gradient has the extent of the boxes."""
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.ZeroPad2d((0, 2, 1, 0)),
                                torch.nn.Conv2d(1, 1, (2, 4), stride=(1, 2), bias=False),
                                torch.nn.AvgPool2d(2, 2, padding=1, ceil_mode=True))
    torch.nn.init.constant_(model[1].weight, 1.0)
    x = torch.ones(1, 1, 9, 12, requires_grad=True)
    out = model(x)
    assert out.shape[-2:] == (5, 4)
    out[0, 0, 4, 3].backward()
    rows = x.grad[0, 0].sum(1).nonzero().flatten()
    cols = x.grad[0, 0].sum(0).nonzero().flatten()
    report = analyze(model, (9, 12), input_shape="1x9x12")
    last = report.layers[-1].name
    assert [b["union_clipped"] for b in report.box(last, (4, 3))] == [
        (int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))] == [(6, 8), (10, 11)]
    assert report.layer(last).offset == (-2, -2)


def test_same_padding_depends_on_the_input_size():
    """TensorFlow's "same": total padding max((ceil(n/s)-1)s + k - n, 0), the smaller half
    before. 3x3, stride 2: n = 8 gives 1 in total, 0 before (offset 0); n = 9 gives 2, 1 before."""
    b = GraphBuilder(ndim=1)
    y = b.conv(b.input("x"), 3, stride=2, meta={"same": True}, name="y")
    graph = b.build(outputs=[y])
    assert analyze(graph, 8).layer("y").offset == (0,)
    assert analyze(graph, 9).layer("y").offset == (-1,)
    assert analyze(graph, 8).box("y", 3)[0]["union"] == (6, 8)  # the last unit reads the padding


def test_three_dimensional():
    b = GraphBuilder(ndim=3)
    x = b.input("x")
    # axis 0: r 3, j 2, offset -1; axis 1: r 1, j 1, offset 0; axis 2: r 5, j 1, offset -2
    c1 = b.conv(x, (3, 1, 5), stride=(2, 1, 1), padding=(1, 0, 2), name="c1")
    # kernel 3, dilation (1, 2, 1), padding (1, 2, 1): axis 0 r 3+2*2 = 7, offset -1-1*2 = -3;
    # axis 1 r 1+2*2 = 5, offset -2; axis 2 r 5+2 = 7, offset -3
    c2 = b.conv(c1, 3, dilation=(1, 2, 1), padding=(1, 2, 1), name="c2")
    report = analyze(b.build(outputs=[c2]), 8)
    assert _row(report, "c2") == ((2, 1, 1), (-3, -2, -3), (0, 0, 0), (7, 5, 7))
    box = report.box("c2", (1, 0, 7))  # sizes 4, 8, 8
    assert [b["union"] for b in box] == [(-1, 5), (-2, 2), (4, 10)]
    assert [b["union_clipped"] for b in box] == [(0, 5), (0, 2), (4, 7)]
    assert report.units_covering("c2", (7, 7, 7)) == [(2, 3), (5, 7), (4, 7)]


def test_alignment_of_branches():
    """A 3x3 conv padded by 1 keeps the centre of its input; a 2x2 conv unpadded moves it by
    half a pixel, so adding it to the identity mixes two centres."""
    b = GraphBuilder(ndim=1)
    x = b.input("x")
    centred = b.add(b.conv(x, 3, padding=1), x, name="centred")
    shifted = b.add(b.conv(x, 2), x, name="shifted")
    report = analyze(b.build(outputs=[centred, shifted]), 16)
    assert report.layer("centred").aligned == (True,)
    assert report.layer("shifted").aligned == (False,)
    # the union of [i, i] and [i, i+1]; the smallest path is the identity
    assert report.box("shifted", 4) == [{"union": (4, 5), "smallest": (4, 4), "union_clipped": (4, 5),
                                         "smallest_clipped": (4, 4)}]
    assert report.centre("shifted", 4) == (Fraction(9, 2),)


def test_upsampling_exact_and_the_standard_estimate():
    """Nearest x3, then a 2-tap conv: unit o reads input o//3 and (o+1)//3, one pixel unless
    o % 3 == 2. Exact: r_min 1, r_max 2; the rule says 1 + 1*(1/3) = 4/3."""
    b = GraphBuilder(ndim=1)
    up = b.upsample(b.input("x"), 3, name="up")
    conv = b.conv(up, 2, name="conv")
    graph = b.build(outputs=[conv])
    report = analyze(graph, 6)
    row = report.layer("conv")
    assert report.exact
    assert (row.r_min, row.r_max) == ((1,), (2,))
    assert row.r_min_rule == row.r_max_rule == (pytest.approx(4 / 3),)  # rows hold plain numbers
    assert row.jump == (pytest.approx(1 / 3),)
    assert [report.box("conv", o)[0]["union"] for o in range(6)] == [
        (0, 0), (0, 0), (0, 1), (1, 1), (1, 1), (1, 2)]
    estimate = analyze(graph, 6, exact=False)
    assert not estimate.exact and estimate.layer("conv").r_min == (pytest.approx(4 / 3),)
    assert report.units_covering("conv", 1) == [(2, 5)]


def test_bad_questions_are_refused():
    b = GraphBuilder(ndim=2)
    y = b.conv(b.input("x"), 3, name="y")
    report = analyze(b.build(outputs=[y]), 8)
    with pytest.raises(GraphError, match="no layer 'nope'"):
        report.box("nope", 0)
    with pytest.raises(GraphError, match="one integer per spatial axis"):
        report.box("y", (1, 2, 3))
    with pytest.raises(GraphError, match="one integer per spatial axis"):
        report.centre("y", "3")
    with pytest.raises(GraphError, match="outside layer"):
        report.box("y", -1)


def test_keras_vgg16_matches_googles_table():
    """google-research/receptive_field's table for VGG-16 at 224 (tests/data/README.md)."""
    pytest.importorskip("keras")
    table = json.loads((DATA / "google_receptive_field.json").read_text(encoding="utf-8"))
    report = analyze(table["model"], table["resolution"])
    for layer, want in table["end_points"].items():
        row = report.layer(layer)
        assert (row.r_max, row.jump, row.offset) == (
            (want["rf"],) * 2, (want["stride"],) * 2, (-want["padding"],) * 2), layer


def test_axes_too_long_for_positions_fall_back_to_the_estimate_and_say_so():
    """Beyond MAX_UNITS units an axis is not followed position by position: the report must not
    claim exact values then."""
    b = GraphBuilder(ndim=1)
    x = b.conv(b.input("x"), 3, stride=2, name="down")
    b.conv(b.upsample(x, 2, mode="bilinear", name="up"), 3, name="head")
    graph = b.build()
    small, huge = analyze(graph, 64), analyze(graph, 10_000_000)
    assert small.exact and not huge.exact
    assert huge.layer("head").r_max == analyze(graph, 64, exact=False).layer("head").r_max
    assert any("longer than 4,194,304 units" in note for note in huge.notes)
