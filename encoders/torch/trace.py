"""Tracing a PyTorch module with the JIT: the only module of the encoder that imports torch.

Tracing runs in eval mode without gradients and without the tracer's check (which re-runs the
model); a forward that turns a tensor computed from the input values into a Python bool is
refused, because the trace would silently follow one branch.
"""

from __future__ import annotations

import contextlib
import inspect
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .ir import TraceError


class InputMismatchError(TraceError):
    """The model cannot run on the example input (channels or shape); another guess may fit."""


class _ValueRead(Exception):
    """A Python value was read out of a tensor that depends on the input's values."""


#: Tensor methods that turn a tensor into a Python value, and how to name them in a message.
VALUE_READERS = {"__bool__": "a tensor used as a condition", "__int__": "int(tensor)",
                 "__float__": "float(tensor)", "__complex__": "complex(tensor)",
                 "__index__": "a tensor used as an index or count", "item": "tensor.item()",
                 "tolist": "tensor.tolist()", "numpy": "tensor.numpy()"}


def _reads_input_values(value: Any, count: int) -> bool:
    """Does the traced ``value`` depend on the values (not only the shapes) of the first
    ``count`` graph inputs (the model's inputs; parameters follow them)?"""
    seen: set[int] = set()  # value ids (the Python wrappers of nodes are transient)
    stack = [value]
    while stack:
        v = stack.pop()
        if v.unique() in seen:
            continue
        seen.add(v.unique())
        node = v.node()
        if node.kind() == "prim::Param":
            if v.offset() < count:
                return True
        elif node.kind() != "aten::size":
            stack.extend(node.inputs())
    return False


@contextlib.contextmanager
def _value_reads_checked(inputs: tuple[Any, ...]) -> Iterator[None]:
    """While tracing, reading a Python value out of a tensor that depends on the input values
    (``if x.mean() > 0``, ``x.max().item()``, ``int(t)``, ``float(t)``, ``t.tolist()``, a
    tensor as an index) raises: the trace would silently keep the value of this one input.
    Values computed from shapes are fine: the graph is for the traced resolution."""
    import torch

    originals = {name: getattr(torch.Tensor, name) for name in VALUE_READERS if hasattr(torch.Tensor, name)}

    def checked(name: str, original: Any) -> Any:
        def read(tensor: Any, *args: Any, **kwargs: Any) -> Any:
            if torch._C._get_tracing_state() is not None and _depends_on_values(tensor, len(inputs)):
                caller = traceback.extract_stack(limit=2)[0]
                raise _ValueRead(f"{VALUE_READERS[name]} at {Path(caller.filename).name}:{caller.lineno}")
            return original(tensor, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, checked(name, original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _depends_on_values(tensor: Any, count: int) -> bool:
    import torch

    try:
        value = torch._C._get_value_trace(tensor)
    except RuntimeError:  # not part of the trace: a constant or a parameter
        return False
    return _reads_input_values(value, count)


def trace(model: Any, inputs: tuple[Any, ...]) -> tuple[Any, list[str]]:
    """The JIT trace graph of ``model`` on ``inputs`` (eval mode, no grad, no trace check), and
    the names of its flattened outputs (see `output_labels`).

    The graph is taken from the tracer directly (``torch.jit._get_trace_graph``, as the ONNX
    exporter does) instead of building a ScriptModule per submodule, which costs more than the
    trace itself; module paths come from the tracer's module map as scope names. Parameters
    are graph inputs after the model's inputs.
    """
    import torch

    model.eval()
    previous = torch.jit._trace._trace_module_map
    torch.jit._trace._trace_module_map = {m: name for name, m in model.named_modules()}
    returned: list[Any] = []
    hook = model.register_forward_hook(lambda module, args, out: returned.append(out))
    try:
        with torch.no_grad(), warnings.catch_warnings(), _value_reads_checked(inputs):
            warnings.simplefilter("ignore")
            graph, _ = torch.jit._get_trace_graph(model, inputs, strict=False)
        return graph, output_labels(returned[-1]) if returned else []
    except _ValueRead as exc:
        raise TraceError(
            f"the model reads a Python value out of a tensor computed from the input's values"
            f" ({exc}): the trace would keep the branch or number of this one random input, so"
            " the graph would be wrong; make forward depend on shapes or settings, not on"
            " tensor values"
        ) from None
    except SystemExit as exc:
        raise TraceError(f"the model called sys.exit({exc.code!r}) while running forward; forward"
                         " must return its outputs") from None
    except Exception as exc:
        raise _trace_failure(exc, inputs) from None
    finally:
        hook.remove()
        torch.jit._trace._trace_module_map = previous


def output_labels(value: Any, prefix: str = "") -> list[str]:
    """Names of the tensors in a forward's return value, in the tracer's flattening order: dict
    keys and list/tuple indices joined by ``/`` (``P3/cls_logits``, ``0``), one per tensor."""
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return [prefix]  # empty for a single tensor (or an empty key): known by its layer
    return [label for key, item in items for label in output_labels(item, f"{prefix}/{key}" if prefix else key)]


def _trace_failure(exc: Exception, inputs: tuple[Any, ...]) -> TraceError:
    message = " ".join(str(exc).split())
    shapes = ", ".join("x".join(map(str, getattr(t, "shape", ()))) for t in inputs)
    first = message[:300]
    if any(word in message for word in ("too small", "Output size", "Kernel size can't be greater")):
        return TraceError(f"the input {shapes} is too small for the model ({first}); try a larger --res")
    if "of traced region" in message or "Only tensors" in message:
        return TraceError("forward returned something that is not a tensor (or a list, tuple or dict of"
                          " tensors, the dict's keys strings); return the model's outputs as tensors")
    if "size mismatch" in message or "shape" in message or "channels" in message:
        return InputMismatchError(
            f"the model cannot run on an input of shape {shapes} ({first}); check --res and"
            " --input-shape, or define example_inputs(resolution) in the model file")
    return TraceError(f"cannot trace the model on an input of shape {shapes}: {type(exc).__name__}:"
                      f" {first}; models with data-dependent control flow need a traceable forward")


def input_names(model: Any, count: int) -> list[str]:
    """The names of forward's parameters, or input0, input1, ... when they do not fit."""
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count and len(set(params[:count])) == count:
        return params[:count]
    return ["input"] if count == 1 else [f"input{i}" for i in range(count)]
