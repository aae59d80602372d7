"""RegNetX-3.2GF with the feature pyramid of mmdetection's Mask R-CNN RegNet configs (FPN over
C2-C5 with in_channels [96, 192, 432, 1008], 256 channels, five outputs: P2-P5 and P6 by max
pooling), built from torchvision's modules without weights. It returns the backbone's C2-C5
and the pyramid's P2-P6, so one report lists them side by side.

    rfa analyze examples/regnet_fpn.py --res 800x1333

examples/regnet_detection.py gives C2-C5 from the RegNet design-space builder alone (no torch).
"""

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import regnet_x_3_2gf
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool


class RegNetFPN(nn.Module):
    """The backbone and neck of Mask R-CNN with RegNetX-3.2GF (the heads are in
    test_detectors.py's torchvision detectors)."""

    def __init__(self) -> None:
        super().__init__()
        regnet = regnet_x_3_2gf(weights=None)
        self.stem = regnet.stem
        self.trunk_output = regnet.trunk_output
        self.fpn = FeaturePyramidNetwork([96, 192, 432, 1008], 256, extra_blocks=LastLevelMaxPool())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.stem(x)
        levels: OrderedDict[str, torch.Tensor] = OrderedDict()
        for number, stage in enumerate(self.trunk_output, start=2):
            x = stage(x)
            levels[f"C{number}"] = x
        pyramid = self.fpn(levels)
        return {**levels, **{f"P{number}": p for number, p in enumerate(pyramid.values(), start=2)}}


model = RegNetFPN()
