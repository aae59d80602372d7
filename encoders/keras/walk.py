"""The walk over a Keras model's JSON configuration: Functional and Sequential models, nested
models (the nesting becomes the module path), shared layers (each call is its own node),
several inputs and outputs, in both JSON formats (Keras 3 and Keras 2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from rfa_toolbox.errors import shown
from rfa_toolbox.files import decode, parse
from rfa_toolbox.graph import Graph
from rfa_toolbox.ops import make_layer
from rfa_toolbox.sources import looks_like_keras_json

from . import handlers as _handlers  # noqa: F401 - fills DEFAULT_HANDLERS
from .ir import Handler, KerasFormatError, KOp, KTensor, handler_table

MODEL_CLASSES = ("Functional", "Model", "Sequential")

Ref = tuple[str, int, int]  #: (layer, node, tensor): one tensor of the model


def _history(arg: Any) -> list[Ref]:
    """The (layer, node, tensor) references in one Keras 3 call argument (nested lists too)."""
    if isinstance(arg, dict):
        if arg.get("class_name") == "__keras_tensor__":
            layer, node, index = arg["config"]["keras_history"]
            return [(layer, node, index)]
        return []
    if isinstance(arg, (list, tuple)):
        return [ref for item in arg for ref in _history(item)]
    return []


def _tensor_shape(arg: Any) -> dict[Ref, tuple]:
    shapes = {}
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        layer, node, index = arg["config"]["keras_history"]
        shape = arg["config"].get("shape")
        if shape:
            shapes[(layer, node, index)] = tuple(shape[1:])
    elif isinstance(arg, (list, tuple)):
        for item in arg:
            shapes.update(_tensor_shape(item))
    elif isinstance(arg, dict):
        for item in arg.values():
            shapes.update(_tensor_shape(item))
    return shapes


def _calls(layer: dict) -> list[list[Ref]]:
    """The input references of each call of ``layer``, in both JSON formats."""
    calls = []
    for node in layer.get("inbound_nodes") or []:
        if isinstance(node, dict):  # Keras 3
            calls.append(_history(node.get("args", [])))
        elif isinstance(node, list):  # Keras 2: [[layer, node, tensor, kwargs], ...]
            refs = []
            for ref in node:
                if not (isinstance(ref, list) and len(ref) >= 3 and isinstance(ref[0], str)):
                    raise KerasFormatError(f"layer {layer.get('name')!r}: unknown inbound node format {ref!r}")
                refs.append((ref[0], int(ref[1]), int(ref[2])))
            calls.append(refs)
        else:
            raise KerasFormatError(f"layer {layer.get('name')!r}: unknown inbound node format {node!r}")
    return calls


def _refs(value: Any) -> list[Ref]:
    """``input_layers`` / ``output_layers``: one [name, node, tensor] or a list of them."""
    if isinstance(value, dict):  # Keras 3 may key outputs by name
        value = list(value.values())
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    raise KerasFormatError(f"unknown input/output layer format {value!r}")


class _Encoder:
    """Encodes one model JSON into ``graph``, recursing into nested models."""

    def __init__(self, ndim: int, name: str, handlers: dict[str, Handler]):
        self.graph = Graph(ndim, name)
        self.ndim = ndim
        self.handlers = handlers
        self.current = ""  # the layer being read, for messages
        self.unknown: dict[str, str] = {}

    def model(self, spec: dict, prefix: str, inputs: Optional[list[KTensor]]) -> list[KTensor]:
        """Encode a Functional or Sequential model; ``inputs`` feed its input layers (None at
        the top level: its input layers become graph inputs). Returns its outputs."""
        config = spec.get("config") or {}
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise KerasFormatError(f"model {config.get('name')!r} has no layer list")
        if spec.get("class_name") == "Sequential":
            return self.sequential(config, layers, prefix, inputs)
        return self.functional(config, layers, prefix, inputs)

    def sequential(self, config: dict, layers: list, prefix: str,
                   inputs: Optional[list[KTensor]]) -> list[KTensor]:
        current = inputs
        body = layers
        if layers and layers[0].get("class_name") == "InputLayer":
            if current is None:
                current = [self.input(layers[0], prefix)]
            body = layers[1:]
        elif current is None:
            shape = config.get("build_input_shape") or (spec_shape(layers[0]))
            current = [self.input({"config": {"name": "input", "batch_shape": shape}}, prefix)]
        for layer in body:
            current = self.call(layer, prefix, current, 0)
        return current

    def functional(self, config: dict, layers: list, prefix: str,
                   inputs: Optional[list[KTensor]]) -> list[KTensor]:
        by_name = {layer.get("name") or layer.get("config", {}).get("name"): layer for layer in layers}
        produced: dict[Ref, KTensor] = {}
        shapes: dict[Ref, tuple] = {}
        for layer in layers:
            for node in layer.get("inbound_nodes") or []:
                if isinstance(node, dict):
                    shapes.update(_tensor_shape(node.get("args", [])))
        input_refs = _refs(config.get("input_layers", []))
        for i, ref in enumerate(input_refs):
            if ref[0] not in by_name:
                raise KerasFormatError(f"input layer {ref[0]!r} is not among the layers")
            if inputs is None:
                produced[ref] = self.input(by_name[ref[0]], prefix)
            elif i < len(inputs):
                produced[ref] = inputs[i]
        pending = [(layer, k, refs) for layer in layers if layer.get("class_name") != "InputLayer"
                   for k, refs in enumerate(_calls(layer))]
        while pending:  # the JSON lists layers in order, so one pass nearly always does it
            waiting = []
            for layer, k, refs in pending:
                if not all(ref in produced for ref in refs):
                    waiting.append((layer, k, refs))
                    continue
                outs = self.call(layer, prefix, [produced[ref] for ref in refs], k)
                name = layer.get("name") or layer["config"]["name"]
                for index, t in enumerate(outs):
                    if t.shape is None:
                        t.shape = shapes.get((name, k, index))
                        self.set_shape(t)
                    produced[(name, k, index)] = t
            if len(waiting) == len(pending):
                missing = sorted({ref[0] for _, _, refs in waiting for ref in refs if ref not in produced})
                raise KerasFormatError(f"layers read tensors that no layer produces: {', '.join(missing[:5])}")
            pending = waiting
        outputs = []
        for ref in _refs(config.get("output_layers", [])):
            if ref not in produced:
                raise KerasFormatError(f"output {ref[0]!r} is not produced by the model")
            outputs.append(produced[ref])
        return outputs

    def input(self, layer: dict, prefix: str) -> KTensor:
        config = layer.get("config", {})
        name = prefix + (config.get("name") or layer.get("name") or "input")
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        shape = tuple(shape[1:]) if shape else None
        self.graph.add(make_layer(name, "input", self.ndim, shape=_known(shape)))
        return KTensor(name, True, shape)

    def set_shape(self, t: KTensor) -> None:
        """Record a tensor's shape (learnt from the layers that read it) on its node."""
        known = _known(t.shape)
        if known and t.node in self.graph and self.graph[t.node].shape is None:
            self.graph.replace(self.graph[t.node].with_changes(shape=known))

    def call(self, layer: dict, prefix: str, inputs: list[KTensor], k: int) -> list[KTensor]:
        class_name = layer.get("class_name")
        if not isinstance(class_name, str) or not class_name:
            raise KerasFormatError(f"a layer has no class_name (or not as text): {shown(layer)}")
        config = dict(layer.get("config") or {})
        name = layer.get("name") or config.get("name") or class_name.lower()
        self.current = name
        label = name if k == 0 else f"{name}:{k}"
        if class_name in MODEL_CLASSES:
            return self.model(layer, f"{prefix}{label}.", inputs)
        if not inputs:
            raise KerasFormatError(f"layer {name!r} is called without inputs")
        built = (layer.get("build_config") or {}).get("input_shape")
        if inputs[0].shape is None and built and not isinstance(built[0], list):
            inputs[0].shape = tuple(built[1:])  # Sequential layers: the shape they were built for
            self.set_shape(inputs[0])
        config["__class__"] = class_name
        handler = self.handlers.get(class_name)
        if handler is None:
            where = prefix.rstrip(".") or "(top level)"
            self.unknown.setdefault(class_name, f"{where}/{name}" if prefix else name)
            kop = KOp(class_name, dict(transfer="neutral"), spatial=inputs[0].spatial)
        else:
            try:
                kop = handler(config, inputs, self.ndim)
            except KerasFormatError as exc:
                raise KerasFormatError(f"layer {shown(name)} ({shown(class_name)}): {exc}") from None
            except KeyError as exc:
                raise KerasFormatError(f"layer {shown(name)} ({shown(class_name)}): its config has no"
                                       f" {shown(exc.args[0] if exc.args else '')}") from None
            except (TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
                raise KerasFormatError(f"layer {shown(name)} ({shown(class_name)}): a field of its config has"
                                       " the wrong type or value") from None
        node = prefix + label
        module = (prefix + name) if prefix else name
        sources = list(dict.fromkeys(t.node for t in inputs))
        params = {k2: v for k2, v in kop.params.items() if v is not None}
        self.graph.add(make_layer(node, kop.op, self.ndim, module=module, **params), sources)
        return [KTensor(node, kop.spatial)]


def spec_shape(layer: dict) -> Optional[list]:
    config = layer.get("config", {})
    return config.get("batch_input_shape") or config.get("batch_shape")


def _known(shape: Optional[tuple]) -> Optional[tuple]:
    return shape if shape and all(isinstance(s, int) for s in shape) else None


def _ndim(spec: dict) -> int:
    """Spatial axes, from the first input shape found (batch, *spatial, channels)."""
    config = spec.get("config") or {}
    for layer in config.get("layers") or []:
        if layer.get("class_name") in MODEL_CLASSES:
            return _ndim(layer)
        shape = spec_shape(layer)
        if shape:
            return max(1, min(3, len(shape) - 2))
    shape = config.get("build_input_shape")
    if shape:
        return max(1, min(3, len(shape) - 2))
    raise KerasFormatError("the model JSON gives no input shape")


def graph_from_keras_json(data: Any, name: Optional[str] = None,
                          handlers: Mapping[str, Handler] | None = None) -> Graph:
    """The graph of a Keras model from its JSON configuration (text or parsed dict), without
    running any of its code. ``handlers`` maps layer class names to handlers for this call
    only, merged over the built-in and registered ones."""
    table = handler_table(handlers)
    if isinstance(data, bytes):
        data = decode(data, "the model JSON", KerasFormatError)
    if isinstance(data, str):
        data = parse(data, "the model JSON", yaml_too=False, error=KerasFormatError)
    if not looks_like_keras_json(data):
        raise KerasFormatError("not a Keras model: expected a JSON object with 'class_name' and 'config'")
    if data["class_name"] not in MODEL_CLASSES:
        raise KerasFormatError(f"not a Keras model but a {shown(data['class_name'])}")
    title = name or data["config"].get("name") or "keras_model"
    if not isinstance(title, str):
        raise KerasFormatError(f"the model's name must be text, got {shown(title)}")
    encoder = None
    try:
        encoder = _Encoder(_ndim(data), title, table)
        outputs = encoder.model(data, "", None)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError):
        where = f" (at layer {shown(encoder.current)})" if encoder and encoder.current else ""
        raise KerasFormatError(f"the model JSON is malformed{where}: a field is missing or has the wrong"
                               " type; re-export it with model.to_json()") from None
    except RecursionError:
        raise KerasFormatError("the model JSON nests models too deeply to be read") from None
    graph = encoder.graph
    graph.outputs = list(dict.fromkeys(t.node for t in outputs))
    graph.unknown_ops = [f"{cls} ({where})" for cls, where in encoder.unknown.items()]
    graph.validate()
    return graph
