"""The search controller: convert a model, step the search, save and apply structures."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from .ops import SearchConv, dilated_conv, is_searchable
from .rates import Rate, RFSearchWarning, make_config
from .structure import (
    StructureError,
    StructureLike,
    as_structure,
    dilation_for,
    key_matches,
    save_structure,
    structure_dict,
)

log = logging.getLogger("rfa_toolbox.rfsearch")

SEARCH = "search"
FIXED_SINGLE_BRANCH = "fixed_single_branch"
FIXED_MULTI_BRANCH = "fixed_multi_branch"
MODES = (SEARCH, FIXED_SINGLE_BRANCH, FIXED_MULTI_BRANCH)
MERGED = "merge"


def _distributed() -> bool:
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def _is_wrapper(model: nn.Module) -> bool:
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    return isinstance(model, wrappers)


def search_convs(model: nn.Module) -> list[tuple[str, SearchConv]]:
    """The searchable convs of ``model`` with their module names, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SearchConv)]


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _candidates(model: nn.Module, skip: list[str]) -> list[tuple[str, nn.Module]]:
    """The convs to convert: searchable, not inside a SearchConv, not named by ``skip``."""
    def walk(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
        for child_name, child in module._modules.items():  # (named_children skips repeats)
            if child is None:
                continue
            name = f"{prefix}.{child_name}" if prefix else child_name
            if isinstance(child, SearchConv):
                continue
            if is_searchable(child):
                if not any(s in "module." + name for s in skip):
                    yield name, child
                continue
            yield from walk(child, name)

    return list(walk(model, ""))


class RFSearch:
    """The dilation search of RF-Next on any PyTorch model, without mmcv.

    Build it on the model **before** creating the optimizer and before wrapping the model in
    DistributedDataParallel: it replaces, in place, every Conv1d/2d/3d with a kernel larger than
    1 on some axis (minus those whose name contains a ``skip_layer`` entry):

    * ``mode="search"``: by a `SearchConv` whose branches are expanded around the conv's
      dilation (or the one ``structure`` gives); call `step` after every epoch (or iteration);
    * ``mode="fixed_multi_branch"``: the same, but `step` never changes the branches;
    * ``mode="fixed_single_branch"``: by the plain conv with the dilation ``structure`` gives.

    ``config`` holds the settings (see `rfa_toolbox.rfsearch.rates.DEFAULTS`), flat or as
    mmcv's ``{"search": {...}}``; missing ones come from the structure file's ``search``
    entry (except ``step``), then the defaults. ``structure`` is a structure file path or dict.
    ``optimizer`` (or the one given to `step`) has the state of the alphas cleared whenever
    they are reset. With ``work_dir``, every search step writes ``local{step}.json`` there.

    Under torch.distributed, rank 0 decides every step and broadcasts the new dilations; all
    ranks apply them and only rank 0 writes files.
    """

    def __init__(self, model: nn.Module, config: Optional[Mapping[str, Any]] = None,
                 mode: str = SEARCH, structure: Optional[StructureLike] = None,
                 optimizer: Optional[torch.optim.Optimizer] = None,
                 work_dir: Union[str, Path, None] = None):
        if mode not in MODES:
            raise ValueError(f"unknown rfsearch mode {mode!r}; use one of {', '.join(MODES)}")
        if _is_wrapper(model):
            raise TypeError("convert the model before wrapping it in DataParallel or"
                            " DistributedDataParallel (RFSearch(model) first, then DDP(model))")
        loaded = as_structure(structure) if structure is not None else None
        base = {k: v for k, v in (loaded or {}).get("search", {}).items() if k != "step"}
        try:
            make_config(None, base=base)
        except ValueError as exc:  # a foreign file's settings: ignored, with a warning
            warnings.warn(f"rfsearch: the structure's search settings are ignored: {exc}",
                          RFSearchWarning, stacklevel=2)
            base = {}
        self._config = make_config(config, base=base)
        if mode == FIXED_SINGLE_BRANCH and loaded is None:
            raise ValueError("mode fixed_single_branch needs a structure (a file or dict)")
        self.model = model
        self.mode = mode
        self.optimizer = optimizer
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self._step = self._config["step"]
        self._fixed: dict[str, Rate] = {}
        self._convert(loaded)

    # -- conversion -------------------------------------------------------------------------------

    def _convert(self, loaded: Optional[dict[str, Any]]) -> None:
        mapping = loaded["structure"] if loaded else {}
        used: set[str] = set()
        wrapped: dict[int, nn.Module] = {}  # a conv shared by several parents is wrapped once
        candidates = _candidates(self.model, self._config["skip_layer"])
        if not candidates and self.mode != FIXED_SINGLE_BRANCH:
            warnings.warn("rfsearch: the model has no searchable conv (Conv1d/2d/3d child module"
                          " with a kernel larger than 1 that skip_layer does not name)",
                          RFSearchWarning, stacklevel=3)
        for name, conv in candidates:
            if id(conv) in wrapped:
                _replace(self.model, name, wrapped[id(conv)])
                continue
            ndim = len(conv.kernel_size)
            dilation = dilation_for(mapping, name, ndim) if mapping else None
            key = key_matches(mapping, name) if mapping else None
            if dilation is not None and key is not None:
                used.add(key)
            if self.mode == FIXED_SINGLE_BRANCH:
                if dilation is not None:
                    wrapped[id(conv)] = dilated_conv(conv, dilation)
                    _replace(self.model, name, wrapped[id(conv)])
                    self._fixed[name] = dilation
                continue
            searching = self.mode == SEARCH
            with warnings.catch_warnings():
                warnings.simplefilter("always", RFSearchWarning)
                module = SearchConv(conv, self._config, dilation=dilation, searching=searching,
                                    name=name)
            wrapped[id(conv)] = module
            _replace(self.model, name, module)
        unused = [key for key in mapping if key not in used]
        if mapping and not used:
            raise StructureError(
                f"none of the structure's {len(mapping)} layers is a searchable conv of the model"
                f" (structure keys such as {next(iter(mapping))!r}; model convs:"
                f" {', '.join(n for n, _ in _candidates(self.model, [])[:5]) or 'none left'})")
        if unused:
            warnings.warn(f"rfsearch: {len(unused)} structure entries match no searchable conv:"
                          f" {', '.join(unused[:10])}", RFSearchWarning, stacklevel=3)

    # -- state --------------------------------------------------------------------------------

    @property
    def convs(self) -> list[tuple[str, SearchConv]]:
        """The `SearchConv` modules of the model, with their names."""
        return search_convs(self.model)

    @property
    def step_count(self) -> int:
        """How many times `step` was called (restored from the model's state dict)."""
        convs = self.convs
        return convs[0][1].search_step if convs else self._step

    @property
    def config(self) -> dict[str, Any]:
        """The settings, with the current ``step``."""
        return {**self._config, "step": self.step_count}

    @property
    def structure(self) -> dict[str, list[int]]:
        """The current dilation (the last estimate) of every searched conv, by module name."""
        out = {name: list(d) for name, d in self._fixed.items()}
        out.update({name: list(m.dilation) for name, m in self.convs})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The structure in mmcv's format: ``{"search": settings, "structure": {"module.NAME":
        [d, ...]}}``."""
        return structure_dict(self.config, self.structure)

    def save(self, path: Union[str, Path]) -> Optional[Path]:
        """Write the structure file (JSON, mmcv's format). Only rank 0 writes; other ranks
        return None."""
        if _rank() != 0:
            return None
        return save_structure(path, self.to_dict())

    # -- the search -------------------------------------------------------------------------------

    def _set_step(self, value: int) -> None:
        self._step = value
        for _, module in self.convs:
            module.search_step = value

    def _decide(self, convs: list[tuple[str, SearchConv]]) -> list[Rate]:
        """The new dilation of every conv: estimated on rank 0, broadcast to the others."""
        estimates = [module.estimate() for _, module in convs]
        if not _distributed():
            return estimates
        dist = torch.distributed
        device = torch.device("cpu")
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        flat = torch.tensor([d for rate in estimates for d in rate] or [0], dtype=torch.int64,
                            device=device)
        dist.broadcast(flat, src=0)
        values = flat.tolist()
        out, i = [], 0
        for rate in estimates:
            out.append(tuple(values[i:i + len(rate)]))
            i += len(rate)
        return out

    def step(self, optimizer: Optional[torch.optim.Optimizer] = None) -> bool:
        """Count one epoch (or iteration). Every ``search_interval`` calls, while the count is
        below ``max_step``, every searching conv estimates its dilation from its branch
        weights and expands new branches around it (alphas reset, their optimizer state
        cleared). Returns True when the structure was updated. A no-op outside search mode."""
        if self.mode != SEARCH:
            return False
        count = self.step_count + 1
        self._set_step(count)
        cfg = self._config
        if count % cfg["search_interval"] or count >= cfg["max_step"]:
            return False
        convs = [(name, m) for name, m in self.convs if m.searching]
        for (name, module), rate in zip(convs, self._decide(convs)):
            if log.isEnabledFor(logging.INFO):
                with torch.no_grad():
                    weights = [round(w, 4) for w in module.weights().tolist()]
                log.info("rfsearch step %d: %s rates %s weights %s -> %s", count, name,
                         module.rates, weights, rate)
            module.set_dilation(rate)
            module.expand()
        self._clear_optimizer_state(optimizer or self.optimizer, convs)
        if self.work_dir is not None:
            self.save(self.work_dir / f"local{count}.json")
        return True

    @staticmethod
    def _clear_optimizer_state(optimizer: Optional[torch.optim.Optimizer],
                               convs: list[tuple[str, SearchConv]]) -> None:
        if optimizer is None:
            return
        for _, module in convs:
            optimizer.state.pop(module.alphas, None)

    # -- after the search ----------------------------------------------------------------------

    def freeze(self, mode: str = FIXED_SINGLE_BRANCH) -> nn.Module:
        """End the search: ``fixed_single_branch`` replaces every searchable conv by the plain
        conv with its searched dilation; ``fixed_multi_branch`` keeps the branches (and trains
        their alphas) but `step` no longer changes them. Returns the model."""
        if mode == FIXED_SINGLE_BRANCH:
            for name, module in self.convs:
                self._fixed[name] = module.dilation
                _replace(self.model, name, module.to_conv())
        elif mode == FIXED_MULTI_BRANCH:
            for _, module in self.convs:
                module.searching = False
        else:
            raise ValueError(f"freeze to {FIXED_SINGLE_BRANCH!r} or {FIXED_MULTI_BRANCH!r}, not {mode!r}")
        self.mode = mode
        return self.model

    def merge(self) -> nn.Module:
        """Fold every multi-branch conv into one dense conv that computes the same output
        (see `SearchConv.merged`). Returns the model."""
        for name, module in self.convs:
            self._fixed[name] = module.dilation
        merge(self.model)
        self.mode = MERGED
        return self.model

    def __repr__(self) -> str:
        return (f"RFSearch(mode={self.mode!r}, step={self.step_count}, convs={len(self.convs)},"
                f" config={json.dumps(self._config)})")


def merge(model: nn.Module) -> nn.Module:
    """Replace, in place, every `SearchConv` of ``model`` by its merged dense conv."""
    for name, module in search_convs(model):
        _replace(model, name, module.merged())
    return model


def apply_structure(model: nn.Module, structure: StructureLike, mode: str = FIXED_SINGLE_BRANCH,
                    config: Optional[Mapping[str, Any]] = None) -> nn.Module:
    """Apply a structure (file path or dict) to ``model`` in place and return it.

    ``fixed_single_branch`` (the default) sets the searched dilations on plain convs;
    ``fixed_multi_branch`` and ``search`` wrap them in `SearchConv` modules expanded around
    those dilations. Convs absent from the structure are left alone.
    """
    RFSearch(model, config=config, mode=mode, structure=structure)
    return model
