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


class _DataDependentBranch(Exception):
    pass


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
def _branches_checked(inputs: tuple[Any, ...]) -> Iterator[None]:
    """While tracing, turning a tensor that depends on the input values into a Python bool
    (``if x.mean() > 0``) raises: the trace would silently follow one branch. Branches on
    shapes are fine: the graph is for the traced resolution."""
    import torch

    original = torch.Tensor.__bool__

    def checked(tensor: Any) -> bool:
        if torch._C._get_tracing_state() is not None and _reads_input_values(
                torch._C._get_value_trace(tensor), len(inputs)):
            caller = traceback.extract_stack(limit=2)[0]
            raise _DataDependentBranch(f"{Path(caller.filename).name}:{caller.lineno}")
        return original(tensor)

    torch.Tensor.__bool__ = checked
    try:
        yield
    finally:
        torch.Tensor.__bool__ = original


def trace(model: Any, inputs: tuple[Any, ...]) -> Any:
    """The JIT trace graph of ``model`` on ``inputs``: eval mode, no grad, no trace check.

    The graph is taken from the tracer directly (``torch.jit._get_trace_graph``, as the ONNX
    exporter does) instead of building a ScriptModule per submodule, which costs more than the
    trace itself; module paths come from the tracer's module map as scope names. Parameters
    are graph inputs after the model's inputs.
    """
    import torch

    model.eval()
    previous = torch.jit._trace._trace_module_map
    torch.jit._trace._trace_module_map = {m: name for name, m in model.named_modules()}
    try:
        with torch.no_grad(), warnings.catch_warnings(), _branches_checked(inputs):
            warnings.simplefilter("ignore")
            graph, _ = torch.jit._get_trace_graph(model, inputs, strict=False)
        return graph
    except _DataDependentBranch as exc:
        raise TraceError(
            f"the model branches on tensor values ({exc}): data-dependent control flow is"
            " traced along one branch only, so the graph would be wrong; make forward's"
            " control flow depend on shapes or settings, not on tensor values"
        ) from None
    except Exception as exc:
        raise TraceError(_trace_failure(exc, inputs)) from None
    finally:
        torch.jit._trace._trace_module_map = previous


def _trace_failure(exc: Exception, inputs: tuple[Any, ...]) -> str:
    message = " ".join(str(exc).split())
    shapes = ", ".join("x".join(map(str, getattr(t, "shape", ()))) for t in inputs)
    first = message[:300]
    if any(word in message for word in ("too small", "Output size", "Kernel size can't be greater")):
        return f"the input {shapes} is too small for the model ({first}); try a larger --res"
    if "size mismatch" in message or "shape" in message or "channels" in message:
        return (f"the model cannot run on an input of shape {shapes} ({first}); check --res and"
                " --input-shape, or define example_inputs(resolution) in the model file")
    return (f"cannot trace the model on an input of shape {shapes}: {type(exc).__name__}: {first};"
            " models with data-dependent control flow need a traceable forward")


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
