"""What the ONNX handlers share: reading attributes and constant inputs as ints, and handing an
op to the PyTorch encoder's handler of the same computation (`as_aten`), so that an op gets the
same node name and receptive-field parameters whichever of the two encoders read it."""

from __future__ import annotations

from typing import Any, Optional

from rfa_toolbox.encoders.pending import Op
from rfa_toolbox.encoders.torch import handlers as _torch_handlers  # noqa: F401 - fills the table
from rfa_toolbox.encoders.torch.ir import DEFAULT_HANDLERS as TORCH_HANDLERS
from rfa_toolbox.encoders.torch.ir import Call

from ..ir import OnnxFormatError, OnnxNode


def as_aten(node: OnnxNode, kind: str, args: list[Any], sizes: Optional[list[Any]] = None) -> Op:
    """The `Op` the PyTorch encoder makes of ``aten::kind`` called with ``args`` (tensors as
    the node's `Traced` inputs, parameters as None, the rest Python values); ``sizes`` gives
    the shape of each argument (default: the node's input shapes)."""
    call = Call(f"aten::{kind}", args, sizes if sizes is not None else list(node.sizes), list(node.out_sizes),
                node.ndim, node.module, node.tensors)
    op = TORCH_HANDLERS[call.kind](call)
    return op if op is not None else Op(kind)


def int_list(value: Any) -> Optional[list[int]]:
    """A constant input or attribute as a list of Python ints (None when it is not known)."""
    if value is None:
        return None
    try:
        items = value.reshape(-1).tolist() if hasattr(value, "reshape") else list(value)
    except TypeError:
        items = [value]
    if not all(isinstance(v, (int, float)) for v in items):
        raise OnnxFormatError(f"expected integers, got {items[:8]!r}")
    return [int(v) for v in items]


def ints_or(node: OnnxNode, name: str, index: int, default: Any = None) -> Optional[list[int]]:
    """An int list given as the attribute ``name`` (older opsets) or the constant input
    ``index`` (newer ones), or ``default``."""
    if name in node.attrs:
        return int_list(node.attrs[name])
    value = node.const(index)
    if value is not None:
        return int_list(value)
    return default


def rank(node: OnnxNode) -> int:
    """The rank of the first tracked input (from its layout)."""
    return len(node.x.layout)


def dims(node: OnnxNode, axes: list[int]) -> list[int]:
    """Possibly negative axes of the first tracked input as non-negative dims."""
    r = rank(node)
    return [a + r if a < 0 else a for a in axes]
