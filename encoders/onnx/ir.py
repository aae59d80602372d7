"""The handler contract of the ONNX encoder: what a handler sees (`OnnxNode`), and the tables of
handlers by op type.

A handler is ``handler(node) -> Op | None`` for one ONNX op type (``"Conv"``, or
``"com.microsoft::FusedConv"`` for an op of another domain); ``None`` means the op is neutral.
It returns the same `Op` as a handler of the PyTorch encoder. The built-in handlers fill
`DEFAULT_HANDLERS`; `graph_from_onnx` takes a mapping merged over them for one call, and
`register_handler` adds one for every later call in the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from rfa_toolbox.encoders.layout import Axes
from rfa_toolbox.encoders.pending import Op, Traced, merged_handlers

from rfa_toolbox.errors import RFAError


class OnnxFormatError(RFAError):
    """The file is not an ONNX model this encoder can read; the message says why."""


class Unsupported(Exception):
    """Raised by a handler for a use of its op it has no rule for (a reversed slice of a
    spatial dim, say): the encoder treats the node as an op without a handler, listed with
    this reason."""


@dataclass
class OnnxNode:
    """One ONNX node as a handler sees it.

    ``inputs`` holds, per input of the node, a `Traced` tensor (depends on a model input), the
    value of a constant (a numpy array: initializers, Constant nodes, shape arithmetic) or
    ``None`` (a value not known before running the model, or an input left out); ``sizes`` and
    ``out_sizes`` the inferred shapes (tuples of ints, or None); ``attrs`` the attributes as
    Python values; ``tensors`` the inputs that depend on a model input, in order.
    """

    op_type: str
    domain: str
    name: str
    attrs: dict[str, Any]
    inputs: Sequence[Any]
    sizes: Sequence[Optional[tuple[int, ...]]]
    out_sizes: Sequence[Optional[tuple[int, ...]]]
    ndim: int
    module: str
    tensors: list[Traced]
    opset: int

    @property
    def x(self) -> Traced:
        """The first input tensor that depends on a model input."""
        return self.tensors[0]

    @property
    def kind(self) -> str:
        """The op type with its domain when it is not the standard one (``com.microsoft::X``)."""
        return qualified(self.op_type, self.domain)

    def attr(self, name: str, default: Any = None) -> Any:
        """The attribute ``name``, or ``default`` when the node does not set it."""
        return self.attrs.get(name, default)

    def const(self, index: int) -> Any:
        """The constant value of input ``index`` (a numpy array), or None when it is absent or
        not a constant."""
        if index >= len(self.inputs):
            return None
        value = self.inputs[index]
        return None if value is None or isinstance(value, Traced) else value

    def spatial_dims(self, count: int) -> list[Axes]:
        """The axes carried by each of the last ``count`` dims of the first tensor input."""
        return list(self.x.layout[-count:]) if count else []


Handler = Callable[[OnnxNode], Optional[Op]]

#: The built-in handlers by op type (filled by `rfa_toolbox.encoders.onnx.handlers`).
DEFAULT_HANDLERS: dict[str, Handler] = {}

#: Handlers added with `register_handler`, used by every later encode in the process.
REGISTERED: dict[str, Handler] = {}

STANDARD_DOMAINS = ("", "ai.onnx")


def qualified(op_type: str, domain: str = "") -> str:
    """``Conv`` for the standard domain, ``domain::op_type`` for any other."""
    return op_type if domain in STANDARD_DOMAINS else f"{domain}::{op_type}"


def handles(*op_types: str) -> Callable[[Handler], Handler]:
    """Decorator of the built-in handlers: the function handles the op types ``op_types``."""
    def register(fn: Handler) -> Handler:
        for op_type in op_types:
            DEFAULT_HANDLERS[op_type] = fn
        return fn
    return register


def register_handler(op_type: str, handler: Handler) -> None:
    """Register ``handler(node) -> Op | None`` for the ONNX op ``op_type`` (``"MyOp"``, or
    ``"my.domain::MyOp"`` outside the standard domain) in this process. To use a handler for
    one call only, pass ``handlers={op_type: handler}`` to `graph_from_onnx` or
    `rfa_toolbox.analyze`."""
    REGISTERED[op_type] = handler


def handler_table(extra: Mapping[str, Handler] | None = None) -> dict[str, Handler]:
    """The handlers of one encode: the defaults, then the registered ones, then ``extra``."""
    return merged_handlers(DEFAULT_HANDLERS, REGISTERED, extra, OnnxFormatError)
