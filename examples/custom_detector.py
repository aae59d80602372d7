"""How to analyze a detector rfa has no adapter for: write its dense part as a module whose
forward returns a dict of outputs named ``LEVEL/HEAD`` (the level's feature map under ``LEVEL``
alone), stopping before box decoding and NMS, and give the anchors of each level in
``anchors``. Here, a small YOLO-style detector: a strided backbone, a neck that upsamples and
concatenates (P5 -> P4 -> P3), and a class and a box head per level.

    rfa analyze examples/custom_detector.py --res 256
"""

import torch
from torch import nn


def conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.SiLU())


class TinyYolo(nn.Module):
    def __init__(self, classes: int = 3, width: int = 16) -> None:
        super().__init__()
        w = [width * 2**i for i in range(6)]
        self.stem = nn.Sequential(conv(3, w[0], 2), conv(w[0], w[1], 2))            # stride 4
        self.c3, self.c4, self.c5 = conv(w[1], w[2], 2), conv(w[2], w[3], 2), conv(w[3], w[4], 2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.n4 = conv(w[4] + w[3], w[3])
        self.n3 = conv(w[3] + w[2], w[2])
        self.cls = nn.ModuleList([nn.Sequential(conv(c, c), nn.Conv2d(c, classes, 1)) for c in (w[2], w[3], w[4])])
        self.box = nn.ModuleList([nn.Sequential(conv(c, c), nn.Conv2d(c, 4, 1)) for c in (w[2], w[3], w[4])])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        c3 = self.c3(self.stem(x))
        c4 = self.c4(c3)
        p5 = self.c5(c4)
        p4 = self.n4(torch.cat([self.up(p5), c4], 1))
        p3 = self.n3(torch.cat([self.up(p4), c3], 1))
        out = {}
        for i, (level, feature) in enumerate((("P3", p3), ("P4", p4), ("P5", p5))):
            out[level] = feature
            out[f"{level}/cls"] = self.cls[i](feature)
            out[f"{level}/box"] = self.box[i](feature)
        return out


model = TinyYolo()

#: Per level, the anchor sizes in input pixels: one number (a square) or (height, width).
anchors = {"P3": [(10, 13), (16, 30), (33, 23)], "P4": [(30, 61), (62, 45), (59, 119)],
           "P5": [(116, 90), (156, 198), (373, 326)]}
