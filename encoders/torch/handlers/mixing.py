"""Handlers of ops that mix the positions of a dimension: reductions, softmax and friends,
linear layers, matrix products, attention, einsum."""

from __future__ import annotations

from typing import Any

from rfa_toolbox.encoders.layout import NONE, Layout, axes_of, dim_index

from rfa_toolbox.graph import Transfer

from ..ir import Call, Op, Traced, handles
from .common import numel
from .plumbing import merge


def _reduced(call: Call, dims: Any, keepdim: bool, op: str) -> Op:
    layout = call.x.layout
    if dims is None or dims == []:
        dims = list(range(len(layout)))
    dims = [dim_index(d, len(layout)) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    axes = axes_of(layout, dims)
    out = layout if keepdim else tuple(a for i, a in enumerate(layout) if i not in dims)
    if keepdim:
        out = tuple(NONE if i in dims else a for i, a in enumerate(layout))
    if not axes:
        return Op(op, layout=out)
    return Op(op, Transfer.GLOBAL, True, global_axes=sorted(axes), layout=out)


@handles("mean", "sum", "amax", "amin", "std", "var", "logsumexp", "nansum", "nanmean", "prod",
         "norm", "linalg_vector_norm", "all", "any", "argmax", "argmin", "max", "min", "median")
def _reduction(call: Call) -> Op:
    kind = call.kind.split("::")[1]
    if len(call.args) == 1 or (len(call.args) == 2 and kind in ("mean", "sum")):
        return _reduced(call, None, False, f"reduce_{kind}")  # over everything
    if kind in ("max", "min") and isinstance(call.args[1], Traced):
        return merge(call)  # elementwise maximum of two tensors
    dims = call.args[1]
    if kind in ("norm", "linalg_vector_norm"):
        dims, keepdim = call.args[2], call.args[3] if len(call.args) > 3 else False
    else:
        keepdim = call.args[2] if len(call.args) > 2 and isinstance(call.args[2], bool) else False
    return _reduced(call, dims, bool(keepdim), f"reduce_{kind}")


@handles("softmax", "log_softmax", "_softmax", "cumsum", "cumprod", "sort", "argsort", "topk")
def _alongdim_index(call: Call) -> Op:
    """Ops along one dim: global on its axes when it carries any (attention maps)."""
    kind = call.kind.split("::")[1]
    dim = call.args[2] if kind == "topk" else call.args[1]
    axes = axes_of(call.x.layout, [dim]) if isinstance(dim, int) else set()
    if not axes:
        return Op(kind)
    return Op(kind, Transfer.GLOBAL, True, global_axes=sorted(axes))


@handles("linear")
def _linear(call: Call) -> Op:
    """A dense layer on the last dim: pointwise, or global when that dim carries positions."""
    weight = call.sizes[1]
    params = numel(weight) + (numel(call.sizes[2]) if len(call.sizes) > 2 and call.sizes[2] else 0)
    in_channels = weight[-1] if weight else None
    out_channels = weight[0] if weight else None
    layout = call.x.layout
    axes = layout[-1]
    if isinstance(call.args[1], Traced):  # both operands carry positions: a matmul
        return _matmul(call)
    transfer = Transfer.GLOBAL if axes else Transfer.NEUTRAL
    return Op("dense", transfer, True, global_axes=sorted(axes), layout=layout[:-1] + (NONE,),
              in_channels=in_channels, out_channels=out_channels, params=params or None)


def _mixing(op: str, contracted: set[int], layout: Layout) -> Op:
    if contracted:
        return Op(op, Transfer.GLOBAL, True, global_axes=sorted(contracted), layout=layout)
    return Op(op, Transfer.NEUTRAL, True, layout=layout)


def _operand_layout(call: Call, i: int) -> Layout:
    arg = call.args[i]
    if isinstance(arg, Traced):
        return arg.layout
    return (NONE,) * len(call.sizes[i] or ())


@handles("matmul", "bmm", "mm")
def _matmul(call: Call) -> Op:
    """a @ b contracts a's last dim with b's second to last: global on the axes they carry."""
    a, b = _operand_layout(call, 0), _operand_layout(call, 1)
    if len(b) == 1:
        return _mixing("matmul", set(a[-1]) | set(b[0]), a[:-1])
    contracted = set(a[-1]) | set(b[-2])
    batch = a[:-2] if len(a) >= len(b) else b[:-2]
    rows = a[-2] if len(a) >= 2 else NONE
    return _mixing("matmul", contracted, batch + (rows, b[-1]))


@handles("baddbmm", "addmm", "addbmm")
def _addmm(call: Call) -> Op:
    a, b = _operand_layout(call, 1), _operand_layout(call, 2)
    return _mixing("matmul", set(a[-1]) | set(b[-2]), a[:-1] + (b[-1],))


@handles("scaled_dot_product_attention", "_native_multi_head_attention",
         "multi_head_attention_forward")
def _attention(call: Call) -> Op:
    """Attention mixes the token dim (second to last) of the keys into every query."""
    q, k = _operand_layout(call, 0), _operand_layout(call, 1)
    return _mixing("attention", set(k[-2]) | set(q[-2]) | set(k[-1]), q)


@handles("einsum")
def _einsum(call: Call) -> Op:
    """Letters summed over (absent from the output) make their axes global; the output's dims
    carry the axes of their letters (``...`` stands for the same dims in and out)."""
    equation = call.args[0].replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    specs = inputs.split(",")
    letters: dict[str, set[int]] = {}
    ellipsis: list[set[int]] = []
    for spec, operand in zip(specs, call.args[1]):
        if not isinstance(operand, Traced):
            continue
        layout = operand.layout
        head, dots, tail = spec.partition("...")
        middle = len(layout) - len(head) - len(tail) if dots else 0
        dims = list(head) + ["..."] * middle + list(tail)
        for letter, axes in zip(dims, layout):
            if letter == "...":
                continue
            letters.setdefault(letter, set()).update(axes)
        if dots:
            for k, axes in enumerate(layout[len(head):len(head) + middle]):
                if k >= len(ellipsis):
                    ellipsis.append(set())
                ellipsis[k] |= axes
    if not arrow:  # implicit output: the letters used once, in alphabetical order
        output = ("..." if any("..." in s for s in specs) else "") + "".join(
            sorted(c for c in set("".join(specs).replace(".", "")) if "".join(specs).count(c) == 1))
    head, dots, tail = output.partition("...")
    out = [frozenset(letters.get(c, ())) for c in head] + [frozenset(a) for a in (ellipsis if dots else [])]
    out += [frozenset(letters.get(c, ())) for c in tail]
    contracted = set().union(*(axes for letter, axes in letters.items() if letter not in output))
    if not dots:
        contracted |= set().union(*ellipsis)
    return _mixing("einsum", contracted, tuple(out))
