"""SpineNet: the framework-free builder against the PyTorch example traced with the JIT."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from rfa_toolbox import propagate
from rfa_toolbox.graph import Transfer
from rfa_toolbox.zoo.spinenet import (
    BLOCK_SPECS,
    SCALING,
    output_receptive_fields,
    spinenet_graph,
    variant_name,
)

from conftest import EXAMPLES, ROOT

LEVELS = ["P3", "P4", "P5", "P6", "P7"]


def load_example():
    spec = importlib.util.spec_from_file_location("spinenet49_example", EXAMPLES / "spinenet49.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("torch")
    return load_example()


_TRACES: dict = {}


def traced(example, variant: str, size: tuple[int, int]):
    """The example traced on a (non-square) input; traced once per variant and size."""
    import torch
    from rfa_toolbox.encoders.torch import encode

    if (variant, size) not in _TRACES:
        torch.manual_seed(0)
        _TRACES[variant, size] = encode(example.SpineNet(variant), torch.rand(1, 3, *size))
    return _TRACES[variant, size]


@pytest.mark.parametrize("variant, size", [("49", (256, 384)), ("96", (256, 256))])
def test_builder_and_traced_example_agree_on_every_output(example, variant, size):
    graph = traced(example, variant, size)
    assert len(graph.outputs) == 5
    got = output_receptive_fields(graph)
    want = output_receptive_fields(spinenet_graph(variant))
    assert list(got) == list(want) == LEVELS
    for level in LEVELS:
        (t_min, t_max), (b_min, b_max) = got[level], want[level]
        assert len(t_min) == len(t_max) == 2  # both axes
        assert t_min == b_min, level
        assert t_max == b_max, level


def test_traced_example_has_the_same_resampling_ops(example):
    graph, built = traced(example, "49", (256, 384)), spinenet_graph("49")

    def ops(g, transfer):
        return sorted((layer.op, layer.kernel, layer.stride, layer.factor) for layer in g if layer.transfer is transfer)

    assert ops(graph, Transfer.UPSAMPLE) == ops(built, Transfer.UPSAMPLE)
    assert ops(graph, Transfer.WINDOW) == ops(built, Transfer.WINDOW)

    def sums(g):  # two-input additions: a sum of n terms counts n - 1
        return sum(len(g.predecessors(layer.name)) - 1 for layer in g if layer.transfer is Transfer.MERGE)

    assert sums(graph) == sums(built)  # includes block 11 joining output block 14


def test_published_values_spinenet49():
    rf = output_receptive_fields(spinenet_graph("49"))
    r_min = {level: rf[level][0] for level in LEVELS}
    # by hand: stem 7x7/2 then 3x3/2 pool: r 11, jump 4; the shortest path to L3 goes down to
    # L2 (3x3/2 conv: 19, jump 8); L4, L5, L6 add one 3x3/2 conv (+2 jumps) each; P7 comes
    # from the L4 block (r 35, jump 16): 3x3/2 conv (67, 32) and a 5x5/4 pool (+4*32 = 195).
    assert r_min == {"P3": (19, 19), "P4": (35, 35), "P5": (67, 67), "P6": (131, 131),
                     "P7": (195, 195)}
    assert {level: rf[level][1][0] for level in LEVELS} == {
        "P3": 1443, "P4": 1459, "P5": 1555, "P6": 1747, "P7": 2003}
    assert r_min["P7"][0] > r_min["P3"][0]


def test_stem_by_hand():
    graph = spinenet_graph("49")
    rf = propagate(graph)
    conv = graph["stem.conv"]
    assert (conv.kernel, conv.stride) == ((7, 7), (2, 2))
    assert (conv.in_channels, conv.out_channels, conv.params) == (3, 64, 7 * 7 * 3 * 64)
    assert rf["stem.conv"][0].r_min == rf["stem.conv"][0].r_max == 7
    assert rf["stem.pool"][0].r_min == rf["stem.pool"][0].r_max == 11  # 7 + 2*2
    # first stem bottleneck: the projection shortcut keeps 11, the 3x3 adds 2 * 4
    assert (rf["block0.0.add"][0].r_min, rf["block0.0.add"][0].r_max) == (11, 19)
    assert (rf["block1.0.add"][0].r_min, rf["block1.0.add"][0].r_max) == (11, 27)
    assert "block0.0.shortcut" in graph and "block1.0.shortcut" not in graph


def test_graph_has_upsampling_and_merges_across_levels():
    graph = spinenet_graph("49")
    ups = [layer for layer in graph if layer.transfer is Transfer.UPSAMPLE]
    assert ups and all(layer.mode == "nearest" and layer.factor[0] in (2, 4, 8, 16, 32) for layer in ups)
    assert any(layer.op == "max_pool" and layer.name.endswith(".pool") for layer in graph)
    # block 4 (level 3) sums block 2 brought down from level 2 and block 3 brought up from 4
    inputs = graph.predecessors("block4.merge")
    assert inputs == ["block4.resample0.expand", "block4.resample1.expand"]
    assert graph.predecessors("block4.resample0.expand") == ["block4.resample0.down"]
    assert graph.predecessors("block4.resample1.expand") == ["block4.resample1.upsample"]
    rf = propagate(graph)
    jumps = {rf[n][0].mins[0][1] for n in graph.predecessors("block4.resample0.squeeze")
             + graph.predecessors("block4.resample1.squeeze")}
    assert jumps == {4, 16}  # the parents live at levels 2 and 4
    merges = [layer.name for layer in graph if layer.transfer is Transfer.MERGE and layer.name.endswith(".merge")]
    assert len(merges) == len(BLOCK_SPECS)


def test_output_block_takes_blocks_that_feed_nothing():
    # block 11 (level 5, bottleneck) feeds no block; output block 14 (level 5) adds it
    graph = spinenet_graph("49")
    assert graph.predecessors("block14.merge")[2] == "block11.0.add"
    assert all(len(graph.predecessors(f"block{k}.merge")) == 2 for k in range(2, 17) if k != 14)


@pytest.mark.parametrize("variant", ["96", "143", "190"])
def test_bigger_variants(variant):
    base, graph = spinenet_graph("49"), spinenet_graph(variant)
    assert len(graph) > len(base)
    assert len(graph.outputs) == 5 and [n.split(".")[-1] for n in graph.outputs] == LEVELS
    repeats = SCALING[variant].block_repeats
    assert f"block16.{repeats - 1}.conv3" in graph and f"block16.{repeats}.conv1" not in graph
    rf, rf49 = output_receptive_fields(graph), output_receptive_fields(base)
    for level in LEVELS:  # identity shortcuts keep r_min; deeper groups grow r_max
        assert rf[level][0] == rf49[level][0]
        assert rf[level][1][0] > rf49[level][1][0]


def test_widths_follow_the_scaling_rules():
    small, base, large = spinenet_graph("49S"), spinenet_graph("49"), spinenet_graph("190")
    assert len(small) == len(base)
    assert base["block4.0.conv2"].out_channels == 128
    assert small["block4.0.conv2"].out_channels == int(128 * 0.65)
    assert large["block4.0.conv2"].out_channels == int(128 * 1.3)
    assert [base[n].out_channels for n in base.outputs] == [256] * 5
    assert [small[n].out_channels for n in small.outputs] == [128] * 5
    assert [large[n].out_channels for n in large.outputs] == [512] * 5
    assert base["block4.resample0.squeeze"].out_channels == 32  # 256/4 * alpha 0.5
    assert large["block4.resample0.squeeze"].out_channels == int(64 * 1.3)  # alpha 1


def test_max_pool_schemes():
    single, repeated = spinenet_graph("49"), spinenet_graph("49", max_pool="repeated")
    pools = [layer for layer in single if layer.name.endswith(".pool")]
    assert {(layer.kernel[0], layer.stride[0]) for layer in pools} <= {(3, 2), (5, 4), (5, 8), (5, 16)}
    assert all(layer.kernel == (3, 3) and layer.stride == (2, 2)
               for layer in repeated if ".pool" in layer.name and layer.name != "stem.pool")
    # P7 from the level-4 block: 35 + 2*16 (conv) + 2*32 + 2*64 (two 3x3/2 pools) = 259
    assert output_receptive_fields(repeated)["P7"][0] == (259, 259)


def test_variant_names_and_errors():
    assert variant_name(49) == variant_name("SpineNet-49") == variant_name("spinenet49") == "49"
    assert variant_name("49s") == "49S"
    with pytest.raises(ValueError, match="unknown SpineNet variant"):
        spinenet_graph("50")
    with pytest.raises(ValueError, match="max_pool"):
        spinenet_graph("49", max_pool="avg")
    with pytest.raises(ValueError, match="parents"):
        spinenet_graph("49", block_specs=[(3, "bottleneck", (0, 5), True)])


def test_labels_fall_back_to_output_order():
    from rfa_toolbox import GraphBuilder

    b = GraphBuilder()
    x = b.conv(b.input(), 3, stride=2)
    y = b.conv(x, 3, stride=2)
    rf = output_receptive_fields(b.build(outputs=[x, y]))
    assert rf == {"P3": ((3, 3), (3, 3)), "P4": ((7, 7), (7, 7))}


def test_builder_needs_no_framework():
    code = ("import sys; from rfa_toolbox.zoo.spinenet import spinenet_graph; spinenet_graph('190');"
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
