"""The example inputs a PyTorch model is traced on, and tracing a named model with them.

A model file's ``example_inputs(resolution)`` wins; else ``--input-shape``; else a random
tensor of the resolution whose channels and number of spatial axes are guessed from what the
model holds: the first convolution module, then the first weight with the rank of a
convolution (a functional conv with an ``nn.Parameter``), then 3 and 1 channels. A guess the
model cannot run on is replaced by the next one before rfa gives up.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from rfa_toolbox.errors import shown
from rfa_toolbox.graph import Graph
from rfa_toolbox.levels import level_of
from rfa_toolbox.resolution import parse_resolution

from .encoder import encode
from .ir import Handler, TraceError
from .models import ModelLoadError, TorchModel, first_line
from .parts import hint_parts, part_to_trace
from .trace import InputMismatchError


def input_candidates(module: Any) -> list[tuple[int, int]]:
    """(channels, spatial axes) guesses for the model's input, most likely first."""
    import torch.nn as nn

    found: list[tuple[int, int]] = []
    for layer in module.modules():
        if isinstance(layer, nn.modules.conv._ConvNd):
            found.append((layer.in_channels, len(layer.kernel_size)))
            break
    for param in module.parameters():
        if 3 <= param.dim() <= 5:  # (out, in, *kernel) of a conv in 1-D to 3-D
            found.append((int(param.shape[1]), param.dim() - 2))
            break
    ndim = found[0][1] if found else 2
    found += [(3, ndim), (1, ndim)]
    return list(dict.fromkeys(found))


def required_inputs(module: Any) -> list[str]:
    """The names of forward's positional parameters that have no default."""
    return required_inputs_of(module.forward)


def required_inputs_of(function: Any) -> list[str]:
    """The names of a function's positional parameters that have no default (a ``*args``
    counts as one)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return ["?"]  # a builtin: assume it takes what it is given
    found = [p.name for p in params if p.default is p.empty
             and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return found or [p.name for p in params if p.kind is p.VAR_POSITIONAL][:1]


def parse_shape(value: Any) -> tuple[int, ...]:
    """An input shape without batch, such as ``3x224x224`` or ``(1, 16000)``."""
    sizes = parse_resolution(value)
    if len(sizes) < 2:
        raise ModelLoadError(f"input shape {value!r} needs channels and at least one spatial size,"
                             " such as 3x224x224 or 1x16000")
    return sizes


def example_inputs(model: TorchModel, resolution: Any) -> tuple[Any, ...]:
    """The inputs from the model file's ``example_inputs(resolution)`` (an int for a single
    size, else the per-axis tuple)."""
    import torch

    assert model.example_inputs is not None
    if not callable(model.example_inputs) or len(required_inputs_of(model.example_inputs)) != 1:
        raise ModelLoadError(f"{model.name}: example_inputs must be a function of one argument, the"
                             " resolution (an int, or a tuple of sizes per axis)")
    res = parse_resolution(resolution) if resolution is not None else None
    try:
        inputs = model.example_inputs(res if res is None or len(res) > 1 else res[0])
    except SystemExit as exc:
        raise ModelLoadError(f"{model.name}: example_inputs called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise ModelLoadError(f"{model.name}: example_inputs({'x'.join(map(str, res or ()))}) failed:"
                             f" {type(exc).__name__}: {first_line(exc)}") from None
    found = inputs if isinstance(inputs, tuple) else tuple(inputs) if isinstance(inputs, list) else (inputs,)
    if not found or not all(isinstance(t, torch.Tensor) for t in found):
        raise ModelLoadError(f"{model.name}: example_inputs must return a tensor or a tuple of tensors,"
                             f" not {shown(inputs)}")
    return found


#: Inputs with more elements than this are refused before they are made (about 4 GB of floats:
#: a model's activations at such a size would not fit in memory anyway).
MAX_ELEMENTS = 2**30


def _random(shape: tuple[int, ...]) -> Any:
    """A random input of ``shape`` (without batch), refused when it would not fit in memory."""
    import math

    import torch

    if math.prod(shape) > MAX_ELEMENTS:
        raise ModelLoadError(f"an input of shape {'x'.join(map(str, shape))} has {math.prod(shape):,} elements,"
                             f" more than {MAX_ELEMENTS:,}: too large to trace here; analyze at a smaller"
                             " resolution (r and the max resolution do not depend on it)")
    return torch.rand(1, *shape)


def encode_model(model: TorchModel, resolution: Any = None, input_shape: Any = None,
                 strict: bool = False, allow_unknown: bool = False,
                 handlers: Mapping[str, Handler] | None = None, module: str | None = None) -> Graph:
    """The graph of a named model, traced on its example inputs (see the module docstring);
    ``module`` names a submodule to trace instead, on the inputs the model gives it.
    torchvision's detectors are traced up to their dense outputs (`detection.dense_part`)."""

    def traced(inputs: tuple[Any, ...]) -> Graph:
        part = part_to_trace(model.module, model.name, inputs, module)
        try:
            graph = encode(part.module, part.inputs, name=part.name, strict=strict,
                           allow_unknown=allow_unknown, handlers=handlers)
        except InputMismatchError:
            raise
        except TraceError as exc:
            if module is None and part.finish is None:
                exc.args = (f"{exc}{hint_parts(model.module)}",)
            raise
        graph.notes += part.notes
        if part.finish is not None:
            part.finish(graph)
        if model.anchors is not None:
            if any(len(a) not in (1, graph.ndim) for sizes in model.anchors.values() for a in sizes):
                raise ModelLoadError(f"{model.name}: every anchor needs one size, or one per axis ({graph.ndim})")
            graph.anchors = {level: [a * graph.ndim if len(a) == 1 else a for a in sizes]
                             for level, sizes in model.anchors.items()}
            levels = {level_of(graph, n, graph.output_labels.get(n, n)) for n in graph.output_nodes}
            unknown = [level for level in graph.anchors if level not in levels]
            if unknown:
                raise ModelLoadError(f"{model.name}: anchors name levels no output has ({', '.join(unknown)});"
                                     f" the outputs' levels: {', '.join(sorted(filter(None, levels))) or 'none'}"
                                     " (name outputs LEVEL or LEVEL/HEAD)")
        return graph

    if model.example_inputs is not None and input_shape is None:
        return traced(example_inputs(model, resolution))
    if input_shape is not None:
        return traced((_random(parse_shape(input_shape)),))
    if resolution is None:
        raise ModelLoadError("give the input resolution (--res) or the input shape (--input-shape)")
    needed = required_inputs(model.module)
    if len(needed) > 1:
        raise ModelLoadError(
            f"{model.name}: forward takes {len(needed)} inputs ({', '.join(needed)}) and rfa builds"
            " one; write a model file that defines the model and example_inputs(resolution)"
            " returning all of them (see examples/two_inputs.py)")
    tried, failure = [], None
    for channels, ndim in input_candidates(model.module):
        shape = (channels, *parse_resolution(resolution, ndim))
        try:
            return traced((_random(shape),))
        except InputMismatchError as exc:
            tried.append("x".join(map(str, shape)))
            failure = exc
    raise ModelLoadError(f"{model.name}: no guessed input fits (tried {', '.join(tried)}; the last"
                         f" error: {failure}); give the input shape with --input-shape, such as"
                         " 3x224x224")
