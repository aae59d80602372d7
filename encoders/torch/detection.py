"""The dense part of torchvision's detectors, level by level, and the anchors of each level.

A detector's forward resizes and normalizes the images, runs the backbone (and its feature
pyramid), the dense heads, then decodes boxes, matches anchors and runs NMS on tensor values,
which a trace cannot follow. `dense_part` wraps what comes before the value-dependent part: its
forward takes the image tensor the backbone sees (after the detector's own resize; the
normalization does not change receptive fields) and returns, per pyramid level ``P<n>`` (n =
log2 of the level's stride), the feature map and each dense head's output on it:
``{"P3": ..., "P3/cls_logits": ..., "P3/bbox_regression": ...}`` (`name_levels` names the
levels once the graph is known).

Families: Faster, Mask and Keypoint R-CNN (the region proposal network's head; the RoI heads
crop features at boxes that depend on the data, so they are reported, not analyzed), RetinaNet,
FCOS, SSD and SSDlite. This module imports torch; it is imported only for such models.

To adapt another detector, write the same kind of module in a model file: its forward returns
a dict of the dense outputs (see docs/detectors.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

from torch import nn

from rfa_toolbox.graph import Graph
from rfa_toolbox.receptive_field import propagate

#: Per family, the heads applied to one level: name -> function(wrapper, features, index).
Heads = dict[str, Callable[[Any, Any, int], Any]]

ROI_NOTE = ("{name}: roi_heads ({heads}) read RoIAlign crops at proposal boxes that depend on the"
            " data: their receptive field is the box plus the crop's own, not a fixed number, so"
            " they are left out; the outputs are the pyramid levels and the region proposal head")


class DenseDetector(nn.Module):
    """A detector's backbone and dense heads, returning every level's features and head outputs
    by name. Submodules keep the detector's names (``backbone.body.layer1``, ``head...``)."""

    def __init__(self, detector: Any, parts: tuple[str, ...], heads: Heads):
        super().__init__()
        for part in parts:
            setattr(self, part, getattr(detector, part))
        self.heads = heads

    def forward(self, images: Any) -> dict[str, Any]:
        features = self.backbone(images)
        maps = list(features.values()) if isinstance(features, dict) else [features]
        out: dict[str, Any] = {}
        for index, feature in enumerate(maps):
            level = f"{MAP}{index}"  # named after the analysis, by its stride (`name_levels`)
            out[level] = feature
            for name, head in self.heads.items():
                out[f"{level}/{name}"] = head(self, feature, index)
        return out


MAP = "map"  #: the provisional name of the feature maps, in the backbone's order


def name_levels(graph: Graph, pyramid: bool = True) -> list[str]:
    """Rename the outputs of a traced `DenseDetector` by level, and return the levels in the
    backbone's order: ``P<n>`` with 2^n the level's stride for a feature pyramid (a second map
    of the same stride gets a prime, ``P5'``); SSD's maps keep ``map0``, ``map1``... (three of
    them share stride 64 in SSD300)."""
    levels = [label for label in graph.output_labels.values() if "/" not in label]
    if not pyramid:
        return levels
    rf = propagate(graph)
    by_label = {label: node for node, label in graph.output_labels.items()}
    names: dict[str, str] = {}
    for label in levels:
        jump = rf[by_label[label]][0].mins[0][1]
        name = f"P{round(math.log2(jump))}" if jump >= 1 else label
        while name in names.values():
            name += "'"
        names[label] = name
    for node, label in graph.output_labels.items():
        level, _, head = label.partition("/")
        graph.output_labels[node] = names[level] + (f"/{head}" if head else "")
    return [names[level] for level in levels]


def _rpn(part: str) -> Callable[[Any, Any, int], Any]:
    def head(self: Any, feature: Any, index: int) -> Any:
        logits, deltas = self.rpn.head([feature])
        return logits[0] if part == "objectness" else deltas[0]
    return head


def _retina_cls(self: Any, feature: Any, index: int) -> Any:
    return self.head.classification_head.cls_logits(self.head.classification_head.conv(feature))


def _retina_box(self: Any, feature: Any, index: int) -> Any:
    return self.head.regression_head.bbox_reg(self.head.regression_head.conv(feature))


def _fcos_box(self: Any, feature: Any, index: int) -> Any:  # (FCOS applies a ReLU: no change of field)
    return self.head.regression_head.bbox_reg(self.head.regression_head.conv(feature))


def _fcos_ctr(self: Any, feature: Any, index: int) -> Any:
    return self.head.regression_head.bbox_ctrness(self.head.regression_head.conv(feature))


def _ssd(part: str) -> Callable[[Any, Any, int], Any]:
    def head(self: Any, feature: Any, index: int) -> Any:
        return getattr(self.head, part).module_list[index](feature)
    return head


def levels_and_anchors(model: Any, size: tuple[int, int]) -> Callable[[Graph], None]:
    """What to do with the traced graph of a torchvision detector's dense part: name its
    levels and give them the detector's anchors at the input ``size``."""
    from torchvision.models.detection.ssd import SSD

    def finish(graph: Graph) -> None:
        graph.anchors = level_anchors(model, size, name_levels(graph, pyramid=not isinstance(model, SSD)))
    return finish


def dense_part(model: Any, name: str, images: Any) -> Optional[tuple[Any, list[str]]]:
    """For a torchvision detector: the `DenseDetector` to trace on ``images``, and notes for
    the report; None for any other model."""
    from torchvision.models import detection as det

    notes = [resize_note(model, name, images)] if hasattr(model, "transform") else []
    if isinstance(model, det.generalized_rcnn.GeneralizedRCNN):
        heads: Heads = {"rpn.objectness": _rpn("objectness"), "rpn.bbox_deltas": _rpn("deltas")}
        roi = [n for n, _ in model.roi_heads.named_children() if n.endswith(("head", "predictor"))]
        return DenseDetector(model, ("backbone", "rpn"), heads), [
            ROI_NOTE.format(name=name, heads=", ".join(roi)), *filter(None, notes)]
    if isinstance(model, det.retinanet.RetinaNet):
        heads = {"cls_logits": _retina_cls, "bbox_regression": _retina_box}
    elif isinstance(model, det.fcos.FCOS):
        heads = {"cls_logits": _retina_cls, "bbox_regression": _fcos_box, "bbox_ctrness": _fcos_ctr}
    elif isinstance(model, det.ssd.SSD):
        heads = {"cls_logits": _ssd("classification_head"), "bbox_regression": _ssd("regression_head")}
    else:
        return None
    return DenseDetector(model, ("backbone", "head"), heads), list(filter(None, notes))


def resize_note(model: Any, name: str, images: Any) -> Optional[str]:
    """What the detector's own transform would feed its backbone, when that differs from the
    size analyzed (the dense part is traced on the input as given)."""
    import torch

    model.eval()  # in training mode the transform draws a random size
    with torch.no_grad():
        batch, _ = model.transform(list(images))
    seen, given = tuple(batch.tensors.shape[-2:]), tuple(images.shape[-2:])
    if seen == given:
        return None
    return (f"{name} resizes (and pads) an image of {given[0]}x{given[1]} to {seen[0]}x{seen[1]} before"
            f" its backbone; this analysis is of the dense part at {given[0]}x{given[1]} as given"
            f" (--res {seen[0]}x{seen[1]} analyzes what the backbone sees)")


def level_anchors(model: Any, resolution: tuple[int, int], levels: list[str]) -> dict[str, list[tuple[float, ...]]]:
    """Per level (in the order of the feature maps), the anchors the detector assigns to it as
    (height, width) in input pixels: the anchor generator's boxes for R-CNN and RetinaNet, the
    default boxes for SSD, and for FCOS the largest object a level is trained on (its
    regression targets stop at 8 strides from the location, so a box of 16 strides; the last
    level has no bound and no entry)."""
    from torchvision.models import detection as det

    generator: Any = model.rpn.anchor_generator if isinstance(model, det.generalized_rcnn.GeneralizedRCNN) \
        else getattr(model, "anchor_generator", None)
    out: dict[str, list[tuple[float, ...]]] = {}
    if isinstance(model, det.fcos.FCOS):
        for level, sizes in list(zip(levels, generator.sizes))[:-1]:
            out[level] = [(16.0 * s, 16.0 * s) for s in sizes]
    elif isinstance(generator, det.anchor_utils.AnchorGenerator):
        for level, cell in zip(levels, generator.cell_anchors):
            out[level] = [(float(y2 - y1), float(x2 - x1)) for x1, y1, x2, y2 in cell.tolist()]
    elif isinstance(generator, det.anchor_utils.DefaultBoxGenerator):
        height, width = resolution
        for level, pairs in zip(levels, generator._wh_pairs):
            pairs = pairs.clamp(0, 1) if generator.clip else pairs
            out[level] = [(float(h) * height, float(w) * width) for w, h in pairs.tolist()]
    return out
