"""Folding the shape arithmetic of exported graphs into constants, so that shape inference can
see through it: ``Shape -> Gather -> Concat -> Reshape`` chains (what PyTorch's exporter
writes for ``x.view(b, -1, h * w)``) become a constant target shape. Evaluated with
`constants.evaluate`, never by running the model; only nodes that do not depend on an input's
values are folded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from .constants import evaluate
from .files import initializer_value
from .shape_rules import output_shape

MAX_PASSES = 64  #: shape inference and folding alternate at most this often


def fold_constants(model: Any, shapes: dict[str, Optional[tuple[int, ...]]], folder: Path, where: str) -> int:
    """Replace every node whose outputs are known before the model runs by initializers
    holding them (the shapes of tensors count as known), and fill in ``shapes`` what the
    rules of `shape_rules` tell where shape inference gave nothing; returns how many nodes
    were replaced."""
    from onnx import helper, numpy_helper

    graph = model.graph
    known: dict[str, Any] = {}
    for tensor in graph.initializer:
        value = initializer_value(tensor, folder, where)
        if value is not None:
            known[tensor.name] = value
    kept, folded = [], 0
    for node in graph.node:
        inputs = [known.get(v) if v else None for v in node.input]
        value = None
        if node.op_type == "Constant":
            value = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "value"), None)
            value = numpy_helper.to_array(value) if value is not None else None
        elif node.op_type == "Shape" and node.domain in ("", "ai.onnx") and _shape_of(node.input[0], shapes, known):
            attrs = {a.name: a.i for a in node.attribute}
            value = np.array(_shape_of(node.input[0], shapes, known), dtype=np.int64)[attrs.get("start", 0):
                                                                                      attrs.get("end")]
        elif node.domain in ("", "ai.onnx") and node.input and all(v is not None for v in inputs):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.type in (1, 2, 3, 6, 7, 8)}
            if node.op_type == "ConstantOfShape":
                fill = next((a.t for a in node.attribute if a.name == "value"), None)
                attrs["value"] = numpy_helper.to_array(fill) if fill is not None else None
            value = evaluate(node.op_type, attrs, inputs)
        if value is None or len(node.output) != 1:
            kept.append(node)
            _fill_shape(node, shapes, known)
            continue
        known[node.output[0]] = value
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), node.output[0]))
        folded += 1
    if folded:
        del graph.node[:]
        graph.node.extend(kept)
    return folded


def _fill_shape(node: Any, shapes: dict[str, Optional[tuple[int, ...]]], known: dict[str, Any]) -> None:
    """The shape of the node's first output, when inference left it unknown and a rule knows it."""
    if not node.output or shapes.get(node.output[0]) is not None or node.domain not in ("", "ai.onnx"):
        return
    from onnx import helper

    in_shapes = [_shape_of(v, shapes, known) if v else None for v in node.input]
    values = [known.get(v) if v else None for v in node.input]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.type in (1, 2, 3, 6, 7, 8)}
    shape = output_shape(node.op_type, attrs, in_shapes, values)
    if shape is not None:
        shapes[node.output[0]] = shape


def _shape_of(name: str, shapes: dict[str, Optional[tuple[int, ...]]], known: dict[str, Any],
              ) -> Optional[tuple[int, ...]]:
    """A tensor's shape: of its value when it is a constant, else as inferred or filled."""
    return tuple(np.shape(known[name])) if name in known else shapes.get(name)
