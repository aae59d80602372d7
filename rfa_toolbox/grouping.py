"""Report rows grouped by module path at a chosen depth: a module is as bad as its worst layer."""

from __future__ import annotations

from collections import Counter

from .analysis import LayerResult, Report, Status, fold_axes


def module_key(row: LayerResult, depth: int) -> str:
    """The first ``depth`` components of the row's module path (its name when it has none)."""
    if not row.module:
        return row.name
    return ".".join(row.module.split(".")[:depth])


def group_rows(report: Report, depth: int) -> list[LayerResult]:
    """One row per module at ``depth`` (in order of first appearance): the smallest r_min, the
    largest r_max, the worst status of its layers, its most frequent computing op, and the jump
    and offset of its last layer (its output)."""
    groups: dict[str, list[LayerResult]] = {}
    for row in report.layers:
        groups.setdefault(module_key(row, depth), []).append(row)
    out = []
    for key, rows in groups.items():
        if len(rows) == 1:
            out.append(rows[0])
            continue
        finite = [r for r in rows if r.status is not Status.HEAD]
        worst = max((r.status for r in finite), key=lambda s: s.severity, default=Status.HEAD)
        ops = Counter(r.op for r in rows if r.computes) or Counter(r.op for r in rows)
        label = ", ".join(f"{op}×{n}" for op, n in ops.most_common(2))
        inputs = [r.input_r_min for r in rows if r.input_r_min is not None]
        out.append(LayerResult(
            name=key, module=key, op=label,
            kernel=None, stride=None, dilation=None,
            r_min=fold_axes([r.r_min for r in rows], min), r_max=fold_axes([r.r_max for r in rows], max),
            input_r_min=fold_axes(inputs, min) if inputs else None,
            status=worst if finite else Status.HEAD, shape=rows[-1].shape,
            computes=any(r.computes for r in rows), jump=rows[-1].jump, offset=rows[-1].offset,
        ))
    return out
