"""The handler contract of the Keras encoder: the tensors a handler sees (`KTensor`), what it
returns (`KOp`), and the tables of handlers by layer class.

A handler is ``handler(config, inputs, ndim) -> KOp`` for a Keras layer class. The built-in
handlers fill `DEFAULT_HANDLERS`; `graph_from_keras_json` takes a mapping merged over them for
one call, and `register_handler` adds one for every later call in the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from rfa_toolbox.encoders.pending import merged_handlers

from rfa_toolbox.errors import RFAError


class KerasFormatError(RFAError):
    """The file or JSON is not a Keras model configuration this encoder can read."""


@dataclass
class KTensor:
    """A tensor of the model: the node that made it, whether it still has its spatial axes,
    and its shape without batch (when the JSON gives it)."""

    node: str
    spatial: bool
    shape: Optional[tuple[Any, ...]] = None


@dataclass
class KOp:
    """What a handler returns: an op of the vocabulary (`rfa_toolbox.ops.OPS`) with its
    parameters, and whether the output keeps the spatial axes."""

    op: str
    params: dict[str, Any]
    spatial: bool = True


Handler = Callable[[dict[str, Any], list[KTensor], int], KOp]

#: The built-in handlers by layer class (filled by `rfa_toolbox.encoders.keras.handlers`).
DEFAULT_HANDLERS: dict[str, Handler] = {}

#: Handlers added with `register_handler`, used by every later encode in the process.
REGISTERED: dict[str, Handler] = {}


def handles(*names: str) -> Callable[[Handler], Handler]:
    """Decorator of the built-in handlers: the function handles the layer classes ``names``."""
    def register(fn: Handler) -> Handler:
        for name in names:
            DEFAULT_HANDLERS[name] = fn
        return fn
    return register


def register_handler(class_name: str, handler: Handler) -> None:
    """Register ``handler(config, inputs, ndim) -> KOp`` for the Keras layer class
    ``class_name`` (a custom layer of yours, say) in this process. To use a handler for one
    call only, pass ``handlers={class_name: handler}`` to `graph_from_keras_json` or
    `rfa_toolbox.analyze`."""
    REGISTERED[class_name] = handler


def handler_table(extra: Mapping[str, Handler] | None = None) -> dict[str, Handler]:
    """The handlers of one encode: the defaults, then the registered ones, then ``extra``."""
    return merged_handlers(DEFAULT_HANDLERS, REGISTERED, extra, KerasFormatError)
