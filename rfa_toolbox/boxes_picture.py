"""Pictures of where units look: over the input (a photo, or a blank canvas), each unit's union
box dashed (every input pixel that can influence it, padding included), its smallest path's box
solid, and its centre as a cross; 1-D inputs as a strip. Drawn with matplotlib (the ``plot``
extra), imported only when a picture is asked for."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any, Optional

from .console import output_path
from .errors import RFAError, shown
from .files import read_bytes, reason
from .formats import axes, printable
from .graph import plain
from .where import Located, Unit

#: The picture formats, by file suffix.
PICTURE_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def picture_path(path: str | Path) -> Path:
    """``path`` checked to name a picture file this module writes."""
    checked = output_path(path)
    if checked.suffix.lower() not in PICTURE_SUFFIXES:
        raise RFAError(f"cannot draw a picture to {shown(str(path))}: give a file ending in"
                       f" {', '.join(PICTURE_SUFFIXES)}")
    return checked


def new_figure(size: tuple[float, float]) -> Any:
    """A matplotlib figure that needs no pyplot (no global state, no display)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RFAError("pictures need matplotlib: pip install 'rfa-toolbox[plot]'") from None
    return Figure(figsize=size, layout="constrained")


def load_image(path: str | Path, size: tuple[int, int]) -> Any:
    """The image at ``path`` as an RGB array resized to ``size`` (rows, columns)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    data = read_bytes(path, "an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                rgb = image.convert("RGB").resize((size[1], size[0]))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RFAError(f"{path} holds an image too large to open safely") from None
    except UnidentifiedImageError:
        raise RFAError(f"{path} is not an image (PNG, JPEG and the other formats Pillow reads)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        why = reason(exc) if isinstance(exc, OSError) and exc.errno else "it is damaged or truncated"
        raise RFAError(f"cannot read the image {path}: {why}") from None
    return np.asarray(rgb)


def _label(unit: Unit) -> str:
    """The legend text of a unit (names are data: printable, no mathtext, cut when long)."""
    name = printable(unit.layer)
    name = name if len(name) <= 48 else name[:47] + "…"
    sizes = [("all" if b is None else axes([plain(b["union"][1] - b["union"][0] + 1)])) for b in unit.boxes]
    smallest = [("all" if b is None else axes([plain(b["smallest"][1] - b["smallest"][0] + 1)]))
                for b in unit.boxes]
    text = f"{name} ({', '.join(map(str, unit.index))}): {'x'.join(sizes)}, smallest {'x'.join(smallest)}"
    return text.replace("$", r"\$")


def _span(box: Optional[dict[str, Any]], key: str, n: int) -> tuple[float, float]:
    """The edges of ``box[key]`` in drawing coordinates (pixel i covers i-0.5..i+0.5)."""
    interval = None if box is None else box[key]
    if interval is None:
        return -0.5, n - 0.5
    return float(interval[0]) - 0.5, float(interval[1]) + 0.5


def draw_located(located: Located, path: str | Path, image: Optional[str | Path] = None) -> Path:
    """Draw the units of ``located`` over the input (or ``image``, resized to the input) and
    save the picture to ``path`` (.png, .svg, .pdf, .jpg)."""
    target = picture_path(path)
    resolution = located.report.resolution
    if len(resolution) > 2:
        raise RFAError(f"pictures are drawn for 1-D and 2-D inputs; this model has {len(resolution)}"
                       " spatial axes (use --format json)")
    if image is not None and len(resolution) != 2:
        raise RFAError("an image can only be drawn under a 2-D input")
    if len(resolution) == 2:
        figure = _draw_2d(located, resolution, None if image is None else load_image(image, resolution))
    else:
        figure = _draw_1d(located, resolution[0])
    return save_figure(figure, target)


def save_figure(figure: Any, target: Path) -> Path:
    """Write ``figure`` to ``target`` (its folder made when missing); failures in words."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=150, bbox_inches="tight")
    except OSError as exc:
        raise RFAError(f"cannot write {target}: {reason(exc)}") from None
    return target


def _legend(figure: Any, handles: list[Any]) -> None:
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], color="black", ls="--", label="union of all paths"),
            Line2D([], [], color="black", ls="-", lw=2, label="smallest path"),
            Line2D([], [], color="black", ls="", marker="+", ms=10, label="centre")]
    figure.legend(handles=handles + keys, loc="outside right upper", fontsize=8, frameon=False)


def _title(located: Located) -> str:
    model = printable(located.report.model)
    model = model if len(model) <= 60 else model[:59] + "…"
    return f"{model} at {axes(located.report.resolution)}: where units look".replace("$", r"\$")


def _draw_2d(located: Located, resolution: tuple[int, ...], pixels: Any) -> Any:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    rows, cols = resolution
    figure = new_figure((9.0, 6.0))
    ax = figure.add_subplot()
    if pixels is not None:
        ax.imshow(pixels, interpolation="nearest")
    ax.add_patch(Rectangle((-0.5, -0.5), cols, rows, facecolor="none" if pixels is not None else "#eeeeee",
                           edgecolor="black", lw=1))
    ax.annotate(f"input {rows}x{cols}", (-0.5, -0.5), xytext=(2, 2), textcoords="offset points",
                fontsize=8, va="bottom")
    xs, ys, handles = [-0.5, cols - 0.5], [-0.5, rows - 0.5], []
    for number, unit in enumerate(located.units):
        colour = _COLOURS[number % len(_COLOURS)]
        for key, style in (("union", "--"), ("smallest", "-")):
            y0, y1 = _span(unit.boxes[0], key, rows)
            x0, x1 = _span(unit.boxes[1], key, cols)
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, ls=style,
                                   lw=1.5 if style == "--" else 2.2))
            xs += [x0, x1]
            ys += [y0, y1]
        centre = [float(c) if c is not None else (n - 1) / 2 for c, n in zip(unit.centre, resolution)]
        ax.plot(centre[1], centre[0], marker="+", ms=12, mew=2, color=colour)
        handles.append(Line2D([], [], color=colour, lw=2, label=_label(unit)))
    margin = 0.03 * max(rows, cols)
    ax.set_xlim(min(xs) - margin, max(xs) + margin)
    ax.set_ylim(max(ys) + margin, min(ys) - margin)  # rows grow downwards, as in the image
    ax.set_aspect("equal")
    ax.set_xlabel("input column (axis 1)")
    ax.set_ylabel("input row (axis 0)")
    ax.set_title(_title(located), fontsize=10)
    _legend(figure, handles)
    return figure


def _draw_1d(located: Located, n: int) -> Any:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    count = len(located.units)
    figure = new_figure((9.0, 1.6 + 0.45 * count))
    ax = figure.add_subplot()
    ax.add_patch(Rectangle((-0.5, -0.35), n, 0.7, facecolor="#eeeeee", edgecolor="black"))
    xs, handles = [-0.5, n - 0.5], []
    for number, unit in enumerate(located.units, 1):
        colour = _COLOURS[(number - 1) % len(_COLOURS)]
        u0, u1 = _span(unit.boxes[0], "union", n)
        s0, s1 = _span(unit.boxes[0], "smallest", n)
        ax.hlines(number, u0, u1, colors=colour, linestyles="--", lw=1.5)
        ax.hlines(number, s0, s1, colors=colour, lw=4)
        centre = unit.centre[0]
        ax.plot(float(centre) if centre is not None else (n - 1) / 2, number, marker="+", ms=12, mew=2,
                color=colour)
        xs += [u0, u1]
        handles.append(Line2D([], [], color=colour, lw=2, label=_label(unit)))
    margin = 0.03 * n
    ax.set_xlim(min(xs) - margin, max(xs) + margin)
    ax.set_ylim(count + 0.8, -0.8)
    ax.set_yticks([0], ["input"])
    ax.set_xlabel("input position")
    ax.set_title(_title(located), fontsize=10)
    _legend(figure, handles)
    return figure
