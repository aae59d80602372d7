"""The walk over an ONNX graph: every node that depends on a model input becomes a node of the
`Graph`, built with the same handlers' results, names and layers as the PyTorch encoder's.

Nothing runs: values known before the model runs (initializers, constants, shape arithmetic)
are evaluated with numpy when a handler needs them; tensors that depend on an input are
followed with their layout (which dims carry which spatial axes).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
from rfa_toolbox.encoders.layout import NONE, reshape_layout, spatial_sizes
from rfa_toolbox.encoders.passes import join_space_to_depth
from rfa_toolbox.encoders.pending import Op, PendingNode, Traced, add_pending

from rfa_toolbox.errors import shown
from rfa_toolbox.graph import Graph
from rfa_toolbox.ops import make_layer

from . import handlers as _handlers  # noqa: F401 - fills DEFAULT_HANDLERS
from .files import check_text, import_onnx, initializer_value, node_attributes, parse_onnx, read_onnx_file
from .fold import MAX_PASSES, fold_constants
from .ir import Handler, OnnxFormatError, OnnxNode, Unsupported, handler_table
from .shape_rules import output_shape
from .shapes import ModelInput, fix_inputs, inferred_shapes, model_inputs

CONTROL_FLOW = {"If", "Loop", "Scan", "SequenceMap"}
_PASS_THROUGH = {"Identity", "Optional", "OptionalGetElement"}


def module_path(name: str) -> str:
    """The module path in an exporter's node name: ``/layer1/layer1.0/conv1/Conv`` (PyTorch)
    gives ``layer1.0.conv1``, ``model/block1_conv/Conv2D`` gives ``model.block1_conv``; a
    name without scopes is its own module."""
    if "/" not in name:
        return name
    path: list[str] = []
    for part in [p for p in name.split("/")[:-1] if p]:
        joined = ".".join(path)
        if path and part.startswith(joined + "."):  # PyTorch repeats the parent's path
            path = [part]
        elif path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def node_module(node: Any) -> str:
    """A node's module path: from the scopes PyTorch's ``dynamo=True`` exporter records in its
    metadata (``pkg.torch.onnx.name_scopes``: the module path, then the op), else from its
    name (`module_path`)."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
    if scopes and len(scopes) < 10_000:
        try:
            parts = ast.literal_eval(scopes)  # a list of strings; literals only, nothing runs
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parts = None
        if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
            return parts[-2] if len(parts) >= 2 else ""
    return module_path(node.name)


class Walker:
    """Walks the nodes of one ONNX graph in order and collects the `Graph` of the model."""

    def __init__(self, model: Any, ndim: int, options: tuple[bool, bool], name: str,
                 handlers: dict[str, Handler], shapes: dict[str, Optional[tuple[int, ...]]], folder: Path):
        self.model = model
        self.graph = Graph(ndim, name)
        self.ndim = ndim
        self.strict, self.allow_unknown = options
        self.handlers = handlers
        self.shapes = shapes
        self.folder = folder
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.values: dict[str, Any] = {}
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.pending: list[PendingNode] = []
        self.unknown: dict[str, str] = {}
        self.notes: list[str] = []

    def value(self, name: str) -> Any:
        """A `Traced` tensor, a constant (numpy), or None (unknown, or an input left out)."""
        if not name:
            return None
        if name in self.values:
            return self.values[name]
        tensor = self.initializers.get(name)
        if tensor is None:
            return None
        value = initializer_value(tensor, self.folder, self.graph.name)  # None for a weight
        self.values[name] = value
        return value

    def add_input(self, item: ModelInput) -> None:
        dims = [d or 0 for d in item.dims]
        layout = [NONE] * len(dims)
        for axis, d in enumerate(item.spatial):
            layout[d] = frozenset([axis])
        spatial = tuple(dims[d] for d in item.spatial)
        channels = dims[-1] if item.channels_last else dims[1]
        self.graph.add(make_layer(item.name, "input", self.ndim, shape=(channels, *spatial) if all(spatial) else None,
                                  meta={"sizes": spatial}))
        self.values[item.name] = Traced(item.name, tuple(layout), tuple(dims))

    def walk(self, node: Any) -> None:
        """Visit one node (in topological order)."""
        inputs = [self.value(v) for v in node.input]
        tensors = [v for v in inputs if isinstance(v, Traced)]
        op_type = node.op_type
        if op_type in CONTROL_FLOW and any(isinstance(self.values.get(v), Traced) for v in _subgraph_reads(node)):
            tensors = tensors or [Traced("", (), ())]  # its branches read the input: refused below
        if not tensors:
            return  # computes constants: folded before the walk where they can be (`fold`)
        if op_type in CONTROL_FLOW:
            article = "an" if op_type[0] in "AEIOU" else "a"
            raise OnnxFormatError(f"node {shown(node.name or op_type)} is {article} {op_type}: control flow (a branch"
                                  " or loop decided at run time) cannot be analyzed without running the model")
        if op_type in _PASS_THROUGH:
            self._set(node, [inputs[0]])
            return
        if op_type in ("Shape", "Size"):
            shape = tensors[0].shape if tensors[0].shape and all(tensors[0].shape) else None
            value = None if shape is None else np.array(shape if op_type == "Shape" else [np.prod(shape)])
            if op_type == "Shape" and value is not None:
                attrs = node_attributes(node)
                value = value[attrs.get("start", 0): attrs.get("end")]
            self._set(node, [value])
            return
        attrs = node_attributes(node)
        out_sizes = [self.shapes.get(v) if v else None for v in node.output]
        in_sizes = [self._shape(v, value) for v, value in zip(node.input, inputs)]
        if out_sizes and out_sizes[0] is None:  # where inference stopped, the rules may know
            values = [None if isinstance(v, Traced) else v for v in inputs]
            out_sizes[0] = output_shape(op_type, attrs, in_sizes, values)
        onode = OnnxNode(op_type, node.domain, node.name, attrs, inputs,
                         in_sizes, out_sizes,
                         self.ndim, node_module(node), tensors, self.opset)
        op = self.handle(onode)
        approximate = op.meta.pop("approximate", None)
        if approximate:
            self.notes.append(f"{node.name or op_type}: Resize with {approximate} is computed with half-pixel"
                              " centres; the exact boxes of its units may differ by a unit")
        layout = op.layout if op.layout is not None else onode.x.layout
        self.pending.append(PendingNode(onode.module, onode.kind, op, list(dict.fromkeys(t.node for t in tensors)),
                                        onode.out_sizes[0] if onode.out_sizes else None, layout))
        name = f"#{len(self.pending) - 1}"
        for out, sizes in zip(node.output, onode.out_sizes):
            if out:
                self.values[out] = Traced(name, layout, sizes or ())

    def _shape(self, name: str, value: Any) -> Optional[tuple[int, ...]]:
        """An input's inferred shape, else the one its producer's reshape gave."""
        known = self.shapes.get(name) if name else None
        if known is None and isinstance(value, Traced) and value.shape:
            return tuple(value.shape)
        return known

    def _set(self, node: Any, values: list[Any]) -> None:
        for out, value in zip(node.output, values):
            self.values[out] = value

    def handle(self, node: OnnxNode) -> Op:
        """The `Op` of ``node`` from its handler, or the unknown-op policy."""
        handler = self.handlers.get(node.kind)
        where = f"node {shown(node.name or node.op_type)} ({node.kind})"
        if handler is None:
            return self.unknown_op(node, where, "")
        try:
            return handler(node) or Op(node.op_type.lower())
        except Unsupported as exc:
            return self.unknown_op(node, where, f": {exc}")
        except OnnxFormatError as exc:
            raise OnnxFormatError(f"{where}: {exc}") from None
        except (TypeError, IndexError, ValueError, KeyError, AttributeError, ZeroDivisionError):
            if any(size is None for size, t in zip(node.sizes, node.inputs) if isinstance(t, Traced)):
                raise OnnxFormatError(f"{where}: ONNX shape inference gives no shape for its input, so the"
                                      " positions cannot be followed through it") from None
            raise OnnxFormatError(f"{where}: its attributes or inputs have the wrong type or value") from None

    def unknown_op(self, node: OnnxNode, where: str, why: str) -> Op:
        """An op without a handler (or a use of one without a rule): neutral if it keeps the
        spatial shape (and listed), else an error, unless the options say otherwise."""
        before, after = node.sizes[0] if node.sizes else None, node.out_sizes[0] if node.out_sizes else None
        keeps = after is not None and spatial_sizes(node.x.layout, before) == spatial_sizes(node.x.layout, after)
        if self.strict or (not keeps and not self.allow_unknown):
            change = "" if keeps else " and it may change the spatial shape"
            raise OnnxFormatError(
                f"no handler for {where}{why}{change}; register one with rfa_toolbox.encoders.onnx.register_handler"
                + ("" if self.strict else ", or pass --allow-unknown to treat it as neutral"))
        self.unknown.setdefault(node.kind + why, node.module or "(top level)")
        if before is not None and after is not None and len(after) != len(node.x.layout):
            return Op(node.op_type, layout=reshape_layout(node.x.layout, before, after))  # as a reshape would
        return Op(node.op_type)

    def finish(self, outputs: list[str]) -> Graph:
        """Name the pending nodes, add them and set the outputs."""
        renamed = add_pending(self.graph, self.pending, self.ndim, OnnxFormatError)
        found = [(out, self.values.get(out)) for out in outputs]
        tracked = [(out, renamed.get(v.node, v.node)) for out, v in found if isinstance(v, Traced)]
        self.graph.outputs = list(dict.fromkeys(node for _, node in tracked))
        if len(tracked) > 1:
            for out, node in tracked:
                known = self.graph.output_labels.get(node)
                self.graph.output_labels[node] = f"{known}, {out}" if known else out
        self.graph.unknown_ops = [f"{kind} ({where})" for kind, where in self.unknown.items()]
        self.graph.notes += self.notes
        return self.graph


def _subgraph_reads(node: Any) -> set[str]:
    """The tensor names read inside a node's subgraphs (branches and loop bodies read the outer
    graph's tensors by name, not through the node's inputs)."""
    reads: set[str] = set()
    for attribute in node.attribute:
        for graph in [attribute.g] if attribute.type == 5 else list(attribute.graphs) if attribute.type == 10 else []:
            for inner in graph.node:
                reads.update(inner.input)
                reads |= _subgraph_reads(inner)
    return reads


def _ordered(graph: Any) -> list[Any]:
    """The nodes in an order where every node comes after the nodes it reads (ONNX requires it;
    a file that breaks the rule is sorted, and a cycle refused)."""
    produced: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            produced[out] = i
    if all(produced.get(v, -1) < i for i, node in enumerate(graph.node) for v in node.input):
        return list(graph.node)
    waiting = {i: {produced[v] for v in node.input if v in produced} for i, node in enumerate(graph.node)}
    readers: dict[int, list[int]] = {}
    for i, deps in waiting.items():
        for d in deps:
            readers.setdefault(d, []).append(i)
    ready = [i for i, deps in waiting.items() if not deps]
    order: list[int] = []
    while ready:
        i = ready.pop()
        order.append(i)
        for r in readers.get(i, []):
            waiting[r].discard(i)
            if not waiting[r]:
                ready.append(r)
    if len(order) != len(graph.node):
        raise OnnxFormatError("the ONNX graph has a cycle: a node reads its own output")
    return [graph.node[i] for i in order]


def graph_from_onnx(source: Any, resolution: Any = None, input_shape: Any = None, name: Optional[str] = None,
                    strict: bool = False, allow_unknown: bool = False,
                    handlers: Mapping[str, Handler] | None = None) -> Graph:
    """The graph of an ONNX model (a path, the file's bytes, or an ``onnx.ModelProto``) at
    ``resolution`` (an int or one size per spatial axis; needed when the file leaves the
    spatial size open) or ``input_shape`` (channels and sizes, such as ``(3, 224, 224)``),
    without running it. ``strict`` makes every op without a handler an error;
    ``allow_unknown`` treats such ops as neutral even when they change the spatial shape;
    ``handlers`` maps op types to handlers for this call only."""
    onnx = import_onnx()
    table = handler_table(handlers)
    folder = Path(".")
    if isinstance(source, (str, Path)):
        path = Path(source)
        model, folder, title = read_onnx_file(path), path.parent, name or str(source)
    elif isinstance(source, (bytes, bytearray)):
        model, title = parse_onnx(bytes(source)), name or "onnx_model"
    elif isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        check_text(model, "the ONNX model")
        title = name or model.graph.name or "onnx_model"
    else:
        raise OnnxFormatError(f"cannot read an ONNX model from a {type(source).__name__}")
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    resolution, channels = _sizes(resolution, input_shape)
    inputs = fix_inputs(model, model_inputs(model), resolution, channels)
    shapes = inferred_shapes(model)
    for _ in range(MAX_PASSES):
        try:
            folded = fold_constants(model, shapes, folder, title)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError):  # a Constant's tensor, damaged
            raise OnnxFormatError(f"{title}: a constant in the model is damaged: its data does not fit its type"
                                  " and shape") from None
        if not folded:
            break
        shapes = inferred_shapes(model)
    ndim = len(inputs[0].dims) - 2
    walker = Walker(model, ndim, (strict, allow_unknown), title, table, shapes, folder)
    for item in inputs:
        if len(item.dims) - 2 == ndim:
            walker.add_input(item)
    for node in _ordered(model.graph):
        walker.walk(node)
    graph = walker.finish([v.name for v in model.graph.output])
    if not graph.outputs:
        raise OnnxFormatError("no output of the model depends on its input")
    join_space_to_depth(graph)
    graph.validate()
    return graph


def _sizes(resolution: Any, input_shape: Any) -> tuple[Optional[tuple[int, ...]], Optional[int]]:
    """The spatial sizes and channels asked for (``input_shape`` is channels then sizes)."""
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        return shape[1:], shape[0]
    if resolution is None:
        return None, None
    return (tuple(int(r) for r in resolution) if isinstance(resolution, (tuple, list)) else (int(resolution),)), None
