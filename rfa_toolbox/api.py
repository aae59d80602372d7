"""The public functions: analyze a model, and the fast helpers for NAS filters."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .analysis import Analysis, PerAxis, Report, analyze_graph, fully_utilized, graph_r
from .edits import Suggestion
from .resolution import ResolutionLike, parse_resolution
from .sources import ModelLike, load_graph, model_name
from .verify import rank_suggestions


def analysis_of(model: ModelLike, resolution: ResolutionLike, suggestions: bool = False,
                limit: int = 10, **options: Any) -> Analysis:
    """The `Analysis` of ``model`` at ``resolution``: its graph, receptive-field sets and
    report together, for consumers that need more than the report (diagrams, suggestions).

    Takes the arguments of `analyze`; with ``suggestions=True`` the report carries the
    ``limit`` best verified edits.
    """
    graph = load_graph(model, resolution=resolution, **options)
    analysis = analyze_graph(graph, resolution, model=model_name(model, graph))
    if suggestions:
        notes = list(analysis.report.notes)
        found = rank_suggestions(analysis, limit, notes=notes)
        analysis = replace(analysis, report=replace(analysis.report, suggestions=found, notes=notes))
    return analysis


def analyze(model: ModelLike, resolution: ResolutionLike, suggestions: bool = False,
            **options: Any) -> Report:
    """Analyze ``model`` at the input ``resolution`` and return a `Report`.

    ``model`` is a `Graph`, a parsed architecture file (dict) or its path, a PyTorch
    ``nn.Module``, a model file (``"model.py"``, ``"model.py:NAME"``), ``"torchvision:NAME"``,
    ``"timm:NAME"``, a Keras model, a ``.keras`` file, a ``.json`` file holding
    ``model.to_json()`` or ``"keras:NAME"``; ``resolution`` is an int, a per-axis sequence, or a
    string like ``"800x1333"``. Options for PyTorch models: ``input_shape`` (full shape without
    batch, such as ``"1x16000"``), ``strict`` (every op without a handler is an error),
    ``allow_unknown`` (such ops are neutral even when they change the spatial shape),
    ``handlers`` (a mapping of op kinds to handlers for this call only, merged over the
    defaults) and ``structure`` (a dilation-search structure applied first). Keras models take
    ``handlers`` too (layer class names to handlers).
    With ``suggestions=True`` the report also carries verified edits (see `suggest`).
    """
    return analysis_of(model, resolution, suggestions, **options).report


def suggest(model: ModelLike, resolution: ResolutionLike, limit: int = 10,
            **options: Any) -> list[Suggestion]:
    """Ranked edits that lower r below ``resolution`` (stride and stem-kernel reductions,
    removal of unproductive modules), each verified by analyzing the edited graph: fully
    utilized first, then fewest edits, then r closest below R, then the smallest MACs
    increase. Empty when the model is already fully utilized."""
    return rank_suggestions(analysis_of(model, resolution, **options), limit)


def diagram(model: ModelLike, resolution: ResolutionLike, depth: int | None = None,
            rankdir: str = "TB", **options: Any) -> Any:
    """A graphviz diagram of ``model`` at ``resolution`` with its findings highlighted
    (unproductive red, underutilized orange, border yellow, head grey); it displays itself in
    Jupyter. ``depth`` draws modules at that depth; save it with
    `rfa_toolbox.render.save_diagram`."""
    return analysis_of(model, resolution, **options).diagram(depth=depth, rankdir=rankdir)


def minimal_feasible_resolution(model: ModelLike, **options: Any) -> PerAxis:
    """r per axis: the largest r_min of any finite layer. Inputs larger than r on every axis
    use every layer productively. Faster than `analyze` (min sets only, no report)."""
    return graph_r(load_graph(model, **options))


def is_fully_utilized(model: ModelLike, resolution: ResolutionLike, **options: Any) -> bool:
    """True when ``resolution`` exceeds r on every axis (no unproductive or underutilized layer
    can exist)."""
    graph = load_graph(model, resolution=resolution, **options)
    return fully_utilized(graph_r(graph), parse_resolution(resolution, graph.ndim))
