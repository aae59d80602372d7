"""The public functions: analyze a model, and the fast helpers for NAS filters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Optional

from .analysis import Analysis, PerAxis, Report, exact_r, for_display, fully_utilized
from .analyzer import analyze_graph
from .edits import Suggestion
from .errors import RFAError, shown
from .resolution import ResolutionLike, parse_resolution, resolution_of
from .sources import ModelLike, load_graph, model_name, names_framework_model
from .timeouts import time_limit
from .verify import rank_suggestions

#: The keyword options of `analyze` and friends (see `analyze`).
OPTIONS = ("input_shape", "strict", "allow_unknown", "structure", "handlers", "timeout", "module")


def analysis_of(model: ModelLike, resolution: Optional[ResolutionLike], suggestions: bool = False,
                limit: int = 10, on_step: Optional[Callable[[str], None]] = None, exact: bool = True,
                **options: Any) -> Analysis:
    """The `Analysis` of ``model`` at ``resolution``: its graph, receptive-field sets and
    report together, for consumers that need more than the report (diagrams, suggestions).

    Takes the arguments of `analyze`; with ``suggestions=True`` the report carries the
    ``limit`` best verified edits. ``on_step`` is called with a short description of each
    step (reading or tracing the model, analyzing, verifying suggestions), for progress displays.
    ``exact=False`` keeps the standard rules' estimate where resampling makes receptive fields
    depend on the position (by default they are computed position by position).
    """
    _check_options(options)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RFAError(f"limit must be a positive number of suggestions, not {shown(limit)}")
    step = on_step or (lambda text: None)
    res = resolution_of(resolution, options.get("input_shape"))
    timeout = options.pop("timeout", None)
    step(f"{'building and tracing' if names_framework_model(model) else 'reading'} {model_name(model, None)}")
    doing = "reading and tracing" if names_framework_model(model) else "reading"
    with time_limit(timeout, f"{doing} {model_name(model, None)}"):
        graph = load_graph(model, resolution=res, **options)
    name = model_name(model, graph)
    if options.get("module") is not None:
        name, res = _submodule_input(graph, name, options["module"], res)
    step(f"analyzing {len(graph):,} layers")
    analysis = analyze_graph(graph, res, model=name, exact=exact)
    if suggestions:
        step("verifying suggestions")
        notes = list(analysis.report.notes)
        found = rank_suggestions(analysis, limit, notes=notes)
        if found and len(analysis.graph.output_nodes) > 1:
            notes.append("a suggested stride edit also changes the strides of the outputs after it"
                         " (pyramid levels, heads) and so their match with anchors; the outputs"
                         " table is for the model as it is")
        analysis = replace(analysis, report=replace(analysis.report, suggestions=found, notes=notes))
    return analysis


def _submodule_input(graph: Any, name: str, module: str, res: Any) -> tuple[str, Any]:
    """The name and resolution of an analysis of a submodule: the size its input has when the
    model runs at ``res`` (a detector resizes and pads, a model may crop), said in a note."""
    shape = graph[graph.inputs[0]].shape
    res = parse_resolution(res, graph.ndim)
    seen = tuple(shape[-graph.ndim:]) if shape and len(shape) > graph.ndim else res
    if seen != res:
        graph.notes.append(f"at --res {'x'.join(map(str, res))} the model gives --module {module} an input"
                           f" of {'x'.join(map(str, seen))}: the analysis is at that size")
    return f"{name} --module {module}", seen


def _check_options(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise RFAError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}"
                       f" (the options are {', '.join(OPTIONS)})")
    timeout = options.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout >= 0):
        raise RFAError(f"timeout must be a number of seconds (0: no limit), not {shown(timeout)}")


def analyze(model: ModelLike, resolution: ResolutionLike, suggestions: bool = False,
            exact: bool = True, **options: Any) -> Report:
    """Analyze ``model`` at the input ``resolution`` and return a `Report`.

    ``model`` is a `Graph`, a parsed architecture file (dict) or its path, a PyTorch
    ``nn.Module``, a model file (``"model.py"``, ``"model.py:NAME"``), ``"torchvision:NAME"``,
    ``"timm:NAME"``, a Keras model, a ``.keras`` file, a ``.json`` file holding
    ``model.to_json()``, ``"keras:NAME"`` or an ``.onnx`` file; ``resolution`` is an int, a
    per-axis sequence, or a string like ``"800x1333"``. Options for PyTorch and ONNX models
    (``structure``, ``module`` and ``timeout`` for PyTorch only): ``input_shape`` (full shape without
    batch, such as ``"1x16000"``), ``strict`` (every op without a handler is an error),
    ``allow_unknown`` (such ops are neutral even when they change the spatial shape),
    ``handlers`` (a mapping of op kinds to handlers for this call only, merged over the
    defaults), ``structure`` (a dilation-search structure applied first), ``module`` (a
    submodule path such as ``"backbone"``: that part is analyzed, traced on the inputs the model
    gives it) and ``timeout`` (seconds allowed for building and tracing the model). Detectors of
    torchvision and ultralytics are traced up to their dense outputs. Keras models take ``handlers`` too
    (layer class names to handlers). With ``input_shape`` the resolution may be None; when both
    are given they must agree.
    With ``suggestions=True`` the report also carries verified edits (see `suggest`). Where
    upsampling, transposed convolutions or adaptive pooling make a unit's receptive field depend
    on its position, r_min and r_max are exact (computed position by position at this
    resolution); ``exact=False`` gives the standard rules' estimate instead.
    """
    return analysis_of(model, resolution, suggestions, exact=exact, **options).report


def suggest(model: ModelLike, resolution: ResolutionLike, limit: int = 10,
            **options: Any) -> list[Suggestion]:
    """Ranked edits that lower r below ``resolution`` (stride and stem-kernel reductions,
    removal of unproductive modules), each verified by analyzing the edited graph: fully
    utilized first, then fewest edits, then r closest below R, then the smallest MACs
    increase. Empty when the model is already fully utilized."""
    return analysis_of(model, resolution, suggestions=True, limit=limit, **options).report.suggestions or []


def diagram(model: ModelLike, resolution: ResolutionLike, depth: int | None = None,
            rankdir: str = "TB", **options: Any) -> Any:
    """A graphviz diagram of ``model`` at ``resolution`` with its findings highlighted
    (unproductive red, underutilized orange, border yellow, head grey); it displays itself in
    Jupyter. ``depth`` draws modules at that depth; save it with
    `rfa_toolbox.render.save_diagram`."""
    return analysis_of(model, resolution, **options).diagram(depth=depth, rankdir=rankdir)


def minimal_feasible_resolution(model: ModelLike, **options: Any) -> PerAxis:
    """r per axis: the largest r_min of any finite layer. Inputs larger than r on every axis
    use every layer productively. Faster than `analyze` (min sets only, no report); PyTorch
    models need ``input_shape`` (or use `analyze`)."""
    _check_options(options)
    return for_display(exact_r(load_graph(model, **options)))


def is_fully_utilized(model: ModelLike, resolution: ResolutionLike, **options: Any) -> bool:
    """True when ``resolution`` exceeds r on every axis (no unproductive or underutilized layer
    can exist)."""
    _check_options(options)
    graph = load_graph(model, resolution=resolution, **options)
    return fully_utilized(exact_r(graph), parse_resolution(resolution, graph.ndim))
