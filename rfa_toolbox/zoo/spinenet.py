"""SpineNet (Du et al., "SpineNet: Learning Scale-Permuted Backbone for Recognition and
Localization", CVPR 2020) as a framework-free graph.

A SpineNet is a stem (7x7 stride-2 conv, 3x3 stride-2 max pool, two level-2 bottleneck
block groups) followed by a *scale-permuted* sequence of blocks found by architecture search.
Every block is given by (level, block type, the two parent blocks, output flag); level L means
a feature map 1/2^L of the input. Each parent is resampled to the block's level and width:

- a 1x1 conv scales its feature dimension by ``resample_alpha``;
- to go up by a factor n: nearest upsampling by n;
- to go down by n: a 3x3 stride-2 conv, and for n > 2 a max pool with stride n/2 (kernel 3 for
  n = 4, 5 beyond) in the reference implementation released with the paper (tensorflow/tpu,
  ``models/official/detection/modeling/architecture/spinenet.py``). The later TF Model Garden
  version (tensorflow/models, ``official/vision/modeling/backbones/spinenet.py``) repeats a 3x3
  stride-2 max pool instead: ``max_pool="repeated"``;
- a 1x1 conv matches the block's input width.

The resampled parents are summed; an output block also sums every earlier block of its level
and width that feeds nothing yet. The sum goes through the block group (``block_repeats``
bottleneck or basic residual blocks, all stride 1). Each output block (levels 3..7) gets a 1x1
conv: the outputs P3..P7.

The variants differ in block repeats and widths only (resolution scaling does not change the
graph): 49S, 49, 96, 143, 190 as in the paper's table 1 / the reference ``SCALING_MAP``.
Receptive fields go through nearest upsampling, so the values are the standard estimate (see
the design notes); all strides are powers of two.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ..analysis import PerAxis
from ..builder import GraphBuilder
from ..graph import Graph

BOTTLENECK, RESIDUAL = "bottleneck", "residual"


class BlockSpec(NamedTuple):
    """One block of the scale-permuted network."""

    level: int
    block: str  #: "bottleneck" (1x1, 3x3, 1x1; 4x expansion) or "residual" (3x3, 3x3)
    parents: tuple[int, int]  #: indices into [stem block 0, stem block 1, block 2, ...]
    output: bool


#: SpineNet-49 as published (Du et al. 2020, Fig. 4; tensorflow/tpu ``SPINENET_BLOCK_SPECS``).
#: Blocks 0 and 1 are the stem's level-2 bottleneck groups; the spec of block k is entry k-2.
BLOCK_SPECS: tuple[BlockSpec, ...] = tuple(BlockSpec(level, block, parents, output) for
                                           level, block, parents, output in [
    (2, BOTTLENECK, (0, 1), False),
    (4, RESIDUAL, (0, 1), False),
    (3, BOTTLENECK, (2, 3), False),
    (4, BOTTLENECK, (2, 4), False),
    (6, RESIDUAL, (3, 5), False),
    (4, BOTTLENECK, (3, 5), False),
    (5, RESIDUAL, (6, 7), False),
    (7, RESIDUAL, (6, 8), False),
    (5, BOTTLENECK, (8, 9), False),
    (5, BOTTLENECK, (8, 10), False),
    (4, BOTTLENECK, (5, 10), True),
    (3, BOTTLENECK, (4, 10), True),
    (5, BOTTLENECK, (7, 12), True),
    (7, BOTTLENECK, (5, 14), True),
    (6, BOTTLENECK, (12, 14), True),
])

#: Base filters of a block per level (the bottleneck's inner width; its output is 4x).
FILTERS = {1: 32, 2: 64, 3: 128, 4: 256, 5: 256, 6: 256, 7: 256}


class Scaling(NamedTuple):
    """The scaling rule of one SpineNet variant."""

    endpoints: int          #: width of the P3..P7 outputs
    filter_scale: float     #: multiplier of every block's filters
    resample_alpha: float   #: feature-dimension factor in the cross-scale connections
    block_repeats: int      #: blocks per block group


SCALING: dict[str, Scaling] = {
    "49S": Scaling(128, 0.65, 0.5, 1),
    "49": Scaling(256, 1.0, 0.5, 1),
    "96": Scaling(256, 1.0, 0.5, 2),
    "143": Scaling(256, 1.0, 1.0, 3),
    "190": Scaling(512, 1.3, 1.0, 4),
}

STEM_WIDTH = 64
OUTPUT_LEVELS = (3, 4, 5, 6, 7)
MAX_POOL_SCHEMES = ("single", "repeated")


def variant_name(variant: Any) -> str:
    """``"49"`` from 49, ``"49s"``, ``"SpineNet-49"``, ``"spinenet49"``; raises on others."""
    text = re.sub(r"^spine[-_ ]?net[-_ ]?", "", str(variant).strip(), flags=re.IGNORECASE).upper()
    if text not in SCALING:
        raise ValueError(f"unknown SpineNet variant {variant!r} (one of {', '.join(SCALING)})")
    return text


def block_width(block: str, filters: int) -> int:
    """Output channels of a block with ``filters``: times 4 for a bottleneck."""
    return filters * 4 if block == BOTTLENECK else filters


def inner_width(block: str, channels: int) -> int:
    """The inner width of a block with ``channels`` outputs: a bottleneck's is a quarter."""
    return channels // 4 if block == BOTTLENECK else channels


class _Net:
    """Adds SpineNet's pieces to a `GraphBuilder`, with channel and parameter metadata."""

    def __init__(self, b: GraphBuilder, max_pool: str):
        self.b = b
        self.max_pool = max_pool

    def conv(self, x: str, name: str, kernel: int, cin: int, cout: int, stride: int = 1) -> str:
        return self.b.conv(x, kernel, stride=stride, name=name, module=name, in_channels=cin,
                           out_channels=cout, params=kernel * kernel * cin * cout)

    def block(self, x: str, name: str, kind: str, cin: int, filters: int) -> tuple[str, int]:
        """One bottleneck or basic residual block (stride 1); returns (node, out channels)."""
        cout = block_width(kind, filters)
        if kind == BOTTLENECK:
            y = self.conv(x, f"{name}.conv1", 1, cin, filters)
            y = self.conv(y, f"{name}.conv2", 3, filters, filters)
            y = self.conv(y, f"{name}.conv3", 1, filters, cout)
        else:
            y = self.conv(x, f"{name}.conv1", 3, cin, filters)
            y = self.conv(y, f"{name}.conv2", 3, filters, filters)
        shortcut = x if cin == cout else self.conv(x, f"{name}.shortcut", 1, cin, cout)
        return self.b.add(y, shortcut, name=f"{name}.add"), cout

    def group(self, x: str, name: str, kind: str, cin: int, filters: int,
              repeats: int) -> tuple[str, int]:
        """``repeats`` blocks; only the first may project its shortcut."""
        for r in range(repeats):
            x, cin = self.block(x, f"{name}.{r}", kind, cin, filters)
        return x, cin

    def resample(self, x: str, name: str, cin: int, parent_block: str, up_levels: int,
                 cout: int, alpha: float) -> str:
        """A parent feature resampled to the target: ``up_levels`` > 0 goes to a finer level."""
        mid = int(inner_width(parent_block, cin) * alpha)
        x = self.conv(x, f"{name}.squeeze", 1, cin, mid)
        if up_levels < 0:  # the target is coarser: go down
            down = -up_levels
            x = self.conv(x, f"{name}.down", 3, mid, mid, stride=2)
            if down > 1 and self.max_pool == "single":
                kernel = 3 if down == 2 else 5
                stride = 2 ** (down - 1)
                x = self.b.max_pool(x, kernel, stride=stride, name=f"{name}.pool", module=f"{name}.pool")
            elif down > 1:
                for i in range(1, down):
                    x = self.b.max_pool(x, 3, stride=2, name=f"{name}.pool{i}", module=f"{name}.pool{i}")
        elif up_levels > 0:
            x = self.b.upsample(x, 2 ** up_levels, "nearest", name=f"{name}.upsample",
                                module=f"{name}.upsample")
        return self.conv(x, f"{name}.expand", 1, mid, cout)


def spinenet_graph(variant: Any = "49", max_pool: str = "single",
                   block_specs: Any = None) -> Graph:
    """The graph of SpineNet-``variant`` (49S, 49, 96, 143, 190), outputs ordered P3..P7.

    Node names are module paths: ``stem.conv``, ``stem.pool``, ``block{k}.{r}.conv2`` (k indexes
    the blocks, 0 and 1 being the stem's), ``block{k}.resample{p}.down`` / ``.pool`` /
    ``.upsample``, ``block{k}.merge`` and the outputs ``output.P3`` ... ``output.P7``.
    ``max_pool`` is the downsampling of cross-scale connections: ``"single"`` (the paper's
    reference implementation: one max pool of stride n/2 after the stride-2 conv) or
    ``"repeated"`` (TF Model Garden: 3x3 stride-2 max pools until the level is reached).
    ``block_specs`` replaces the published SpineNet-49 blocks (a sequence of `BlockSpec` or
    (level, block, (parent0, parent1), output) tuples), e.g. for architecture search.
    """
    name = variant_name(variant)
    if max_pool not in MAX_POOL_SCHEMES:
        raise ValueError(f"max_pool must be one of {', '.join(MAX_POOL_SCHEMES)}, not {max_pool!r}")
    specs = [BlockSpec(int(lv), str(k), (int(p[0]), int(p[1])), bool(o))
             for lv, k, p, o in (block_specs if block_specs is not None else BLOCK_SPECS)]
    scaling = SCALING[name]
    scale, repeats = scaling.filter_scale, scaling.block_repeats
    b = GraphBuilder(name=f"spinenet{name.lower()}")
    net = _Net(b, max_pool)

    x = b.input("input")
    x = net.conv(x, "stem.conv", 7, 3, STEM_WIDTH, stride=2)
    x = b.max_pool(x, 3, stride=2, name="stem.pool", module="stem.pool")
    stem_filters = int(FILTERS[2] * scale)
    feats: list[str] = []
    levels: list[int] = []
    kinds: list[str] = []
    widths: list[int] = []
    cin = STEM_WIDTH
    for k in range(2):
        x, cin = net.group(x, f"block{k}", BOTTLENECK, cin, stem_filters, repeats)
        feats.append(x)
        levels.append(2)
        kinds.append(BOTTLENECK)
        widths.append(cin)
    fan_out = [0, 0]

    outputs: dict[int, str] = {}
    for spec in specs:
        k = len(feats)
        if spec.block not in (BOTTLENECK, RESIDUAL):
            raise ValueError(f"block {k}: unknown block type {spec.block!r}")
        if not all(0 <= p < k for p in spec.parents):
            raise ValueError(f"block {k}: parents {spec.parents} must be earlier blocks (0..{k - 1})")
        filters = int(FILTERS[spec.level] * scale)
        width = block_width(spec.block, filters)
        parts = []
        for i, p in enumerate(spec.parents):
            parts.append(net.resample(feats[p], f"block{k}.resample{i}", widths[p], kinds[p],
                                      levels[p] - spec.level, width, scaling.resample_alpha))
            fan_out[p] += 1
        if spec.output:  # blocks of this level and width that feed nothing yet join the sum
            for j in range(k):
                if fan_out[j] == 0 and levels[j] == spec.level and widths[j] == width:
                    parts.append(feats[j])
                    fan_out[j] += 1
        merged = b.add(*parts, name=f"block{k}.merge")
        x, _ = net.group(merged, f"block{k}", spec.block, width, filters, repeats)
        feats.append(x)
        levels.append(spec.level)
        kinds.append(spec.block)
        widths.append(width)
        fan_out.append(0)
        if spec.output:
            if spec.level in outputs:
                raise ValueError(f"block {k}: a second output of level {spec.level}")
            outputs[spec.level] = x

    missing = [lvl for lvl in OUTPUT_LEVELS if lvl not in outputs]
    if missing:
        raise ValueError(f"the blocks have no output of level(s) {missing}")
    out_names = []
    for level in OUTPUT_LEVELS:
        source = outputs[level]
        out_names.append(net.conv(source, f"output.P{level}", 1, widths[feats.index(source)],
                                  scaling.endpoints))
    return b.build(outputs=out_names)


def output_receptive_fields(graph: Graph, resolution: int = 640) -> dict[str, tuple[PerAxis, PerAxis]]:
    """Per output: ``{"P3": ((r_min per axis), (r_max per axis)), ...}``, by the standard rules.

    The per-output report (`rfa_toolbox.Report.outputs`) at ``resolution``, keyed by level: the
    ``P<level>`` found in the output's label, module path or name (``output.P3``); outputs
    without one are labelled P3, P4, ... in order (the SpineNet convention). Works for the
    builder's graphs and for traced PyTorch implementations alike.
    """
    from ..analyzer import analyze_graph

    result: dict[str, tuple[PerAxis, PerAxis]] = {}
    for i, out in enumerate(analyze_graph(graph, resolution, exact=False).report.outputs()):
        label = out.level or f"P{OUTPUT_LEVELS[0] + i}"
        if label in result:
            label = f"{label}:{out.layer}"
        result[label] = (out.r_min, out.r_max)
    return result
