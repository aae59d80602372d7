"""Turning what the user names (a graph, a file, a framework model) into a `Graph`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import RFAError
from .graph import Graph
from .spec import SUFFIXES, graph_from_spec, load_spec

ModelLike = Any  # a Graph, a parsed architecture dict, or a path to an architecture file


def load_graph(model: ModelLike, **options: Any) -> Graph:
    """The graph of ``model``: a `Graph`, a parsed architecture file (dict), or a path."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, dict):
        return graph_from_spec(model)
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() in SUFFIXES:
            return load_spec(path)
        raise RFAError(
            f"cannot read {str(model)!r}: name an architecture file ({', '.join(SUFFIXES)})"
        )
    raise RFAError(f"cannot analyze an object of type {type(model).__name__}")


def model_name(model: ModelLike, graph: Graph) -> str:
    """A display name for ``model``."""
    if isinstance(model, (str, Path)):
        return str(model)
    return graph.name
