"""What the encoders share, framework-free: a followed tensor (`Traced`), what a handler makes
of one op (`Op`), the nodes a walk collects (`PendingNode`), their names from module paths
(`node_names`), their layers (`layer_of`) and their addition to a graph (`add_pending`), and
the handler tables of one encode (`merged_handlers`). The PyTorch and ONNX encoders build their
graphs through these, so that the same op gets the same node name and layer in both."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, TypeVar

from rfa_toolbox.errors import GraphError, RFAError
from rfa_toolbox.graph import Graph, Layer, Transfer
from rfa_toolbox.ops import make_layer

from .layout import Layout


@dataclass
class Traced:
    """A traced tensor that depends on a model input: the node that made it and its layout."""

    node: str
    layout: Layout
    shape: tuple[int, ...]


@dataclass
class Op:
    """What a handler returns: how one traced op changes receptive fields.

    ``window`` maps a spatial axis to (kernel, stride, dilation) for window and transposed
    ops; ``padding`` maps an axis to the (before, after) padding of a window, transposed or pad
    op (a negative before crops: a slice's start); ``factor`` maps an axis to an upsampling
    factor; ``global_axes`` lists the axes the op collapses. ``layout`` is the layout of the
    op's output (default: that of its first tensor input). Axes a window op does not name keep
    k = s = d = 1 and no padding.
    """

    op: str
    transfer: Transfer = Transfer.NEUTRAL
    computes: bool = False
    window: dict[int, tuple[int, Any, int]] = field(default_factory=dict)
    padding: dict[int, tuple[int, int]] = field(default_factory=dict)
    factor: dict[int, Any] = field(default_factory=dict)
    mode: str = "nearest"
    global_axes: Sequence[int] = ()
    layout: Optional[Layout] = None
    in_channels: Optional[int] = None
    out_channels: Optional[int] = None
    groups: Optional[int] = None
    params: Optional[int] = None
    meta: dict[str, Any] = field(default_factory=dict)


class PendingNode(NamedTuple):
    """A node found by the walk, added to the graph once every node is named."""

    module: str                            #: module path of the op ("" at the top level)
    kind: str                              #: the traced op kind, such as aten::conv2d
    op: Op                                 #: what its handler made of it
    sources: list[str]                     #: the nodes feeding it (inputs, or "#k" pending ones)
    shape: Optional[tuple[int, ...]]       #: traced output shape, batch included
    layout: Layout = ()                    #: the output's layout



def node_names(pending: list[PendingNode], reserved: set[str]) -> list[str]:
    """Names from module paths: the module itself when it made one op, else module.op[:n];
    ``reserved`` names (the inputs) are never reused."""
    per_module: dict[str, int] = {}
    for node in pending:
        per_module[node.module] = per_module.get(node.module, 0) + 1
    used: dict[str, int] = dict.fromkeys(reserved, 1)
    names = []
    for node in pending:
        module, op = node.module, node.op.op
        if module and (per_module[module] == 1 or module.rsplit(".", 1)[-1] == op):
            base = module
        else:
            base = f"{module}.{op}" if module else op
        count = used.get(base, 0)
        used[base] = count + 1
        names.append(base if count == 0 else f"{base}:{count}")
    return names


def _axis_sizes(node: PendingNode, ndim: int) -> Optional[tuple[Optional[int], ...]]:
    """The traced units per spatial axis (None where no dim carries that axis alone)."""
    if not node.shape or len(node.shape) != len(node.layout):
        return None
    found: list[Optional[int]] = [None] * ndim
    for size, axes in zip(node.shape, node.layout):
        if len(axes) == 1:
            found[next(iter(axes))] = size
    return tuple(found)


def layer_of(name: str, node: PendingNode, ndim: int) -> Layer:
    """The `Layer` of a pending node, built like every other layer (`make_layer`); raises
    `GraphError` for parameters a layer cannot have."""
    op = node.op
    params: dict[str, Any] = {}
    if op.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED):
        per = [op.window.get(a, (1, 1, 1)) for a in range(ndim)]
        params.update(kernel=[k for k, _, _ in per], stride=[s for _, s, _ in per],
                      dilation=[d for _, _, d in per])
    elif op.transfer is Transfer.UPSAMPLE:
        params.update(factor=[op.factor.get(a, 1) for a in range(ndim)], mode=op.mode)
    elif op.transfer is Transfer.GLOBAL and op.global_axes:
        params["axes"] = list(op.global_axes)
    if op.padding and op.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED, Transfer.NEUTRAL):
        params["padding"] = [list(op.padding.get(a, (0, 0))) for a in range(ndim)]
    meta = dict(op.meta)
    sizes = _axis_sizes(node, ndim)
    if sizes is not None:
        meta["sizes"] = sizes
    return make_layer(name, op.op, ndim, transfer=op.transfer.value, computes=op.computes,
                      module=node.module or None, shape=tuple(node.shape[1:]) if node.shape else None,
                      in_channels=op.in_channels, out_channels=op.out_channels,
                      groups=op.groups, params=op.params, meta=meta or None, **params)


def add_pending(graph: Graph, pending: list[PendingNode], ndim: int, error: type[RFAError]) -> dict[str, str]:
    """Name the pending nodes (``#k``) from their module paths and add their layers to
    ``graph``; returns the names by temporary name. A layer that cannot be built raises
    ``error`` naming the op and its module."""
    names = node_names(pending, reserved=set(graph.inputs))
    renamed = {f"#{i}": n for i, n in enumerate(names)}
    for name, node in zip(names, pending):
        try:
            layer = layer_of(name, node, ndim)
        except GraphError as exc:
            raise error(f"the op {node.kind} in module {node.module or '(top level)'}: {exc}") from None
        graph.add(layer, [renamed.get(s, s) for s in node.sources])
    return renamed


H = TypeVar("H", bound=Callable[..., Any])


def merged_handlers(defaults: Mapping[str, H], registered: Mapping[str, H], extra: Mapping[str, H] | None,
                    error: type[RFAError], key: Callable[[str], str] = str) -> dict[str, H]:
    """The handlers of one encode: the defaults, then the registered ones, then ``extra``
    (checked to be functions; ``key`` spells their names as the tables do)."""
    table = {**defaults, **registered}
    for name, handler in (extra or {}).items():
        if not callable(handler):
            raise error(f"the handler for {name!r} is a {type(handler).__name__}, not a function")
        table[key(name)] = handler
    return table
