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
                "union_clipped": [None if b is None else list(b) for b in self.union],
                "smallest_clipped": [None if b is None else list(b) for b in self.smallest],
                **self.numbers.to_dict()}


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
    module: Optional[str] = None  #: the module whose output is hooked, if any


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

    from ..encoders.torch import models
    from ..encoders.torch.parts import ADAPTED
    from ..sources import names_torch_model

    step = on_step or (lambda text: None)
    for name, value in (("samples", samples), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RFAError(f"{name} must be a positive number, not {shown(value)}")
    if isinstance(model, (str, Path)) and not names_torch_model(model):
        raise RFAError(f"{shown(str(model))}: the effective receptive field is measured on a PyTorch model (a model"
                       " file, torchvision:NAME or timm:NAME), by gradients; this is not one")
    if isinstance(model, (str, Path)):
        torch.manual_seed(seed)  # the random initialisation too, so that a run can be repeated
        named = models.load(str(model))
    else:
        named = models.TorchModel(model, type(model).__name__)
    module = named.module
    if not isinstance(module, torch.nn.Module):
        raise RFAError(f"{named.name}: the effective receptive field is measured on a PyTorch model")
    if type(module).__module__.startswith(ADAPTED):
        raise RFAError(f"{named.name} is a detector: its forward resizes, decodes and filters, so its"
                       " gradient is not a unit's; measure its backbone (a model file with"
                       " `model = detector.backbone`)")
    layers = [layers] if isinstance(layers, str) else list(layers)
    outputs = [outputs] if isinstance(outputs, str) else list(outputs)
    was_training = module.training
    try:
        return _erf(named, module, resolution, layers, outputs, weights, images, samples, batch, mean, std,
                    float64, seed, input_shape, step)
    finally:
        module.train(was_training)  # tracing and measuring put it in eval mode


def _erf(named: Any, module: Any, resolution: Any, layers: list[str], outputs: list[str],
         weights: Optional[str | Path], images: Optional[str | Path], samples: int, batch: int,
         mean: Sequence[float], std: Sequence[float], float64: bool, seed: int, input_shape: Any,
         step: Callable[[str], None]) -> ERF:
    import torch

    from ..api import analysis_of

    if weights is not None:
        step(f"loading {weights}")
        load_weights(module, weights)
    step(f"tracing {named.name}")
    analysis = analysis_of(module, resolution, input_shape=input_shape)
    report, graph = analysis.report, analysis.graph
    if len(graph.inputs) > 1:
        raise RFAError(f"{named.name} takes {len(graph.inputs)} inputs; rfa erf feeds one input tensor")
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
        if not np.isfinite(heat).all():
            raise RFAError(f"the input gradient of {target.source} is not a number (NaN or infinite):"
                           " the weights or the inputs hold such values")
        if not heat.sum() > 0:
            raise RFAError(f"the input gradient of {target.source} is zero everywhere (dead units at"
                           " these weights and inputs); try other inputs or weights")
        numbers = erf_numbers(heat, None, union, smallest)
        maps.append(ERFMap(target.layer, target.source, unit, units, heat, union, smallest, numbers))
    return ERF(named.name, report.resolution, count, described,
               str(weights) if weights is not None else "random initialisation (no weights given)",
               "float64" if float64 else "float32", maps)


def _targets(module: Any, report: Report, layers: Sequence[str], outputs: Sequence[str]) -> list[_Target]:
    """What to take the gradient of, for each layer and output asked for; by default the last
    layer with a finite field that a module called once makes."""
    graph = report._locate().graph
    modules = dict(module.named_modules())
    calls = _module_calls(module, graph)
    last = _last_layers(graph)
    targets = []
    path: Optional[str]
    for name in layers:
        if name and name in modules:  # a module path wins over an op named after its module
            if name not in last:
                raise RFAError(f"module {shown(name)} makes no layer of the analysis")
            layer, path = last[name], name
        elif name in graph:
            layer, path = name, _module_of(report, name, calls, last)
        else:
            raise RFAError(f"the model has no layer or module {shown(name)}")
        _check_finite(report, layer, name)
        if path is None:
            raise RFAError(f"layer {shown(name)} is not the output of a module called once (an op of a"
                           " forward, or a shared module); name a module path (as model.named_modules()"
                           " lists them)")
        targets.append(_Target(layer, f"module {path}", _hooked(path), path))
    fields = report.outputs()
    for label in outputs:
        found = [f for f in fields if label == f.label or label in f.label.split(", ")]
        if not found:
            names = ", ".join(f.label for f in fields)
            raise RFAError(f"the model has no output {shown(label)} (its outputs: {names})")
        _check_finite(report, found[0].layer, label)
        parts = found[0].label.split(", ")
        targets.append(_Target(found[0].layer, f"output {label}", _returned(label if label in parts else parts[0])))
    if not layers and not outputs:
        for row in reversed(report.layers):
            if row.op != "input" and all(r is not None for r in row.r_max):
                path = _module_of(report, row.name, calls, last)
                if path is not None:
                    return [_Target(row.name, f"module {path}", _hooked(path), path)]
        raise RFAError("no layer with a finite receptive field is the output of a module called once;"
                       " name a module path with --layer")
    return targets


def _check_finite(report: Report, layer: str, name: str) -> None:
    if any(r is None for r in report.layer(layer).r_max):
        raise RFAError(f"{shown(name)} sees the whole input: its effective receptive field is not"
                       " a unit's; pick a layer before the global pooling")


def _module_calls(module: Any, graph: Any) -> dict[str, list[tuple[int, ...]]]:
    """The spatial output shape of every call of every module, from one forward pass on zeros."""
    import torch

    calls: dict[str, list[tuple[int, ...]]] = {}

    def record(path: str) -> Any:
        def hook(m: Any, args: Any, out: Any) -> None:
            calls.setdefault(path, []).append(tuple(out.shape[2:]) if isinstance(out, torch.Tensor) else ())
        return hook

    handles = [m.register_forward_hook(record(path)) for path, m in module.named_modules() if path]
    shape = graph[graph.inputs[0]].shape or ()
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *shape, dtype=next(module.parameters(), torch.zeros(())).dtype))
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _last_layers(graph: Any) -> dict[str, str]:
    """For every module path (and every enclosing path), the last layer it makes, in one pass."""
    last: dict[str, str] = {}
    for name in graph.topological_order():
        path = graph[name].module or ""
        while path:
            last[path] = name
            path = path.rpartition(".")[0]
    return last


def _module_of(report: Report, layer: str, calls: dict[str, list[tuple[int, ...]]],
               last: dict[str, str]) -> Optional[str]:
    """The innermost module, called once, whose output is ``layer``: its own module, or the
    first enclosing one that ends with it (``layer4.2`` for the last ReLU of a bottleneck that
    calls one ReLU module three times); None when there is none."""
    path = report._locate().graph[layer].module
    units = tuple(report.units(layer))
    while path:
        if last.get(path) == layer and calls.get(path) == [units]:
            return path
        path = path.rpartition(".")[0]
    return None


def _hooked(path: str) -> Callable[[Any, dict[str, list[Any]]], Any]:
    """The output of the module at ``path`` (recorded by a forward hook)."""
    return lambda out, hooked: hooked[path][0]


def _returned(label: str) -> Callable[[Any, dict[str, list[Any]]], Any]:
    """The tensor the model returns under ``label`` (a dict key or list index path)."""
    from ..encoders.torch.trace import output_labels

    def pick(out: Any, hooked: dict[str, list[Any]]) -> Any:
        labels, tensors = output_labels(out), _flat(out)
        if label in labels:
            return tensors[labels.index(label)]
        if len(tensors) == 1:  # a single output, known by its layer's name
            return tensors[0]
        raise RFAError(f"the model's forward returns no output named {shown(label)}")
    return pick


def _flat(value: Any) -> list[Any]:
    """The tensors of a forward's return value, in the order `output_labels` names them."""
    if isinstance(value, dict):
        return [t for item in value.values() for t in _flat(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _flat(item)]
    return [value]


def _measure(module: Any, targets: list[_Target], batches: Any, count: int, dtype: Any, report: Report,
             step: Callable[[str], None]) -> list[np.ndarray]:
    """Per target, the mean over the samples of |d unit / d input|, summed over channels."""
    import torch

    paths = {t.module for t in targets if t.module is not None}
    hooked: dict[str, list[Any]] = {}
    modules = dict(module.named_modules())
    handles = [modules[p].register_forward_hook(  # a copy: an in-place op after it must not change it
        lambda m, a, out, p=p: hooked.setdefault(p, []).append(out.clone() if isinstance(out, torch.Tensor) else out))
        for p in paths]
    frozen = [p for p in module.parameters() if p.requires_grad]
    first = next(module.parameters(), torch.zeros(()))
    device, was_dtype = first.device, first.dtype
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
                if any(len(hooked.get(p, ())) > 1 for p in paths):
                    raise RFAError("a module asked for is called more than once in forward (shared);"
                                   " name the module that calls it")
                for i, target in enumerate(targets):
                    y = target.pick(out, hooked)
                    unit = report.units(target.layer)
                    if not isinstance(y, torch.Tensor) or y.dim() < 3:
                        raise RFAError(f"{target.source} gives no feature map (a {type(y).__name__}"
                                       f"{' of rank ' + str(y.dim()) if isinstance(y, torch.Tensor) else ''});"
                                       " name a module whose output has spatial axes")
                    if tuple(y.shape[2:]) != tuple(unit):
                        raise RFAError(f"{target.source} gives {'x'.join(map(str, y.shape[2:]))} units, layer"
                                       f" {target.layer} has {'x'.join(map(str, unit))}: name the module whose"
                                       " output you mean")
                    centre: Any = (slice(None), slice(None), *(n // 2 for n in y.shape[2:]))
                    (grad,) = torch.autograd.grad(y[centre].sum(), x,
                                                  retain_graph=i < len(targets) - 1)
                    heats[i] += grad.detach().abs().sum(dim=(0, 1)).to("cpu", torch.float64)
            done += x.shape[0]
            step(f"gradients of {len(targets)} unit(s): {done}/{count} samples")
    except RuntimeError as exc:
        if "alloc" in str(exc) or "memory" in str(exc):
            raise RFAError(f"out of memory at batches of {x.shape[0]}: lower --batch") from None
        raise
    finally:
        for handle in handles:
            handle.remove()
        for p in frozen:
            p.requires_grad_(True)
        module.to(was_dtype)
    return [(h / max(done, 1)).numpy() for h in heats]
