"""Every PyTorch handler, with the options that change what an op reads (padding modes,
ceil_mode, count_include_pad, divisor_override, output_padding, align_corners, antialias,
non-divisible adaptive pooling), against a gradient measurement.

One op (after a 1x1 conv, so the input is traced) in float64 with positive weights: the input
positions with a non-zero gradient are the positions a unit (all channels of a position) reads.
For integer strides the analysis gives the extent exactly; for resampling (non-integer jumps)
the extent depends on the unit's position, and the standard estimate is within one input pixel
(the coarse jump of a single op) of the widest extent over the positions near the centre.
"""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

from rfa_toolbox import analyze  # noqa: E402

SIDE = 33


def conv(k, **options):
    layer = nn.Conv2d(1, 1, k, bias=False, **options)
    nn.init.constant_(layer.weight, 1.0)
    return layer


def tconv(k, **options):
    layer = nn.ConvTranspose2d(1, 1, k, bias=False, **options)
    nn.init.constant_(layer.weight, 1.0)
    return layer


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


#: name -> (module after the 1x1 conv, exact?)
CASES = {
    "conv zeros padding": (conv(5, padding=2), True),
    "conv reflect padding": (conv(5, padding=2, padding_mode="reflect"), True),
    "conv replicate padding": (conv(5, padding=2, padding_mode="replicate"), True),
    "conv circular padding": (conv(5, padding=2, padding_mode="circular"), True),
    "conv stride 2 dilation 2": (conv(3, stride=2, dilation=2), True),
    "conv even kernel asymmetric F.pad": (nn.Sequential(Fn(lambda x: F.pad(x, (0, 1, 2, 0))), conv(4)), True),
    "avg pool ceil_mode": (nn.AvgPool2d(3, 2, ceil_mode=True), True),
    "avg pool count_include_pad off": (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), True),
    "avg pool divisor_override": (nn.AvgPool2d(4, 3, divisor_override=2), True),
    "lp pool": (nn.LPPool2d(2, 3, 2), True),
    "adaptive avg pool non-divisible": (nn.AdaptiveAvgPool2d(5), False),
    "pixel unshuffle": (nn.PixelUnshuffle(3), True),
    "strided slice": (Fn(lambda x: x[..., ::3, ::2]), True),
    "transposed conv output_padding": (tconv(3, stride=2, padding=1, output_padding=1), False),
    "transposed conv dilation": (tconv(3, stride=2, dilation=2), False),
    "nearest x2": (nn.Upsample(scale_factor=2, mode="nearest"), False),
    "nearest x1.5": (nn.Upsample(scale_factor=1.5, mode="nearest"), False),
    "bilinear x2": (nn.Upsample(scale_factor=2, mode="bilinear"), False),
    "bilinear x2 align_corners": (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), False),
    "bicubic x3": (nn.Upsample(scale_factor=3, mode="bicubic"), False),
    "bilinear down x0.5": (Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear")), False),
    "bilinear antialias down x0.25": (Fn(lambda x: F.interpolate(x, scale_factor=0.25, mode="bilinear",
                                                                 antialias=True)), False),
    "bicubic antialias down x0.5": (Fn(lambda x: F.interpolate(x, scale_factor=0.5, mode="bicubic",
                                                               antialias=True)), False),
    "pixel shuffle": (nn.Sequential(nn.Conv2d(1, 4, 1, bias=False), nn.PixelShuffle(2)), False),
}


def _model(op: nn.Module) -> nn.Module:
    model = nn.Sequential(conv(1), op).double().eval()
    for param in model.parameters():
        nn.init.constant_(param, 1.0)
    return model


def _measured_extent(model: nn.Module) -> list[int]:
    """The largest extent, per axis, of the units near the centre (all channels of a position
    together: a unit is a position), over enough positions to see every phase of a
    resampling op."""
    x = torch.rand(1, 1, SIDE, SIDE, dtype=torch.float64, requires_grad=True)
    y = model(x)
    h, w = y.shape[-2] // 2, y.shape[-1] // 2
    widest = [0, 0]
    for i in range(h - 3, h + 3):
        for j in range(w - 3, w + 3):
            (grad,) = torch.autograd.grad(y[0, :, i, j].sum(), x, retain_graph=True)
            support = (grad[0, 0].abs() > 0).nonzero()
            if not len(support):  # a dilated transposed conv leaves units that read nothing
                continue
            for a in range(2):
                widest[a] = max(widest[a], int(support[:, a].max() - support[:, a].min() + 1))
    return widest


@pytest.mark.parametrize("name", sorted(CASES))
def test_handler_against_the_gradient(name):
    op, exact = CASES[name]
    model = _model(op)
    report = analyze(copy.deepcopy(model).float(), SIDE, input_shape=f"1x{SIDE}x{SIDE}")
    r_max = report.layers[-1].r_max
    measured = _measured_extent(model)
    for axis in range(2):
        if exact:
            assert r_max[axis] == measured[axis], (name, axis, r_max, measured)
        else:
            assert abs(r_max[axis] - measured[axis]) <= 1, (name, axis, r_max, measured)
