"""Where a unit looks, against its input gradient: exact, unit by unit, on every axis.

Random linear networks (positive weights, no biases, average instead of max pooling)
with branches, dilation, asymmetric padding, even kernels, ceil_mode pooling, upsampling by
several factors and modes (nearest, bilinear and bicubic, with and without align_corners),
transposed convs with output padding, and pixel shuffle. With positive weights nothing cancels,
so the input positions with a non-zero gradient are exactly the positions a unit reads; their
extent must equal the unit's union box clipped to the input (``union_clipped``), for every unit
sampled. The model is analyzed through the PyTorch encoder, as users analyze theirs. The
networks run in float32, as models do: PyTorch computes the interpolations' coordinates in the
input's precision, and the exact boxes follow float32 arithmetic (in float64 a sample can land a
hair off a grid point and read a neighbour with a weight of 1e-15).
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rfa_toolbox import analyze  # noqa: E402


class Fn(nn.Module):
    def __init__(self, fn, name):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        return self.name


class Residual(nn.Module):
    """x + f(x), f keeping the size (a centred conv), or cat([x, f(x)]) then a 1x1 conv."""

    def __init__(self, body, concat):
        super().__init__()
        self.body, self.concat = body, concat
        self.mix = nn.Conv2d(2, 1, 1, bias=False) if concat else None

    def forward(self, x):
        y = self.body(x)
        return self.mix(torch.cat([x, y], 1)) if self.concat else x + y


def _conv(kh, kw, stride, dilation, padding):
    return nn.Conv2d(1, 1, (kh, kw), stride=stride, dilation=dilation, padding=padding, bias=False)


@st.composite
def blocks(draw):
    kind = draw(st.sampled_from(["conv", "pad_conv", "pool", "up", "tconv", "shuffle", "residual", "concat"]))
    if kind == "conv":
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        return _conv(kh, kw, draw(st.integers(1, 2)), draw(st.integers(1, 2)),
                     (draw(st.integers(0, 1)), draw(st.integers(0, 2))))
    if kind == "pad_conv":  # asymmetric padding, then an even kernel
        pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
        return nn.Sequential(nn.ZeroPad2d(pads), _conv(2, draw(st.integers(1, 3)), 1, 1, 0))
    if kind == "pool":
        k = draw(st.integers(2, 3))
        return nn.AvgPool2d(k, draw(st.integers(1, 2)), padding=draw(st.integers(0, k // 2)),
                            ceil_mode=draw(st.booleans()))
    if kind == "up":
        mode = draw(st.sampled_from(["nearest", "bilinear", "bicubic"]))
        factor = draw(st.sampled_from([2, 3, 1.5]))
        align = draw(st.booleans()) if mode != "nearest" else None
        return Fn(lambda x: F.interpolate(x, scale_factor=factor, mode=mode, align_corners=align),
                  f"{mode} x{factor} align={align}")
    if kind == "tconv":
        s = draw(st.integers(1, 2))
        k = draw(st.integers(s, 4))
        return nn.ConvTranspose2d(1, 1, k, stride=s, padding=draw(st.integers(0, (k - 1) // 2)),
                                  output_padding=draw(st.integers(0, s - 1)), bias=False)
    if kind == "shuffle":
        return nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.PixelShuffle(2))
    k, d = draw(st.sampled_from([1, 3])), draw(st.integers(1, 2))
    return Residual(_conv(k, k, 1, d, d * (k - 1) // 2), concat=kind == "concat")


def _positive(model):
    model = model.eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
    return model


def _support(model, x, position):
    x = x.clone().requires_grad_(True)
    y = model(x)
    (grad,) = torch.autograd.grad(y[(0, slice(None), *position)].sum(), x)
    rows = (grad[0, 0].abs().sum(dim=1) > 0).nonzero().flatten()
    cols = (grad[0, 0].abs().sum(dim=0) > 0).nonzero().flatten()
    return [(int(rows[0]), int(rows[-1])), (int(cols[0]), int(cols[-1]))] if len(rows) else None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(blocks(), min_size=1, max_size=5), side=st.integers(14, 30), data=st.data())
def test_every_sampled_unit_reads_exactly_its_union_box(layers, side, data):
    model = _positive(nn.Sequential(*layers))
    x = torch.rand(1, 1, side, side)
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError:  # too small for the network: nothing to compare
        return
    report = analyze(copy.deepcopy(model), side, input_shape=f"1x{side}x{side}", exact=True)
    last = report.layers[-1].name
    h, w = out.shape[-2:]
    picks = {(0, 0), (h - 1, w - 1), (h // 2, w // 2)}
    picks.add((data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))))
    for position in picks:
        measured = _support(model, x, position)
        boxes = report.box(last, position)
        clipped = [b["union_clipped"] for b in boxes]
        if measured is None:  # a unit that reads nothing (transposed conv gaps, all padding)
            assert None in clipped, (position, boxes)
        else:
            assert clipped == measured, (position, boxes, measured)
