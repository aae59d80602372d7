"""The dense part of ultralytics YOLO detectors (v3 to v12 style ``DetectionModel``s built from
their yaml), level by level.

In eval mode the last layer (``Detect``) concatenates every level, decodes distances into
boxes and returns one tensor in which the levels are mixed. `YoloDense` runs the layers as
ultralytics does (each layer reads the outputs its ``f`` index names) up to ``Detect``, then
returns per level its input feature map and each branch of ``Detect`` on it: ``cv2`` (box
distances), ``cv3`` (classes) and ``cv4`` where the task has one (masks, keypoints, angles);
segmentation heads also return their mask prototypes (``proto``, from the finest level).
This module imports torch; it is imported only for such models.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from .detection import MAP

BRANCHES = {"cv2": "box", "cv3": "cls", "cv4": "extra"}
#: What the fourth branch predicts, by the head's class.
EXTRA = {"Segment": "mask_coefficients", "Pose": "keypoints", "OBB": "angle"}


class YoloDense(nn.Module):
    """Everything of a YOLO ``DetectionModel`` before its decoding, by level."""

    def __init__(self, detection_model: Any):
        super().__init__()
        self.model = detection_model.model  # module paths stay model.0.conv, model.22.cv2.0...

    def forward(self, x: Any) -> dict[str, Any]:
        layers = list(self.model)
        detect = layers[-1]
        saved: list[Any] = []
        for layer in layers[:-1]:
            if layer.f != -1:
                x = saved[layer.f] if isinstance(layer.f, int) else [x if j == -1 else saved[j] for j in layer.f]
            x = layer(x)
            saved.append(x)
        out: dict[str, Any] = {}
        sources = [detect.f] if isinstance(detect.f, int) else detect.f
        for index, j in enumerate(sources):
            feature = x if j == -1 else saved[j]
            out[f"{MAP}{index}"] = feature
            for attr, name in BRANCHES.items():
                branch = getattr(detect, attr, None)
                if isinstance(branch, nn.ModuleList) and index < len(branch):
                    name = EXTRA.get(type(detect).__name__, name) if attr == "cv4" else name
                    out[f"{MAP}{index}/{name}"] = branch[index](feature)
            if index == 0 and isinstance(getattr(detect, "proto", None), nn.Module):
                out[f"{MAP}0/proto"] = detect.proto(feature)  # the mask prototypes, from the finest level
        return out


def dense_part(model: Any) -> Optional[Any]:
    """The `YoloDense` of an ultralytics ``DetectionModel`` (or of the ``YOLO`` object holding
    one); None for other models."""
    inner = getattr(model, "model", None)
    if type(model).__name__ == "YOLO" and inner is not None and hasattr(inner, "model"):
        model = inner
    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or not len(layers):
        return None
    detect = layers[-1]
    if not (hasattr(detect, "cv2") and hasattr(detect, "cv3") and hasattr(detect, "f")):
        return None
    return YoloDense(model)


def largest_objects(detect: Any, levels: list[str]) -> dict[str, list[tuple[float, ...]]]:
    """Per level, the largest box the ``Detect`` head can predict: distances to the four sides
    of at most ``reg_max - 1`` strides (the distribution focal loss bins), so a box of
    ``2 (reg_max - 1)`` strides; empty where the head has no such bound."""
    reg_max, strides = getattr(detect, "reg_max", 1), getattr(detect, "stride", None)
    if reg_max <= 1 or strides is None or len(strides) != len(levels):
        return {}
    return {level: [(2.0 * (reg_max - 1) * float(s),) * 2] for level, s in zip(levels, strides)}
