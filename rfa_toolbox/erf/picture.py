"""Pictures of effective receptive fields: per measured unit a panel (a row of them for several
layers), the contribution map as a heatmap with a colour bar (2-D), a curve (1-D) or per-axis
marginals (3-D), with the theoretical union box dashed and the smallest path's box solid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..boxes_picture import new_figure, picture_path, save_figure
from ..formats import axes, printable
from .measure import ERF, ERFMap


def draw_erf(erf: ERF, path: str | Path, log: bool = False) -> Path:
    """Draw every map of ``erf`` side by side to ``path`` (.png, .svg, .pdf, .jpg); ``log``
    shows the 2-D maps on a logarithmic colour scale (down to a millionth of the peak)."""
    target = picture_path(path)
    count, ndim = len(erf.maps), len(erf.resolution)
    height = 4.2 if ndim == 2 else 3.2
    figure = new_figure((4.4 * count + 0.6, height + 0.6))
    panels = figure.subplots(1, count, squeeze=False)[0]
    for ax, erf_map in zip(panels, erf.maps):
        if ndim == 2:
            _heatmap(figure, ax, erf_map, log)
        else:
            _curves(ax, erf_map)
        title = f"{printable(erf_map.source)}\nunit {axes(erf_map.unit)} of {axes(erf_map.units)}"
        ax.set_title(title.replace("$", r"\$"), fontsize=9)
    figure.suptitle(printable(f"effective receptive field of {erf.model} at {axes(erf.resolution)}: {erf.samples}"
                              f" samples of {erf.inputs}, {erf.weights}").replace("$", r"\$"), fontsize=9)
    return save_figure(figure, target)


def _heatmap(figure: Any, ax: Any, erf_map: ERFMap, log: bool) -> None:
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    heat = erf_map.heat / erf_map.heat.max()
    norm = LogNorm(vmin=1e-6, vmax=1.0) if log else None
    image = ax.imshow(np.maximum(heat, 1e-6) if log else heat, cmap="viridis", norm=norm,
                      interpolation="nearest", origin="upper")
    figure.colorbar(image, ax=ax, shrink=0.8, label="contribution (peak = 1)")
    for box, style, width in ((erf_map.union, "--", 1.2), (erf_map.smallest, "-", 1.8)):
        rows, columns = box
        if rows is not None and columns is not None:
            ax.add_patch(Rectangle((columns[0] - 0.5, rows[0] - 0.5), columns[1] - columns[0] + 1,
                                   rows[1] - rows[0] + 1, fill=False, color="white", ls=style, lw=width))
    n = erf_map.numbers
    ax.set_xlabel(f"std {axes(tuple(round(s, 1) for s in n.std))} px; 99% in r = {n.radius[0.99]}", fontsize=8)


def _curves(ax: Any, erf_map: ERFMap) -> None:
    heat = erf_map.heat
    for axis in range(heat.ndim):
        marginal = heat.sum(axis=tuple(a for a in range(heat.ndim) if a != axis))
        line = ax.plot(np.arange(marginal.size), marginal / marginal.max(),
                       label=f"axis {axis}" if heat.ndim > 1 else "contribution")[0]
        for box, style in ((erf_map.union, "--"), (erf_map.smallest, "-")):
            if box[axis] is not None:
                for end in box[axis]:  # type: ignore[union-attr]
                    ax.axvline(end, color=line.get_color(), ls=style, lw=0.8)
    ax.set_xlabel("input position (dashed: union box, solid: smallest path)", fontsize=8)
    ax.legend(fontsize=7)
