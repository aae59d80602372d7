"""RegNet design space and NAS filters."""

from __future__ import annotations

import pytest

from rfa_toolbox import analyze, nas
from rfa_toolbox.analysis import exact_r
from rfa_toolbox.zoo.regnet import PRESETS, regnet_graph, regnet_r, sample

# Stage widths of the paper's models (pycls), for the presets torchvision does not ship.
PAPER_WIDTHS = {
    "regnet_x_200mf": [24, 56, 152, 368], "regnet_y_200mf": [24, 56, 152, 368],
    "regnet_x_600mf": [48, 96, 240, 528], "regnet_y_600mf": [48, 112, 256, 608],
    "regnet_x_4_0gf": [80, 240, 560, 1360], "regnet_y_4_0gf": [128, 192, 512, 1088],
    "regnet_x_6_4gf": [168, 392, 784, 1624], "regnet_y_6_4gf": [144, 288, 576, 1296],
    "regnet_x_12gf": [224, 448, 896, 2240], "regnet_y_12gf": [224, 448, 896, 2240],
}


@pytest.mark.parametrize("name", sorted(PAPER_WIDTHS))
def test_presets_not_in_torchvision_give_the_paper_widths(name):
    assert [w for w, _, _ in PRESETS[name].stages()] == PAPER_WIDTHS[name]


def test_sampled_configurations_are_valid_and_reproducible():
    first = sample("X", 200, seed=7)
    assert first == sample("X", 200, seed=7) and first != sample("X", 200, seed=8)
    for params in first + sample("Y", 100, seed=3):
        stages = params.stages()
        assert len(stages) == 4 and 12 <= params.depth <= 28
        for width, depth, group in stages:
            assert width % 8 == 0 and width % group == 0 and depth >= 1


@pytest.mark.parametrize("space", ["X", "Y"])
def test_fast_r_equals_the_graph_analysis(space):
    for params in sample(space, 60, seed=11):
        assert regnet_r(params) == exact_r(regnet_graph(params))


def test_verdicts_and_band():
    params = PRESETS["regnet_x_400mf"]          # r = 67
    assert nas.evaluate(params, 224).passes
    assert not nas.evaluate(params, 64).fully_utilized
    assert nas.evaluate(params, 80, band=0.8).passes       # 67 >= 64
    assert not nas.evaluate(params, 224, band=0.5).passes  # 67 < 112: wastes nothing, but not just enough
    graph = regnet_graph(params)
    assert nas.evaluate(graph, 80) == nas.evaluate(params, 80)


def test_keep_in_a_process_pool_equals_serial():
    candidates = sample("Y", 40, seed=5)
    serial = nas.keep(candidates, 64)
    assert 0 < len(serial) < len(candidates)
    assert nas.keep(candidates, 64, processes=2) == serial


def test_detection_backbone_outputs_at_800x1333():
    graph = regnet_graph(PRESETS["regnet_x_3_2gf"], backbone=True)
    assert len(graph.outputs) == 4
    report = analyze(graph, "800x1333")
    assert report.resolution == (800, 1333) and report.fully_utilized
    maxes = [report.layer(n).r_max[0] for n in graph.outputs]
    assert maxes == sorted(maxes) and maxes[-1] == report.max_resolution[0] == 663


torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")


@pytest.mark.parametrize("name", sorted(n for n in PRESETS if n in set(torchvision.models.list_models())))
def test_presets_match_torchvision(name):
    from unittest import mock

    from torchvision.models import regnet as tv_regnet

    with mock.patch.object(tv_regnet, "_regnet", lambda params, *args, **kwargs: params):
        block_params = torchvision.models.get_model_builder(name)()
    expected = list(zip(block_params.widths, block_params.depths, block_params.group_widths))
    assert PRESETS[name].stages() == expected


@pytest.mark.parametrize("name", ["regnet_x_400mf", "regnet_y_400mf", "regnet_y_1_6gf"])
def test_presets_give_the_traced_r_and_max_resolution(name):
    traced = analyze(f"torchvision:{name}", 224)
    built = analyze(regnet_graph(PRESETS[name]), 224)
    assert (built.r, built.max_resolution) == (traced.r, traced.max_resolution)
