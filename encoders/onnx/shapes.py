"""The model's input(s) fixed at the analysed size, the tensor layout of each input (channels
first, or channels last as TensorFlow converters leave them), and every tensor's shape from
ONNX shape inference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from rfa_toolbox.errors import shown

from .ir import OnnxFormatError

#: ops an NHWC input passes through (normalization arithmetic) before its Transpose to NCHW
_ELEMENTWISE = {"Cast", "Sub", "Add", "Mul", "Div", "Identity", "Clip", "Sqrt", "Neg"}


class ModelInput(NamedTuple):
    """A model input with spatial axes: its name, its dims (ints, or None where symbolic) and
    whether its channels come last."""

    name: str
    dims: list[Optional[int]]
    channels_last: bool

    @property
    def spatial(self) -> list[int]:
        """The dims carrying the spatial axes, in order."""
        rank = len(self.dims)
        return list(range(1, rank - 1)) if self.channels_last else list(range(2, rank))


def _dims(value_info: Any) -> Optional[list[Optional[int]]]:
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type" or not value_info.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _channels_last(graph: Any, name: str, rank: int) -> bool:
    """Does the input reach a Transpose to channels-first before any other op?"""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for value in node.input:
            consumers.setdefault(value, []).append(node)
    to_first = [0, rank - 1, *range(1, rank - 1)]
    frontier, seen = [name], {name}
    while frontier:
        value = frontier.pop()
        for node in consumers.get(value, []):
            if node.op_type == "Transpose":
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm == to_first:
                    return True
            elif node.op_type in _ELEMENTWISE:
                for out in node.output:
                    if out not in seen:
                        seen.add(out)
                        frontier.append(out)
    return False


def model_inputs(model: Any) -> list[ModelInput]:
    """The inputs with spatial axes (rank 3 to 5), initializers listed as inputs left out."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    found = []
    for value in graph.input:
        dims = _dims(value)
        if value.name in initializers or dims is None or not 3 <= len(dims) <= 5:
            continue
        found.append(ModelInput(value.name, dims, _channels_last(graph, value.name, len(dims))))
    if not found:
        raise OnnxFormatError("the model has no input with spatial axes (batch, channels, *spatial, or"
                              " channels last)")
    return found


def fix_inputs(model: Any, inputs: list[ModelInput], resolution: Optional[Sequence[int]],
               channels: Optional[int]) -> list[ModelInput]:
    """Set the symbolic dims of the inputs in ``model``: batch 1, the spatial sizes from
    ``resolution`` and the channels from ``channels`` (from ``--input-shape``). A file that
    fixes another spatial size than the one asked for is refused: its reshapes were exported for
    that size."""
    fixed = []
    for item in inputs:
        dims = list(item.dims)
        spatial = item.spatial
        if resolution is not None:
            sizes = list(resolution) if len(resolution) == len(spatial) else [resolution[0]] * len(spatial)
            given = [dims[d] for d in spatial]
            if all(g is not None for g in given) and given != sizes:
                raise OnnxFormatError(
                    f"the model's input {shown(item.name)} is fixed at {'x'.join(map(str, given))}; analyze it"
                    f" at that resolution, or export it with dynamic spatial axes")
            for d, size in zip(spatial, sizes):
                dims[d] = size
        elif any(dims[d] is None for d in spatial):
            raise OnnxFormatError(f"the spatial size of the input {shown(item.name)} is not fixed in the file;"
                                  " give the resolution (--res, or resolution= in Python)")
        if dims[0] is None:
            dims[0] = 1
        channel_dim = len(dims) - 1 if item.channels_last else 1
        if channels is not None:
            if dims[channel_dim] is not None and dims[channel_dim] != channels:
                raise OnnxFormatError(f"the model's input {shown(item.name)} has {dims[channel_dim]} channels, not"
                                      f" {channels} as the input shape says")
            dims[channel_dim] = channels
        fixed.append(ModelInput(item.name, dims, item.channels_last))
    by_name = {item.name: item for item in fixed}
    for value in model.graph.input:
        if value.name in by_name:
            shape = value.type.tensor_type.shape
            for d, fixed_size in zip(shape.dim, by_name[value.name].dims):
                if fixed_size is not None:
                    d.Clear()
                    d.dim_value = fixed_size
    return fixed


def inferred_shapes(model: Any) -> dict[str, Optional[tuple[int, ...]]]:
    """The shape of every tensor ONNX shape inference can tell (None where a dim is unknown)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
    except Exception:
        raise OnnxFormatError("ONNX shape inference fails on this model: its shapes contradict each other"
                              " at the analysed size (check the file with onnx.checker)") from None
    shapes: dict[str, Optional[tuple[int, ...]]] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = _dims(value)
        shapes[value.name] = tuple(dims) if dims is not None and None not in dims else None  # type: ignore[arg-type]
    for tensor in graph.initializer:
        shapes[tensor.name] = tuple(int(d) for d in tensor.dims)
    return shapes
