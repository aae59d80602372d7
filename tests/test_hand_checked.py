"""Receptive fields and findings checked by hand.

Rules (docs/concepts.md, per axis): a path has size r and jump j, the input has (1, 1);
a window layer (conv, pool) with kernel k, stride s, dilation d maps (r, j) to
(r + d(k-1)j, j*s); a transposed conv to (r + (ceil(k/s)-1)j, j/s); nearest upsampling
by u to (r, j/u); linear upsampling to (r + j, j/u); global layers give infinity;
neutral layers change nothing; merges take the union of their inputs' paths.
Every expected number below is worked out in the comments next to it.
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

import rfa_toolbox
from rfa_toolbox import (
    CycleError,
    GraphBuilder,
    ResolutionError,
    analyze,
    is_fully_utilized,
    minimal_feasible_resolution,
    propagate,
)

from conftest import pairs
from conftest import paper_values as load_paper_values


# ---------------------------------------------------------------------------------------------
# the published / hand-checked reference values
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", name="paper_values")
def paper_values_fixture() -> dict:
    return load_paper_values()


def _hand_checked_keys() -> list[str]:
    return list(load_paper_values()["hand_checked"])


def r_min(rf, name):
    """Per-axis r_min of a node from propagate()."""
    return tuple(axis.r_min for axis in rf[name])


def r_max(rf, name):
    return tuple(axis.r_max for axis in rf[name])


def _three_convs():
    # r: 1 -> 3 -> 5 -> 7 (each 3x3 conv at j = 1 adds 2)
    b = GraphBuilder(name="three_convs")
    x = b.input()
    names = []
    for _ in range(3):
        x = b.conv(x, 3)
        names.append(x)
    return b.build(), names


def _strided_convs():
    # (r, j): (1,1) -conv s1-> (3,1) -s2-> (5,2) -s1-> (9,2) -s2-> (13,4) -s1-> (21,4)
    b = GraphBuilder(name="strided_convs")
    x = b.input()
    names = []
    for s in (1, 2, 1, 2, 1):
        x = b.conv(x, 3, stride=s)
        names.append(x)
    return b.build(), names


def _dilated_convs():
    # d(k-1) = 2*2 = 4 per conv: 1 -> 5 -> 9
    b = GraphBuilder(name="dilated_convs")
    x = b.input()
    x1 = b.conv(x, 3, dilation=2)
    x2 = b.conv(x1, 3, dilation=2)
    return b.build(), [x1, x2]


def _diamond():
    # c0: (3, 1). a = conv3/2: (3 + 2, 2) = (5, 2). b = conv5/2: (3 + 4, 2) = (7, 2).
    # merge: {(5, 2), (7, 2)}; conv3 (+2*2 = 4): r_min 9, r_max 11; conv3: 13, 15.
    b = GraphBuilder(name="diamond")
    x = b.input()
    c0 = b.conv(x, 3, name="c0")
    a = b.conv(c0, 3, stride=2, name="a")
    bb = b.conv(c0, 5, stride=2, name="b")
    m = b.add(a, bb, name="merge")
    c1 = b.conv(m, 3, name="c1")
    c2 = b.conv(c1, 3, name="c2")
    return b.build(), [c1, c2]


HAND_CHECKED_BUILDERS = {
    "three 3x3 convs, stride 1": _three_convs,
    "3x3 convs with strides 1,2,1,2,1": _strided_convs,
    "two 3x3 convs with dilation 2": _dilated_convs,
    "diamond: conv3 -> {conv3/2, conv5/2} -> conv3 -> conv3: (r_min, r_max) of the last two": _diamond,
}


def test_every_hand_checked_case_has_a_builder(paper_values):
    assert set(paper_values["hand_checked"]) <= set(HAND_CHECKED_BUILDERS)


@pytest.mark.parametrize("key", _hand_checked_keys())
def test_hand_checked_case(paper_values, key):
    expected = paper_values["hand_checked"][key]
    graph, names = HAND_CHECKED_BUILDERS[key]()
    rf = propagate(graph)
    assert len(names) == len(expected)
    for name, value in zip(names, expected):
        if isinstance(value, list):  # (r_min, r_max)
            lo, hi = value
            assert r_min(rf, name) == (lo, lo), name
            assert r_max(rf, name) == (hi, hi), name
        else:
            assert r_min(rf, name) == (value, value), name
    # analyze() reports the same numbers
    report = analyze(graph, 224, exact=False)
    for name, value in zip(names, expected):
        lo = value[0] if isinstance(value, list) else value
        assert report.layer(name).r_min == (lo, lo)


def test_hand_checked_values_without_the_json():
    """The same cases, with the numbers written here (runs even without the shared folder)."""
    g, names = _three_convs()
    rf = propagate(g)
    assert [r_min(rf, n)[0] for n in names] == [3, 5, 7]
    g, names = _strided_convs()
    rf = propagate(g)
    assert [r_min(rf, n)[0] for n in names] == [3, 5, 9, 13, 21]
    # jumps of the strided chain: 1, 2, 2, 4, 4
    assert [pairs(rf[n][0].mins)[0][1] for n in names] == [1, 2, 2, 4, 4]
    g, names = _dilated_convs()
    rf = propagate(g)
    assert [r_min(rf, n)[0] for n in names] == [5, 9]
    g, names = _diamond()
    rf = propagate(g)
    assert [(r_min(rf, n)[0], r_max(rf, n)[0]) for n in names] == [(9, 11), (13, 15)]
    # the merge itself: r_min 5 (via a), r_max 7 (via b), both with jump 2
    assert pairs(rf["merge"][0].mins) == ((5, 2),)
    assert pairs(rf["merge"][0].maxs) == ((7, 2),)


# ---------------------------------------------------------------------------------------------
# VGG19-like chain: r = 268 at 224
# ---------------------------------------------------------------------------------------------
def vgg19_like():
    """3x3 convs in stages of 2, 2, 4, 4, 4, each closed by a 2x2/2 max pool; GAP + dense.

    stage 1 (j=1):  1 + 2*2*1  =   5, pool1 ->   6 (j=2)
    stage 2 (j=2):  6 + 2*2*2  =  14, pool2 ->  16 (j=4)
    stage 3 (j=4): 16 + 4*2*4  =  48, pool3 ->  52 (j=8)
    stage 4 (j=8): 52 + 4*2*8  = 116, pool4 -> 124 (j=16)
    stage 5 (j=16): conv5_1..4 = 156, 188, 220, 252, pool5 -> 268 (j=32)
    """
    b = GraphBuilder(name="vgg19_like")
    x = b.input(name="image")
    for stage, n in enumerate((2, 2, 4, 4, 4), 1):
        for i in range(1, n + 1):
            x = b.conv(x, 3, name=f"conv{stage}_{i}")
            x = b.neutral(x, "relu", name=f"relu{stage}_{i}")
        x = b.max_pool(x, 2, name=f"pool{stage}")
    x = b.global_pool(x, name="gap")
    x = b.dense(x, name="fc")
    return b.build(outputs=[x])


def test_vgg19_like_receptive_fields():
    rf = propagate(vgg19_like())
    expected = {
        "conv1_1": 3, "conv1_2": 5, "pool1": 6,
        "conv2_1": 10, "conv2_2": 14, "pool2": 16,
        "conv3_1": 24, "conv3_4": 48, "pool3": 52,
        "conv4_1": 68, "conv4_4": 116, "pool4": 124,
        "conv5_1": 156, "conv5_2": 188, "conv5_3": 220, "conv5_4": 252, "pool5": 268,
        "relu5_4": 252,
    }
    for name, value in expected.items():
        assert r_min(rf, name) == (value, value), name
        assert r_max(rf, name) == (value, value), name  # a chain: one path
    assert pairs(rf["pool5"][0].mins) == ((268, 32),)
    assert rf["gap"][0].infinite and not rf["gap"][0].finite
    assert r_min(rf, "fc") == (None, None)


def test_vgg19_like_at_224(paper_values):
    report = analyze(vgg19_like(), 224, exact=False)
    assert report.r == (268, 268)
    assert paper_values["r"]["torchvision:vgg19"] == 268 == paper_values["r"]["keras:VGG19"]
    assert report.max_resolution == (268, 268)
    assert not report.fully_utilized
    # pool5's input (relu5_4) already sees 252 >= 224: unproductive
    assert report.unproductive == ["pool5"]
    # conv5_4: input sees 220 < 224, its own r_min 252 >= 224
    assert report.underutilized == ["conv5_4"]
    assert report.border == []
    assert report.names("head") == ["gap", "fc"]
    assert report.layer("pool5").input_r_min == (252, 252)
    assert report.layer("conv5_4").input_r_min == (220, 220)
    # relu5_4 has r_min 252 >= 224 but is neutral: never a finding
    assert report.layer("relu5_4").status == "ok"
    assert [row.name for row in report.findings] == ["conv5_4", "pool5"]


def test_vgg19_like_at_other_resolutions():
    g = vgg19_like()
    # 253: conv5_4 (252) productive; pool5 input 252 < 253 but r 268 >= 253 -> underutilized
    report = analyze(g, 253, exact=False)
    assert report.unproductive == [] and report.underutilized == ["pool5"]
    # 200: conv5_3 (input 188 < 200, r 220) underutilized; conv5_4 (input 220) and pool5
    # (input 252) unproductive
    report = analyze(g, 200, exact=False)
    assert report.underutilized == ["conv5_3"]
    assert report.unproductive == ["conv5_4", "pool5"]
    # 269 > 268: fully utilized, no findings
    report = analyze(g, 269, exact=False)
    assert report.fully_utilized and report.findings == []


def test_fully_utilized_and_minimal_feasible_resolution():
    g = vgg19_like()
    assert minimal_feasible_resolution(g) == (268, 268)
    assert is_fully_utilized(g, 269) is True
    assert is_fully_utilized(g, 268) is False  # needs R > r
    assert is_fully_utilized(g, "269x268") is False  # one axis is not above r
    assert is_fully_utilized(g, (300, 269)) is True
    assert analyze(g, 268, exact=False).fully_utilized is False
    assert analyze(g, "269x300", exact=False).fully_utilized is True


# ---------------------------------------------------------------------------------------------
# ResNet18-like: max r_max 435
# ---------------------------------------------------------------------------------------------
def resnet18_like():
    """torchvision's resnet18 layout (basic blocks, 1x1/2 downsample on the skip).

    stem conv7/2: (7, j=2); maxpool 3/2: 7 + 2*2 = 11 (j=4).
    Along the longest path every 3x3 conv adds 2j (the strided one at the old j):
    layer1 (j=4):  11 + 4*8            =  43
    layer2:        43 + 8 (s2, j 4->8) + 3*16 =  99
    layer3:        99 + 16 (j 8->16)   + 3*32 = 211
    layer4:       211 + 32 (j 16->32)  + 3*64 = 435
    The shortest path follows every skip: 11 everywhere after the max pool.
    """
    b = GraphBuilder(name="resnet18_like")
    x = b.input(name="image")
    x = b.conv(x, 7, stride=2, name="conv1")
    x = b.neutral(x, "batch_norm", name="bn1")
    x = b.neutral(x, "relu", name="relu")
    x = b.max_pool(x, 3, stride=2, name="maxpool")
    for stage in range(1, 5):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = b.conv(x, 3, stride=stride, name=f"{p}.conv1")
            y = b.neutral(y, "relu", name=f"{p}.relu1")
            y = b.conv(y, 3, name=f"{p}.conv2")
            skip = b.conv(x, 1, stride=2, name=f"{p}.downsample") if stride == 2 else x
            x = b.add(y, skip, name=f"{p}.add")
            x = b.neutral(x, "relu", name=f"{p}.relu2")
    x = b.global_pool(x, name="avgpool")
    x = b.dense(x, name="fc")
    return b.build(outputs=[x])


def test_resnet18_like(paper_values):
    g = resnet18_like()
    rf = propagate(g)
    # hand-computed (r_min, r_max), see the docstring: the skip keeps r_min at 11
    expected = {
        "maxpool": (11, 11),
        "layer1.0.add": (11, 27), "layer1.1.add": (11, 43),
        "layer2.0.conv1": (19, 51), "layer2.0.conv2": (35, 67), "layer2.0.downsample": (11, 43),
        "layer2.1.add": (11, 99),
        "layer3.1.add": (11, 211),
        "layer4.0.conv1": (43, 243), "layer4.0.conv2": (107, 307),
        "layer4.1.conv1": (75, 371), "layer4.1.conv2": (139, 435), "layer4.1.add": (11, 435),
    }
    for name, (lo, hi) in expected.items():
        assert r_min(rf, name) == (lo, lo), name
        assert r_max(rf, name) == (hi, hi), name
    report = analyze(g, 224, exact=False)
    assert report.max_resolution == (435, 435) == (paper_values["r_max"]["torchvision:resnet18"],) * 2
    # r: the largest r_min, layer4.1.conv2 = 75 + 64 = 139
    assert report.r == (139, 139)
    assert report.fully_utilized and report.findings == []
    # at 100: layer4.0.conv2 (input 43 < 100, r_min 107) and layer4.1.conv2 (input 75 < 100,
    # r_min 139) are the only findings; layer4.1.conv1 (r_min 75) is fine
    report = analyze(g, 100, exact=False)
    assert report.underutilized == ["layer4.0.conv2", "layer4.1.conv2"]
    assert report.unproductive == [] and report.border == []
    assert report.layer("layer4.1.add").r_max == (435, 435)


# ---------------------------------------------------------------------------------------------
# statuses on small graphs
# ---------------------------------------------------------------------------------------------
def chain5():
    """Five 3x3 convs with relus: r = 3, 5, 7, 9, 11; then GAP and a dense head."""
    b = GraphBuilder(name="chain5")
    x = b.input(name="x")
    for i in range(1, 6):
        x = b.conv(x, 3, name=f"c{i}")
        x = b.neutral(x, "relu", name=f"r{i}")
    x = b.global_pool(x, name="gap")
    b.dense(x, name="fc")
    return b.build()


def test_statuses_at_8():
    report = analyze(chain5(), 8, exact=False)
    status = {row.name: row.status for row in report.layers}
    # c4: input 7 < 8, r 9 >= 8 -> underutilized; c5: input 9 >= 8 -> unproductive
    assert status == {
        "x": "ok", "c1": "ok", "r1": "ok", "c2": "ok", "r2": "ok", "c3": "ok", "r3": "ok",
        "c4": "underutilized", "r4": "ok", "c5": "unproductive", "r5": "ok",
        "gap": "head", "fc": "head",
    }
    assert report.r == (11, 11)
    assert report.resolution == (8, 8)
    assert not report.fully_utilized


def test_statuses_at_11_and_12():
    # R = 11: c5 input 9 < 11, r 11 >= 11 -> underutilized (>=, not >)
    report = analyze(chain5(), 11, exact=False)
    assert report.underutilized == ["c5"] and report.unproductive == [] and not report.fully_utilized
    report = analyze(chain5(), 12, exact=False)
    assert report.findings == [] and report.fully_utilized


@pytest.mark.parametrize("resolution", ["8x16", (8, 16), [8, 16], " 8X16 "])
def test_non_square_resolution_gives_border(resolution):
    report = analyze(chain5(), resolution, exact=False)
    assert report.resolution == (8, 16)
    # c4: r (9, 9) reaches 8 on axis 0 only -> border; c5: input (9, 9) does not reach 16 on
    # axis 1, so it is not unproductive; r (11, 11) -> border
    assert report.border == ["c4", "c5"]
    assert report.unproductive == [] and report.underutilized == []
    assert not report.fully_utilized
    # the transposed resolution gives the same layers
    assert analyze(chain5(), (16, 8)).border == ["c4", "c5"]


def test_non_square_kernels_per_axis():
    b = GraphBuilder(name="factorized")
    x = b.input(name="x")
    c1 = b.conv(x, (1, 7), name="c1")                  # (1, 7), j (1, 1)
    c2 = b.conv(c1, [1, 7], stride=(1, 2), name="c2")  # (1, 13), j (1, 2)
    c3 = b.conv(c2, (3, 1), name="c3")                  # (3, 13)
    c4 = b.conv(c3, (1, 3), name="c4")                  # (3, 13 + 2*2) = (3, 17)
    g = b.build()
    rf = propagate(g)
    assert r_min(rf, c1) == (1, 7)
    assert r_min(rf, c2) == (1, 13)
    assert pairs(rf[c2][0].mins) == ((1, 1),) and pairs(rf[c2][1].mins) == ((13, 2),)
    assert r_min(rf, c3) == (3, 13)
    assert r_min(rf, c4) == (3, 17)
    report = analyze(g, (2, 16), exact=False)
    # c3: r (3, 13) reaches 2 on axis 0 only -> border;
    # c4: input (3, 13) not >= (2, 16) on both -> productive; r (3, 17) >= (2, 16) -> underutilized
    assert report.border == ["c3"]
    assert report.underutilized == ["c4"]
    assert report.unproductive == []
    assert report.r == (3, 17)
    assert minimal_feasible_resolution(g) == (3, 17)


# ---------------------------------------------------------------------------------------------
# upsampling and transposed convolutions: rational jumps
# ---------------------------------------------------------------------------------------------
def test_nearest_upsampling():
    b = GraphBuilder(name="up_nearest")
    x = b.input(name="x")
    u = b.upsample(x, 2, name="u")                 # (1, 1/2)
    c1 = b.conv(u, 3, name="c1")                   # (1 + 2*1/2, 1/2) = (2, 1/2)
    c2 = b.conv(c1, 3, stride=2, name="c2")        # (2 + 1, 1) = (3, 1)
    c3 = b.conv(c2, 3, name="c3")                  # (5, 1)
    rf = propagate(b.build())
    assert pairs(rf[u][0].mins) == ((1, Fraction(1, 2)),)
    assert pairs(rf[c1][0].mins) == ((2, Fraction(1, 2)),)
    assert pairs(rf[c2][0].mins) == ((3, 1),)
    assert pairs(rf[c3][0].mins) == ((5, 1),)


def test_linear_upsampling():
    b = GraphBuilder(name="up_linear")
    x = b.input(name="x")
    u = b.upsample(x, 2, mode="linear", name="u")  # (1 + 1, 1/2) = (2, 1/2)
    c1 = b.conv(u, 3, name="c1")                   # (2 + 1, 1/2) = (3, 1/2)
    s = b.conv(x, 3, stride=2, name="s")           # (3, 2)
    v = b.upsample(s, 2, mode="bilinear", name="v")  # (3 + 2, 1) = (5, 1)
    c2 = b.conv(v, 3, name="c2")                   # (7, 1)
    g = b.build()
    rf = propagate(g)
    assert pairs(rf[u][0].mins) == ((2, Fraction(1, 2)),)
    assert pairs(rf[c1][0].mins) == ((3, Fraction(1, 2)),)
    assert pairs(rf[v][0].mins) == ((5, 1),) and pairs(rf[v][1].mins) == ((5, 1),)
    assert pairs(rf[c2][0].mins) == ((7, 1),)
    assert g[v].mode == "bilinear"


def test_bicubic_upsampling_reads_four_taps():
    # bicubic reads 4 input positions per axis: r + (4-1)j, j/u (the linear family reads 2)
    b = GraphBuilder(name="up_bicubic")
    x = b.input(name="x")
    s = b.conv(x, 3, stride=2, name="s")                     # (3, 2)
    u = b.upsample(s, 2, mode="bicubic", name="u")           # (3 + 3*2, 1) = (9, 1)
    a = b.upsample(s, 2, mode="area", name="a")              # area: like nearest, (3, 1)
    t = b.upsample(s, (2, 4), mode="trilinear", name="t")    # (3 + 2, 2/2) and (5, 2/4)
    rf = propagate(b.build())
    assert pairs(rf[u][0].mins) == ((9, 1),)
    assert pairs(rf[a][0].mins) == ((3, 1),)
    assert pairs(rf[t][0].mins) == ((5, 1),) and pairs(rf[t][1].mins) == ((5, Fraction(1, 2)),)


def test_fractional_receptive_fields_and_factors():
    b = GraphBuilder(name="fractions")
    x = b.input(name="x")
    u = b.upsample(x, 3, name="u")                 # (1, 1/3)
    c = b.conv(u, 2, name="c")                     # (1 + 1/3, 1/3) = (4/3, 1/3)
    s = b.conv(x, 3, stride=3, name="s")           # (3, 3)
    v = b.upsample(s, "3/2", name="v")             # (3, 3 / (3/2)) = (3, 2)
    w = b.conv(v, 3, name="w")                     # (3 + 2*2, 2) = (7, 2)
    g = b.build()
    rf = propagate(g)
    assert pairs(rf[c][0].mins) == ((Fraction(4, 3), Fraction(1, 3)),)
    assert pairs(rf[v][0].mins) == ((3, 2),)
    assert pairs(rf[w][0].mins) == ((7, 2),)
    report = analyze(g, 64, exact=False)
    assert report.layer("c").r_min == (1.333333, 1.333333)  # plain(): a rounded float
    assert report.r == (7, 7)
    # the note about position-dependent receptive fields names the upsampling layers
    assert len(report.notes) == 1 and "u" in report.notes[0] and "v" in report.notes[0]


def test_transposed_convolutions():
    b = GraphBuilder(name="transposed")
    x = b.input(name="x")
    s = b.conv(x, 3, stride=2, name="s")               # (3, 2)
    t = b.conv_transpose(s, 4, stride=2, name="t")     # ceil(4/2)-1 = 1: (3 + 2, 1) = (5, 1)
    c = b.conv(t, 3, name="c")                         # (7, 1)
    t1 = b.conv_transpose(x, 3, stride=2, name="t1")   # ceil(3/2)-1 = 1: (2, 1/2)
    t2 = b.conv_transpose(t1, 3, stride=2, name="t2")  # (2 + 1/2, 1/4) = (5/2, 1/4)
    c2 = b.conv(t2, 3, name="c2")                      # (5/2 + 2/4, 1/4) = (3, 1/4)
    t3 = b.conv_transpose(x, 2, stride=2, name="t3")   # ceil(2/2)-1 = 0: (1, 1/2)
    t4 = b.conv_transpose(x, 5, stride=2, name="t4")   # ceil(5/2)-1 = 2: (3, 1/2)
    t5 = b.conv_transpose(x, 3, stride=1, name="t5")   # stride 1: like a conv, (3, 1)
    g = b.build()
    rf = propagate(g)
    assert pairs(rf[t][0].mins) == ((5, 1),)
    assert pairs(rf[c][0].mins) == ((7, 1),)
    assert pairs(rf[t1][0].mins) == ((2, Fraction(1, 2)),)
    assert pairs(rf[t2][0].mins) == ((Fraction(5, 2), Fraction(1, 4)),)
    assert pairs(rf[c2][0].mins) == ((3, Fraction(1, 4)),)
    assert pairs(rf[t3][0].mins) == ((1, Fraction(1, 2)),)
    assert pairs(rf[t4][0].mins) == ((3, Fraction(1, 2)),)
    assert pairs(rf[t5][0].mins) == ((3, 1),)
    report = analyze(g, 64, exact=False)
    assert report.layer("t2").r_min == (2.5, 2.5)
    assert report.notes and "t1" in report.notes[0]


def test_transposed_and_upsample_mixed_paths():
    # merge of a fine and a coarse path: mins keep both Pareto pairs
    b = GraphBuilder(name="unet_like")
    x = b.input(name="x")
    e = b.conv(x, 3, name="e")                        # (3, 1)
    d = b.conv(e, 3, stride=2, name="d")              # (5, 2)
    m = b.conv(d, 3, name="m")                        # (9, 2)
    u = b.upsample(m, 2, name="u")                    # (9, 1)
    cat = b.concat(e, u, name="cat")                  # {(3, 1), (9, 1)}
    o = b.conv(cat, 3, name="o")                      # {(5, 1), (11, 1)}
    rf = propagate(b.build())
    assert pairs(rf[cat][0].mins) == ((3, 1),) and pairs(rf[cat][0].maxs) == ((9, 1),)
    assert (rf[o][0].r_min, rf[o][0].r_max) == (5, 11)


# ---------------------------------------------------------------------------------------------
# global layers: heads, SE-like gates, one axis only
# ---------------------------------------------------------------------------------------------
def test_global_pool_makes_a_head():
    b = GraphBuilder(name="head")
    x = b.input(name="x")
    c = b.conv(x, 3, name="c")
    gp = b.global_pool(c, kind="max", name="gp")
    fl = b.flatten(gp, name="flat")
    fc = b.dense(fl, name="fc")
    g = b.build()
    rf = propagate(g)
    for name in (gp, fl, fc):
        assert r_min(rf, name) == (None, None) and r_max(rf, name) == (None, None)
        assert all(axis.infinite for axis in rf[name])
    report = analyze(g, 2, exact=False)
    # c: r 3 >= 2 -> underutilized; the head is reported apart
    assert report.names("head") == ["gp", "flat", "fc"]
    assert report.underutilized == ["c"]
    assert report.r == (3, 3) and report.max_resolution == (3, 3)
    assert report.layer("fc").input_r_min == (None, None)
    d = report.to_dict()
    row = next(r for r in d["layers"] if r["name"] == "gp")
    assert row["r_min"] == [None, None] and row["r_max"] == [None, None] and row["status"] == "head"


def test_se_like_mul_of_finite_and_infinite_paths():
    b = GraphBuilder(name="se")
    x = b.input(name="x")
    c1 = b.conv(x, 3, name="c1")                  # (3, 1)
    gp = b.global_pool(c1, name="gp")             # infinite
    f1 = b.conv(gp, 1, name="f1")                 # 1x1 convs after the pool stay infinite
    f2 = b.neutral(f1, "activation", name="sig")
    m = b.mul(c1, f2, name="gate")                # finite path (3) and infinite path
    c2 = b.conv(m, 3, name="c2")                  # (5, 1), still with an infinite path
    g = b.build()
    rf = propagate(g)
    assert r_min(rf, f1) == (None, None)
    assert r_min(rf, m) == (3, 3) and r_max(rf, m) == (3, 3)
    assert all(axis.infinite and axis.finite for axis in rf[m])
    assert r_min(rf, c2) == (5, 5) and all(axis.infinite for axis in rf[c2])
    report = analyze(g, 4, exact=False)
    assert report.layer("gate").status == "ok"            # a merge, not a head
    assert report.layer("c2").status == "underutilized"   # input 3 < 4, r 5 >= 4
    assert report.layer("c2").input_r_min == (3, 3)
    assert report.names("head") == ["gp", "f1", "sig"]
    assert report.r == (5, 5)


def test_global_over_one_axis():
    b = GraphBuilder(name="collapse_height")
    x = b.input(name="x")
    c1 = b.conv(x, 3, name="c1")                              # (3, 3)
    gp = b.layer("global_avg_pool", [c1], name="gp", axes=[0])  # (inf, 3)
    c2 = b.conv(gp, 3, name="c2")                             # (inf, 5)
    g = b.build()
    assert g[gp].global_axes == (0,)
    rf = propagate(g)
    assert r_min(rf, gp) == (None, 3) and r_max(rf, gp) == (None, 3)
    assert rf[gp][0].infinite and not rf[gp][1].infinite
    assert r_min(rf, c2) == (None, 5)
    report = analyze(g, 100, exact=False)
    assert report.r == (3, 5)               # axis 0: only c1 and x are finite
    assert report.max_resolution == (3, 5)
    assert report.layer("c2").r_min == (None, 5)
    assert report.layer("c2").input_r_min == (None, 3)
    assert report.names("head") == []       # finite on axis 1: not a head
    # the collapsed axis is left out of the statuses, as heads are: nothing reaches 100
    assert report.findings == []
    # at 4: gp (3 < 4 on its finite axis) is ok; c2 (input 3 < 4, r 5 >= 4) underutilized
    report = analyze(g, 4, exact=False)
    assert report.layer("gp").status == "ok"
    assert report.underutilized == ["c2"] and report.border == [] and report.unproductive == []
    # at 3: c1 (3 >= 3) underutilized; gp and c2 are fed 3 >= 3 on axis 1: unproductive
    report = analyze(g, 3, exact=False)
    assert report.underutilized == ["c1"] and report.unproductive == ["gp", "c2"]
    # at (100, 4): only axis 1 matters after the pool; c1 (3, 3) reaches neither axis
    report = analyze(g, (100, 4), exact=False)
    assert report.underutilized == ["c2"] and report.border == []
    # at (2, 100): c1 reaches axis 0 only -> border; gp and c2 only look at axis 1 -> ok
    report = analyze(g, (2, 100), exact=False)
    assert report.border == ["c1"] and report.layer("c2").status == "ok"
    # axes=[0, 1] is a full global pool
    b = GraphBuilder()
    b.layer("global_max_pool", [b.conv(b.input(), 3)], name="all", axes=[1, 0])
    assert r_min(propagate(b.build()), "all") == (None, None)


# ---------------------------------------------------------------------------------------------
# 1-D and 3-D
# ---------------------------------------------------------------------------------------------
def test_one_dimensional_graph():
    b = GraphBuilder(ndim=1, name="audio")
    x = b.input(name="x")
    c1 = b.conv(x, 5, stride=2, name="c1")          # (5, 2)
    p = b.max_pool(c1, 3, stride=2, name="p")        # (5 + 2*2, 4) = (9, 4)
    c2 = b.conv(p, 3, dilation=2, name="c2")         # (9 + 2*2*4, 4) = (25, 4)
    g = b.build()
    rf = propagate(g)
    assert len(rf[c2]) == 1
    assert pairs(rf[c1][0].mins) == ((5, 2),)
    assert pairs(rf[p][0].mins) == ((9, 4),)
    assert pairs(rf[c2][0].mins) == ((25, 4),)
    report = analyze(g, 20, exact=False)
    assert report.resolution == (20,) and report.r == (25,)
    assert report.underutilized == ["c2"]           # input 9 < 20, r 25 >= 20
    assert analyze(g, "30", exact=False).fully_utilized
    with pytest.raises(ResolutionError):
        analyze(g, (20, 20), exact=False)


def test_three_dimensional_graph():
    b = GraphBuilder(ndim=3, name="video")
    x = b.input(name="x")
    c1 = b.conv(x, (3, 5, 7), name="c1")              # (3, 5, 7)
    p = b.max_pool(c1, 2, name="p")                    # +1 per axis, j 2: (4, 6, 8)
    c2 = b.conv(p, 3, stride=(1, 2, 1), name="c2")     # +2*2: (8, 10, 12), j (2, 4, 2)
    g = b.build()
    rf = propagate(g)
    assert r_min(rf, p) == (4, 6, 8)
    assert r_min(rf, c2) == (8, 10, 12)
    assert [axis.mins[0][1] for axis in rf[c2]] == [2, 4, 2]
    report = analyze(g, "8x16x16", exact=False)
    assert report.border == ["c2"]                     # 8 >= 8 on axis 0 only
    assert analyze(g, (8, 10, 12), exact=False).underutilized == ["c2"]  # input (4, 6, 8) below, r reaches
    assert minimal_feasible_resolution(g) == (8, 10, 12)
    assert is_fully_utilized(g, "9x11x13") and not is_fully_utilized(g, "9x11x12")


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------
SCHEMA_KEYS = {"schema", "model", "resolution", "r", "max_resolution", "fully_utilized",
               "layers", "unproductive", "underutilized", "border", "unknown_ops"}


def test_report_to_dict_schema():
    report = analyze(chain5(), "8x16", exact=False)
    d = report.to_dict()
    assert set(d) >= SCHEMA_KEYS
    assert set(d) - SCHEMA_KEYS <= {"notes", "exact", "outputs"}
    assert d["schema"] == "rfa-toolbox/report/v2" and d["exact"] is False
    (out,) = d["outputs"]  # the one output: the last layer, its field and its centre unit's box
    last = d["layers"][-1]
    assert (out["label"], out["layer"], out["r_max"]) == (last["name"], last["name"], last["r_max"])
    assert d["model"] == "chain5"
    assert d["resolution"] == [8, 16]
    assert d["r"] == [11, 11] and d["max_resolution"] == [11, 11]
    assert d["fully_utilized"] is False
    assert d["unproductive"] == [] and d["underutilized"] == [] and d["border"] == ["c4", "c5"]
    assert d["unknown_ops"] == []
    assert [row["name"] for row in d["layers"]] == [
        "x", "c1", "r1", "c2", "r2", "c3", "r3", "c4", "r4", "c5", "r5", "gap", "fc"]
    rows = {row["name"]: row for row in d["layers"]}
    assert rows["c4"]["r_min"] == [9, 9] and rows["c4"]["input_r_min"] == [7, 7]
    assert rows["c4"]["kernel"] == [3, 3] and rows["c4"]["stride"] == [1, 1]
    assert rows["c4"]["status"] == "border" and rows["c4"]["computes"] is True
    assert rows["gap"]["r_min"] == [None, None] and rows["fc"]["r_max"] == [None, None]
    assert rows["x"]["input_r_min"] is None
    # where units look (v2): four 3x3 convs without padding, stride 1: unit 0 reads 0..8
    assert rows["c4"]["jump"] == [1, 1] and rows["c4"]["offset"] == [0, 0] and rows["c4"]["centre"] == [4, 4]
    assert rows["c4"]["aligned"] == [True, True] and "r_min_rule" not in rows["c4"]
    text = report.to_json()
    assert "null" in text and "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == d


def test_neutral_and_merge_layers_are_never_findings():
    b = GraphBuilder(name="neutrals")
    x = b.input(name="x")
    c1 = b.conv(x, 5, name="c1")                    # 5
    c2 = b.conv(c1, 5, name="c2")                   # 9
    n = c2
    for op in ("relu", "batch_norm", "norm", "identity", "dropout", "pad", "channel_shuffle",
               "activation", "neutral"):
        n = b.neutral(n, op, name=op)
    a = b.add(n, c2, name="add")
    cat = b.concat(a, c1, name="cat")
    b.mul(cat, a, name="mul")
    g = b.build()
    # at 4: c1 (5 >= 4, input 1) underutilized; c2 (input 5 >= 4) unproductive; every neutral
    # and merge layer sees >= 4 and is fed >= 4 (except cat: min input 5), and is still "ok"
    for resolution in (4, "4x100", 100):
        report = analyze(g, resolution, exact=False)
        for row in report.layers:
            if row.name not in ("c1", "c2"):
                assert row.status == "ok", (resolution, row.name)
                assert not row.is_finding
    report = analyze(g, 4, exact=False)
    assert report.underutilized == ["c1"] and report.unproductive == ["c2"]
    assert report.layer("mul").r_min == (5, 5) and report.layer("mul").r_max == (9, 9)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_cycle_raises_cycle_error_naming_the_nodes():
    b = GraphBuilder(name="loop")
    x = b.input(name="x")
    a = b.conv(x, 3, name="alpha")
    m = b.conv(a, 3, name="beta")
    c = b.conv(m, 3, name="gamma")
    b.conv(c, 3, name="after")
    g = b.graph
    g.connect("gamma", "alpha")                     # alpha -> beta -> gamma -> alpha
    for call in (lambda: propagate(g), lambda: analyze(g, 224, exact=False), g.validate,
                 lambda: minimal_feasible_resolution(g)):
        with pytest.raises(CycleError) as info:
            call()
        assert sorted(info.value.nodes) == ["alpha", "beta", "gamma"]
        message = str(info.value)
        assert "cycle" in message
        for name in ("alpha", "beta", "gamma"):
            assert name in message
        assert "after" not in message and "'x'" not in message


def test_self_loop_is_a_cycle():
    b = GraphBuilder()
    c = b.conv(b.input(), 3, name="c")
    b.graph.connect(c, c)
    with pytest.raises(CycleError) as info:
        propagate(b.graph)
    assert info.value.nodes == ["c"]


@pytest.mark.parametrize("bad", [0, -1, "abc", "0x224", "224x-3", "", [224, 224, 224],
                                 "224x224x3", (224,) * 3, True, 224.0, [224, "a"]])
def test_bad_resolutions(bad):
    g = chain5()
    with pytest.raises(ResolutionError) as info:
        analyze(g, bad, exact=False)
    assert "resolution" in str(info.value)
    with pytest.raises(ResolutionError):
        is_fully_utilized(g, bad)


def test_wrong_axis_count_message():
    with pytest.raises(ResolutionError) as info:
        analyze(chain5(), [224, 224, 224], exact=False)
    message = str(info.value)
    assert "3 axes" in message and "2 spatial axes" in message


def test_errors_are_rfa_errors():
    # every user-facing error derives from RFAError (the CLI prints them as one line)
    for cls in (CycleError, ResolutionError, rfa_toolbox.SpecError, rfa_toolbox.UnknownOpError,
                rfa_toolbox.GraphError):
        assert issubclass(cls, rfa_toolbox.RFAError)
