"""`encode`: a PyTorch module and example inputs to a `Graph`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rfa_toolbox.encoders.passes import join_space_to_depth

from rfa_toolbox.graph import Graph

from . import handlers as _handlers  # noqa: F401 - fills DEFAULT_HANDLERS
from .ir import Handler, TraceError, handler_table
from .trace import input_names, trace
from .walk import EncodeOptions, Walker, sizes_of


def encode(model: Any, inputs: Any, name: str = "model", strict: bool = False,
           allow_unknown: bool = False, handlers: Mapping[str, Handler] | None = None) -> Graph:
    """The graph of the PyTorch ``model`` traced on ``inputs`` (a tensor or a tuple of them).

    ``strict`` makes every op without a handler an error; ``allow_unknown`` treats such ops as
    neutral even when they change the spatial shape. ``handlers`` maps op kinds
    (``"aten::my_op"``, or ``"my_op"`` for the aten namespace) to handlers for this call only,
    merged over the built-in and registered ones.
    """
    table = handler_table(handlers)
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    torch_graph, labels = trace(model, inputs)
    graph_inputs = list(torch_graph.inputs())[: len(inputs)]  # parameters follow
    shapes = [sizes_of(v) for v in graph_inputs]
    spatial = [len(s) - 2 for s in shapes if s is not None and len(s) >= 3]
    if not spatial:
        raise TraceError("the model has no input with spatial axes (batch, channels, *spatial)")
    walker = Walker(spatial[0], EncodeOptions(strict, allow_unknown), name, table)
    for v, label in zip(graph_inputs, input_names(model, len(graph_inputs))):
        walker.add_input(v, label)
    for node in torch_graph.nodes():
        walker.walk(node)
    outputs = [walker.value(v) for v in torch_graph.outputs()]
    graph = walker.finish(outputs, labels)
    if not graph.outputs:
        raise TraceError("no output of the model depends on its input")
    join_space_to_depth(graph)
    return graph
