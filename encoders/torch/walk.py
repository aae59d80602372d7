"""The walk over a JIT trace graph: every op that depends on a model input becomes a node.

The traced graph is read through its object API (``node.kind()``, ``inputs()``, ``outputs()``,
``scopeName()``, constant values), never through its printed text. Every traced value that
depends on a model input is followed as a `Traced` tensor with its layout; constants and
parameters are resolved only when a handler asks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from rfa_toolbox.encoders.layout import NONE, Layout, spatial_sizes
from rfa_toolbox.encoders.pending import PendingNode, add_pending

from rfa_toolbox.graph import Graph
from rfa_toolbox.ops import make_layer

from .ir import Call, Handler, Lazy, Op, Traced, TraceError

#: Ops whose result depends on the input's shape only, not on its values: constants here.
_CREATION = {f"aten::{k}" for k in (
    "new_zeros new_ones new_full new_empty new_tensor zeros_like ones_like full_like empty_like "
    "rand_like randn_like randint_like fill_ zero_ bernoulli_".split())}

#: Ops that build, unpack or index containers and read shapes: followed, never nodes.
_PLUMBING = {"prim::Constant", "prim::GetAttr", "prim::ListConstruct", "prim::TupleConstruct",
             "prim::ListUnpack", "prim::TupleUnpack", "prim::DictConstruct", "prim::TupleIndex",
             "aten::__getitem__", "prim::NumToTensor", "aten::size", "aten::Int", "aten::Float",
             "aten::ScalarImplicit", "aten::dim", "prim::device", "prim::dtype", "aten::len"}


@dataclass
class EncodeOptions:
    """How strict the encoder is about ops it has no handler for."""

    strict: bool = False         #: every unknown op is an error
    allow_unknown: bool = False  #: unknown ops that change the spatial shape are neutral too


def module_path(scope: str) -> str:
    """The module path of a scope such as ``features/features.conv0`` (the last part).

    A module registered in several places (ultralytics shares one activation among all its
    conv blocks) has one name in the tracer's map, its first (``model.0.act``); called from
    another module, it is named within its caller instead (``model.15.cv2.act``)."""
    if not scope:
        return ""
    parts = scope.split("/")
    last = parts[-1]
    if len(parts) > 1 and parts[-2] and not last.startswith(parts[-2] + "."):
        return f"{parts[-2]}.{last.rsplit('.', 1)[-1]}"
    return last


def sizes_of(value: Any) -> Optional[tuple[int, ...]]:
    """The traced shape of a JIT value, or None when it is not a tensor of known shape."""
    try:
        sizes = value.type().sizes()
    except (AttributeError, RuntimeError):
        return None
    return tuple(sizes) if sizes is not None and None not in sizes else None


class Walker:
    """Walks the nodes of one trace graph in order and collects the graph of the model.

    ``values`` maps a traced value (by its unique id) to what is known of it: a `Traced`
    tensor, a constant, or a list of those. Nodes are first collected as `PendingNode`s named
    ``#k``; `finish` names them from their module paths and builds the `Graph`.
    """

    def __init__(self, ndim: int, options: EncodeOptions, name: str, handlers: dict[str, Handler]):
        self.graph = Graph(ndim, name)
        self.ndim = ndim
        self.options = options
        self.handlers = handlers
        self.values: dict[int, Any] = {}
        self.pending: list[PendingNode] = []
        self.unknown: dict[str, str] = {}  # op kind -> where it was first seen

    def value(self, v: Any) -> Any:
        """What is known of the traced value ``v``: a tensor, a constant (read on first use),
        a list, or None (a parameter or anything else that does not depend on an input)."""
        key = v.unique()
        if key in self.values:
            return self.values[key]
        node = v.node()
        if node.kind() == "prim::Constant":
            try:
                const = v.toIValue()
            except RuntimeError:
                const = None
        elif node.kind() in ("prim::ListConstruct", "prim::TupleConstruct"):
            const = [self.value(item) for item in node.inputs()]
        else:
            return None
        self.values[key] = const
        return const

    def tracked(self, inputs: list[Any]) -> list[Traced]:
        """The inputs that depend on a model input (lists of them flattened)."""
        found: list[Traced] = []
        for v in inputs:
            item = self.values.get(v.unique())
            if isinstance(item, Traced):
                found.append(item)
            elif isinstance(item, list):
                found += [t for t in item if isinstance(t, Traced)]
        return found

    def add_input(self, v: Any, name: str) -> None:
        """Make the model input ``v`` an input node called ``name`` (inputs without spatial
        axes are left out: they are treated like constants)."""
        shape = sizes_of(v)
        if shape is None or len(shape) != self.ndim + 2:
            return
        self.graph.add(make_layer(name, "input", self.ndim, shape=tuple(shape[1:]),
                                  meta={"sizes": tuple(shape[2:])}))
        layout = (NONE, NONE) + tuple(frozenset([a]) for a in range(self.ndim))
        self.values[v.unique()] = Traced(name, layout, tuple(shape))

    def walk(self, node: Any) -> None:
        """Visit one node of the trace graph (in order)."""
        kind = node.kind()
        if kind == "prim::Constant" or kind in _CREATION:
            return  # constants are read when a handler asks for them
        if kind in _PLUMBING:
            self.plumbing(node, kind)
            return
        inputs = list(node.inputs())
        tensors = self.tracked(inputs)
        if not tensors:
            return  # computes on parameters or constants only
        outputs = list(node.outputs())
        call = Call(kind, Lazy(inputs, self.value), Lazy(inputs, sizes_of), Lazy(outputs, sizes_of),
                    self.ndim, module_path(node.scopeName()), tensors)
        op = self.handle(call)
        layout = op.layout if op.layout is not None else call.x.layout
        name = self.new_node(call, op, outputs, layout)
        for v in outputs:
            self.values[v.unique()] = Traced(name, layout, sizes_of(v) or ())

    def handle(self, call: Call) -> Op:
        """The `Op` of ``call`` from its handler, or the unknown-op policy."""
        handler = self.handlers.get(call.kind)
        if handler is None:
            return self.unknown_op(call)
        try:
            op = handler(call)
        except (TypeError, IndexError, ValueError, KeyError, AttributeError) as exc:
            raise TraceError(
                f"cannot read the op {call.kind} in module {call.module or '(top level)'}:"
                f" {type(exc).__name__}: {exc}"
            ) from None
        return op or Op(call.name)

    def unknown_op(self, call: Call) -> Op:
        """An op without a handler: neutral if it keeps the spatial shape (and listed), else
        an error, unless the options say otherwise."""
        where = call.module or "(top level)"
        keeps = bool(call.out_sizes) and call.out_sizes[0] is not None and spatial_sizes(
            call.x.layout, call.sizes[0]) == spatial_sizes(call.x.layout, call.out_sizes[0])
        if self.options.strict or (not keeps and not self.options.allow_unknown):
            change = "" if keeps else " and it changes the spatial shape"
            raise TraceError(
                f"no handler for the op {call.kind} in module {where}{change}; register one with"
                " rfa_toolbox.encoders.torch.register_handler"
                + ("" if self.options.strict else ", or pass --allow-unknown to treat it as neutral")
            )
        self.unknown.setdefault(call.kind, where)
        return Op(call.kind)

    def new_node(self, call: Call, op: Op, outputs: list[Any], layout: Layout) -> str:
        """Record a pending node for ``call``; returns its temporary name ``#k``."""
        sources: list[str] = []
        for t in call.tensors:
            if t.node not in sources:
                sources.append(t.node)
        shape = sizes_of(outputs[0]) if outputs else None
        self.pending.append(PendingNode(call.module, call.kind, op, sources, shape, layout))
        return f"#{len(self.pending) - 1}"

    def plumbing(self, node: Any, kind: str) -> None:
        """Follow tensors through lists, tuples, dicts, unpacking and indexing."""
        outputs = list(node.outputs())
        if kind in ("prim::ListConstruct", "prim::TupleConstruct"):
            items = list(node.inputs())
            if self.tracked(items):  # lists of constants are resolved when a handler reads them
                self.values[outputs[0].unique()] = [self.value(v) for v in items]
        elif kind == "prim::DictConstruct":
            values = [self.value(v) for v in node.inputs()]
            self.values[outputs[0].unique()] = values[1::2]
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            source = self.value(next(node.inputs()))
            for i, v in enumerate(outputs):
                if isinstance(source, list) and i < len(source):
                    self.values[v.unique()] = source[i]
                elif isinstance(source, Traced):  # chunk/split results share the split node
                    self.values[v.unique()] = Traced(source.node, source.layout, sizes_of(v) or ())
        elif kind in ("prim::TupleIndex", "aten::__getitem__"):
            source, index = [self.value(v) for v in node.inputs()][:2]
            if isinstance(source, list) and isinstance(index, int) and -len(source) <= index < len(source):
                self.values[outputs[0].unique()] = source[index]
            elif isinstance(source, Traced):
                self.values[outputs[0].unique()] = Traced(source.node, source.layout,
                                                          sizes_of(outputs[0]) or ())

    def finish(self, output_values: list[Any], labels: Sequence[str] = ()) -> Graph:
        """Name the pending nodes, add them to the graph and set its outputs; ``labels`` name
        the flattened outputs (used when there is one per output tensor)."""
        renamed = add_pending(self.graph, self.pending, self.ndim, TraceError)
        flat = [renamed.get(t.node, t.node) for value in output_values for t in _flatten(value)]
        self.graph.outputs = list(dict.fromkeys(flat))
        if len(labels) == len(flat):  # a tensor returned under several names gets them all
            for name, label in zip(flat, labels):
                known = self.graph.output_labels.get(name)
                if label and label != known:
                    self.graph.output_labels[name] = f"{known}, {label}" if known else label
        self.graph.unknown_ops = [f"{kind} ({where})" for kind, where in self.unknown.items()]
        return self.graph


def _flatten(value: Any) -> list[Traced]:
    if isinstance(value, Traced):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _flatten(item)]
    return []
