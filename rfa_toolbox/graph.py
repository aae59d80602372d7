"""The framework-free network graph: layers with per-axis transfers, connected in a DAG."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from fractions import Fraction
from functools import cached_property
from typing import Any, Union

import networkx as nx

from .errors import CycleError, GraphError

Number = Union[int, Fraction]


class TextEnum(str, Enum):
    """A string enum that prints as its value (``f"{Status.OK}"`` is ``"ok"``) and is equal
    to it, so JSON and text outputs read the same as plain strings."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class Transfer(TextEnum):
    """How a layer changes the receptive field of the paths that go through it."""

    INPUT = "input"            #: a network input: r = 1, j = 1
    WINDOW = "window"          #: conv or pool: r + d(k-1)j, j*s
    TRANSPOSED = "transposed"  #: transposed conv: r + (ceil(k'/s)-1)j, j/s
    UPSAMPLE = "upsample"      #: nearest: r, j/u; linear family: r + j, j/u
    GLOBAL = "global"          #: sees everything: infinite receptive field
    NEUTRAL = "neutral"        #: elementwise, norm, activation, pad: unchanged
    MERGE = "merge"            #: add, mul, concat: union of the inputs' paths


def simplify(x: Number) -> Number:
    """An integral Fraction as an int, anything else unchanged."""
    if type(x) is int:  # the common case; isinstance(x, Fraction) goes through ABCMeta
        return x
    if isinstance(x, Fraction) and x.denominator == 1:
        return int(x)
    return x


#: Input positions one output position reads per axis, by interpolation mode.
UPSAMPLE_TAPS = {"nearest": 1, "area": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}


def plain(x: Number) -> int | float:
    """A number for display and JSON: an int when integral, else a float."""
    if type(x) is int:
        return x
    x = simplify(x)
    return x if isinstance(x, int) else round(float(x), 6)


@dataclass(frozen=True)
class Layer:
    """One node of the graph: an op and its per-axis receptive-field transfer.

    ``kernel``, ``stride`` and ``dilation`` hold one value per spatial axis for
    window and transposed layers; ``factor`` one value per axis for upsampling; ``padding`` the
    padding before the first position per axis (window, transposed and pad layers; negative
    for a crop), which moves where units look, not how much they see.
    ``global_axes`` lists the axes a global layer collapses (empty: all of them); ``mode`` is
    the interpolation of an upsampling layer (a key of ``UPSAMPLE_TAPS``).
    The remaining fields are metadata that encoders fill in when they know it.
    """

    name: str
    op: str
    transfer: Transfer
    kernel: tuple[int, ...] = ()
    stride: tuple[Number, ...] = ()
    dilation: tuple[int, ...] = ()
    factor: tuple[Number, ...] = ()
    padding: tuple[Number, ...] = ()
    mode: str = "nearest"
    global_axes: tuple[int, ...] = ()
    computes: bool = False
    module: str | None = None
    shape: tuple[int, ...] | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    groups: int | None = None
    params: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @cached_property
    def affine(self) -> tuple[tuple[Number, Number, Number], ...] | None:
        """Per axis (c, m, t): a path of size r, jump j and offset o (unit i reads from
        o + i*j) becomes (r + c*j, j*m, o + t*j); t is the first input unit that unit 0 reads.
        None for global layers; () for layers that change nothing."""
        t = self.transfer
        if t is Transfer.GLOBAL:
            return None
        pads = self.padding or (0,) * max(len(self.kernel), len(self.factor), 1)
        if t is Transfer.WINDOW:
            return tuple((d * (k - 1), s, -p) for k, s, d, p in zip(self.kernel, self.stride, self.dilation, pads))
        if t is Transfer.TRANSPOSED:
            return tuple(
                (math.ceil(Fraction(d * (k - 1) + 1) / s) - 1, simplify(Fraction(1) / s),
                 math.ceil(Fraction(p - d * (k - 1)) / s))
                for k, s, d, p in zip(self.kernel, self.stride, self.dilation, pads)
            )
        if t is Transfer.UPSAMPLE:
            c = UPSAMPLE_TAPS[self.mode] - 1
            return tuple((c, simplify(Fraction(1) / Fraction(u)), 0) for u in self.factor)
        if self.padding and any(self.padding):
            return tuple((0, 1, -p) for p in self.padding)  # a pad: the positions move
        return ()  # identity on every axis

    @property
    def position_dependent(self) -> bool:
        """Does what a unit reads depend on its position beyond one affine rule (upsampling,
        transposed convs, adaptive and antialiased windows, mirroring pads)? There the rules
        are an estimate, and the exact values are computed position by position."""
        if self.transfer in (Transfer.UPSAMPLE, Transfer.TRANSPOSED):
            return True
        if self.transfer is Transfer.WINDOW:
            return self.op == "downsample_aa" or any(not isinstance(s, int) for s in self.stride)
        return bool(self.padding) and self.meta.get("pad_mode", "constant") != "constant"

    def with_changes(self, **changes: Any) -> Layer:
        """A copy of this layer with some fields replaced."""
        return replace(self, **changes)


class Graph:
    """A directed acyclic graph of `Layer` objects, for a network with ``ndim`` spatial axes.

    The structure is a `networkx.DiGraph` (``graph.nx``) whose nodes are layer names;
    the order of a node's predecessors is the order its inputs were connected.
    """

    def __init__(self, ndim: int = 2, name: str = "model"):
        if isinstance(ndim, bool) or ndim not in (1, 2, 3):
            raise GraphError(f"ndim must be 1, 2 or 3 spatial axes, not {ndim!r}")
        self.ndim = ndim
        self.name = name
        self.nx = nx.DiGraph()
        self.outputs: list[str] = []
        #: names of outputs as the model returns them (``P3/cls_logits``, a dict key, a list
        #: index), by output node; outputs without one are known by their node's name
        self.output_labels: dict[str, str] = {}
        #: per pyramid level (``P3``), the sizes of the anchors (or the largest objects) the
        #: model assigns to it, one tuple per anchor with an extent per axis, in input pixels
        self.anchors: dict[str, list[tuple[float, ...]]] = {}
        self.unknown_ops: list[str] = []
        self.notes: list[str] = []  #: what the encoder wants the report to say (parts left out)
        self._layers: dict[str, Layer] = {}
        self._index: dict[str, int] = {}
        self._in_order = True
        self._order: list[str] | None = None
        self._positions: dict[str, int] | None = None

    # -- construction -------------------------------------------------------------------------
    def add(self, layer: Layer, inputs: Sequence[str] = ()) -> str:
        """Add ``layer`` fed by the existing nodes ``inputs``; returns its name."""
        if layer.name in self._layers:
            raise GraphError(f"duplicate layer name {layer.name!r}")
        for attr in ("kernel", "stride", "dilation", "factor"):
            value = getattr(layer, attr)
            if value and len(value) != self.ndim:
                raise GraphError(
                    f"layer {layer.name!r}: {attr} {list(value)} has {len(value)} axes,"
                    f" the graph has {self.ndim}"
                )
        self._layers[layer.name] = layer
        self._index[layer.name] = len(self._index)
        self.nx.add_node(layer.name)
        self._order = self._positions = None
        for source in inputs:
            self.connect(source, layer.name)
        return layer.name

    def connect(self, source: str, target: str) -> None:
        """Add the edge ``source -> target`` between two existing nodes."""
        for node in (source, target):
            if node not in self._layers:
                raise GraphError(f"unknown layer {node!r} (in edge {source!r} -> {target!r})")
        if self._index[source] >= self._index[target]:
            self._in_order = False
        self.nx.add_edge(source, target)
        self._order = self._positions = None

    def replace(self, layer: Layer) -> None:
        """Replace the layer of the same name, keeping its edges."""
        if layer.name not in self._layers:
            raise GraphError(f"unknown layer {layer.name!r}")
        self._layers[layer.name] = layer

    def bypass(self, name: str) -> None:
        """Remove ``name``, connecting each of its inputs to each of its consumers."""
        sources, targets = self.predecessors(name), self.successors(name)
        for source in sources:
            for target in targets:
                self.nx.add_edge(source, target)
        self.nx.remove_node(name)
        del self._layers[name], self._index[name]
        self._order = self._positions = None
        if name in self.outputs:
            position = self.outputs.index(name)
            kept = [s for s in sources if s not in self.outputs]
            self.outputs[position:position + 1] = kept
            if name in self.output_labels:
                label = self.output_labels.pop(name)
                for source in kept:
                    self.output_labels.setdefault(source, label)

    def copy(self) -> Graph:
        """An independent copy (layers are immutable and shared)."""
        other = Graph(self.ndim, self.name)
        other.nx = self.nx.copy()
        other.outputs = list(self.outputs)
        other.output_labels = dict(self.output_labels)
        other.anchors = dict(self.anchors)
        other.unknown_ops = list(self.unknown_ops)
        other.notes = list(self.notes)
        other._layers = dict(self._layers)
        other._index = dict(self._index)
        other._in_order = self._in_order
        return other

    # -- queries ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._layers)

    def __contains__(self, name: object) -> bool:
        return name in self._layers

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers.values())

    def __getitem__(self, name: str) -> Layer:
        try:
            return self._layers[name]
        except KeyError:
            raise GraphError(f"unknown layer {name!r}") from None

    def nodes_with_inputs(self, start: int = 0) -> Iterator[tuple[Layer, Collection[str]]]:
        """Every layer in topological order (from position ``start`` on) with the names of the
        nodes feeding it, in the order they were connected; the cheap way for passes over the
        whole graph."""
        pred = self.nx._pred  # plain dicts: nx.pred[name] builds a view per call
        layers = self._layers
        order = self.topological_order()
        for i in range(start, len(order)):
            name = order[i]
            yield layers[name], pred[name].keys()

    def position(self, name: str) -> int:
        """The index of ``name`` in `topological_order`."""
        if self._positions is None:
            self._positions = {n: i for i, n in enumerate(self.topological_order())}
        try:
            return self._positions[name]
        except KeyError:
            raise GraphError(f"unknown layer {name!r}") from None

    def predecessors(self, name: str) -> list[str]:
        """The nodes feeding ``name``, in the order they were connected."""
        return list(self.nx.pred[name])

    def successors(self, name: str) -> list[str]:
        """The nodes fed by ``name``."""
        return list(self.nx.succ[name])

    @property
    def inputs(self) -> list[str]:
        """The input nodes."""
        return [n for n, layer in self._layers.items() if layer.transfer is Transfer.INPUT]

    @property
    def output_nodes(self) -> list[str]:
        """The declared outputs, or else every node that feeds nothing."""
        if self.outputs:
            return list(self.outputs)
        return [n for n in self._layers if not self.nx.succ[n]]

    def topological_order(self) -> list[str]:
        """Node names so that every edge goes forward; raises `CycleError` on a cycle."""
        if self._order is not None:
            return self._order
        if self._in_order:
            order = list(self._layers)
        else:
            try:
                order = list(nx.topological_sort(self.nx))
            except nx.NetworkXUnfeasible:
                cycle = nx.find_cycle(self.nx)
                raise CycleError([edge[0] for edge in cycle]) from None
        self._order = order
        self._positions = None
        return order

    def validate(self) -> None:
        """Check that the graph can be analyzed: an input, no orphans, no cycle, known outputs."""
        inputs = self.inputs
        if not inputs:
            raise GraphError("the graph has no input layer")
        pred = self.nx._pred  # plain dicts: nx.pred[n] builds a view per call
        orphans = [
            n for n, layer in self._layers.items()
            if layer.transfer is not Transfer.INPUT and not pred[n]
        ]
        if orphans:
            raise GraphError(f"layers without inputs: {', '.join(orphans[:10])}")
        fed_inputs = [n for n in inputs if pred[n]]
        if fed_inputs:
            raise GraphError(f"input layers cannot have inputs: {', '.join(fed_inputs[:10])}")
        for name in self.outputs:
            if name not in self._layers:
                raise GraphError(f"output {name!r} is not a layer of the graph")
        self.topological_order()

    def __repr__(self) -> str:
        return f"Graph(name={self.name!r}, ndim={self.ndim}, layers={len(self)})"
