"""Measuring the effective receptive field of a PyTorch model (Luo et al., NeurIPS 2016): the
mean absolute input gradient of a unit, summed over channels, over many inputs, next to the
theoretical boxes of the same unit from the analysis. Imports torch when called."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..analysis import Report
from ..errors import RFAError, shown
from ..where import last_spatial_layer
from .inputs import IMAGENET_MEAN, IMAGENET_STD, image_batches, image_files, load_weights, noise_batches
from .numbers import ERFNumbers, Interval, erf_numbers

SCHEMA = "rfa-toolbox/erf/v1"


@dataclass
class ERFMap:
    """The ERF of one unit: its contribution map and numbers, and its theoretical boxes."""

    layer: str                     #: the analysis layer the unit belongs to
    source: str                    #: what was measured: ``module layer4`` or ``output P3``
    unit: tuple[int, ...]          #: the unit's index (the centre unit, n // 2 per axis)
    units: tuple[int, ...]         #: the layer's units per axis
    heat: np.ndarray               #: mean |input gradient|, summed over channels (spatial axes)
    union: list[Interval]          #: the union box of all its paths, cut to the input
    smallest: list[Interval]       #: the smallest path's box, cut to the input
    numbers: ERFNumbers

    def to_dict(self) -> dict[str, Any]:
        """Plain data (without the map itself, which pictures show)."""
        return {"layer": self.layer, "source": self.source, "unit": list(self.unit), "units": list(self.units),
                "union": [None if b is None else list(b) for b in self.union],
                "smallest": [None if b is None else list(b) for b in self.smallest], **self.numbers.to_dict()}


@dataclass
class ERF:
    """An ERF measurement: its settings and one map per layer or output asked for."""

    model: str
    resolution: tuple[int, ...]
    samples: int
    inputs: str   #: "Gaussian noise (seed 0)" or "N images from DIR"
    weights: str  #: the weights file, or that the network is randomly initialised
    dtype: str
    maps: list[ERFMap]

    def to_dict(self) -> dict[str, Any]:
        """Plain data following the ``rfa-toolbox/erf/v1`` schema."""
        return {"schema": SCHEMA, "model": self.model, "resolution": list(self.resolution),
                "samples": self.samples, "inputs": self.inputs, "weights": self.weights,
                "dtype": self.dtype, "maps": [m.to_dict() for m in self.maps]}


@dataclass
class _Target:
    layer: str
    source: str
    pick: Callable[[Any, dict[str, list[Any]]], Any]  #: (model output, hooked outputs) -> tensor


def effective_receptive_field(model: Any, resolution: Any = None, layers: Sequence[str] = (),
                              outputs: Sequence[str] = (), weights: Optional[str | Path] = None,
                              images: Optional[str | Path] = None, samples: int = 32, batch: int = 8,
                              mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                              float64: bool = False, seed: int = 0, input_shape: Any = None,
                              on_step: Optional[Callable[[str], None]] = None) -> ERF:
    """The ERF of the centre unit of ``layers`` (analysis layer names or module paths) and
    ``outputs`` (output names, as `Report.outputs` lists them) of a PyTorch ``model`` (a module,
    or a name as `analyze` takes it) at ``resolution``; by default the last layer with a finite
    receptive field.

    ``weights``: a state dict file (``.pt``/``.pth`` read with ``weights_only=True``, or
    ``.safetensors``); without it the network is randomly initialised. ``images``: a folder of
    images, resized to the resolution and normalized with ``mean`` and ``std`` (ImageNet's by
    default); without it, ``samples`` inputs of Gaussian noise (``seed``, which also seeds the
    random initialisation of a model built here from its name). Gradients run in
    batches of ``batch`` on the model's device, in float32 (``float64=True`` for float64).
    """
    import torch

    from ..api import analysis_of
    from ..encoders.torch import models

    step = on_step or (lambda text: None)
    for name, value in (("samples", samples), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RFAError(f"{name} must be a positive number, not {shown(value)}")
    if isinstance(model, (str, Path)):
        torch.manual_seed(seed)  # the random initialisation too, so that a run can be repeated
        named = models.load(str(model))
    else:
        named = models.TorchModel(model, type(model).__name__)
    module = named.module
    if not isinstance(module, torch.nn.Module):
        raise RFAError(f"{named.name}: the effective receptive field is measured on a PyTorch model")
    if weights is not None:
        step(f"loading {weights}")
        load_weights(module, weights)
    step(f"tracing {named.name}")
    analysis = analysis_of(module, resolution, input_shape=input_shape)
    report, graph = analysis.report, analysis.graph
    shape = tuple(graph[graph.inputs[0]].shape or ())
    if len(shape) != graph.ndim + 1:
        raise RFAError(f"{named.name}: the input's shape is unknown; give --input-shape")
    targets = _targets(module, report, layers, outputs)
    dtype = torch.float64 if float64 else torch.float32
    if images is not None:
        files = image_files(images)[:samples]
        if graph.ndim != 2:
            raise RFAError("--images feeds 2-D models; for 1-D and 3-D models leave it out (Gaussian noise)")
        batches = image_batches(files, shape, batch, mean, std, dtype)
        count, described = len(files), f"{len(files)} images from {images}"
    else:
        batches = noise_batches(samples, shape, batch, seed, dtype)
        count, described = samples, f"Gaussian noise (seed {seed})"
    heats = _measure(module, targets, batches, count, dtype, report, step)
    maps = []
    for target, heat in zip(targets, heats):
        units = tuple(int(n) for n in report.units(target.layer))  # type: ignore[arg-type]
        unit = tuple(n // 2 for n in units)
        boxes = report.box(target.layer, unit)
        union = [None if b is None else b["union_clipped"] for b in boxes]
        smallest = [None if b is None else b["smallest_clipped"] for b in boxes]
        centre = [float(c) if c is not None else (n - 1) / 2
                  for c, n in zip(report.centre(target.layer, unit), report.resolution)]
        if not heat.sum() > 0:
            raise RFAError(f"the input gradient of {target.source} is zero everywhere (dead units at"
                           " these weights and inputs); try other inputs or weights")
        maps.append(ERFMap(target.layer, target.source, unit, units, heat, union, smallest,
                           erf_numbers(heat, centre, union, smallest)))
    return ERF(named.name, report.resolution, count, described,
               str(weights) if weights is not None else "random initialisation (no weights given)",
               "float64" if float64 else "float32", maps)


def _targets(module: Any, report: Report, layers: Sequence[str], outputs: Sequence[str]) -> list[_Target]:
    """What to take the gradient of, for each layer and output asked for."""
    graph = report._locate().graph
    modules = dict(module.named_modules())
    targets = []
    for name in layers or ([] if outputs else [last_spatial_layer(report)]):
        path: Optional[str] = None
        if name in graph:
            layer = name
        elif name in modules and name:
            path = name
            inside = [n for n in graph.topological_order()
                      if (graph[n].module or "") == name or (graph[n].module or "").startswith(name + ".")]
            if not inside:
                raise RFAError(f"module {shown(name)} makes no layer of the analysis")
            layer = inside[-1]
        else:
            raise RFAError(f"the model has no layer or module {shown(name)}")
        if any(r is None for r in report.layer(layer).r_max):
            raise RFAError(f"{shown(name)} sees the whole input: its effective receptive field is not"
                           " a unit's; pick a layer before the global pooling")
        path = path or _module_of(module, report, layer)
        targets.append(_Target(layer, f"module {path}", _hooked(path)))
    fields = {f.label: f for f in report.outputs()}
    for label in outputs:
        if label not in fields:
            raise RFAError(f"the model has no output {shown(label)} (its outputs: {', '.join(fields)})")
        index = list(fields).index(label)
        targets.append(_Target(fields[label].layer, f"output {label}", _returned(index)))
    return targets


def _module_of(module: Any, report: Report, layer: str) -> str:
    """The innermost module, called once, whose output is ``layer``: its own module, or the
    first enclosing one that ends with it (``layer4.2`` for the last ReLU of a bottleneck that
    calls one ReLU module three times). Found by one forward pass with hooks."""
    import torch

    graph = report._locate().graph
    path = graph[layer].module
    candidates = []
    while path:
        inside = [n for n in graph.topological_order()
                  if (graph[n].module or "") == path or (graph[n].module or "").startswith(path + ".")]
        if inside and inside[-1] == layer:
            candidates.append(path)
        path = path.rpartition(".")[0]
    calls: dict[str, list[tuple[int, ...]]] = {}
    modules = dict(module.named_modules())
    handles = [modules[p].register_forward_hook(
        lambda m, a, out, p=p: calls.setdefault(p, []).append(tuple(getattr(out, "shape", ())[2:])))
        for p in candidates if p in modules]
    shape = graph[graph.inputs[0]].shape or ()
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *shape, dtype=next(module.parameters(), torch.zeros(())).dtype))
    finally:
        for handle in handles:
            handle.remove()
    for path in candidates:
        if calls.get(path) == [tuple(report.units(layer))]:
            return path
    raise RFAError(f"layer {shown(layer)} is not the output of a module called once; name a module path"
                   " (as model.named_modules() lists them) with --layer")


def _hooked(path: str) -> Callable[[Any, dict[str, list[Any]]], Any]:
    """The output of the module at ``path`` (recorded by a forward hook)."""
    return lambda out, hooked: hooked[path][0]


def _returned(index: int) -> Callable[[Any, dict[str, list[Any]]], Any]:
    """The ``index``-th tensor the model returns."""
    return lambda out, hooked: _flat(out)[index]


def _flat(value: Any) -> list[Any]:
    """The tensors of a forward's return value, in the order `Report.outputs` lists them."""
    if isinstance(value, dict):
        return [t for item in value.values() for t in _flat(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _flat(item)]
    return [value]


def _measure(module: Any, targets: list[_Target], batches: Any, count: int, dtype: Any, report: Report,
             step: Callable[[str], None]) -> list[np.ndarray]:
    """Per target, the mean over the samples of |d unit / d input|, summed over channels."""
    import torch

    paths = {t.source.split(" ", 1)[1] for t in targets if t.source.startswith("module ")}
    hooked: dict[str, list[Any]] = {}
    modules = dict(module.named_modules())
    handles = [modules[p].register_forward_hook(lambda m, a, out, p=p: hooked.setdefault(p, []).append(out))
               for p in paths]
    frozen = [p for p in module.parameters() if p.requires_grad]
    device = next(module.parameters(), torch.zeros(())).device
    module.to(dtype).eval()
    heats = [torch.zeros(report.resolution, dtype=torch.float64) for _ in targets]
    done = 0
    try:
        for p in frozen:  # only the input's gradient is needed
            p.requires_grad_(False)
        for x in batches:
            x = x.to(device).requires_grad_(True)
            hooked.clear()
            with torch.enable_grad():
                out = module(x)
                for i, target in enumerate(targets):
                    y = target.pick(out, hooked)
                    if [p for p in paths if len(hooked.get(p, ())) > 1]:
                        raise RFAError("a module asked for is called more than once in forward (shared);"
                                       " name the module that calls it")
                    unit = report.units(target.layer)
                    if tuple(y.shape[2:]) != tuple(unit):
                        raise RFAError(f"{target.source} gives {'x'.join(map(str, y.shape[2:]))} units, layer"
                                       f" {target.layer} has {'x'.join(map(str, unit))}: name the module whose"
                                       " output you mean")
                    centre = tuple(n // 2 for n in y.shape[2:])
                    (grad,) = torch.autograd.grad(y[(slice(None), slice(None), *centre)].sum(), x,
                                                  retain_graph=i < len(targets) - 1)
                    heats[i] += grad.detach().abs().sum(dim=(0, 1)).to("cpu", torch.float64)
            done += x.shape[0]
            step(f"gradients of {len(targets)} unit(s): {done}/{count} samples")
    finally:
        for handle in handles:
            handle.remove()
        for p in frozen:
            p.requires_grad_(True)
    return [(h / max(done, 1)).numpy() for h in heats]
