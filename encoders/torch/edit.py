"""Applying suggested edits to a PyTorch module: a modified copy, ready to train."""

from __future__ import annotations

import copy
from typing import Any

from rfa_toolbox.edits import EditKind, Suggestion
from rfa_toolbox.errors import RFAError
from rfa_toolbox.graph import Graph


class EditError(RFAError):
    """A suggestion that cannot be applied to the module automatically; the message says why."""


def _submodule(model: Any, path: str, node: str) -> Any:
    if not path:
        raise EditError(f"{node} is a functional call, not a module: edit it in the model's code")
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise EditError(f"the model has no module {path!r} (for {node})") from None


def _set_stride(module: Any, stride: list[int], node: str) -> None:
    if not hasattr(module, "stride"):
        raise EditError(f"{node}: {type(module).__name__} has no stride to set")
    module.stride = tuple(stride) if isinstance(module.stride, tuple) else stride[0]


def _smaller_conv(conv: Any, kernel: list[int], patch: bool = False) -> Any:
    """A conv like ``conv`` with a smaller kernel (new weights): padding that keeps the size,
    or for a patch (kernel = stride) the stride set to the kernel and the padding kept."""
    import torch.nn as nn

    if not isinstance(conv, nn.modules.conv._ConvNd) or conv.transposed:
        raise EditError(f"{type(conv).__name__} is not a convolution whose kernel rfa can change")
    cls = type(conv)
    padding = conv.padding if patch else tuple(d * (k - 1) // 2 for k, d in zip(kernel, conv.dilation))
    stride = tuple(kernel) if patch else conv.stride
    return cls(conv.in_channels, conv.out_channels, tuple(kernel), stride=stride, padding=padding,
               dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
               padding_mode=conv.padding_mode)


def _replace(model: Any, path: str, new: Any) -> None:
    parent_path, _, child = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, child, new)


def apply_edits(model: Any, suggestion: Suggestion, graph: Graph) -> Any:
    """A modified deep copy of ``model`` (the module ``graph`` was encoded from) with the edits
    of ``suggestion``: strides, patches and kernels set; removed modules replaced by ``nn.Identity``
    where their input and output shapes agree. Raises `EditError` when an edit cannot be
    applied automatically."""
    import torch.nn as nn

    edited = copy.deepcopy(model)
    for edit in suggestion.edits:
        if edit.kind is EditKind.STRIDE:
            for node in edit.layers:
                _set_stride(_submodule(edited, graph[node].module or "", node), edit.after[node], node)
        elif edit.kind in (EditKind.KERNEL, EditKind.PATCH):
            for node in edit.layers:
                path = graph[node].module or ""
                new = _smaller_conv(_submodule(edited, path, node), edit.after[node],
                                    patch=edit.kind is EditKind.PATCH)
                _replace(edited, path, new)
        elif edit.kind is EditKind.REMOVE:
            for path in edit.modules:
                first = next(n for n in edit.layers if (graph[n].module or "").startswith(path))
                last = [n for n in edit.layers if (graph[n].module or "").startswith(path)][-1]
                sources = graph.predecessors(first)
                shape_in = graph[sources[0]].shape if sources else None
                if shape_in is None or shape_in != graph[last].shape:
                    raise EditError(f"module {path!r} changes the shape ({shape_in} -> {graph[last].shape}):"
                                    " it cannot be replaced by an identity automatically")
                _submodule(edited, path, first)
                _replace(edited, path, nn.Identity())
    return edited
