"""SpineNet-49 (Du et al., CVPR 2020) in PyTorch, random weights, widths divided by 8.

The same network as the framework-free builder ``rfa_toolbox.zoo.spinenet.spinenet_graph``:
tracing this module gives the same r_min and r_max for every output (P3..P7). Channel widths
do not change receptive fields, so the widths are cut to keep tracing fast.

    python examples/spinenet49.py            # per-level r_min / r_max, traced and built
    rfa analyze examples/spinenet49.py --res 256

SpineNet expects inputs whose sides are multiples of 128 (2^7, the coarsest level).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (level, block type, (parent, parent), is output); blocks 0 and 1 are the stem's.
SPECS = [
    (2, "bottleneck", (0, 1), False),
    (4, "residual", (0, 1), False),
    (3, "bottleneck", (2, 3), False),
    (4, "bottleneck", (2, 4), False),
    (6, "residual", (3, 5), False),
    (4, "bottleneck", (3, 5), False),
    (5, "residual", (6, 7), False),
    (7, "residual", (6, 8), False),
    (5, "bottleneck", (8, 9), False),
    (5, "bottleneck", (8, 10), False),
    (4, "bottleneck", (5, 10), True),
    (3, "bottleneck", (4, 10), True),
    (5, "bottleneck", (7, 12), True),
    (7, "bottleneck", (5, 14), True),
    (6, "bottleneck", (12, 14), True),
]
FILTERS = {2: 64, 3: 128, 4: 256, 5: 256, 6: 256, 7: 256}
# variant: (endpoint width, filter scale, resample alpha, block repeats)
VARIANTS = {"49S": (128, 0.65, 0.5, 1), "49": (256, 1.0, 0.5, 1), "96": (256, 1.0, 0.5, 2),
            "143": (256, 1.0, 1.0, 3), "190": (512, 1.3, 1.0, 4)}


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU()) if act else nn.Sequential(*layers)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, filters: int):
        super().__init__()
        cout = filters * 4
        self.conv1 = conv_bn(cin, filters, 1)
        self.conv2 = conv_bn(filters, filters, 3)
        self.conv3 = conv_bn(filters, cout, 1, act=False)
        self.shortcut = conv_bn(cin, cout, 1, act=False) if cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


class Residual(nn.Module):
    expansion = 1

    def __init__(self, cin: int, filters: int):
        super().__init__()
        self.conv1 = conv_bn(cin, filters, 3)
        self.conv2 = conv_bn(filters, filters, 3, act=False)
        self.shortcut = conv_bn(cin, filters, 1, act=False) if cin != filters else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


BLOCKS = {"bottleneck": Bottleneck, "residual": Residual}


class Resample(nn.Module):
    """1x1 conv to alpha * C; nearest upsampling, or a 3x3 stride-2 conv and one max pool of
    stride n/2 (kernel 3 for n = 4, else 5); 1x1 conv to the target width."""

    def __init__(self, cin: int, parent_kind: str, shift: int, cout: int, alpha: float):
        super().__init__()
        mid = int((cin // 4 if parent_kind == "bottleneck" else cin) * alpha)
        self.shift = shift  # target level - parent level
        self.squeeze = conv_bn(cin, mid, 1)
        self.down = conv_bn(mid, mid, 3, stride=2) if shift > 0 else None
        if shift > 1:
            kernel = 3 if shift == 2 else 5
            self.pool = nn.MaxPool2d(kernel, stride=2 ** (shift - 1), padding=kernel // 2)
        else:
            self.pool = None
        self.expand = conv_bn(mid, cout, 1, act=False)

    def forward(self, x):
        x = self.squeeze(x)
        if self.down is not None:
            x = self.down(x)
        if self.pool is not None:
            x = self.pool(x)
        if self.shift < 0:
            x = F.interpolate(x, scale_factor=2 ** -self.shift, mode="nearest")
        return self.expand(x)


def block_group(kind: str, cin: int, filters: int, repeats: int) -> nn.Sequential:
    block = BLOCKS[kind]
    layers = [block(cin, filters)]
    layers += [block(filters * block.expansion, filters) for _ in range(repeats - 1)]
    return nn.Sequential(*layers)


class SpineNet(nn.Module):
    """SpineNet-``variant``; forward returns the tuple (P3, P4, P5, P6, P7)."""

    def __init__(self, variant: str = "49", width_divisor: int = 8):
        super().__init__()
        endpoints, scale, alpha, repeats = VARIANTS[variant]
        d = width_divisor
        stem_width, stem_filters = 64 // d, int(FILTERS[2] * scale) // d
        self.stem = nn.Sequential(conv_bn(3, stem_width, 7, stride=2), nn.MaxPool2d(3, 2, padding=1))
        self.stem_blocks = nn.ModuleList([
            block_group("bottleneck", stem_width, stem_filters, repeats),
            block_group("bottleneck", stem_filters * 4, stem_filters, repeats),
        ])
        info = [(2, "bottleneck", stem_filters * 4)] * 2  # level, kind, channels per block
        self.resamples = nn.ModuleList()
        self.blocks = nn.ModuleList()
        outputs = {}
        for level, kind, parents, is_output in SPECS:
            filters = int(FILTERS[level] * scale) // d
            width = filters * BLOCKS[kind].expansion
            self.resamples.append(nn.ModuleList([
                Resample(info[p][2], info[p][1], level - info[p][0], width, alpha) for p in parents
            ]))
            self.blocks.append(block_group(kind, width, filters, repeats))
            info.append((level, kind, width))
            if is_output:
                outputs[f"P{level}"] = width
        self.output = nn.ModuleDict({
            name: conv_bn(outputs[name], endpoints // d, 1) for name in ("P3", "P4", "P5", "P6", "P7")
        })

    def forward(self, x):
        x = self.stem(x)
        feats = []
        for group in self.stem_blocks:
            x = group(x)
            feats.append(x)
        fan_out = [0, 0]
        outputs = {}
        for (level, _, parents, is_output), resample, group in zip(SPECS, self.resamples, self.blocks):
            parts = [op(feats[p]) for op, p in zip(resample, parents)]
            for p in parents:
                fan_out[p] += 1
            if is_output:  # blocks that feed nothing yet and have the target's shape join the sum
                for j, feat in enumerate(feats):
                    if fan_out[j] == 0 and feat.shape == parts[0].shape:
                        parts.append(feat)
                        fan_out[j] += 1
            y = parts[0]
            for part in parts[1:]:
                y = y + part
            y = group(F.relu(y))
            feats.append(y)
            fan_out.append(0)
            if is_output:
                outputs[f"P{level}"] = y
        return tuple(self.output[name](outputs[name]) for name in ("P3", "P4", "P5", "P6", "P7"))


def build_model(variant: str = "49") -> nn.Module:
    """SpineNet-``variant`` (49S, 49, 96, 143, 190), widths divided by 8."""
    return SpineNet(variant)


model = build_model()


def example_inputs(resolution=None):
    """A random image whose sides are multiples of 128 (256 by default)."""
    size = resolution or 256
    h, w = (size, size) if isinstance(size, int) else size
    return (torch.rand(1, 3, h, w),)


if __name__ == "__main__":
    from rfa_toolbox.encoders.torch import encode

    from rfa_toolbox.zoo.spinenet import output_receptive_fields, spinenet_graph

    traced = output_receptive_fields(encode(model, example_inputs(256)))
    built = output_receptive_fields(spinenet_graph("49"))
    print("SpineNet-49        traced (r_min / r_max)    builder (r_min / r_max)")
    for level in traced:
        (tmin, tmax), (bmin, bmax) = traced[level], built[level]
        print(f"  {level}  {tmin[0]:>6} / {tmax[0]:<8} {bmin[0]:>14} / {bmax[0]}")
    print("agree" if traced == built else "DIFFER")
