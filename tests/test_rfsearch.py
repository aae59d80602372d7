"""rfa_toolbox.rfsearch: RF-Next dilation search (reference cases, shapes, merge, files,
checkpoints, behaviour on a synthetic task, analyzer)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import warnings

import pytest

from rfa_toolbox.rfsearch import (
    DEFAULTS,
    RFSearchWarning,
    StructureError,
    estimate_rate,
    expand_rate,
    format_structure,
    load_structure,
    make_config,
)

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from rfa_toolbox import analyze  # noqa: E402
from rfa_toolbox.rfsearch import (  # noqa: E402
    PaddedConv,
    RFSearch,
    SearchConv,
    apply_structure,
    merge,
    search_convs,
)

from conftest import EXAMPLES, ROOT  # noqa: E402

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
SIZES = {1: (23,), 2: (13, 14), 3: (9, 10, 11)}


@pytest.fixture
def one_thread():
    """Runs on one thread (timings and bitwise repeatability), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def set_alphas(conv: SearchConv, values) -> None:
    with torch.no_grad():
        conv.alphas[: len(values)] = torch.tensor(values, dtype=conv.alphas.dtype)


# -- the reference cases (mmcv's tests), through the public API -------------------------------

REFERENCE = [
    # conv, branches, first rates, first estimate+padding, expanded, alphas, second estimate+padding
    (dict(kernel_size=3, padding=1), 2, [(1, 1), (2, 2)], ((2, 2), (2, 2)), [(1, 1), (3, 3)],
     [0.1, 0.4], ((3, 3), (3, 3))),
    (dict(kernel_size=5, padding=2), 2, [(1, 1), (2, 2)], ((2, 2), (4, 4)), [(1, 1), (3, 3)],
     [0.1, 0.4], ((3, 3), (6, 6))),
    (dict(kernel_size=5, padding=2), 3, [(1, 1), (2, 2)], ((2, 2), (4, 4)), [(1, 1), (2, 2), (3, 3)],
     [0.1, 0.3, 0.6], ((3, 3), (6, 6))),
    (dict(kernel_size=(1, 5), padding=(0, 2)), 2, [(1, 1), (1, 2)], ((1, 2), (0, 4)),
     [(1, 1), (1, 3)], [0.2, 0.8], ((1, 3), (0, 6))),
    (dict(kernel_size=5, padding=4, dilation=2), 2, [(1, 1), (3, 3)], ((2, 2), (4, 4)),
     [(1, 1), (3, 3)], [0.8, 0.2], ((1, 1), (2, 2))),
]


@pytest.mark.parametrize("case", REFERENCE, ids=["3x3", "5x5", "5x5-3branches", "1x5", "5x5-d2"])
def test_reference_cases(case):
    kwargs, branches, rates0, first, rates1, alphas, second = case
    model = nn.Sequential(nn.Conv2d(3, 3, **kwargs))
    search = RFSearch(model, {"exp_rate": 0.5, "mmin": 1, "mmax": 24, "num_branches": branches})
    conv = model[0]
    x = torch.rand(1, 3, 32, 32)
    assert isinstance(conv, SearchConv) and conv.rates == rates0
    assert model(x).shape == (1, 3, 32, 32)
    assert search.step() is True  # equal alphas
    assert (conv.dilation, conv.padding) == first
    assert conv.rates == rates1
    assert model(x).shape == (1, 3, 32, 32)
    set_alphas(conv, alphas)
    search.step()
    assert (conv.dilation, conv.padding) == second
    assert model(x).shape == (1, 3, 32, 32)
    assert search.structure == {"0": list(second[0])}


def test_estimate_uses_float32_weights_and_python_round():
    # 0.1, 0.3, 0.6 over [1, 2, 3] is 2.5 in exact arithmetic (Python's round: 2); the float32
    # weights make it 2.50000000373 -> 3, as mmcv computes it
    assert estimate_rate([0.1, 0.3, 0.6], [(1,), (2,), (3,)], (5,), (2,), 1, 24) == (2,)
    conv = SearchConv(nn.Conv1d(1, 1, 5, padding=2), make_config({"num_branches": 3}), dilation=(2,))
    set_alphas(conv, [0.1, 0.3, 0.6])
    assert conv.rates == [(1,), (2,), (3,)] and conv.estimate() == (3,)
    # Python's round is half to even: equal weights on [1, 2] give 2, on [2, 3] give 2
    assert estimate_rate([0.5, 0.5], [(2,), (3,)], (3,), (2,), 1, 24) == (2,)


def test_expand_rules():
    cfg = dict(exp_rate=0.5, mmin=1, mmax=24)
    assert expand_rate((1, 1), (3, 3), num_branches=2, **cfg) == [(1, 1), (2, 2)]
    assert expand_rate((1, 1), (3, 3), num_branches=3, **cfg) == [(1, 1), (2, 2)]
    assert expand_rate((5, 3), (3, 3), num_branches=3, **cfg) == [(2, 2), (5, 3), (8, 4)]
    assert expand_rate((20, 2), (3, 1), num_branches=2, **cfg) == [(10, 2), (24, 2)]  # kernel 1 keeps
    assert expand_rate((4,), (3,), num_branches=2, exp_rate=0.1, mmin=1, mmax=24) == [(4,)]


def test_config_defaults_and_validation():
    assert make_config() == DEFAULTS
    assert make_config({"search": {"num_branches": 3}})["num_branches"] == 3  # mmcv-style
    assert make_config({"skip_layer": None})["skip_layer"] == []
    for bad in ({"num_brancehs": 3}, {"num_branches": 4}, {"init_alphas": 0}, {"mmax": 0},
                {"exp_rate": 1.5}, {"search_interval": 0}):
        with pytest.raises(ValueError):
            make_config(bad)


def test_warns_when_a_dilation_cannot_move():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, (1, 3), padding=(0, 1)))
    with pytest.warns(RFSearchWarning) as record:
        RFSearch(model, {"exp_rate": 0.4})
    assert [str(w.message) for w in record] == [
        "rfsearch: the dilation of 0 cannot move on axis 0, 1: exp_rate 0.4 x dilation (1, 1)"
        " < 0.5 gives a single branch; raise exp_rate",
        "rfsearch: the dilation of 1 cannot move on axis 1: exp_rate 0.4 x dilation (1, 1)"
        " < 0.5 gives a single branch; raise exp_rate"]
    assert model[0].rates == [(1, 1)] and model[1].rates == [(1, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RFSearchWarning)
        RFSearch(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1)), {"exp_rate": 0.5})  # 0.5 moves


# -- the schedule and the optimizer -------------------------------------------------------------

def test_schedule_interval_and_max_step():
    model = nn.Sequential(nn.Conv1d(1, 1, 3, padding=1))
    search = RFSearch(model, {"search_interval": 2, "max_step": 7})
    updated = [search.step() for _ in range(9)]
    assert updated == [False, True, False, True, False, True, False, False, False]
    assert search.step_count == 9 and search.config["step"] == 9


def test_step_resets_alphas_and_clears_their_optimizer_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1))
    search = RFSearch(model, {"init_alphas": 0.02})
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.rand(2, 1, 16)).pow(2).mean().backward()
    optimizer.step()
    conv = model[0]
    assert conv.alphas in optimizer.state and conv.conv.weight in optimizer.state
    search.step(optimizer)
    assert conv.alphas not in optimizer.state and conv.conv.weight in optimizer.state
    assert torch.equal(conv.alphas.detach(), torch.full((2,), 0.02))


def test_fixed_multi_branch_never_steps_and_skip_layer():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Sequential(nn.Conv2d(2, 2, 3, padding=1)))
    search = RFSearch(model, {"skip_layer": ["1.0"]}, mode="fixed_multi_branch",
                      structure={"module.0": [3, 2]})
    assert isinstance(model[0], SearchConv) and isinstance(model[1][0], nn.Conv2d)
    assert model[0].rates == [(2, 1), (4, 3)]  # expanded around the structure, 2 branches
    assert search.step() is False and model[0].rates == [(2, 1), (4, 3)]


def test_forward_is_the_weighted_sum_of_dilated_convs():
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 17, 16)
    model = nn.Sequential(conv)
    RFSearch(model, {"num_branches": 3}, structure={"0": 4})
    searched = model[0]
    set_alphas(searched, [0.3, -0.5, 0.2])
    expected = sum(w * F.conv2d(x, conv.weight, conv.bias, 2, ((2 - 1) + d * 2) // 2, d)
                   for w, d in zip([0.3, 0.5, 0.2], [2, 4, 6]))
    torch.testing.assert_close(searched(x), expected)


# -- shapes, modes and merge --------------------------------------------------------------------

def _convs(ndim, k, s, groups):
    """Convs of every padding flavour: symmetric 'same'-style, valid, explicit, PyTorch 'same'."""
    conv = CONV[ndim]
    convs = [conv(4, 4, k, stride=s, padding=((s - 1) + (k - 1)) // 2, groups=groups),
             conv(4, 4, k, stride=s, padding=0, groups=groups, bias=False)]
    if s == 1:
        convs.append(conv(4, 4, k, padding="same", groups=groups))
    return convs


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 4], ids=["dense", "depthwise"])
def test_output_shape_unchanged_in_every_mode(ndim, k, s, groups):
    torch.manual_seed(0)
    x = torch.randn(1, 4, *SIZES[ndim])
    for conv in _convs(ndim, k, s, groups):
        expected = conv(x).shape
        if k == 1:  # nothing to search: left alone
            model = nn.Sequential(copy.deepcopy(conv))
            with pytest.warns(RFSearchWarning, match="no searchable conv"):
                assert RFSearch(model).convs == []
            assert model(x).shape == expected
            continue
        for mode in ("search", "fixed_multi_branch", "fixed_single_branch", "merge"):
            model = nn.Sequential(copy.deepcopy(conv))
            search = RFSearch(model, {"num_branches": 3}, mode="search" if mode == "merge" else mode,
                              structure={"module.0": [3] * ndim})
            if mode == "merge":
                search.merge()
            assert model(x).shape == expected, (mode, conv)
        model = nn.Sequential(copy.deepcopy(conv))
        search = RFSearch(model, {"num_branches": 3})
        for _ in range(4):
            set_alphas(model[0], [0.0, 0.1, 1.0])  # grow the dilation
            search.step()
            assert model(x).shape == expected


MERGE_CASES = [
    (2, dict(kernel_size=3, padding=1), (1, 3, 2)),
    (2, dict(kernel_size=3, stride=2, padding=1, groups=4), (2, 5, 3)),     # depthwise
    (2, dict(kernel_size=5, stride=3, padding=2, groups=2), (3, 2, 1)),     # grouped
    (2, dict(kernel_size=(3, 5), stride=(1, 3), padding=(1, 2), padding_mode="reflect"), (1, 4, 2)),
    (2, dict(kernel_size=3, padding=1, padding_mode="circular"), (2, 3, 4)),
    (2, dict(kernel_size=3, padding=1, padding_mode="replicate", bias=False), (3, 3, 3)),
    (1, dict(kernel_size=4, padding=2), (3, 1, 2)),       # even kernel: asymmetric padding
    (1, dict(kernel_size=3, padding=0, stride=2), (4, 1, 1)),  # valid conv: cropping
    (1, dict(kernel_size=5, padding="same"), (2, 3, 1)),
    (3, dict(kernel_size=3, padding=1, stride=(1, 2, 3)), (2, 2, 2)),
]


@pytest.mark.parametrize("ndim,kwargs,dilation", MERGE_CASES)
def test_merge_equals_the_multi_branch_output(ndim, kwargs, dilation):
    torch.manual_seed(2)
    model = nn.Sequential(CONV[ndim](4, 4, **kwargs))
    structure = {"0": list(dilation[:ndim])}
    RFSearch(model, {"num_branches": 3}, mode="fixed_multi_branch", structure=structure)
    set_alphas(model[0], [0.2, -0.7, 0.4][: len(model[0].rates)])
    x = torch.randn(2, 4, *SIZES[ndim])
    expected = model(x)
    merged = merge(model)
    assert not search_convs(merged)
    torch.testing.assert_close(merged(x), expected, rtol=1e-5, atol=1e-5)


def test_single_branch_honours_padding_mode():
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")
    reference = nn.Conv2d(2, 2, 3, padding=3, dilation=3, padding_mode="reflect")
    reference.load_state_dict(conv.state_dict())
    x = torch.randn(1, 2, 12, 12)
    model = apply_structure(nn.Sequential(conv), {"module.0": 3})
    assert type(model[0]) is nn.Conv2d and model[0].dilation == (3, 3) and model[0].padding == (3, 3)
    torch.testing.assert_close(model(x), reference(x))
    # a multi-branch conv pads each branch with reflection too
    searched = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))
    searched[0].load_state_dict(conv.state_dict())
    RFSearch(searched, {"num_branches": 3}, mode="fixed_multi_branch", structure={"0": 3})
    set_alphas(searched[0], [0.0, 1.0, 0.0])
    torch.testing.assert_close(searched(x), reference(x))


def test_even_kernel_single_branch_is_a_padded_conv():
    model = apply_structure(nn.Sequential(nn.Conv1d(1, 1, 2, padding=1)), {"0": 2})
    assert isinstance(model[0], PaddedConv) and model[0].pads == ((1, 2),)
    assert model(torch.rand(1, 1, 10)).shape == (1, 1, 11)


# -- structure files ------------------------------------------------------------------------------

def _two_conv_model():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 4, (1, 5), padding=(0, 2)), nn.Conv2d(4, 4, 1)))


def test_structure_json_round_trip(tmp_path):
    model = _two_conv_model()
    search = RFSearch(model, {"num_branches": 3, "max_step": 5})
    for alphas in ([0.0, 1.0], [0.0, 0.0, 1.0]):
        set_alphas(model[0], alphas)
        set_alphas(model[2][0], alphas)
        search.step()
    path = search.save(tmp_path / "searched.json")
    data = json.loads(path.read_text())
    assert data["structure"] == {"module.0": [3, 3], "module.2.0": [1, 3]}
    assert data["search"] == {**DEFAULTS, "num_branches": 3, "max_step": 5, "step": 2}
    loaded = load_structure(path)
    assert loaded["structure"] == data["structure"]
    fresh = apply_structure(_two_conv_model(), path)
    assert fresh[0].dilation == (3, 3) and fresh[0].padding == (3, 3)
    assert fresh[2][0].dilation == (1, 3) and fresh[2][0].padding == (0, 6)
    again = RFSearch(_two_conv_model(), mode="fixed_multi_branch", structure=loaded)
    assert again.structure == {"0": [3, 3], "2.0": [1, 3]}
    assert again.config["num_branches"] == 3  # the file's settings fill in the config


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_mmcv_structure_files_with_and_without_prefix(tmp_path, prefix):
    mmcv = {"search": {"step": 11, "max_step": 11, "search_interval": 1, "exp_rate": 0.5,
                       "init_alphas": 0.01, "mmin": 1, "mmax": 24, "num_branches": 2,
                       "skip_layer": None},
            "structure": {f"{prefix}0": [4, 4], f"{prefix}2.0": 3}}  # a bare int: every axis
    path = tmp_path / "mmcv.json"
    path.write_text(json.dumps(mmcv, indent=4))
    model = apply_structure(_two_conv_model(), path)
    assert model[0].dilation == (4, 4) and model[0].padding == (4, 4)
    assert model[2][0].dilation == (3, 3) and model[2][0].padding == (0, 6)
    assert model(torch.rand(1, 1, 20, 20)).shape == (1, 4, 20, 20)
    search = RFSearch(_two_conv_model(), structure=path)  # searching on from the file
    assert search.step_count == 0 and search.model[0].rates == [(2, 2), (6, 6)]


def test_structure_errors_and_format(tmp_path):
    with pytest.raises(StructureError, match="none of the structure"):
        apply_structure(_two_conv_model(), {"backbone.conv1": [2, 2]})
    with pytest.warns(RFSearchWarning, match="match no searchable conv: module.nothing"):
        apply_structure(_two_conv_model(), {"module.0": 2, "module.nothing": 3})
    with pytest.raises(StructureError, match="2 dilations"):
        apply_structure(nn.Sequential(nn.Conv1d(1, 1, 3)), {"0": [1, 2]})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(StructureError, match="malformed JSON in .*bad.json, line 1"):
        load_structure(bad)
    with pytest.raises(StructureError, match="an integer from 1 to 4096"):
        apply_structure(_two_conv_model(), {"structure": {"0": [0]}})
    with pytest.raises(ValueError, match="needs a structure"):
        RFSearch(_two_conv_model(), mode="fixed_single_branch")
    text = format_structure({"search": {"num_branches": 3}, "structure": {"module.0": [2, 2],
                                                                           "module.2.0": [1, 3]}})
    assert text.splitlines() == [
        "search: num_branches 3",
        "layer       dilation",
        "module.0    2 x 2",
        "module.2.0  1 x 3",
        "2 layers, 2 dilated, largest dilation 3",
    ]


def test_a_shared_conv_is_wrapped_once():
    shared = nn.Conv1d(2, 2, 3, padding=1)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    search = RFSearch(model)
    assert model[0] is model[2] and len(search.convs) == 1
    assert model(torch.rand(1, 2, 8)).shape == (1, 2, 8)


def test_convert_refuses_wrapped_models():
    with pytest.raises(TypeError, match="before wrapping"):
        RFSearch(nn.DataParallel(_two_conv_model()))


# -- checkpoints ------------------------------------------------------------------------------------

def _ar1(n, length, generator, phi=0.9):
    """An AR(1) signal with unit variance: x[t] = phi x[t-1] + sqrt(1 - phi^2) e[t]."""
    noise = torch.randn(n, 1, length, generator=generator) * (1 - phi ** 2) ** 0.5
    x = torch.empty(n, 1, length)
    x[..., 0] = torch.randn(n, 1, generator=generator)
    for t in range(1, length):
        x[..., t] = phi * x[..., t - 1] + noise[..., t]
    return x


def _batch(lag, generator, n=16, length=128):
    """Input x and target y[t] = x[t - lag] + x[t + lag]."""
    x = _ar1(n, length + 2 * lag, generator)
    return x[..., lag:lag + length], x[..., :length] + x[..., 2 * lag:]


def _search_run(lag, epochs, iters, model=None, search=None, optimizer=None, generator=None,
                branches=3, seed=0):
    torch.manual_seed(seed)
    if model is None:
        model = nn.Sequential(nn.Conv1d(1, 1, 3, padding=1, bias=False))
        search = RFSearch(model, {"num_branches": branches})
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        for _ in range(iters):
            x, y = _batch(lag, generator)
            loss = (model(x)[..., 16:-16] - y[..., 16:-16]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        search.step(optimizer)
    return model, search, optimizer, generator, losses


def test_checkpoint_round_trip_mid_search_continues_identically(tmp_path, one_thread):
    model, search, optimizer, generator, _ = _search_run(8, 3, 10)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": generator.get_state()}, path)
    _, search, _, _, losses = _search_run(8, 3, 10, model, search, optimizer, generator)
    uninterrupted = (search.structure, search.step_count, model[0].rates, losses,
                     [p.detach().clone() for p in model.parameters()])

    checkpoint = torch.load(path, weights_only=True)
    fresh = nn.Sequential(nn.Conv1d(1, 1, 3, padding=1, bias=False))
    fresh_search = RFSearch(fresh, {"num_branches": 3})
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.05)
    fresh.load_state_dict(checkpoint["model"])
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    fresh_generator = torch.Generator()
    fresh_generator.set_state(checkpoint["generator"])
    assert fresh_search.step_count == 3 and fresh[0].rates != [(1,), (2,)]
    _, fresh_search, _, _, losses = _search_run(8, 3, 10, fresh, fresh_search, fresh_optimizer,
                                                fresh_generator)
    assert (fresh_search.structure, fresh_search.step_count, fresh[0].rates, losses) == uninterrupted[:4]
    for a, b in zip(fresh.parameters(), uninterrupted[4]):
        assert torch.equal(a, b)


# -- behaviour on the synthetic task ----------------------------------------------------------------

@pytest.mark.parametrize("lag,expected", [(8, range(7, 10)), (1, [1])], ids=["D=8", "D=1"])
def test_search_finds_the_lag_of_the_task(lag, expected, one_thread):
    model, search, *_ = _search_run(lag, epochs=11, iters=40)
    assert search.structure["0"][0] in expected


def test_example_runs_a_search_and_writes_the_structure(tmp_path):
    out = tmp_path / "searched.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(EXAMPLES / "rfsearch_temporal.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert load_structure(out)["structure"] == {"module.0": [8]}
    assert "searched dilation 8 for D = 8 (within D +/- 1)" in result.stdout
    assert "r_min 9 (smallest branch), r_max 25 (largest branch)" in result.stdout


def test_freeze_to_single_and_multi_branch():
    model = _two_conv_model()
    search = RFSearch(model, {"num_branches": 3})
    set_alphas(model[0], [0.0, 1.0])
    search.step()
    frozen = copy.deepcopy(search)
    frozen.freeze("fixed_multi_branch")
    assert frozen.step() is False and frozen.model[0].rates == [(1, 1), (2, 2), (3, 3)]
    x = torch.rand(1, 1, 16, 16)
    search.freeze("fixed_single_branch")
    assert type(model[0]) is nn.Conv2d and model[0].dilation == (2, 2) and model[0].padding == (2, 2)
    assert search.structure == {"0": [2, 2], "2.0": [1, 2]} and model(x).shape == (1, 4, 16, 16)
    assert search.step() is False


# -- the analyzer -----------------------------------------------------------------------------------

def test_analyzer_reads_r_min_from_the_smallest_and_r_max_from_the_largest_branch():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    RFSearch(model, {"num_branches": 3}, structure={"0": 2, "2": [4, 2]})
    assert model[0].rates == [(1, 1), (2, 2), (3, 3)] and model[2].rates == [(2, 1), (4, 2), (6, 3)]
    report = analyze(model, 64)
    out = report.layers[-1]
    assert out.module == "2" and out.op == "add"
    # smallest branches: 3 (d=1), then + (3-1)*(2, 1) -> (7, 5); largest: 7 (d=3), + 2*(6, 3)
    assert out.r_min == (7, 5) and out.r_max == (19, 13)
    assert report.layer("0.add:1").r_min == (3, 3) and report.layer("0.add:1").r_max == (7, 7)
    # the branches are the module's convs, each with its own dilation
    assert [row.dilation for row in report.layers if row.module == "2" and row.op == "conv"] == [
        (2, 1), (4, 2), (6, 3)]
    # after freezing to one branch, r follows the searched dilation alone
    single = apply_structure(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                                           nn.Conv2d(4, 4, 3, padding=1)), {"0": 2, "2": [4, 2]})
    assert analyze(single, 64).layers[-1].r_min == (5 + 8, 5 + 4)


# -- packaging ---------------------------------------------------------------------------------------

def test_structure_tools_import_no_framework_and_core_does_not_import_rfsearch(tmp_path):
    code = (
        "import sys, rfa_toolbox\n"
        "assert 'rfa_toolbox.rfsearch' not in sys.modules\n"
        "from rfa_toolbox.rfsearch import load_structure, format_structure, make_config\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] == 'torch'))\n"
        "from rfa_toolbox.rfsearch import RFSearch\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["", "True"]
