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
from .files import initializer_value, node_attributes
from .shape_rules import output_shape

MAX_PASSES = 64  #: shape inference and folding alternate at most this often


def fold_constants(model: Any, shapes: dict[str, Optional[tuple[int, ...]]], folder: Path, where: str) -> int:
    """Replace every node whose outputs are known before the model runs by initializers
    holding them (the shapes of tensors count as known), and fill in ``shapes`` what the
    rules of `shape_rules` tell where shape inference gave nothing; returns how many nodes
    were replaced."""
    from onnx import numpy_helper

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
            value = _constant(node)
        elif node.op_type == "Shape" and node.domain in ("", "ai.onnx") and _shape_of(node.input[0], shapes, known):
            attrs = {a.name: a.i for a in node.attribute}
            value = np.array(_shape_of(node.input[0], shapes, known), dtype=np.int64)[attrs.get("start", 0):
                                                                                      attrs.get("end")]
        elif node.domain in ("", "ai.onnx") and node.input and all(v is not None for v in inputs):
            value = evaluate(node.op_type, node_attributes(node), inputs)
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
    in_shapes = [_shape_of(v, shapes, known) if v else None for v in node.input]
    values = [known.get(v) if v else None for v in node.input]
    shape = output_shape(node.op_type, node_attributes(node), in_shapes, values)
    if shape is not None:
        shapes[node.output[0]] = shape


def _shape_of(name: str, shapes: dict[str, Optional[tuple[int, ...]]], known: dict[str, Any],
              ) -> Optional[tuple[int, ...]]:
    """A tensor's shape: of its value when it is a constant, else as inferred or filled."""
    return tuple(np.shape(known[name])) if name in known else shapes.get(name)


#: a Constant's attributes and their types (TENSOR, FLOAT, FLOATS, INT, INTS, STRING, STRINGS)
_CONSTANT_TYPES = {"value": 4, "value_float": 1, "value_floats": 6, "value_int": 2, "value_ints": 7,
                   "value_string": 3, "value_strings": 8}


def _constant(node: Any) -> Any:
    """The value of a Constant node; an attribute of the wrong type is damage (TypeError)."""
    for attribute in node.attribute:
        if _CONSTANT_TYPES.get(attribute.name, attribute.type) != attribute.type:
            raise TypeError(f"Constant's {attribute.name} is not of its type")
    return next((v for v in node_attributes(node).values() if v is not None), None)
