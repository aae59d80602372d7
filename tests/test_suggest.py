"""Suggested edits: verified on a copy of the graph, ranked, applied to real PyTorch modules."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfa_toolbox import GraphBuilder, analysis_of, analyze, suggest
from rfa_toolbox.edits import total_macs

from conftest import EXAMPLES
from test_properties import build, dags


def test_vgg_style_file_depth_edit_removes_exactly_the_unproductive_tail():
    report = analyze(EXAMPLES / "vgg_style.yaml", 224, suggestions=True)
    assert report.unproductive == ["pool5"]
    removals = [s for s in suggest(EXAMPLES / "vgg_style.yaml", 224, limit=100)
                if s.edits[0].kind == "remove"]
    assert len(removals) == 1 and removals[0].edits[0].layers == report.unproductive
    # without pool5 the largest r_min is conv5_4's 252 (still >= 224: not enough on its own)
    assert removals[0].r == (252, 252) and not removals[0].fully_utilized
    # ranking: fully utilized first, then one edit, then r closest below 224 (pool4 -> 196)
    best = report.suggestions[0]
    assert best.fully_utilized and len(best.edits) == 1 and best.r == (196, 196)
    assert best.edits[0].layers == ["pool4"] and best.edits[0].after == {"pool4": [1, 1]}


def test_removal_widens_the_preceding_stage_to_keep_parameters():
    b = GraphBuilder(name="widen")
    x = b.input()
    x = b.conv(x, 3, stride=2, name="s1", out_channels=32, in_channels=3, params=896)
    x = b.conv(x, 3, name="s2", out_channels=32, in_channels=32, params=9248)
    y = b.conv(x, 3, name="tail.a", out_channels=32, in_channels=32, params=9248)
    y = b.conv(y, 3, name="tail.b", out_channels=32, in_channels=32, params=9248)
    b.add(x, y, name="tail.add")
    graph = b.build()
    graph.replace(graph["tail.a"].with_changes(module="tail"))
    graph.replace(graph["tail.b"].with_changes(module="tail"))
    graph.replace(graph["tail.add"].with_changes(module="tail"))
    # s1: 3 (j 2), s2: 7; tail.a input 7 >= 6 -> unproductive at 6, tail.b too
    report = analyze(graph, 6)
    assert set(report.unproductive) == {"tail.a", "tail.b"}
    removal = next(s for s in suggest(graph, 6, limit=100) if s.edits[0].kind == "remove")
    assert removal.edits[0].modules == ["tail"]
    scale = math.sqrt((896 + 9248 + 2 * 9248) / (896 + 9248))
    assert removal.new_widths == {"s1": round(32 * scale / 8) * 8, "s2": round(32 * scale / 8) * 8}
    assert removal.params_after == removal.params_before


def test_fully_utilized_model_gets_no_suggestion():
    assert suggest(EXAMPLES / "vgg_style.yaml", 300) == []


def _full_reanalysis(analysis, edits):
    """r, max resolution and fully utilized of the edited graph, analyzed from scratch."""
    from rfa_toolbox.analyzer import analyze_graph
    from rfa_toolbox.edits import apply_to_graph

    report = analyze_graph(apply_to_graph(analysis.graph, edits), analysis.report.resolution, exact=False).report
    return report.r, report.max_resolution, report.fully_utilized


def _every_candidate(analysis):
    from rfa_toolbox.verify import _singles

    singles, pairs, _ = _singles(analysis)
    return singles + list(pairs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dags(ndim=2, square=False, max_nodes=30, with_globals=False), res=st.integers(4, 60))
def test_incremental_verification_equals_a_full_reanalysis(case, res):
    """Every candidate, verified by re-propagating the suffix of the graph, gives the r, max
    resolution and verdict of analyzing the edited graph from scratch (random DAGs with strides,
    dilation, upsampling, transposed convs, branches)."""
    from rfa_toolbox.verify import _Baseline, _suggestion

    analysis = analysis_of(build(case, 2), res, exact=False)
    base = _Baseline(analysis)
    for edits in _every_candidate(analysis):
        s = _suggestion(base, edits, [])
        assert (s.r, s.max_resolution, s.fully_utilized) == _full_reanalysis(analysis, edits), edits


def test_verification_budget_and_its_note():
    """A chain of 300 stride-1 3x3 convs at 64: conv k has r 2k + 1 and input r 2k - 1, so
    conv33..conv300 are unproductive: 268 single removals and the whole removal. 64 are
    verified (the whole removal first, then the last convs), and the report says so."""
    b = GraphBuilder(name="plain")
    x = b.input()
    for _ in range(300):
        x = b.conv(x, 3)
    report = analyze(b.build(), 64, suggestions=True)
    assert len(report.unproductive) == 268
    assert any("64 of 269 candidate edits were verified" in note for note in report.notes)
    best = report.suggestions[0]
    assert best.edits[0].kind == "remove" and len(best.edits[0].layers) == 268
    assert best.r == (65, 65) and not best.fully_utilized  # conv32 remains: 65 >= 64
    assert report.suggestions[1].edits[0].layers == ["conv300"]  # then the last convs


def test_patchify_stem_gets_a_smaller_patch():
    """ConvNeXt's stem is a 4x4/4 patchify conv: besides "stride halved" (4x4/2) the smaller
    patch 2x2/2 (Richter et al.'s ConvNeXt experiment) is offered and verified."""
    b = GraphBuilder(name="patchify")
    x = b.conv(b.input(), 4, stride=4, name="stem")
    for i in range(12):
        x = b.conv(x, 7, name=f"dw{i}", stride=2 if i in (3, 6, 9) else 1)
    found = {s.description: s for s in suggest(b.build(), 128, limit=100)}
    patch = found["patch of stem 4x4 -> 2x2 (kernel and stride)"]
    halved = found["stride of stem halved"]
    # stem 2x2/2: r 2 (j 2); dw0-dw3 (dw3 is strided) +6*2 each -> 50, j 4; dw4-dw6 +6*4 each
    # -> 122, j 8; dw7-dw9 +6*8 each -> 266, j 16; dw10, dw11 +6*16 each -> 458.
    # Stride halved keeps the 4x4 kernel: r 4 at j 2, and 2 more everywhere after: 460.
    assert patch.r == (458, 458) and halved.r == (460, 460)
    assert patch.edits[0].after == {"stem": [2, 2]} and patch.edits[0].kind == "patch"


torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from rfa_toolbox.encoders.torch import encode  # noqa: E402
from rfa_toolbox.encoders.torch.edit import EditError, apply_edits  # noqa: E402

from rfa_toolbox.verify import rank_suggestions  # noqa: E402


def test_resnet50_macs_match_torchvision_documentation():
    from rfa_toolbox.sources import load_graph

    graph = load_graph("torchvision:resnet50", 224)
    assert round(total_macs(graph) / 1e9, 2) == 4.09  # torchvision: 4.09 GFLOPS


def _edited_r(name, resolution, pick):
    model = torchvision.models.get_model(name, weights=None).eval()
    x = torch.rand(1, 3, resolution, resolution)
    graph = encode(model, x)
    chosen = pick(rank_suggestions(analysis_of(graph, resolution), limit=50))
    edited = apply_edits(model, chosen, graph)
    return chosen, analyze(encode(edited, x), resolution)


def test_mobilenet_v3_large_single_stride_edit_makes_it_fully_utilized():
    chosen, traced = _edited_r("mobilenet_v3_large", 224,
                               lambda ss: next(s for s in ss if s.fully_utilized and len(s.edits) == 1
                                               and s.edits[0].kind == "stride"))
    assert chosen.r[0] < 224 and traced.r == chosen.r and traced.fully_utilized


@pytest.mark.parametrize("name, resolution", [("efficientnet_b0", 224), ("resnet18", 96),
                                              ("regnet_x_400mf", 48)])
def test_applied_edits_give_the_predicted_r(name, resolution):
    chosen, traced = _edited_r(name, resolution, lambda ss: ss[0])
    assert traced.r == chosen.r
    assert chosen.fully_utilized == traced.fully_utilized


def test_shape_changing_removal_cannot_be_applied():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.MaxPool2d(2))
    x = torch.rand(1, 3, 8, 8)
    graph = encode(model, x)
    report = analyze(graph, 4)
    from rfa_toolbox.edits import Edit, EditKind, Suggestion

    fake = Suggestion([Edit(EditKind.REMOVE, ["3"], "remove 3", modules=["3"])], (1, 1), (1, 1), True,
                      None, None, None, None)
    with pytest.raises(EditError, match="changes the shape"):
        apply_edits(model, fake, graph)
    assert report.unproductive  # the last pool sees the whole 4x4 input already


def test_cli_suggest_and_analyze_json(rfa):
    result = rfa("suggest", "torchvision:mobilenet_v3_large", "--res", "224", "--format", "json", "--top", "3")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["suggestions"]) == 3 and data["suggestions"][0]["fully_utilized"]
    assert data["suggestions"][0]["macs_after"] > data["suggestions"][0]["macs_before"]
    analyzed = json.loads(rfa("analyze", str(EXAMPLES / "vgg_style.yaml"), "--res", "224", "-f", "json").stdout)
    assert analyzed["suggestions"][0]["r"] == [196, 196]
    plain = json.loads(rfa("analyze", str(EXAMPLES / "vgg_style.yaml"), "--res", "224", "-f", "json",
                           "--no-suggest").stdout)
    assert "suggestions" not in plain


def test_convnext_patch_edit_applies_to_the_module():
    """ConvNeXt-T's 4x4/4 stem: the 2x2/2 patch edit, applied to the module, traces to the
    predicted r (published r of convnext_tiny at 224: 224, so it is not fully utilized)."""
    model = torchvision.models.convnext_tiny(weights=None).eval()
    x = torch.rand(1, 3, 224, 224)
    graph = encode(model, x)
    chosen = next(s for s in rank_suggestions(analysis_of(graph, 224), limit=100)
                  if len(s.edits) == 1 and s.edits[0].kind == "patch")
    assert chosen.edits[0].layers == ["features.0.0"] and chosen.edits[0].after == {"features.0.0": [2, 2]}
    edited = apply_edits(model, chosen, graph)
    assert edited.features[0][0].kernel_size == (2, 2) and edited.features[0][0].stride == (2, 2)
    assert analyze(encode(edited, x), 224).r == chosen.r < (224, 224)
