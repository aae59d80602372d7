"""Structure files: the searched dilation of every searchable conv, as JSON, without torch.

The format is OpenMMLab mmcv's rfsearch format::

    {"search": {"step": 0, "max_step": 11, ...},
     "structure": {"module.backbone.conv1": [1, 1], "module.backbone.conv2": [2, 3]}}

Values are per-axis lists (a bare int means every axis); keys are written with the
``module.`` prefix and read with or without it. A file holding only the ``structure``
mapping is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from rfa_toolbox.errors import RFAError, shown
from rfa_toolbox.files import decode, parse, read_bytes
from rfa_toolbox.formats import printable

PREFIX = "module."
MAX_DILATION = 4096  #: larger dilations are refused (mmcv's search stops far below)

StructureLike = Union[str, Path, Mapping[str, Any]]


class StructureError(RFAError):
    """A structure file cannot be read, or does not fit the model."""


def _dilation(name: str, value: Any) -> list[int]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or not items or any(
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DILATION for v in items):
        raise StructureError(f"the dilation of {shown(name)} must be an integer from 1 to {MAX_DILATION}"
                             f" or a list of them, got {shown(value)}")
    return list(items)


def normalize_structure(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"search": {...}, "structure": {name: [d, ...]}}`` from a full structure dict or a bare
    mapping of names to dilations; bare ints stay one-element lists (`dilation_for` spreads
    them over the axes)."""
    if not isinstance(data, Mapping):
        raise StructureError(f"a structure must be a JSON object, got {shown(data)}")
    if "structure" in data:
        search = data.get("search") or {}
        mapping = data["structure"]
        if not isinstance(search, Mapping):
            raise StructureError("the 'search' entry of a structure must be an object")
    else:
        search, mapping = {}, data
    if not isinstance(mapping, Mapping):
        raise StructureError("the 'structure' entry must map layer names to dilations")
    return {"search": dict(search),
            "structure": {str(name): _dilation(str(name), value) for name, value in mapping.items()}}


def load_structure(path: Union[str, Path]) -> dict[str, Any]:
    """Read a structure file (mmcv's rfsearch JSON) into
    ``{"search": {...}, "structure": {name: [d, ...]}}``."""
    path = Path(path)
    data = parse(decode(read_bytes(path, "a structure file", StructureError), path, StructureError),
                 path, yaml_too=False, error=StructureError)
    try:
        return normalize_structure(data)
    except StructureError as exc:
        raise StructureError(f"{path}: {exc}") from None


def as_structure(structure: StructureLike) -> dict[str, Any]:
    """A path or a dict, normalized (see `normalize_structure`)."""
    if isinstance(structure, (str, Path)):
        return load_structure(structure)
    return normalize_structure(structure)


def prefixed(name: str) -> str:
    """The key written for the module ``name`` (relative to the converted model)."""
    return PREFIX + name


def dilation_for(mapping: Mapping[str, list[int]], name: str, ndim: int) -> Optional[tuple[int, ...]]:
    """The dilation recorded for the module ``name``: looked up as ``module.NAME``, then as
    ``NAME``; a single value is spread over the ``ndim`` axes. None when absent."""
    for key in (prefixed(name), name):
        if key in mapping:
            value = list(mapping[key])
            if len(value) == 1:
                value = value * ndim
            if len(value) != ndim:
                raise StructureError(f"the structure gives {key!r} {len(value)} dilations, but the"
                                     f" conv has {ndim} spatial axes")
            return tuple(value)
    return None


def key_matches(mapping: Mapping[str, Any], name: str) -> Optional[str]:
    """The key of ``mapping`` used for the module ``name``, if any."""
    for key in (prefixed(name), name):
        if key in mapping:
            return key
    return None


def structure_dict(search: Mapping[str, Any], dilations: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-ready structure: ``search`` settings and the dilations keyed ``module.NAME``."""
    return {"search": dict(search),
            "structure": {prefixed(name): [int(d) for d in value] for name, value in dilations.items()}}


def save_structure(path: Union[str, Path], structure: Mapping[str, Any]) -> Path:
    """Write a structure dict (as made by `structure_dict` or `load_structure`) as JSON."""
    path = Path(path)
    data = normalize_structure(structure)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n")
    return path


def format_structure(structure: StructureLike) -> str:
    """The structure as text: the search settings, then one line per layer with its dilation
    per axis, then a count. Takes a structure dict, a bare name-to-dilation mapping or a path."""
    data = as_structure(structure)
    lines = []
    search = data["search"]
    if search:
        settings = ", ".join(f"{printable(str(key))} {json.dumps(value)}" for key, value in search.items())
        lines.append(f"search: {settings}")
    mapping = data["structure"]
    if not mapping:
        lines.append("(no layers)")
        return "\n".join(lines)
    names = {name: printable(name) for name in mapping}  # names are data: no forged lines
    width = max(len("layer"), *(len(name) for name in names.values()))
    lines.append(f"{'layer'.ljust(width)}  dilation")
    for name, value in mapping.items():
        text = str(value[0]) if len(value) == 1 else " x ".join(str(v) for v in value)
        lines.append(f"{names[name].ljust(width)}  {text}")
    dilated = sum(1 for value in mapping.values() if any(v > 1 for v in value))
    largest = max(max(value) for value in mapping.values())
    lines.append(f"{len(mapping)} layer{'s' if len(mapping) != 1 else ''}, {dilated} dilated,"
                 f" largest dilation {largest}")
    return "\n".join(lines)
