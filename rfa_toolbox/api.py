"""The public functions: analyze a model, and the fast helpers for NAS filters."""

from __future__ import annotations

from typing import Any

from .analysis import Report, analyze_graph, graph_r
from .graph import plain
from .resolution import ResolutionLike, parse_resolution
from .sources import ModelLike, load_graph, model_name


def analyze(model: ModelLike, resolution: ResolutionLike, **options: Any) -> Report:
    """Analyze ``model`` at the input ``resolution`` and return a `Report`.

    ``model`` is a `rfa_toolbox.graph.Graph`, a parsed architecture file (dict) or the
    path of one; ``resolution`` is an int, a per-axis sequence, or a string like ``"800x1333"``.
    """
    graph = load_graph(model, resolution=resolution, **options)
    return analyze_graph(graph, resolution, model=model_name(model, graph))


def minimal_feasible_resolution(model: ModelLike, **options: Any) -> tuple[int | float | None, ...]:
    """r per axis: the largest r_min of any finite layer. Inputs larger than r on every axis
    use every layer productively. Faster than `analyze` (min sets only, no report)."""
    graph = load_graph(model, **options)
    return tuple(None if v is None else plain(v) for v in graph_r(graph))


def is_fully_utilized(model: ModelLike, resolution: ResolutionLike, **options: Any) -> bool:
    """True when ``resolution`` exceeds r on every axis (no unproductive or underutilized layer
    can exist)."""
    graph = load_graph(model, resolution=resolution, **options)
    res = parse_resolution(resolution, graph.ndim)
    return all(v is None or R > v for v, R in zip(graph_r(graph), res))
