"""Reading ONNX files: the file is read once without the bytes of its weights (their shapes are
all the analysis needs; `wire.skim` skips them), parsed by protobuf, and its external data
checked without being read."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, Optional

from rfa_toolbox.errors import shown
from rfa_toolbox.files import read_file, reason

from .constants import MAX_ELEMENTS
from .ir import OnnxFormatError
from .wire import WEIGHT_ELEMENTS, WireError, skim

MAX_GRAPH_BYTES = 2**31 - 1  #: protobuf cannot parse more (the graph without its weights' bytes)


def import_onnx() -> Any:
    """The onnx package, with an install hint when it is missing."""
    try:
        import onnx
    except ImportError:
        raise OnnxFormatError("the onnx package is not installed: pip install 'rfa-toolbox[onnx]'") from None
    return onnx


def read_onnx_file(path: Path) -> Any:
    """The ``ModelProto`` of an ``.onnx`` file without the bytes of its weights, read once and
    never whole (see `wire.skim`); external data files must exist beside it."""
    def without_weights(handle: Any, size: int) -> bytes:
        try:
            return skim(handle, size)
        except WireError:
            raise OnnxFormatError(f"{path} is not an ONNX model (not a protobuf file, or a truncated or damaged"
                                  " one)") from None
        except RecursionError:
            raise OnnxFormatError(f"{path} is not an ONNX model: it nests messages too deeply") from None

    data = read_file(path, "an ONNX model", OnnxFormatError, without_weights)
    if len(data) > MAX_GRAPH_BYTES:
        raise OnnxFormatError(f"{path}: its graph takes more than 2 GB without the weights, more than protobuf"
                              " can read")
    model = parse_onnx(data, str(path))
    del data
    check_external_data(model, path.parent, str(path))
    return model


def parse_onnx(data: bytes, where: str = "the data given") -> Any:
    """The ``ModelProto`` in ``data``; the bytes of tensors with more than `WEIGHT_ELEMENTS`
    elements are dropped (their shapes stay), so the model is held once, without its weights."""
    onnx = import_onnx()
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError, TypeError):
        raise OnnxFormatError(f"{where} is not an ONNX model (not a protobuf file, or a truncated or damaged one)"
                              ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise OnnxFormatError(f"{where} is not an ONNX model: it holds no graph with nodes")
    if model.ir_version >= 3 and not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        raise OnnxFormatError(f"{where} is not a whole ONNX model: it names no opset version of the ONNX ops"
                              " (a truncated or damaged file)")
    for tensor in model.graph.initializer:
        _drop_weights(tensor)
    check_text(model, where)
    return model


def check_text(model: Any, where: str) -> None:
    """Every string field of ``model`` holds text: protobuf hands a damaged one (bytes that are
    not UTF-8) back as ``bytes``, which the names and messages downstream cannot take."""
    from google.protobuf.descriptor import FieldDescriptor
    from google.protobuf.message import Message

    stack = [model]
    while stack:
        message = stack.pop()
        for field, value in message.ListFields():
            values = [value] if isinstance(value, (Message, str, bytes)) else value
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                stack.extend(values)
            elif field.type == FieldDescriptor.TYPE_STRING and any(isinstance(v, bytes) for v in values):
                raise OnnxFormatError(f"{where} is damaged: its field {field.name!r} holds bytes that are not"
                                      " UTF-8 text")


def _elements(tensor: Any) -> int:
    count = 1
    for d in tensor.dims:
        count *= max(int(d), 0)
    return count


_DATA = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _drop_weights(tensor: Any) -> None:
    if _elements(tensor) > WEIGHT_ELEMENTS:
        for field in _DATA:
            tensor.ClearField(field)


def _has_data(tensor: Any) -> bool:
    """Does the tensor hold its values (in the file or as external data)? A weight whose bytes
    were skipped holds none, nor does an empty tensor."""
    return tensor.data_location == 1 or any(len(getattr(tensor, field)) for field in _DATA) or _elements(tensor) == 0

def _location(tensor: Any) -> Optional[str]:
    if tensor.data_location != 1:  # EXTERNAL
        return None
    entries = {entry.key: entry.value for entry in tensor.external_data}
    return entries.get("location", "")


def external_file(tensor: Any, folder: Path, where: str) -> Optional[Path]:
    """The file holding an external tensor's data (None for a tensor stored in the model); a
    location that leaves the model's folder is refused."""
    location = _location(tensor)
    if location is None:
        return None
    parts = PurePosixPath(location.replace("\\", "/")).parts
    if not location or location.startswith(("/", "\\")) or ".." in parts or ":" in location or "\x00" in location:
        raise OnnxFormatError(f"{where}: the tensor {shown(tensor.name)} names its data file"
                              f" {shown(location)}, outside the model's folder; refused")
    return folder.joinpath(*parts)


def check_external_data(model: Any, folder: Path, where: str) -> None:
    """Every external data file the model names exists beside it (nothing is read)."""
    seen: set[Path] = set()
    for tensor in model.graph.initializer:
        path = external_file(tensor, folder, where)
        if path is None or path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            raise OnnxFormatError(f"{where}: its weights are stored in {shown(path.name)}, which is not beside"
                                  " the model; copy that file next to it")


def tensor_array(tensor: Any, where: str) -> Any:
    """``numpy_helper.to_array(tensor)``; a tensor whose data does not fit its type and dims (a
    damaged file) is refused, ``where`` naming it."""
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError):
        raise OnnxFormatError(f"{where} is damaged: its data does not fit its type and shape") from None


def external_value(tensor: Any, folder: Path, where: str) -> Any:
    """The value of a small tensor stored as external data (read at its offset)."""
    path = external_file(tensor, folder, where)
    assert path is not None
    entries = {entry.key: entry.value for entry in tensor.external_data}
    try:
        offset, length = int(entries.get("offset", 0)), int(entries.get("length", -1))
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(length if length >= 0 else MAX_ELEMENTS * 8)
    except (OSError, ValueError) as exc:
        raise OnnxFormatError(f"{where}: cannot read the data of {shown(tensor.name)} from"
                              f" {shown(path.name)}: {reason(exc) if isinstance(exc, OSError) else 'bad offset'}"
                              ) from None
    copy = type(tensor)()
    copy.CopyFrom(tensor)
    copy.ClearField("external_data")
    copy.data_location = 0
    copy.raw_data = data
    return tensor_array(copy, f"{where}: the tensor {shown(tensor.name)} (in {shown(path.name)})")


def initializer_value(tensor: Any, folder: Path, where: str) -> Any:
    """The value of a small initializer (None for a weight, whose bytes were dropped)."""
    if _elements(tensor) > WEIGHT_ELEMENTS or not _has_data(tensor):
        return None
    if tensor.data_location == 1:
        return external_value(tensor, folder, where)
    return tensor_array(tensor, f"{where}: the tensor {shown(tensor.name)}")


#: attribute types read where a handler needs them, never here: graphs, type protos, sparse and
#: repeated tensors
_UNREAD_ATTRIBUTES = {5, 9, 10, 11, 12, 13, 14}


def node_attributes(node: Any) -> dict[str, Any]:
    """A node's attributes as Python values: numbers, text, lists, and tensors (Constant's
    value, ConstantOfShape's fill) as numpy arrays up to `MAX_ELEMENTS` (None above)."""
    from onnx import helper

    attrs: dict[str, Any] = {}
    for attribute in node.attribute:
        if attribute.type in _UNREAD_ATTRIBUTES:
            attrs[attribute.name] = None
        elif attribute.type == 4:  # TENSOR
            tensor = attribute.t
            attrs[attribute.name] = tensor_array(tensor, f"the tensor of the attribute {shown(attribute.name)}") \
                if _elements(tensor) <= MAX_ELEMENTS else None
        else:
            value = helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [v.decode("utf-8", "replace") for v in value]
            attrs[attribute.name] = value
    return attrs
