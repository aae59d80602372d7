"""A small segmentation network whose forward returns a dict of outputs ("out" and "aux"),
like torchvision's segmentation models.

    rfa analyze examples/segmentation_dict.py --res 128
"""

import torch
import torch.nn.functional as F
from torch import nn


def block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinySegNet(nn.Module):
    """Encoder with three stride-2 stages, an auxiliary head on stage 2 and a dilated main head;
    both heads are upsampled bilinearly to the input size."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stage1 = block(3, 16, 2)
        self.stage2 = block(16, 32, 2)
        self.stage3 = block(32, 64, 2)
        self.context = nn.Conv2d(64, 64, 3, padding=2, dilation=2)
        self.classifier = nn.Conv2d(64, classes, 1)
        self.aux = nn.Conv2d(32, classes, 1)

    def forward(self, x: torch.Tensor) -> dict:
        size = x.shape[-2:]
        c2 = self.stage2(self.stage1(x))
        out = self.classifier(F.relu(self.context(self.stage3(c2))))
        return {"out": F.interpolate(out, size=size, mode="bilinear", align_corners=False),
                "aux": F.interpolate(self.aux(c2), size=size, mode="bilinear", align_corners=False)}


def build_model() -> nn.Module:
    """The factory rfa finds when no `model` variable exists."""
    return TinySegNet()
