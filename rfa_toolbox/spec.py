"""Declarative architecture files (YAML or JSON) to and from `Graph`.

Format (see docs/architecture-files.md)::

    format: rfa-toolbox/architecture/v1
    name: tiny
    ndim: 2                     # spatial axes, default 2
    layers:
      - {name: x, op: input}
      - {name: c1, op: conv, kernel: 3, stride: 2, padding: 1}  # inputs: the previous layer
      - {name: c2, op: conv, kernel: [1, 7], dilation: 2}
      - {name: sum, op: add, inputs: [c1, c2]}
    outputs: [sum]              # default: the layers that feed nothing
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from .errors import CycleError, RFAError, SpecError, UnknownOpError, shown
from .files import read_data, reason
from .graph import Graph, Layer, Transfer
from .ops import OPS, make_layer, op_info

FORMAT = "rfa-toolbox/architecture/v1"
SUFFIXES = (".yaml", ".yml", ".json")
_TOP_KEYS = {"format", "name", "ndim", "layers", "outputs", "description"}
_LAYER_KEYS = {"name", "op", "inputs", "transfer", "computes", "kernel", "stride", "dilation",
               "factor", "mode", "axes", "in_channels", "out_channels", "groups", "params",
               "shape", "module", "padding", "ceil_mode", "output_padding", "align_corners", "pad_mode"}


def read_spec_file(path: str | Path) -> Any:
    """The parsed content of an architecture file (not yet checked); `SpecError` when
    unreadable (see `rfa_toolbox.files.read_data`)."""
    return read_data(path, "an architecture file", SpecError)


def load_spec(path: str | Path) -> Graph:
    """The graph described by the architecture file at ``path``."""
    data = read_spec_file(path)
    try:
        return graph_from_spec(data, default_name=Path(path).stem)
    except RFAError as exc:
        exc.args = (f"{path}: {exc}",)
        raise


def graph_from_spec(data: Any, default_name: str = "model") -> Graph:
    """The graph described by a parsed architecture file (a dict)."""
    if not isinstance(data, dict) or "layers" not in data:
        raise SpecError("not an architecture file: expected a mapping with a 'layers' list")
    extra = set(data) - _TOP_KEYS
    if extra:
        raise SpecError(f"unknown top-level keys: {', '.join(sorted(map(shown, extra)))}")
    fmt = data.get("format", FORMAT)
    if fmt != FORMAT:
        raise SpecError(f"unsupported format {fmt!r} (this version reads {FORMAT!r})")
    layers = data["layers"]
    if not isinstance(layers, list) or not layers:
        raise SpecError("'layers' must be a non-empty list")
    ndim = data.get("ndim", 2)
    if isinstance(ndim, bool) or not isinstance(ndim, int) or ndim not in (1, 2, 3):
        raise SpecError(f"ndim must be 1, 2 or 3, not {ndim!r}")
    title = data.get("name", default_name)
    if not isinstance(title, str):
        raise SpecError(f"'name' must be text, got {shown(title)}")
    graph = Graph(ndim, title)
    for position, entry in enumerate(layers, 1):
        if isinstance(entry, dict) and "op" in entry and not isinstance(entry["op"], str):
            label = repr(entry["name"]) if isinstance(entry.get("name"), str) else f"#{position}"
            raise SpecError(f"layer {label}: 'op' must be a string, got {entry['op']!r}")
    unknown = [entry["op"] for entry in layers if isinstance(entry, dict) and "op" in entry
               and entry["op"] not in OPS and "transfer" not in entry]
    if unknown:
        raise UnknownOpError(unknown, sorted(OPS))
    edges: list[tuple[str, str]] = []
    previous = None
    for position, entry in enumerate(layers, 1):
        name, inputs = _add_layer(graph, entry, position, previous)
        edges += [(source, name) for source in inputs]
        previous = name
    try:
        for source, target in edges:
            graph.connect(source, target)
        graph.outputs = _names(data["outputs"], "'outputs'") if data.get("outputs") is not None else []
        graph.validate()
    except CycleError:
        raise
    except RFAError as exc:
        raise SpecError(str(exc)) from None
    return graph


def _names(value: Any, what: str) -> list[str]:
    """A layer name or a list of names, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SpecError(f"{what} must be a layer name or a list of names, got {value!r}")


def _add_layer(graph: Graph, entry: Any, position: int, previous: str | None) -> tuple[str, list[str]]:
    if not isinstance(entry, dict):
        raise SpecError(f"layer #{position} must be a mapping, got {shown(entry)}")
    if "op" not in entry:
        raise SpecError(f"layer #{position} has no 'op'")
    name = entry.get("name")
    if name is None:
        name = f"{entry['op']}{position}"
    elif not isinstance(name, str) or not name:
        raise SpecError(f"layer #{position}: 'name' must be non-empty text, got {shown(name)}")
    extra = set(entry) - _LAYER_KEYS
    if extra:
        raise SpecError(f"layer {name!r}: unknown keys {', '.join(sorted(map(shown, extra)))}")
    params = {k: v for k, v in entry.items() if k not in ("name", "op", "inputs")}
    try:
        layer = make_layer(name, str(entry["op"]), graph.ndim, **params)
        graph.add(layer)
    except RFAError as exc:
        raise SpecError(str(exc)) from None
    if layer.transfer is Transfer.INPUT:
        if entry.get("inputs"):
            raise SpecError(f"layer {name!r} is an input and cannot have inputs")
        return name, []
    inputs = entry.get("inputs")
    if inputs is None:
        if previous is None:
            raise SpecError(f"layer {name!r} is first but is not an input and names no inputs")
        inputs = [previous]
    return name, _names(inputs, f"layer {name!r}: 'inputs'")


def _compact(values: tuple[Any, ...]) -> Any:
    shown = [v if not isinstance(v, Fraction) else (int(v) if v.denominator == 1 else str(v))
             for v in values]
    return shown[0] if len(set(shown)) == 1 else shown


def spec_from_graph(graph: Graph) -> dict[str, Any]:
    """The architecture-file form of ``graph`` (round-trips through `graph_from_spec`)."""
    entries = []
    previous = None
    for name in graph.topological_order():
        layer = graph[name]
        entries.append(_layer_entry(graph, layer, previous))
        previous = name
    data: dict[str, Any] = {"format": FORMAT, "name": graph.name, "ndim": graph.ndim, "layers": entries}
    if graph.outputs:
        data["outputs"] = list(graph.outputs)
    return data


def _layer_entry(graph: Graph, layer: Layer, previous: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": layer.name, "op": layer.op}
    info = OPS.get(layer.op)
    if info is None or info.transfer is not layer.transfer:
        entry["transfer"] = layer.transfer.value
    if layer.computes != op_info(layer.op, layer.transfer.value).computes:
        entry["computes"] = layer.computes
    if layer.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED):
        entry.update(kernel=_compact(layer.kernel), stride=_compact(layer.stride),
                     dilation=_compact(layer.dilation))
    if layer.transfer is Transfer.UPSAMPLE:
        entry.update(factor=_compact(layer.factor), mode=layer.mode)
    if layer.global_axes:
        entry["axes"] = list(layer.global_axes)
    entry.update(_geometry_entry(layer))
    inputs = graph.predecessors(layer.name)
    if layer.transfer is not Transfer.INPUT and inputs != [previous]:
        entry["inputs"] = inputs
    for key in ("module", "in_channels", "out_channels", "groups", "params"):
        if getattr(layer, key) is not None:
            entry[key] = getattr(layer, key)
    if layer.shape is not None:
        entry["shape"] = list(layer.shape)
    return entry


def _geometry_entry(layer: Layer) -> dict[str, Any]:
    """padding (``same``, or before / [before, after] per axis), ceil_mode, output_padding,
    align_corners and pad_mode, as the file writes them."""
    meta, entry = layer.meta, dict[str, Any]()
    after = meta.get("padding_after")
    if meta.get("same"):
        entry["padding"] = "same"
    elif after is not None:
        before = layer.padding or (0,) * len(after)
        entry["padding"] = [[b, a] for b, a in zip(before, after)]
    elif layer.padding:
        entry["padding"] = _compact(layer.padding)
    for key in ("ceil_mode", "align_corners", "pad_mode"):
        if meta.get(key):
            entry[key] = meta[key]
    if meta.get("output_padding"):
        entry["output_padding"] = _compact(tuple(meta["output_padding"]))
    return entry


def save_spec(graph: Graph, path: str | Path) -> None:
    """Write ``graph`` as an architecture file; YAML or JSON by the file's suffix."""
    path = Path(path)
    data = spec_from_graph(graph)
    if path.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot write {path}: {reason(exc)}") from None
