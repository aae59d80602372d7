"""Turning what the user names (a graph, a file, a framework model) into a `Graph`.

Framework encoders are imported only when a framework model is named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import RFAError
from .graph import Graph
from .spec import SUFFIXES, graph_from_spec, load_spec, read_spec_file

#: A `Graph`, a parsed architecture file (dict), a path of an architecture file or of a Python
#: model file (``model.py``, ``model.py:NAME``), ``torchvision:NAME``, ``timm:NAME``, or a
#: ``torch.nn.Module`` instance.
ModelLike = Any

TORCH_PREFIXES = ("torchvision:", "timm:")


def load_graph(model: ModelLike, resolution: Any = None, input_shape: Any = None,
               strict: bool = False, allow_unknown: bool = False, structure: Any = None) -> Graph:
    """The graph of ``model`` (see `ModelLike`); framework models are traced at ``resolution``
    (or ``input_shape``, the full shape without batch such as ``3x224x224``). ``structure``
    (a dilation-search structure file or dict) is applied to a PyTorch model first."""
    if structure is not None and not _names_torch_model(model):
        raise RFAError("--structure applies to PyTorch models (a model file, torchvision: or timm:)")
    if isinstance(model, Graph):
        return model
    if isinstance(model, dict):
        return graph_from_spec(model)
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.startswith(TORCH_PREFIXES) or ".py:" in text or text.endswith(".py"):
            return _torch_graph(text, resolution, input_shape, strict, allow_unknown, structure)
        if text.startswith("keras:") or text.lower().endswith((".keras", ".json")):
            return _keras_or_spec(text)
        if Path(text).suffix.lower() in SUFFIXES:
            return load_spec(text)
        raise RFAError(
            f"cannot read {text!r}: name an architecture file ({', '.join(SUFFIXES)}), a Python"
            " model file (model.py or model.py:NAME), torchvision:NAME, timm:NAME, keras:NAME,"
            " a .keras file or a .json file holding model.to_json()"
        )
    if _is_keras_model(model):
        from rfa_toolbox.encoders import keras_json

        return keras_json.graph_from_keras_json(model.to_json())
    from rfa_toolbox.encoders.torch_models import is_torch_module

    if is_torch_module(model):
        return _torch_graph(model, resolution, input_shape, strict, allow_unknown, structure)
    raise RFAError(f"cannot analyze an object of type {type(model).__name__}")


def _names_torch_model(model: ModelLike) -> bool:
    if isinstance(model, (str, Path)):
        text = str(model)
        return text.startswith(TORCH_PREFIXES) or ".py:" in text or text.endswith(".py")
    return not isinstance(model, (Graph, dict)) and not _is_keras_model(model)


def _is_keras_model(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in ("keras", "tf_keras") and hasattr(obj, "to_json")


def _keras_or_spec(text: str) -> Graph:
    """``keras:NAME``, a ``.keras`` archive, or a ``.json`` file: a Keras model's JSON or an
    architecture file (told apart by their keys)."""
    from rfa_toolbox.encoders import keras_json

    if text.startswith("keras:"):
        data = keras_json.load_keras_application(text.split(":", 1)[1])
        return keras_json.graph_from_keras_json(data, name=text)
    path = Path(text)
    if path.suffix.lower() == ".keras":
        return keras_json.graph_from_keras_json(keras_json.read_keras_file(path), name=text)
    data = read_spec_file(path)
    if keras_json.is_keras_json(data):
        return keras_json.graph_from_keras_json(data, name=text)
    try:
        return graph_from_spec(data, default_name=path.stem)
    except RFAError as exc:
        exc.args = (f"{path}: {exc}",)
        raise


def _torch_graph(model: Any, resolution: Any, input_shape: Any, strict: bool,
                 allow_unknown: bool, structure: Any = None) -> Graph:
    from rfa_toolbox.encoders import torch_jit, torch_models

    if isinstance(model, str):
        named = torch_models.load(model)
        if isinstance(named.module, Graph):  # a framework-free graph defined in Python
            return named.module
    else:
        named = torch_models.TorchModel(model, type(model).__name__)
    if structure is not None:
        from rfa_toolbox.rfsearch import apply_structure

        apply_structure(named.module, structure)
    inputs = torch_models.make_inputs(named, resolution, input_shape)
    return torch_jit.encode(named.module, inputs, name=named.name, strict=strict,
                            allow_unknown=allow_unknown)


def model_name(model: ModelLike, graph: Graph) -> str:
    """A display name for ``model``."""
    if isinstance(model, (str, Path)):
        return str(model)
    return graph.name
