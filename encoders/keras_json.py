"""Keras encoder: build the graph from a model's JSON configuration, never running its code.

Both formats are read: Keras 3 (``inbound_nodes`` as dicts whose ``args`` hold tensors with a
``keras_history``) and Keras 2 / tf.keras (nested lists ``[layer, node, tensor, kwargs]``).
Functional and Sequential models, nested models (recursed into; the nesting becomes the
module path), shared layers (each call is its own node), several inputs and outputs.

One handler per layer class lives in `HANDLERS`; `register_handler` adds more.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from rfa_toolbox.errors import RFAError
from rfa_toolbox.graph import Graph
from rfa_toolbox.ops import UPSAMPLE_MODES, make_layer


class KerasFormatError(RFAError):
    """The file or JSON is not a Keras model configuration this encoder can read."""


@dataclass
class KTensor:
    """A tensor of the model: the node that made it, whether it still has its spatial axes,
    and its shape without batch (when the JSON gives it)."""

    node: str
    spatial: bool
    shape: Optional[tuple] = None


@dataclass
class KOp:
    """What a handler returns: an op of the vocabulary (`rfa_toolbox.ops.OPS`) with its
    parameters, and whether the output keeps the spatial axes."""

    op: str
    params: dict
    spatial: bool = True


Handler = Callable[[dict, list[KTensor], int], KOp]
HANDLERS: dict[str, Handler] = {}
MODEL_CLASSES = ("Functional", "Model", "Sequential")


def register_handler(class_name: str, handler: Handler) -> None:
    """Register ``handler(config, inputs, ndim) -> KOp`` for the Keras layer class
    ``class_name`` (a custom layer of yours, say)."""
    HANDLERS[class_name] = handler


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = fn
        return fn
    return register


def _tuple(value: Any, ndim: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * ndim


def _channels(t: KTensor, config: dict) -> Optional[int]:
    if not t.shape:
        return None
    return t.shape[0] if config.get("data_format") == "channels_first" else t.shape[-1]


@_handles("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D",
          "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
          "SeparableConvolution1D", "SeparableConvolution2D", "Conv1DTranspose", "Conv2DTranspose",
          "Conv3DTranspose", "Convolution2DTranspose", "Convolution3DTranspose")
def _conv(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    kernel = _tuple(config["kernel_size"], ndim)
    in_ch = _channels(inputs[0], config)
    depthwise = "Depthwise" in config.get("__class__", "")
    out_ch = config.get("filters") or (in_ch * config.get("depth_multiplier", 1) if in_ch else None)
    groups = in_ch if depthwise else config.get("groups", 1)
    params = None
    if in_ch and out_ch:
        k = 1
        for v in kernel:
            k *= v
        params = k * out_ch * (in_ch // (groups or 1)) + (out_ch if config.get("use_bias", True) else 0)
    op = "conv_transpose" if "Transpose" in config.get("__class__", "") else "conv"
    return KOp(op, dict(kernel=kernel, stride=_tuple(config.get("strides", 1), ndim),
                        dilation=_tuple(config.get("dilation_rate", 1), ndim),
                        in_channels=in_ch, out_channels=out_ch, groups=groups, params=params))


@_handles("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
          "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D",
          "AvgPool3D")
def _pool(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    size = _tuple(config.get("pool_size", 2), ndim)
    strides = config.get("strides")
    op = "max_pool" if config["__class__"].startswith("Max") else "avg_pool"
    return KOp(op, dict(kernel=size, stride=_tuple(strides, ndim) if strides else size))


@_handles("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
          "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalAvgPool1D",
          "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D")
def _global_pool(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    kind = "max" if "Max" in config["__class__"] else "avg"
    return KOp(f"global_{kind}_pool", {}, spatial=bool(config.get("keepdims")))


@_handles("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsample(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    mode = config.get("interpolation", "nearest")
    if mode not in UPSAMPLE_MODES:  # lanczos, gaussian, mitchellcubic: wide kernels
        mode = "bicubic"
    return KOp("upsample", dict(factor=_tuple(config.get("size", 2), ndim), mode=mode))


@_handles("Dense", "EinsumDense")
def _dense(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    """Pointwise on a tensor that still has its spatial axes; global after Flatten."""
    in_ch = inputs[0].shape[-1] if inputs[0].shape else None
    units = config.get("units")
    params = in_ch * units + (units if config.get("use_bias", True) else 0) if in_ch and units else None
    meta = dict(in_channels=in_ch, out_channels=units, params=params)
    if inputs[0].spatial:
        return KOp("dense", dict(transfer="neutral", computes=True, **meta))
    return KOp("dense", meta, spatial=False)


@_handles("Flatten")
def _flatten(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    return KOp("flatten", {}, spatial=False) if inputs[0].spatial else KOp("identity", {}, spatial=False)


@_handles("Reshape")
def _reshape(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    """Neutral when the spatial sizes survive (or there are none); else the axes collapse."""
    t = inputs[0]
    target = tuple(config.get("target_shape") or ())
    if not t.spatial:
        return KOp("identity", {}, spatial=False)
    if t.shape and len(target) == len(t.shape) and tuple(target[:ndim]) == tuple(t.shape[:ndim]):
        return KOp("identity", {})
    return KOp("flatten", {}, spatial=False)


@_handles("Attention", "MultiHeadAttention", "AdditiveAttention", "GroupQueryAttention")
def _attention(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    return KOp("attention", {}, spatial=inputs[0].spatial)


_MERGES = {"Add": "add", "Multiply": "mul", "Subtract": "sub", "Average": "merge", "Maximum": "merge",
           "Minimum": "merge", "Concatenate": "concat", "Dot": "merge",
           "CustomScaleLayer": "add"}  # keras.applications' InceptionResNetV2: x + scale * r


def _merge(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
    return KOp(_MERGES[config["__class__"]], {}, spatial=any(t.spatial for t in inputs))


for _name in _MERGES:
    HANDLERS[_name] = _merge

_NEUTRAL = {
    "norm": "BatchNormalization LayerNormalization GroupNormalization UnitNormalization "
            "Normalization SyncBatchNormalization RMSNormalization",
    "activation": "Activation ReLU LeakyReLU PReLU ELU Softmax ThresholdedReLU",
    "dropout": "Dropout SpatialDropout1D SpatialDropout2D SpatialDropout3D GaussianNoise "
               "GaussianDropout AlphaDropout ActivityRegularization StochasticDepth",
    "neutral": "LayerScale",
    "pad": "ZeroPadding1D ZeroPadding2D ZeroPadding3D Cropping1D Cropping2D Cropping3D",
    "identity": "Rescaling Identity Masking",
}


def _neutral_handler(op: str) -> Handler:
    def handler(config: dict, inputs: list[KTensor], ndim: int) -> KOp:
        return KOp(op, {}, spatial=inputs[0].spatial)
    return handler


for _op, _names in _NEUTRAL.items():
    for _name in _names.split():
        HANDLERS[_name] = _neutral_handler(_op)


# -- the walk ---------------------------------------------------------------------------------

def _history(arg: Any) -> list[tuple[str, int, int]]:
    """The (layer, node, tensor) references in one Keras 3 call argument (nested lists too)."""
    if isinstance(arg, dict):
        if arg.get("class_name") == "__keras_tensor__":
            layer, node, index = arg["config"]["keras_history"]
            return [(layer, node, index)]
        return []
    if isinstance(arg, (list, tuple)):
        return [ref for item in arg for ref in _history(item)]
    return []


def _tensor_shape(arg: Any) -> dict[tuple[str, int, int], tuple]:
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


def _calls(layer: dict) -> list[list[tuple[str, int, int]]]:
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


def _refs(value: Any) -> list[tuple[str, int, int]]:
    """``input_layers`` / ``output_layers``: one [name, node, tensor] or a list of them."""
    if isinstance(value, dict):  # Keras 3 may key outputs by name
        value = list(value.values())
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        return [(value[0], int(value[1]), int(value[2]))]
    if isinstance(value, list):
        return [ref for item in value for ref in _refs(item)]
    raise KerasFormatError(f"unknown input/output layer format {value!r}")


class _Encoder:
    def __init__(self, ndim: int, name: str):
        self.graph = Graph(ndim, name)
        self.ndim = ndim
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
        produced: dict[tuple[str, int, int], KTensor] = {}
        shapes: dict[tuple[str, int, int], tuple] = {}
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
        class_name = layer.get("class_name", "")
        config = dict(layer.get("config") or {})
        name = layer.get("name") or config.get("name") or class_name.lower()
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
        handler = HANDLERS.get(class_name)
        if handler is None:
            where = prefix.rstrip(".") or "(top level)"
            self.unknown.setdefault(class_name, f"{where}/{name}" if prefix else name)
            kop = KOp(class_name, dict(transfer="neutral"), spatial=inputs[0].spatial)
        else:
            try:
                kop = handler(config, inputs, self.ndim)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise KerasFormatError(f"layer {name!r} ({class_name}): cannot read its config: {exc}") from None
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


def graph_from_keras_json(data: Any, name: Optional[str] = None) -> Graph:
    """The graph of a Keras model from its JSON configuration (text or parsed dict)."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise KerasFormatError(f"malformed JSON, line {exc.lineno}: {exc.msg}") from None
    if not is_keras_json(data):
        raise KerasFormatError("not a Keras model: expected a JSON object with 'class_name' and 'config'")
    if data["class_name"] not in MODEL_CLASSES:
        raise KerasFormatError(f"not a Keras model but a {data['class_name']!r}")
    title = name or (data.get("config") or {}).get("name") or "keras_model"
    encoder = _Encoder(_ndim(data), title)
    outputs = encoder.model(data, "", None)
    graph = encoder.graph
    graph.outputs = list(dict.fromkeys(t.node for t in outputs))
    graph.unknown_ops = [f"{cls} ({where})" for cls, where in encoder.unknown.items()]
    graph.validate()
    return graph


def is_keras_json(data: Any) -> bool:
    """Does this parsed JSON look like a Keras model configuration?"""
    return isinstance(data, dict) and "class_name" in data and isinstance(data.get("config"), dict)


def read_keras_file(path: Path) -> dict:
    """The model configuration of a ``.keras`` archive (its ``config.json``) or a ``.json``
    file holding ``model.to_json()``."""
    if not path.is_file():
        raise KerasFormatError(f"no such file: {path}")
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise KerasFormatError(f"{path} is a zip archive without config.json; save it with model.save()")
                text = archive.read("config.json").decode("utf-8")
        except zipfile.BadZipFile:
            raise KerasFormatError(f"{path} is not a .keras archive (not a zip file)") from None
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KerasFormatError(f"malformed JSON in {path}, line {exc.lineno}: {exc.msg}") from None


def import_keras() -> Any:
    """The keras package, imported quietly (TensorFlow's start-up log lines silenced)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # silences a log line; rfa computes nothing
    try:
        import keras
    except ImportError:
        raise KerasFormatError("keras is not installed: pip install 'rfa-toolbox[keras]'") from None
    return keras


def load_keras_application(name: str) -> dict:
    """The JSON configuration of ``keras.applications.NAME(weights=None)``."""
    keras = import_keras()
    builder = getattr(keras.applications, name, None)
    if builder is None or not callable(builder):
        import difflib

        names = [n for n in dir(keras.applications) if n[:1].isupper()]
        close = difflib.get_close_matches(name, names, n=3)
        raise KerasFormatError(f"keras.applications has no model {name!r}"
                               + (f"; did you mean {', '.join(close)}?" if close else ""))
    return json.loads(builder(weights=None).to_json())
