"""Graphviz diagrams of a report: the graph of a model with its findings highlighted.

`render_analysis` draws one node per layer (or per module at a chosen depth), coloured by its
status: unproductive red, underutilized orange, border yellow, head grey, the rest white.
`save_diagram` writes the diagram as SVG, PNG, PDF (through graphviz's ``dot`` program) or as
DOT source. A `graphviz.Digraph` displays itself in Jupyter notebooks.
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import graphviz

from .analysis import Analysis, LayerResult, Report, Status
from .errors import RFAError
from .files import reason
from .formats import axes, geometry, printable, shows_outputs, window
from .graph import Graph, Transfer
from .grouping import group_rows, module_key

#: Fill colour of a diagram node, by status: red, orange, yellow, grey and white.
COLORS: dict[Status, str] = {
    Status.UNPRODUCTIVE: "#ef5350",
    Status.UNDERUTILIZED: "#ffa726",
    Status.BORDER: "#ffee58",
    Status.HEAD: "#bdbdbd",
    Status.OK: "#ffffff",
}

#: Legend order: the findings first, worst first.
LEGEND = (Status.UNPRODUCTIVE, Status.UNDERUTILIZED, Status.BORDER, Status.HEAD, Status.OK)

#: File suffixes `save_diagram` understands, and the ``dot`` output format of each.
DIAGRAM_FORMATS: dict[str, str | None] = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": None}

RANKDIRS = ("TB", "LR")

INSTALL_HINT = (
    "install graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz;"
    " conda: conda install -c conda-forge graphviz)"
)

FONT = "Helvetica"

#: Above this many nodes or edges, dot is told to search less for an optimal layout.
LARGE = 300


@dataclass
class _Item:
    """One diagram node before folding: a layer, or a module at the chosen depth."""

    key: str
    row: LayerResult
    members: list[str]
    foldable: bool = False
    preds: list[str] = field(default_factory=list)


def _passes_on(graph: Graph, name: str) -> bool:
    """True for the ops a diagram can fold: not computing, and neutral (norms, activations,
    dropout, views) or a flatten; never inputs, merges, or ops that resample."""
    layer = graph[name]
    return not layer.computes and layer.transfer in (Transfer.NEUTRAL, Transfer.GLOBAL)


def _items(report: Report, depth: int | None) -> dict[str, _Item]:
    """The diagram nodes in order of first appearance, keyed by layer name or module path."""
    if depth is None:
        return {row.name: _Item(row.name, row, [row.name]) for row in report.layers}
    members: dict[str, list[str]] = {}
    for row in report.layers:
        members.setdefault(module_key(row, depth), []).append(row.name)
    rows = group_rows(report, depth)  # same keys, in the same order of first appearance
    return {key: _Item(key, row, members[key]) for key, row in zip(members, rows)}


def _fold_items(items: dict[str, _Item], graph: Graph,
                fold_neutral: bool) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The representative of every item and the edges between the shown items.

    A foldable item (only ops that pass the receptive field on, exactly one predecessor) is drawn as part of
    the item it follows; the edges leaving it leave that item instead.
    """
    owner = {name: item.key for item in items.values() for name in item.members}
    edges: dict[tuple[str, str], None] = {}  # ordered set
    for item in items.values():
        for name in item.members:
            for succ in graph.nx.succ[name]:
                target = owner.get(succ)
                if target is not None and target != item.key:
                    edges[(item.key, target)] = None
    for a, b in edges:
        items[b].preds.append(a)
    for item in items.values():
        item.foldable = (
            fold_neutral
            and len(item.preds) == 1
            and all(_passes_on(graph, name) for name in item.members)
        )

    rep: dict[str, str] = {}

    def representative(key: str) -> str:
        chain = []
        while key not in rep and items[key].foldable and key not in chain:
            chain.append(key)
            key = items[key].preds[0]
        found = rep.get(key, key)
        if key in chain:  # a loop of foldable items (only possible with module groups): keep it
            found = key
        for k in chain:
            rep[k] = found
        rep.setdefault(key, found)
        return found

    for key in items:
        representative(key)
    shown: dict[tuple[str, str], None] = {}
    for a, b in edges:
        if rep[b] == b and rep[a] != b:
            shown[(rep[a], b)] = None
    return rep, list(shown)


def _text(value: str) -> str:
    """User text for an HTML-like label: control characters as escapes, XML-escaped, and
    backslash sequences such as ``\\N`` kept literal (graphviz would substitute them)."""
    return html.escape(printable(value)).replace("\\", "\\\u200b")


def _esc(value: str) -> str:
    """User text for an escString attribute (``id``)."""
    return cast(str, graphviz.escape(printable(value)))  # a str that graphviz must not quote again


def _tooltip(lines: list[str]) -> str:
    """A plain-text tooltip; graphviz unescapes tooltips twice."""
    return cast(str, graphviz.nohtml("\\n".join(printable(line).replace("\\", "\\\\\\\\") for line in lines)))


def _shape(row: LayerResult) -> str:
    return "x".join(map(str, row.shape)) if row.shape else ""


def _op_text(row: LayerResult) -> str:
    return f"{row.op} {window(row)}".strip()


def _node_attrs(item: _Item, graph: Graph, absorbed: list[_Item], depth: int | None) -> dict[str, str]:
    row = item.row
    grouped = len(item.members) > 1
    title = row.name
    lines = [f"<B>{_text(title)}</B>"]
    if row.module and row.module != row.name:
        lines.append(f'<FONT POINT-SIZE="8">{_text(row.module)}</FONT>')
    op = _op_text(row)
    if grouped:
        op = f"{len(item.members)} ops: {op}"
    lines.append(_text(op))
    lines.append(f"r_min {_text(axes(row.r_min))}, r_max {_text(axes(row.r_max))}")
    shape = _shape(row)
    if shape:
        lines.append(_text(shape))
    if absorbed:  # the kinds of folded ops, or the folded modules
        kinds = list(dict.fromkeys(a.row.op if depth is None else a.key for a in absorbed))
        shown = ", ".join(kinds[:3]) + (", …" if len(kinds) > 3 else "")
        lines.append(f'<FONT POINT-SIZE="8">+ {_text(shown)}</FONT>')
    tip = [row.name]
    if row.module and row.module != row.name:
        tip.append(f"module: {row.module}")
    tip += [
        f"op: {op}",
        f"r_min: {axes(row.r_min)}",
        f"r_max: {axes(row.r_max)}",
        f"input r_min: {axes(row.input_r_min)}",
        f"status: {row.status}",
    ]
    if shape:
        tip.append(f"shape: {shape}")
    if absorbed:
        tip.append("folded: " + ", ".join(
            a.key if depth is not None else f"{a.key} ({a.row.op})" for a in absorbed))
    transfers = {graph[name].transfer for name in item.members}
    extra: dict[str, str] = {}
    if transfers == {Transfer.INPUT}:
        node_shape, extra = "box", {"peripheries": "2"}  # a double frame, in either direction
    elif transfers == {Transfer.MERGE}:
        node_shape = "ellipse"
    else:
        node_shape = "box"
    return {
        **extra,
        "label": "<" + "<BR/>".join(lines) + ">",
        "id": _esc(item.key),
        "tooltip": _tooltip(tip),
        "class": row.status,
        "shape": node_shape,
        "fillcolor": COLORS.get(row.status, COLORS[Status.OK]),
    }


def _title(report: Report, shown: int, total: int, depth: int | None, folded: bool) -> str:
    counts = (f"{len(report.unproductive)} unproductive, {len(report.underutilized)}"
              f" underutilized, {len(report.border)} border")
    utilized = "fully utilized" if report.fully_utilized else "not fully utilized"
    how = []
    if depth is not None:
        how.append(f"modules at depth {depth}")
    if folded:
        how.append("neutral ops folded")
    detail = f"{shown} nodes for {total} ops" + (f" ({', '.join(how)})" if how else "")
    lines = [
        f"<B>{_text(report.model)}</B>",
        f"R = {_text(axes(report.resolution))}, r = {_text(axes(report.r))}"
        f" ({utilized}), max resolution {_text(axes(report.max_resolution))}",
        _text(counts),
        f'<FONT POINT-SIZE="9">{_text(detail)}</FONT>',
    ]
    return "<" + "<BR/>".join(lines) + ">"


def render_analysis(analysis: Analysis, depth: int | None = None, rankdir: str = "TB",
                    fold_neutral: bool = True) -> graphviz.Digraph:
    """A diagram of the analyzed graph with the statuses of its report.

    Nodes are coloured by status (see `COLORS`) and show the layer name, its module path when
    it differs, the op with kernel, stride and dilation, r_min and r_max per axis, and the
    traced feature-map shape when known. A legend and a title with the model, the resolution R,
    r and the numbers of findings are included.

    With ``depth``, one node per module at that depth of the module paths, coloured by its worst
    layer. With ``fold_neutral`` (the default), ops that only pass the receptive field on
    (norms, activations, views, dropout...) are drawn as part of the layer they follow, so the
    diagram shows computing layers, merges, inputs and heads; edges are kept through them.
    ``rankdir`` is ``"TB"`` (top to bottom) or ``"LR"`` (left to right).

    The result is a `graphviz.Digraph`: it displays itself in Jupyter; write it with
    `save_diagram`.
    """
    direction = str(rankdir).upper()
    if direction not in RANKDIRS:
        raise RFAError(f"rankdir must be TB or LR, not {rankdir!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise RFAError(f"depth must be a positive integer, not {depth!r}")
    report, graph = analysis.report, analysis.graph
    items = _items(report, depth)
    rep, edges = _fold_items(items, graph, fold_neutral)
    absorbed: dict[str, list[_Item]] = {}
    for key, item in items.items():
        if rep[key] != key:
            absorbed.setdefault(rep[key], []).append(item)
    shown = [key for key in items if rep[key] == key]

    diagram = graphviz.Digraph(name=_esc(report.model))
    diagram.attr(
        "graph", rankdir=direction, label=_title(report, len(shown), len(graph), depth,
                                                 fold_neutral and len(shown) < len(items)),
        labelloc="t", fontname=FONT, fontsize="14", nodesep="0.25", ranksep="0.35",
    )
    if len(shown) > LARGE or len(edges) > LARGE:
        # densely connected models (DenseNet) have many long edges, on which dot's default
        # search for the fewest crossings and the best placement can take minutes
        diagram.attr("graph", nslimit="2", nslimit1="2", mclimit="0.3")
    diagram.attr("node", shape="box", style="filled", fontname=FONT, fontsize="10",
                 margin="0.1,0.04", penwidth="0.8")
    diagram.attr("edge", arrowsize="0.6", penwidth="0.8")

    with diagram.subgraph(name="cluster_legend") as legend:
        legend.attr(label="<<B>legend</B>>", fontsize="10", style="rounded", color="#9e9e9e")
        with legend.subgraph() as row:  # one rank: a row (TB) or a column (LR)
            row.attr(rank="same")
            for status in LEGEND:
                row.node(f"legend_{status}", label=status, fillcolor=COLORS[status],
                         id=f"legend-{status}", tooltip=f"{status} layers", fontsize="9",
                         **{"class": f"legend {status}"})
            # invisible edges keep the order, worst first (left to right, or top down in LR)
            order = LEGEND if direction == "TB" else LEGEND[::-1]
            for upper, lower in zip(order, order[1:]):
                row.edge(f"legend_{upper}", f"legend_{lower}", style="invis")

    ids = {key: f"n{number}" for number, key in enumerate(shown)}
    for key in shown:
        diagram.node(ids[key], **_node_attrs(items[key], graph, absorbed.get(key, []), depth))
    for a, b in edges:
        diagram.edge(ids[a], ids[b])
    _draw_outputs(diagram, report, items, rep, ids)
    return diagram


def _draw_outputs(diagram: graphviz.Digraph, report: Report, items: dict[str, _Item],
                  rep: dict[str, str], ids: dict[str, str]) -> None:
    """With several outputs (pyramid levels, heads), one extra node per output below the node
    that makes it, naming it with its stride and receptive field."""

    fields = report.outputs() if report.locator is not None else []
    if not shows_outputs(fields):
        return
    owner = {name: key for key, item in items.items() for name in item.members}
    for number, out in enumerate(fields):
        lines = [f"<B>{_text(printable(out.label))}</B>", f"stride {geometry(out.stride) or '-'}",
                 f"r {axes(out.r_min)} .. {axes(out.r_max)}"]
        if out.anchor is not None:
            verdict = "covered" if out.covers else "not covered"
            lines.append(_text(f"largest anchor {axes(tuple(round(a) for a in out.anchor))}: {verdict}"))
        node = f"out{number}"
        diagram.node(node, label="<" + "<BR/>".join(lines) + ">", shape="note", fillcolor="#ffffff",
                     fontsize="9", id=f"output-{number}", **{"class": "output"})
        diagram.edge(ids[rep[owner[out.layer]]], node, style="dashed", arrowhead="none")


def diagram_format(path: str | Path) -> str | None:
    """The ``dot`` output format for a diagram file name (None: DOT source); an `RFAError`
    naming the suffixes for any other name."""
    suffix = Path(path).suffix.lower()
    if suffix not in DIAGRAM_FORMATS or str(path).endswith(("/", "\\")):
        raise RFAError(f"cannot write a diagram to {str(path)!r}: the file name must end in"
                       f" {', '.join(DIAGRAM_FORMATS)}")
    return DIAGRAM_FORMATS[suffix]


def save_diagram(diagram: graphviz.Digraph, path: str | Path) -> tuple[Path, str | None]:
    """Write ``diagram`` to ``path``: ``.svg``, ``.png`` and ``.pdf`` are drawn by graphviz's
    ``dot`` program, ``.dot`` is the source text.

    Returns the path written and None, or, when the ``dot`` program is missing, the path of the
    ``.dot`` source written beside ``path`` instead and a message saying how to install it.
    """
    path = Path(path)
    fmt = diagram_format(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt is None:
            path.write_text(diagram.source, encoding="utf-8")
            return path, None
        if shutil.which("dot") is not None:
            try:
                data = diagram.pipe(format=fmt, quiet=True)
            except graphviz.ExecutableNotFound:
                pass
            except graphviz.CalledProcessError as exc:
                detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
                raise RFAError(
                    f"graphviz's dot could not draw {path}: {detail[-1] if detail else 'it failed'}"
                ) from None
            else:
                path.write_bytes(data)
                return path, None
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(diagram.source, encoding="utf-8")
    except OSError as exc:
        raise RFAError(f"cannot write {path}: {reason(exc)}") from None
    message = (
        f"graphviz's dot program was not found, so {path} was not drawn; the diagram source is"
        f" in {dot_path}. To draw it, {INSTALL_HINT}, then run: dot -T{fmt} {dot_path} -o {path}"
    )
    return dot_path, message
