"""Turning what the user names (a graph, a file, a framework model) into a `Graph`.

Framework encoders are imported only when a framework model is named; an architecture file
never imports one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import RFAError
from .graph import Graph
from .spec import SUFFIXES, graph_from_spec, load_spec, read_spec_file

#: A `Graph`, a parsed architecture file (dict), a path of an architecture file or of a Python
#: model file (``model.py``, ``model.py:NAME``), ``torchvision:NAME``, ``timm:NAME``, an
#: ``.onnx`` file, or a ``torch.nn.Module`` instance.
ModelLike = Any

TORCH_PREFIXES = ("torchvision:", "timm:")


def load_graph(model: ModelLike, resolution: Any = None, input_shape: Any = None,
               strict: bool = False, allow_unknown: bool = False, structure: Any = None,
               handlers: Mapping[str, Any] | None = None, module: str | None = None) -> Graph:
    """The graph of ``model`` (see `ModelLike`); framework models are traced at ``resolution``
    (or ``input_shape``, the full shape without batch such as ``3x224x224``). ``structure``
    (a dilation-search structure file or dict) is applied to a PyTorch model first;
    ``handlers`` (op kinds or Keras layer classes to handlers) apply to this call only;
    ``module`` (a submodule path such as ``backbone``) analyzes that part of a PyTorch model."""
    torch_model = names_torch_model(model)
    for option, value in (("--structure", structure), ("--module", module)):
        if value is not None and not torch_model:
            raise RFAError(f"{option} applies to PyTorch models (a model file, torchvision: or timm:)")
    if input_shape is not None and _names_keras_model(model):
        raise RFAError("--input-shape applies to PyTorch and ONNX models; a Keras model's channels and"
                       " layout come from its file: give the spatial size with --res")
    if isinstance(model, Graph):
        return model
    if isinstance(model, dict):
        return graph_from_spec(model)
    if torch_model:
        return _torch_graph(model, resolution, input_shape, strict, allow_unknown, structure,
                            handlers, module)
    if type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx"):
        return _onnx_graph(model, resolution, input_shape, strict, allow_unknown, handlers)
    if _is_keras_model(model):
        from rfa_toolbox.encoders import keras

        graph: Graph = keras.graph_from_keras_json(model.to_json(), handlers=handlers)
        return graph
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.lower().endswith(".onnx"):
            return _onnx_graph(Path(text), resolution, input_shape, strict, allow_unknown, handlers)
        if text.startswith("keras:") or text.lower().endswith((".keras", ".json")):
            return _keras_or_spec(text, handlers)
        if Path(text).suffix.lower() in SUFFIXES:
            return load_spec(text)
        raise RFAError(
            f"cannot read {text!r}: name an architecture file ({', '.join(SUFFIXES)}), a Python"
            " model file (model.py or model.py:NAME), torchvision:NAME, timm:NAME, keras:NAME,"
            " a .keras file, a .json file holding model.to_json(), or an .onnx file"
        )
    raise RFAError(f"cannot analyze an object of type {type(model).__name__}")


def names_torch_model(model: ModelLike) -> bool:
    """Does ``model`` name or hold a PyTorch model (a model file, torchvision:, timm:, or an
    ``nn.Module``)?"""
    if isinstance(model, (str, Path)):
        text = str(model)
        return text.startswith(TORCH_PREFIXES) or ".py:" in text or text.endswith(".py")
    return is_torch_module(model)


def is_torch_module_class(cls: type) -> bool:
    """True for a subclass of ``torch.nn.Module`` (checked without importing torch)."""
    return any(c.__module__ == "torch.nn.modules.module" and c.__name__ == "Module"
               for c in cls.__mro__)


def is_torch_module(obj: Any) -> bool:
    """True for a ``torch.nn.Module`` instance (checked without importing torch)."""
    return is_torch_module_class(type(obj))


def names_framework_model(model: ModelLike) -> bool:
    """Does ``model`` name or hold a PyTorch or Keras model (which is built and traced)?"""
    if isinstance(model, (str, Path)):
        return names_torch_model(model) or _names_keras_model(model)
    return names_torch_model(model) or _is_keras_model(model)


def _names_keras_model(model: ModelLike) -> bool:
    """Does ``model`` name (keras:NAME, a .keras archive) or hold a Keras model?"""
    if isinstance(model, (str, Path)):
        text = str(model)
        return text.startswith("keras:") or text.lower().endswith(".keras")
    return _is_keras_model(model)


def _is_keras_model(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in ("keras", "tf_keras") and hasattr(obj, "to_json")


def looks_like_keras_json(data: Any) -> bool:
    """Does this parsed JSON look like a Keras model configuration (rather than an
    architecture file)?"""
    return isinstance(data, dict) and "class_name" in data and isinstance(data.get("config"), dict)


def _keras_or_spec(text: str, handlers: Mapping[str, Any] | None) -> Graph:
    """``keras:NAME``, a ``.keras`` archive, or a ``.json`` file: a Keras model's JSON or an
    architecture file (told apart by their keys; the Keras encoder is imported only for the
    former)."""
    path = Path(text)
    if text.startswith("keras:") or path.suffix.lower() == ".keras":
        from rfa_toolbox.encoders import keras

        if text.startswith("keras:"):
            data = keras.load_keras_application(text.split(":", 1)[1])
        else:
            data = keras.read_keras_file(path)
        graph: Graph = keras.graph_from_keras_json(data, name=text, handlers=handlers)
        return graph
    data = read_spec_file(path)
    if looks_like_keras_json(data):
        from rfa_toolbox.encoders import keras

        keras_graph: Graph = keras.graph_from_keras_json(data, name=text, handlers=handlers)
        return keras_graph
    try:
        return graph_from_spec(data, default_name=path.stem)
    except RFAError as exc:
        exc.args = (f"{path}: {exc}",)
        raise


def _onnx_graph(source: Any, resolution: Any, input_shape: Any, strict: bool, allow_unknown: bool,
                handlers: Mapping[str, Any] | None) -> Graph:
    """The graph of an ONNX file (a path) or ``onnx.ModelProto``; ``input_shape`` as text or
    sizes (``3x224x224``)."""
    from rfa_toolbox.encoders.onnx import graph_from_onnx
    from rfa_toolbox.resolution import parse_resolution

    shape = parse_resolution(input_shape) if input_shape is not None else None
    graph: Graph = graph_from_onnx(source, resolution, shape, strict=strict, allow_unknown=allow_unknown,
                                   handlers=handlers)
    return graph


def _torch_graph(model: Any, resolution: Any, input_shape: Any, strict: bool, allow_unknown: bool,
                 structure: Any, handlers: Mapping[str, Any] | None, module: str | None) -> Graph:
    from rfa_toolbox.encoders.torch import models
    from rfa_toolbox.encoders.torch.inputs import encode_model

    if isinstance(model, (str, Path)):
        named = models.load(str(model))
        if isinstance(named.module, Graph):  # a framework-free graph defined in Python
            return named.module
    else:
        named = models.TorchModel(model, type(model).__name__)
    if structure is not None:
        from rfa_toolbox.rfsearch import apply_structure

        apply_structure(named.module, structure)
    graph: Graph = encode_model(named, resolution, input_shape, strict, allow_unknown, handlers, module)
    return graph


def model_name(model: ModelLike, graph: Graph | None) -> str:
    """A display name for ``model`` (the graph's name for objects, once it is known)."""
    if isinstance(model, (str, Path)):
        return str(model)
    if graph is not None:
        return graph.name
    return model.name if isinstance(model, Graph) else type(model).__name__
