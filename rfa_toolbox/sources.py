"""Turning what the user names (a graph, a file, a framework model) into a `Graph`.

Framework encoders are imported only when a framework model is named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import RFAError
from .graph import Graph
from .spec import SUFFIXES, graph_from_spec, load_spec

#: A `Graph`, a parsed architecture file (dict), a path of an architecture file or of a Python
#: model file (``model.py``, ``model.py:NAME``), ``torchvision:NAME``, ``timm:NAME``, or a
#: ``torch.nn.Module`` instance.
ModelLike = Any

TORCH_PREFIXES = ("torchvision:", "timm:")


def load_graph(model: ModelLike, resolution: Any = None, input_shape: Any = None,
               strict: bool = False, allow_unknown: bool = False) -> Graph:
    """The graph of ``model`` (see `ModelLike`); framework models are traced at ``resolution``
    (or ``input_shape``, the full shape without batch such as ``3x224x224``)."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, dict):
        return graph_from_spec(model)
    if isinstance(model, (str, Path)):
        text = str(model)
        if text.startswith(TORCH_PREFIXES) or ".py:" in text or text.endswith(".py"):
            return _torch_graph(text, resolution, input_shape, strict, allow_unknown)
        if Path(text).suffix.lower() in SUFFIXES:
            return load_spec(text)
        raise RFAError(
            f"cannot read {text!r}: name an architecture file ({', '.join(SUFFIXES)}), a Python"
            " model file (model.py or model.py:NAME), torchvision:NAME or timm:NAME"
        )
    from rfa_toolbox.encoders.torch_models import is_torch_module

    if is_torch_module(model):
        return _torch_graph(model, resolution, input_shape, strict, allow_unknown)
    raise RFAError(f"cannot analyze an object of type {type(model).__name__}")


def _torch_graph(model: Any, resolution: Any, input_shape: Any, strict: bool,
                 allow_unknown: bool) -> Graph:
    from rfa_toolbox.encoders import torch_jit, torch_models

    if isinstance(model, str):
        named = torch_models.load(model)
    else:
        named = torch_models.TorchModel(model, type(model).__name__)
    inputs = torch_models.make_inputs(named, resolution, input_shape)
    return torch_jit.encode(named.module, inputs, name=named.name, strict=strict,
                            allow_unknown=allow_unknown)


def model_name(model: ModelLike, graph: Graph) -> str:
    """A display name for ``model``."""
    if isinstance(model, (str, Path)):
        return str(model)
    return graph.name
