"""RF-Next dilation-rate search for any PyTorch network (Gao et al., TPAMI 2022), without mmcv.

``import rfa_toolbox.rfsearch`` imports no framework: the torch parts (`RFSearch`,
`SearchConv`, `apply_structure`, `merge`) are loaded on first use; the structure-file
helpers (`load_structure`, `save_structure`, `format_structure`) need no torch at all.

    from rfa_toolbox.rfsearch import RFSearch

    search = RFSearch(model, {"num_branches": 3})       # before the optimizer and DDP
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(epochs):
        train_one_epoch(model, optimizer)
        search.step(optimizer)
    search.save("searched.json")
"""

from __future__ import annotations

import importlib
from typing import Any

from .rates import DEFAULTS, RFSearchWarning, estimate_rate, expand_rate, make_config
from .structure import (
    StructureError,
    format_structure,
    load_structure,
    normalize_structure,
    save_structure,
)

_LAZY = {
    "RFSearch": "controller", "apply_structure": "controller", "merge": "controller",
    "search_convs": "controller", "MODES": "controller",
    "SearchConv": "ops", "PaddedConv": "ops", "is_searchable": "ops",
}

__all__ = [
    "DEFAULTS", "MODES", "PaddedConv", "RFSearch", "RFSearchWarning", "SearchConv", "StructureError",
    "apply_structure", "estimate_rate", "expand_rate", "format_structure", "is_searchable",
    "load_structure", "make_config", "merge", "normalize_structure", "save_structure", "search_convs",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
