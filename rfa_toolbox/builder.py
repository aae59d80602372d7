"""A small declarative builder for graphs in Python: ``b.conv(b.input(), 3, stride=2)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .graph import Graph
from .ops import make_layer

IntOrAxes = int | Sequence[int]


class GraphBuilder:
    """Builds a `Graph`; every method returns the name of the node it added.

    Example::

        b = GraphBuilder(name="tiny")
        x = b.input()
        x = b.conv(x, 3)
        y = b.conv(x, 3, stride=2)
        z = b.add(b.conv(y, 3), y)
        graph = b.build(outputs=[z])
    """

    def __init__(self, ndim: int = 2, name: str = "model"):
        self.graph = Graph(ndim, name)
        self._counts: dict[str, int] = {}

    def _name(self, op: str, name: str | None) -> str:
        if name is not None:
            return name
        while True:
            self._counts[op] = self._counts.get(op, 0) + 1
            candidate = f"{op}{self._counts[op]}"
            if candidate not in self.graph:
                return candidate

    def layer(self, op: str, inputs: Sequence[str] = (), name: str | None = None, **params: Any) -> str:
        """Add a layer of any op of the vocabulary (`rfa_toolbox.ops.OPS`)."""
        layer = make_layer(self._name(op, name), op, self.graph.ndim, **params)
        return self.graph.add(layer, list(inputs))

    def input(self, name: str | None = None, **meta: Any) -> str:
        """A network input."""
        return self.layer("input", (), name, **meta)

    def conv(self, x: str, kernel: IntOrAxes, stride: IntOrAxes = 1, dilation: IntOrAxes = 1,
             name: str | None = None, **meta: Any) -> str:
        """A convolution with per-axis kernel, stride and dilation."""
        return self.layer("conv", [x], name, kernel=kernel, stride=stride, dilation=dilation, **meta)

    def conv_transpose(self, x: str, kernel: IntOrAxes, stride: IntOrAxes = 1,
                       dilation: IntOrAxes = 1, name: str | None = None, **meta: Any) -> str:
        """A transposed convolution (jump divided by the stride)."""
        return self.layer("conv_transpose", [x], name, kernel=kernel, stride=stride,
                          dilation=dilation, **meta)

    def max_pool(self, x: str, kernel: IntOrAxes, stride: IntOrAxes | None = None,
                 dilation: IntOrAxes = 1, name: str | None = None, **meta: Any) -> str:
        """Max pooling; the stride defaults to the kernel."""
        return self.layer("max_pool", [x], name, kernel=kernel, stride=stride, dilation=dilation, **meta)

    def avg_pool(self, x: str, kernel: IntOrAxes, stride: IntOrAxes | None = None,
                 name: str | None = None, **meta: Any) -> str:
        """Average pooling; the stride defaults to the kernel."""
        return self.layer("avg_pool", [x], name, kernel=kernel, stride=stride, **meta)

    def upsample(self, x: str, factor: Any = 2, mode: str = "nearest", name: str | None = None,
                 **meta: Any) -> str:
        """Upsampling by ``factor`` (per axis, may be fractional); mode nearest or a linear one."""
        return self.layer("upsample", [x], name, factor=factor, mode=mode, **meta)

    def global_pool(self, x: str, kind: str = "avg", name: str | None = None, **meta: Any) -> str:
        """Global average (``kind="avg"``) or max pooling: an infinite receptive field."""
        return self.layer(f"global_{kind}_pool", [x], name, **meta)

    def flatten(self, x: str, name: str | None = None) -> str:
        """Flattening of the spatial axes (what follows sees everything)."""
        return self.layer("flatten", [x], name)

    def dense(self, x: str, name: str | None = None, **meta: Any) -> str:
        """A fully connected layer over all positions (a classifier)."""
        return self.layer("dense", [x], name, **meta)

    def neutral(self, x: str, op: str = "neutral", name: str | None = None, **meta: Any) -> str:
        """An op that keeps the receptive field: ``relu``, ``norm``, ``pad``, ``identity``..."""
        return self.layer(op, [x], name, **meta)

    def add(self, *xs: str, name: str | None = None) -> str:
        """Elementwise sum of several nodes."""
        return self.layer("add", xs, name)

    def mul(self, *xs: str, name: str | None = None) -> str:
        """Elementwise product of several nodes."""
        return self.layer("mul", xs, name)

    def concat(self, *xs: str, name: str | None = None) -> str:
        """Concatenation of several nodes."""
        return self.layer("concat", xs, name)

    def build(self, outputs: Sequence[str] | None = None) -> Graph:
        """The finished, validated graph; ``outputs`` default to the nodes that feed nothing."""
        if outputs:
            self.graph.outputs = list(outputs)
        self.graph.validate()
        return self.graph
