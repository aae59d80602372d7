"""Effective receptive fields: closed forms, the theoretical box, weights files, the command."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn

from rfa_toolbox.erf import effective_receptive_field  # noqa: E402
from rfa_toolbox.errors import RFAError  # noqa: E402

from test_cli import assert_one_line_error  # noqa: E402

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _uniform_chain(n: int, k: int, ndim: int) -> nn.Module:
    layers = [CONV[ndim](1, 1, k, bias=False) for _ in range(n)]
    for layer in layers:
        nn.init.constant_(layer.weight, 1.0)
    return nn.Sequential(*layers)


def _extent(heat: np.ndarray) -> list[tuple[int, int]]:
    out = []
    for axis in range(heat.ndim):
        marginal = heat.sum(axis=tuple(a for a in range(heat.ndim) if a != axis))
        nonzero = np.flatnonzero(marginal > 0)
        out.append((int(nonzero[0]), int(nonzero[-1])))
    return out


@pytest.mark.parametrize("ndim, n, k", [(1, 1, 3), (1, 4, 3), (1, 3, 2), (1, 2, 7), (2, 3, 3), (2, 2, 5),
                                        (2, 4, 2), (3, 2, 3), (3, 1, 4)])
def test_uniform_chain_is_a_repeated_box_convolution(ndim, n, k):
    """n stride-1 convs of kernel k with equal positive weights, no activation: the centre unit's
    ERF is the n-fold convolution of a box of width k: standard deviation sqrt(n (k^2 - 1) / 12)
    per axis, support n (k - 1) + 1 (= the theoretical box)."""
    support = n * (k - 1) + 1
    size = support + 6
    erf = effective_receptive_field(_uniform_chain(n, k, ndim), size, samples=2, batch=2, float64=True,
                                    input_shape=(1,) + (size,) * ndim)
    (erf_map,) = erf.maps
    want = math.sqrt(n * (k * k - 1) / 12)
    assert erf_map.numbers.std == pytest.approx((want,) * ndim, abs=1e-9)
    extent = _extent(erf_map.heat)
    assert [hi - lo + 1 for lo, hi in extent] == [support] * ndim
    assert extent == [tuple(b) for b in erf_map.union]
    # the map itself: the outer product of the 1-D repeated box convolution
    line = np.ones(k)
    for _ in range(n - 1):
        line = np.convolve(line, np.ones(k))
    inside = erf_map.heat[tuple(slice(lo, hi + 1) for lo, hi in extent)]
    expected = line
    for _ in range(ndim - 1):
        expected = np.multiply.outer(expected, line)
    assert np.allclose(inside / inside.max(), expected / expected.max(), rtol=1e-12, atol=0)


class _Branches(nn.Module):
    """A random linear network with branches: a strided stem, a dilated and a plain branch, a
    pooled branch, summed and concatenated."""

    def __init__(self, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        k = lambda: int(rng.integers(1, 6))  # noqa: E731
        self.stem = nn.Conv2d(2, 3, k(), stride=int(rng.integers(1, 3)), padding=1)
        self.a = nn.Conv2d(3, 3, k(), dilation=int(rng.integers(1, 4)), padding="same")
        self.b = nn.Conv2d(3, 3, k(), padding="same")
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.c = nn.Conv2d(6, 2, k(), stride=int(rng.integers(1, 3)))
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in (self.stem, self.a, self.b, self.c):
                conv.weight.copy_(torch.rand(conv.weight.shape, generator=generator) + 0.1)

    def forward(self, x):
        x = self.stem(x)
        y = self.a(x) + self.pool(self.b(x))
        return self.c(torch.cat([y, x], 1))


@pytest.mark.parametrize("seed", range(4))
def test_support_with_positive_weights_is_the_union_box(seed):
    erf = effective_receptive_field(_Branches(seed), 40, samples=2, batch=2, float64=True,
                                    input_shape=(2, 40, 40))
    (erf_map,) = erf.maps
    assert _extent(erf_map.heat) == [tuple(b) for b in erf_map.union]
    assert 0 < erf_map.numbers.share_in_smallest <= 1


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    model = torchvision.models.resnet18(weights=None)
    folder = tmp_path_factory.mktemp("weights")
    torch.save(model.state_dict(), folder / "resnet18.pth")
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(folder / "resnet18.safetensors"))
    return model, folder


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_saved_weights_give_the_erf_of_the_model_in_memory(resnet_weights, suffix):
    model, folder = resnet_weights
    options = {"layers": ["layer3"], "samples": 4, "batch": 4}
    in_memory = effective_receptive_field(model, 64, **options).maps[0].heat
    loaded = effective_receptive_field("torchvision:resnet18", 64, weights=folder / f"resnet18{suffix}", **options)
    assert np.array_equal(loaded.maps[0].heat, in_memory)
    assert loaded.weights.endswith(f"resnet18{suffix}")
    fresh = effective_receptive_field("torchvision:resnet18", 64, **options)  # other random weights
    assert not np.allclose(fresh.maps[0].heat, in_memory) and fresh.weights.startswith("random")


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PAYLOAD_RAN",))


def test_pickled_code_is_refused(rfa, tmp_path):
    torch.save({"conv1.weight": _Payload()}, tmp_path / "evil.pt")
    (tmp_path / "evil.pkl.pth").write_bytes(pickle.dumps(_Payload()))
    for name in ("evil.pt", "evil.pkl.pth"):
        result = rfa("erf", "torchvision:resnet18", "--res", "64", "--weights", name, cwd=tmp_path)
        assert_one_line_error(result, "is not a state dict rfa can read safely")
    assert not (tmp_path / "PAYLOAD_RAN").exists()


def test_weights_that_do_not_fit_name_the_keys(tmp_path):
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pt")
    with pytest.raises(RFAError, match=r"unexpected \(layer1\.2\.conv1\.weight"):
        effective_receptive_field("torchvision:resnet18", 64, weights=tmp_path / "r34.pt", samples=1)
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "partial.pt")
    with pytest.raises(RFAError, match=r"\d+ missing \(bn1.weight"):
        effective_receptive_field("torchvision:resnet18", 64, weights=tmp_path / "partial.pt", samples=1)


def test_cli_images_json_and_picture(rfa, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (50 + i, 70, 3), dtype=np.uint8)).save(images / f"{i}.png")
    (images / "notes.txt").write_text("not an image")
    result = rfa("erf", "torchvision:resnet18", "--res", "64", "--images", str(images), "--samples", "8",
                 "-l", "layer2", "-l", "layer3", "-f", "json", "-o", str(tmp_path / "erf.png"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == "rfa-toolbox/erf/v1" and data["samples"] == 3
    assert [m["source"] for m in data["maps"]] == ["module layer2", "module layer3"]
    assert set(data["maps"][0]["radius"]) == {"20", "30", "50", "99"}
    assert (tmp_path / "erf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    (images / "broken.png").write_bytes(b"\x89PNG not really")
    assert_one_line_error(rfa("erf", "torchvision:resnet18", "--res", "64", "--images", str(images)),
                          "cannot read the image", "broken.png")
    assert_one_line_error(rfa("erf", "torchvision:resnet18", "--res", "64", "-l", "nope"), "no layer or module 'nope'")
    assert_one_line_error(rfa("erf", "torchvision:resnet18", "--res", "64", "-l", "fc"), "sees the whole input")
    assert_one_line_error(rfa("erf", "torchvision:resnet18", "--res", "64", "--std", "0,1,1"), "--std")


def test_one_and_three_dimensional_pictures(tmp_path):
    pytest.importorskip("matplotlib")
    from rfa_toolbox.erf.picture import draw_erf

    for ndim, size in ((1, 40), (3, 12)):
        erf = effective_receptive_field(_uniform_chain(2, 3, ndim), size, samples=1,
                                        input_shape=(1,) + (size,) * ndim)
        path = draw_erf(erf, tmp_path / f"erf{ndim}.svg")
        assert "<svg" in path.read_text()


def test_default_is_the_last_spatial_layer_at_its_enclosing_module():
    """ResNet-18's last spatial layer is the second call of one ReLU module in the last basic
    block: measured at the block, whose output it is."""
    erf = effective_receptive_field(torchvision.models.resnet18(weights=None), 64, samples=1)
    (erf_map,) = erf.maps
    assert (erf_map.layer, erf_map.source, erf_map.units) == ("layer4.1.relu:1", "module layer4.1", (2, 2))


def test_in_place_ops_after_a_module_do_not_change_its_map():
    """VGG-11's conv features.8 is followed by an in-place ReLU (features.9): the conv's map is
    its own output's (a hook keeps a copy), the same as with the ReLU made out of place."""
    import copy

    model = torchvision.models.vgg11(weights=None)
    out_of_place = copy.deepcopy(model)
    out_of_place.features[9].inplace = False
    options = {"samples": 2, "float64": True}
    erf = effective_receptive_field(model, 64, layers=["features.8", "features.9"], **options)
    conv, relu = (m.heat for m in erf.maps)
    assert not np.allclose(conv, relu)
    alone = effective_receptive_field(out_of_place, 64, layers=["features.8"], **options).maps[0].heat
    assert np.array_equal(conv, alone)
    assert next(model.parameters()).dtype == torch.float32 and model.training  # the model is given back


class _Aliases(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 5, padding=2)

    def forward(self, x):
        f = self.a(x)
        return {"feat": f, "alias": f, "head": self.b(f)}


def test_outputs_by_name_and_defaults():
    erf = effective_receptive_field(_Aliases(), 32, outputs=["feat", "head"], samples=1, input_shape=(3, 32, 32))
    feat, head = erf.maps
    assert [tuple(b) for b in feat.union] == [(15, 17)] * 2 and [tuple(b) for b in head.union] == [(13, 19)] * 2
    assert _extent(head.heat) == [(13, 19)] * 2  # the head's own map, not the first output's
    # defaults: the last finite layer a module called once makes (VGG: the 7x7 adaptive pool)
    default = effective_receptive_field(torchvision.models.vgg11(weights=None), 96, samples=1)
    assert default.maps[0].source == "module avgpool"
    # a module path wins over an op named after its module (resnet18's block 'layer1.0')
    block = effective_receptive_field(torchvision.models.resnet18(weights=None), 64, layers="layer1.0", samples=1)
    assert block.maps[0].source == "module layer1.0"


def test_detectors_and_heads_are_refused_clearly(rfa):
    assert_one_line_error(rfa("erf", "torchvision:retinanet_resnet50_fpn", "--res", "128"), "is a detector",
                          "measure its backbone")
    assert_one_line_error(rfa("erf", "torchvision:resnet18", "--res", "64", "--output", "fc"), "sees the whole input")
    assert_one_line_error(rfa("erf", "torchvision:resnet18", "--res", "64", "-o", "/proc/x/erf.png"),
                          "cannot write /proc/x/erf.png")
