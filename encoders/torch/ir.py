"""The handler contract of the PyTorch encoder: what a handler sees (`Call`), what it returns
(`Op`), and the tables of handlers by traced op kind.

A handler is a function ``handler(call) -> Op | None`` for one or more op kinds of the JIT
trace (``"aten::conv2d"``; a kind without a namespace means ``aten::``). ``None`` means the op
is neutral. The built-in handlers fill `DEFAULT_HANDLERS`; `encode` takes a mapping merged over
them for one call, and `register_handler` adds one for every later call in the process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypeVar, overload

from rfa_toolbox.encoders.layout import Axes
from rfa_toolbox.encoders.pending import Op, Traced, merged_handlers

from rfa_toolbox.errors import RFAError


class TraceError(RFAError):
    """The model could not be traced or encoded; the message says why and what to try."""


class Lazy(Sequence[Any]):
    """A sequence whose items are computed on first access (traced constants and shapes cost
    a call into the JIT each; most handlers read few of them)."""

    def __init__(self, items: list[Any], resolve: Callable[[Any], Any]):
        self._items = items
        self._resolve = resolve
        self._done: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self._items))[index]
        if index not in self._done:
            self._done[index] = self._resolve(self._items[index])
        return self._done[index]


@dataclass
class Call:
    """One traced op as a handler sees it: its kind, arguments and shapes.

    ``args`` holds, per input of the op, a `Traced` tensor (depends on a model input), a Python
    constant, a list of those, or ``None`` for a tensor that does not depend on an input (a
    parameter); ``sizes`` the traced shape of every input (``None`` when not a tensor);
    ``tensors`` the input tensors that depend on a model input, in order (lists flattened).
    """

    kind: str
    args: Sequence[Any]
    sizes: Sequence[Any]      #: per input, its shape as a tuple of ints, or None
    out_sizes: Sequence[Any]  #: per output, its shape as a tuple of ints, or None
    ndim: int
    module: str
    tensors: list[Traced]

    @property
    def x(self) -> Traced:
        """The first input tensor."""
        return self.tensors[0]

    @property
    def name(self) -> str:
        """The op kind without its namespace: ``conv2d`` for ``aten::conv2d``."""
        return self.kind.split("::")[-1]

    def spatial_dims(self, count: int) -> list[Axes]:
        """The axes carried by each of the last ``count`` dims of the first input."""
        return list(self.x.layout[-count:]) if count else []


Handler = Callable[[Call], Optional[Op]]

#: The built-in handlers by op kind (filled by `rfa_toolbox.encoders.torch.handlers`).
DEFAULT_HANDLERS: dict[str, Handler] = {}

#: Handlers added with `register_handler`, used by every later encode in the process.
REGISTERED: dict[str, Handler] = {}


def qualified(kind: str) -> str:
    """``aten::conv2d`` for ``conv2d``; kinds with a namespace are unchanged."""
    return kind if "::" in kind else f"aten::{kind}"


H = TypeVar("H", bound=Handler)


def handles(*kinds: str) -> Callable[[H], H]:
    """Decorator of the built-in handlers: the function handles the op kinds ``kinds``."""

    def register(fn: H) -> H:
        for kind in kinds:
            DEFAULT_HANDLERS[qualified(kind)] = fn
        return fn

    return register


def register_handler(kind: str, handler: Handler) -> None:
    """Register ``handler`` for the traced op ``kind`` (such as ``"my_ops::deform_conv"``) in
    this process: every later analysis uses it, from the API and the CLI alike. To use a
    handler for one call only, pass ``handlers={kind: handler}`` to `encode` or
    `rfa_toolbox.analyze`.

    The handler receives a `Call` and returns an `Op`, or ``None`` to treat the op as neutral.
    """
    REGISTERED[qualified(kind)] = handler


def handler_table(extra: Mapping[str, Handler] | None = None) -> dict[str, Handler]:
    """The handlers of one encode: the defaults, then the registered ones, then ``extra``."""
    return merged_handlers(DEFAULT_HANDLERS, REGISTERED, extra, TraceError, key=qualified)
