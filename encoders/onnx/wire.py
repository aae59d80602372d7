"""Reading an ONNX file without its weights: the protobuf wire format is walked from the file,
and the bytes of large tensors (the initializers' data) are skipped with a seek instead of read,
so that a model of gigabytes costs the memory of its graph only. What remains is parsed by
protobuf as usual; a file that is not a protobuf gives a `WireError`."""

from __future__ import annotations

from typing import BinaryIO

#: TensorProto fields holding values (float_data, int32_data, string_data, int64_data,
#: raw_data, double_data, uint64_data)
DATA_FIELDS = {4, 5, 6, 7, 9, 10, 11}
#: an initializer with more elements is a weight: only its shape is read (the values the
#: analysis reads, shapes, pads, scales, axes, are a few numbers each)
WEIGHT_ELEMENTS = 1 << 16
MAX_KEPT = 8 * WEIGHT_ELEMENTS  #: bytes of a tensor's values kept while reading a file

_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5


class WireError(ValueError):
    """The bytes are not a protobuf message (or end inside one)."""


def _varint(stream: BinaryIO, limit: int) -> tuple[int, int]:
    """A varint read from ``stream`` (at most ``limit`` bytes): (value, bytes read)."""
    value = shift = count = 0
    while True:
        byte = stream.read(1)
        count += 1
        if not byte or count > min(limit, 10):
            raise WireError("a number runs past the end")
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80:
            return value, count


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read(stream: BinaryIO, count: int) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise WireError("a field runs past the end")
    return data


def skim(stream: BinaryIO, length: int, level: str = "model") -> bytes:
    """The message of ``length`` bytes at the stream's position, re-encoded without the data of
    large initializers. ``level`` is where the walk is: model, graph or tensor."""
    out = bytearray()
    left = length
    while left > 0:
        key, used = _varint(stream, left)
        left -= used
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, used = _varint(stream, left)
            out += _encode_varint(key) + _encode_varint(value)
        elif wire in (1, 5):
            used = 8 if wire == 1 else 4
            if used > left:
                raise WireError("a field runs past the end")
            out += _encode_varint(key) + _read(stream, used)
        elif wire == 2:
            size, size_used = _varint(stream, left)
            left -= size_used
            if size > left:
                raise WireError("a field runs past the end")
            used = size
            inner = _inner(level, field)
            if inner is not None:
                body = skim(stream, size, inner)
                out += _encode_varint(key) + _encode_varint(len(body)) + body
            elif level == "tensor" and field in DATA_FIELDS and size > MAX_KEPT:
                stream.seek(size, 1)  # a weight: its dims stay, its bytes are never read
            else:
                out += _encode_varint(key) + _encode_varint(size) + _read(stream, size)
        else:
            raise WireError("an unknown field encoding")
        left -= used
    if left < 0:
        raise WireError("a field runs past the end of its message")
    return bytes(out)


def _inner(level: str, field: int) -> str | None:
    """The level of a nested message this walk descends into (None: copied whole)."""
    if level == "model" and field == _MODEL_GRAPH:
        return "graph"
    if level == "graph" and field == _GRAPH_INITIALIZER:
        return "tensor"
    return None
