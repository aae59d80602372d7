"""The RegNet design space (Radosavovic et al., "Designing Network Design Spaces", CVPR 2020).

A RegNet is given by depth d, initial width w0, slope wa, multiplier wm, group width g,
bottleneck ratio b and an optional squeeze-excitation ratio. Block widths are
u_j = w0 + wa * j, quantized to w0 * wm^round(log(u_j / w0) / log(wm)) and to multiples of 8;
equal consecutive widths form a stage; stage widths are then made compatible with the group
width. Each stage starts with a stride-2 block. Everything here is framework-free.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Optional

from ..builder import GraphBuilder
from ..graph import Graph
from ..ops import make_layer
from ..receptive_field import INPUT_RF, NodeRF, apply, union

QUANT = 8


@dataclass(frozen=True)
class RegNetParams:
    """The design-space parameters of one RegNet (picklable, hashable)."""

    depth: int
    w0: float
    wa: float
    wm: float
    group_width: int
    bottleneck: float = 1.0
    se_ratio: Optional[float] = None
    stem_width: int = 32
    rounding: str = "paper"  #: group-width compatibility: "paper" (pycls) or "torchvision"

    def stages(self) -> list[tuple[int, int, int]]:
        """(width, depth, group width) of each stage, after quantization and compatibility."""
        widths: list[int] = []
        for j in range(self.depth):
            u = self.w0 + self.wa * j
            power = round(math.log(u / self.w0) / math.log(self.wm)) if self.wm != 1 else 0
            widths.append(int(round(self.w0 * self.wm ** power / QUANT) * QUANT))
        stage_widths: list[int] = []
        stage_depths: list[int] = []
        for w in widths:
            if stage_widths and stage_widths[-1] == w:
                stage_depths[-1] += 1
            else:
                stage_widths.append(w)
                stage_depths.append(1)
        out = []
        for w, d in zip(stage_widths, stage_depths):
            w_bot = int(w * self.bottleneck)
            g = min(self.group_width, w_bot)
            w_bot = _divisible(w_bot, g) if self.rounding == "torchvision" else int(round(w_bot / g) * g)
            out.append((int(w_bot / self.bottleneck), d, g))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict."""
        return asdict(self)


def _divisible(value: float, divisor: int) -> int:
    """``value`` rounded to a multiple of ``divisor``, never more than 10% below it."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _preset(depth: int, w0: int, wa: float, wm: float, g: int, se: bool = False,
            torchvision: bool = False) -> RegNetParams:
    return RegNetParams(depth, w0, wa, wm, g, 1.0, 0.25 if se else None,
                        rounding="torchvision" if torchvision else "paper")


#: The paper's models (pycls), named like torchvision's builders; those torchvision ships use
#: its rounding of widths to the group width (which differs from pycls for a few models).
PRESETS: dict[str, RegNetParams] = {
    "regnet_x_200mf": _preset(13, 24, 36.44, 2.49, 8),
    "regnet_x_400mf": _preset(22, 24, 24.48, 2.54, 16, torchvision=True),
    "regnet_x_600mf": _preset(16, 48, 36.97, 2.24, 24),
    "regnet_x_800mf": _preset(16, 56, 35.73, 2.28, 16, torchvision=True),
    "regnet_x_1_6gf": _preset(18, 80, 34.01, 2.25, 24, torchvision=True),
    "regnet_x_3_2gf": _preset(25, 88, 26.31, 2.25, 48, torchvision=True),
    "regnet_x_4_0gf": _preset(23, 96, 38.65, 2.43, 40),
    "regnet_x_6_4gf": _preset(17, 184, 60.83, 2.07, 56),
    "regnet_x_8gf": _preset(23, 80, 49.56, 2.88, 120, torchvision=True),
    "regnet_x_12gf": _preset(19, 168, 73.36, 2.37, 112),
    "regnet_x_16gf": _preset(22, 216, 55.59, 2.1, 128, torchvision=True),
    "regnet_x_32gf": _preset(23, 320, 69.86, 2.0, 168, torchvision=True),
    "regnet_y_200mf": _preset(13, 24, 36.44, 2.49, 8, se=True),
    "regnet_y_400mf": _preset(16, 48, 27.89, 2.09, 8, se=True, torchvision=True),
    "regnet_y_600mf": _preset(15, 48, 32.54, 2.32, 16, se=True),
    "regnet_y_800mf": _preset(14, 56, 38.84, 2.4, 16, se=True, torchvision=True),
    "regnet_y_1_6gf": _preset(27, 48, 20.71, 2.65, 24, se=True, torchvision=True),
    "regnet_y_3_2gf": _preset(21, 80, 42.63, 2.66, 24, se=True, torchvision=True),
    "regnet_y_4_0gf": _preset(22, 96, 31.41, 2.24, 64, se=True),
    "regnet_y_6_4gf": _preset(25, 112, 33.22, 2.27, 72, se=True),
    "regnet_y_8gf": _preset(17, 192, 76.82, 2.19, 56, se=True, torchvision=True),
    "regnet_y_12gf": _preset(19, 168, 73.36, 2.37, 112, se=True),
    "regnet_y_16gf": _preset(18, 200, 106.23, 2.48, 112, se=True, torchvision=True),
    "regnet_y_32gf": _preset(20, 232, 115.89, 2.53, 232, se=True, torchvision=True),
    "regnet_y_128gf": _preset(27, 456, 160.83, 2.52, 264, se=True, torchvision=True),
}


def regnet_graph(params: RegNetParams, name: str = "regnet", classes: int = 1000,
                 backbone: bool = False) -> Graph:
    """The graph of a RegNet as torchvision builds it: a 3x3/2 stem, then per block a 1x1,
    a grouped 3x3 (stride 2 in a stage's first block), optional squeeze-excitation, a 1x1,
    and a 1x1 projection shortcut where the shape changes; global pooling and a classifier.
    With ``backbone=True`` there is no head and the outputs are the four stages' last
    blocks (C2-C5 for a detector)."""
    b = GraphBuilder(name=name)
    x = b.input("x")
    x = b.conv(x, 3, stride=2, name="stem.0", module="stem.0", in_channels=3,
               out_channels=params.stem_width, params=27 * params.stem_width)
    x = b.neutral(x, "relu", name="stem.2", module="stem.2")
    w_in = params.stem_width
    stage_outputs = []
    for s, (width, depth, g) in enumerate(params.stages(), 1):
        w_b = int(round(width * params.bottleneck))
        for i in range(depth):
            p = f"trunk_output.block{s}.block{s}-{i}"
            stride = 2 if i == 0 else 1
            y = b.conv(x, 1, name=f"{p}.f.a", module=f"{p}.f.a.0", in_channels=w_in,
                       out_channels=w_b, params=w_in * w_b)
            y = b.conv(y, 3, stride=stride, name=f"{p}.f.b", module=f"{p}.f.b.0", in_channels=w_b,
                       out_channels=w_b, groups=w_b // g, params=9 * w_b * g)
            if params.se_ratio:
                squeeze = int(round(params.se_ratio * w_in))
                z = b.global_pool(y, name=f"{p}.f.se.avgpool", module=f"{p}.f.se.avgpool")
                z = b.conv(z, 1, name=f"{p}.f.se.fc1", module=f"{p}.f.se.fc1", in_channels=w_b,
                           out_channels=squeeze, params=w_b * squeeze + squeeze)
                z = b.conv(z, 1, name=f"{p}.f.se.fc2", module=f"{p}.f.se.fc2", in_channels=squeeze,
                           out_channels=w_b, params=squeeze * w_b + w_b)
                y = b.mul(y, z, name=f"{p}.f.se.mul")
            y = b.conv(y, 1, name=f"{p}.f.c", module=f"{p}.f.c.0", in_channels=w_b,
                       out_channels=width, params=w_b * width)
            shortcut = x
            if w_in != width or stride != 1:
                shortcut = b.conv(x, 1, stride=stride, name=f"{p}.proj", module=f"{p}.proj.0",
                                  in_channels=w_in, out_channels=width, params=w_in * width)
            x = b.neutral(b.add(shortcut, y, name=f"{p}.add"), "relu", name=f"{p}.activation")
            w_in = width
        stage_outputs.append(x)
    if backbone:
        return b.build(outputs=stage_outputs)
    x = b.global_pool(x, name="avgpool", module="avgpool")
    b.dense(x, name="fc", module="fc", in_channels=w_in, out_channels=classes,
            params=w_in * classes + classes)
    return b.build()


# -- the fast path for NAS filters ----------------------------------------------------------

_CONV3 = {s: make_layer(f"conv3/{s}", "conv", 2, kernel=3, stride=s) for s in (1, 2)}
_PROJ = make_layer("proj/2", "conv", 2, kernel=1, stride=2)


def regnet_r(params: RegNetParams) -> tuple[int, int]:
    """r per axis of the RegNet, straight from the parameters: the same propagation as
    `regnet_graph` + analysis (1x1 convs, norms and squeeze-excitation leave the finite
    receptive fields unchanged), without building a graph. Used by the NAS filters."""
    rf: NodeRF = apply(_CONV3[2], (INPUT_RF, INPUT_RF))
    largest = int(rf[0].mins[0][0])  # integer strides: every size is an int
    w_in = params.stem_width
    for width, depth, _ in params.stages():
        for i in range(depth):
            stride = 2 if i == 0 else 1
            main = apply(_CONV3[stride], rf, with_max=False)
            largest = max(largest, int(main[0].mins[0][0]))
            if w_in != width or stride != 1:
                shortcut = apply(_PROJ, rf, with_max=False) if stride != 1 else rf
                rf = tuple(union([m, s], with_max=False) for m, s in zip(main, shortcut))
            else:
                rf = tuple(union([m, s], with_max=False) for m, s in zip(main, rf))
            w_in = width
    return (largest, largest)


# -- sampling the design spaces -----------------------------------------------------------------

def sample(space: str = "X", count: int = 1, seed: int = 0, stages: int = 4) -> list[RegNetParams]:
    """``count`` random RegNets from the RegNetX or RegNetY design space, reproducible from
    ``seed``: d in [12, 28], w0 and wa in [8, 256] and wm in [2, 3] (log-uniform, w0 a
    multiple of 8), g a power of two up to 32, b = 1 (squeeze-excitation 0.25 for Y), and
    ``stages`` stages, as in the paper."""
    if space not in ("X", "Y"):
        raise ValueError(f"space must be 'X' or 'Y', not {space!r}")
    rng = random.Random(seed)
    out: list[RegNetParams] = []
    while len(out) < count:
        candidate = RegNetParams(
            depth=rng.randint(12, 28),
            w0=int(round(math.exp(rng.uniform(math.log(8), math.log(256))) / QUANT)) * QUANT,
            wa=round(math.exp(rng.uniform(math.log(8), math.log(256))), 2),
            wm=round(math.exp(rng.uniform(math.log(2), math.log(3))), 3),
            group_width=2 ** rng.randint(0, 5),
            bottleneck=1.0,
            se_ratio=0.25 if space == "Y" else None,
        )
        if len(candidate.stages()) == stages:
            out.append(candidate)
    return out
