"""A two-input PyTorch model (RGB image and depth map fused after their stems).

    rfa analyze examples/two_inputs.py --res 224

``example_inputs(resolution)`` tells rfa how to build the inputs; the depth branch downsamples
once more than the image branch, so the fused features see more of the depth map.
"""

import torch
from torch import nn


class RGBDNet(nn.Module):
    """Image stem (two 3x3 convs, stride 2) and depth stem (5x5 stride 2, 3x3 stride 2 then
    nearest upsampling back), concatenated and fused by a 3x3 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.rgb = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.depth = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                                   nn.Upsample(scale_factor=2, mode="nearest"))
        self.fuse = nn.Conv2d(24, 32, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))

    def forward(self, image: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        fused = self.fuse(torch.cat([self.rgb(image), self.depth(depth)], dim=1))
        return self.head(fused)


model = RGBDNet()


def example_inputs(resolution):
    """An RGB image and a one-channel depth map of the given resolution."""
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    return torch.rand(1, 3, h, w), torch.rand(1, 1, h, w)
