"""A U-Net (Ronneberger et al., 2015) with padded convolutions and bilinear upsampling, as most
PyTorch implementations write it: four 2x2 max pools down, four bilinear x2 upsamplings up, each
followed by a concatenation with the skip connection of the same level and two 3x3 convs.

    rfa analyze examples/unet.py --res 256
    rfa locate examples/unet.py --res 256 --layer head --at 0,0 --at 128,128 -o unet_boxes.png
"""

import torch
from torch import nn


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    """Widths 16, 32, 64, 128, 256 (the original has 64 ... 1024; receptive fields do not depend
    on widths)."""

    def __init__(self, classes: int = 2, width: int = 16) -> None:
        super().__init__()
        widths = [width * 2**level for level in range(5)]
        self.down = nn.ModuleList([double_conv(3, widths[0])] + [
            double_conv(widths[i], widths[i + 1]) for i in range(4)])
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.merge = nn.ModuleList([double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(4))])
        self.head = nn.Conv2d(widths[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.down):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.merge:
            x = block(torch.cat([self.up(x), skips.pop()], dim=1))
        return self.head(x)


model = UNet()
