"""Which part of a PyTorch model is traced: the whole model, a submodule named with ``--module``
(traced on the inputs the model gives it), or the dense part of a torchvision detector."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from rfa_toolbox.errors import shown
from rfa_toolbox.graph import Graph

from .ir import TraceError
from .models import ModelLoadError, first_line


@dataclass
class Part:
    """What to trace, on which inputs, and what the report should say about it."""

    module: Any
    inputs: tuple[Any, ...]
    name: str                     #: the model's display name
    notes: list[str] = field(default_factory=list)
    #: for a detector's dense part: names the levels of the traced graph, and their anchors
    finish: Optional[Callable[[Graph], None]] = None


#: The libraries whose detectors are traced up to their dense outputs.
ADAPTED = ("torchvision.models.detection", "ultralytics.")


class _Reached(BaseException):
    """Stops the parent's forward once the submodule's inputs are known."""


def part_to_trace(model: Any, name: str, inputs: tuple[Any, ...], path: Optional[str]) -> Part:
    """The part of ``model`` to trace on ``inputs`` (see the module docstring)."""
    if path is not None:
        sub = submodule(model, path)
        return Part(sub, submodule_inputs(model, sub, path, inputs), name)
    library = type(model).__module__
    if library.startswith(ADAPTED[0]):
        from . import detection

        found = detection.dense_part(model, name, inputs[0])
        if found is not None:
            dense, notes = found
            return Part(dense, inputs, name, notes, detection.levels_and_anchors(model, tuple(inputs[0].shape[-2:])))
    if library.startswith(ADAPTED[1]):
        from . import detection, yolo

        yolo_dense = yolo.dense_part(model)
        if yolo_dense is not None:
            def finish(graph: Graph) -> None:
                graph.anchors = yolo.largest_objects(yolo_dense.model[-1], detection.name_levels(graph))
            return Part(yolo_dense, inputs, name, finish=finish)
    return Part(model, inputs, name)


def submodule(model: Any, path: str) -> Any:
    """The submodule at ``path`` (``backbone``, ``backbone.body``); a close name is suggested."""
    names = [n for n, _ in model.named_modules() if n]
    if path not in names:
        close = difflib.get_close_matches(path, names, n=3)
        top = [n for n, _ in model.named_children()]
        hint = f"; did you mean {', '.join(close)}?" if close else \
            f"; its parts are {', '.join(top[:12])}" if top else "; it has no submodules"
        raise ModelLoadError(f"--module {shown(path)}: the model has no submodule of that name{hint}")
    return model.get_submodule(path)


def submodule_inputs(model: Any, sub: Any, path: str, inputs: tuple[Any, ...]) -> tuple[Any, ...]:
    """The tensors ``sub`` is called with when ``model`` runs on ``inputs`` (its first call;
    the rest of the forward is not run)."""
    import torch

    seen: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def reached(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen.append((args, kwargs))
        raise _Reached

    hook = sub.register_forward_pre_hook(reached, with_kwargs=True)
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    except _Reached:
        pass
    except Exception as exc:
        raise TraceError(f"the model failed before reaching --module {path}: {type(exc).__name__}:"
                         f" {first_line(exc)[:300]}") from None
    finally:
        hook.remove()
    if not seen:
        raise TraceError(f"--module {path}: the model's forward never calls that submodule")
    args, kwargs = seen[0]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if kwargs or len(tensors) != len(args) or not tensors:
        kinds = ", ".join(type(a).__name__ for a in args) + (", keywords" if kwargs else "")
        raise TraceError(f"--module {path} is called with {kinds}, not only tensors: name a"
                         " submodule whose forward takes tensors (a list or dict of feature maps,"
                         " as a pyramid or a head takes, cannot be traced on its own)")
    return tuple(tensors)


def hint_parts(model: Any) -> str:
    """How to analyze part of a model whose forward cannot be traced whole."""
    top = [n for n, _ in model.named_children()]
    return f"; analyze a part of it with --module NAME (its parts: {', '.join(top[:12])})" if top else ""
