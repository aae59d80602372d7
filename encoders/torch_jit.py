"""PyTorch encoder: trace a module with the JIT and turn the traced graph into a :class:`Graph`.

The traced graph is walked through its object API (``node.kind()``, ``inputs()``, ``outputs()``,
``scopeName()``, constant values), never through its printed text. Every tensor that depends on
a model input is followed with its *layout*: for each tensor dimension, the spatial axes it
carries. Convolutions and pools act on the axes of their spatial dimensions; views, permutes
and reshapes move axes between dimensions; ops that mix the positions of a spatial dimension
(reductions, softmax, matmul and linear over it, attention) make those axes global.

One handler per op kind lives in :data:`HANDLERS`; users add their own with
:func:`register_handler`.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Optional

from rfa_toolbox.errors import RFAError
from rfa_toolbox.graph import Graph, Layer, Transfer

Layout = tuple[frozenset, ...]  # per tensor dimension: the spatial axes it carries
NONE: frozenset = frozenset()


class TraceError(RFAError):
    """The model could not be traced or encoded; the message says why and what to try."""


@dataclass
class Tensor:
    """A traced tensor that depends on a model input: the node that made it and its layout."""

    node: str
    layout: Layout
    shape: tuple[int, ...]


@dataclass
class Op:
    """What a handler returns: how one traced op changes receptive fields.

    ``window`` maps a spatial axis to (kernel, stride, dilation) for window and transposed
    ops; ``factor`` maps an axis to an upsampling factor; ``global_axes`` lists the axes the op
    collapses. ``layout`` is the layout of the op's output (default: that of its first tensor
    input). Axes a window op does not name keep k = s = d = 1.
    """

    op: str
    transfer: Transfer = Transfer.NEUTRAL
    computes: bool = False
    window: dict[int, tuple[int, Any, int]] = field(default_factory=dict)
    factor: dict[int, Any] = field(default_factory=dict)
    mode: str = "nearest"
    global_axes: Sequence[int] = ()
    layout: Optional[Layout] = None
    in_channels: Optional[int] = None
    out_channels: Optional[int] = None
    groups: Optional[int] = None
    params: Optional[int] = None
    meta: dict = field(default_factory=dict)


class Lazy(Sequence):
    """A sequence whose items are computed on first access (traced constants and shapes cost
    a call into the JIT each; most handlers read few of them)."""

    def __init__(self, items: list, resolve: Callable[[Any], Any]):
        self._items = items
        self._resolve = resolve
        self._done: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self._items))[index]
        if index not in self._done:
            self._done[index] = self._resolve(self._items[index])
        return self._done[index]


@dataclass
class Call:
    """One traced op as a handler sees it: its kind, arguments and shapes.

    ``args`` holds, per input of the op, a `Tensor` (depends on a model input), a Python
    constant, a list of those, or ``None`` for a tensor that does not depend on an input (a
    parameter); ``sizes`` the traced shape of every input (``None`` when not a tensor);
    ``tensors`` the input tensors that depend on a model input, in order (lists flattened).
    """

    kind: str
    args: Sequence[Any]
    sizes: Sequence[Optional[tuple[int, ...]]]
    out_sizes: Sequence[Optional[tuple[int, ...]]]
    ndim: int
    module: str
    tensors: list[Tensor]

    @property
    def x(self) -> Tensor:
        """The first input tensor."""
        return self.tensors[0]

    def spatial_dims(self, count: int) -> list[frozenset]:
        """The axes carried by each of the last ``count`` dims of the first input."""
        return list(self.x.layout[-count:]) if count else []


Handler = Callable[[Call], Optional[Op]]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    """Decorator: register the function as the handler of the traced op kinds ``kinds``."""

    def register(fn: Handler) -> Handler:
        for kind in kinds:
            HANDLERS[kind if "::" in kind else f"aten::{kind}"] = fn
        return fn

    return register


def register_handler(kind: str, handler: Handler) -> None:
    """Register ``handler`` for the traced op ``kind`` (such as ``"my_ops::deform_conv"``).

    The handler receives a :class:`Call` and returns an :class:`Op`, or ``None`` to treat the
    op as neutral.
    """
    HANDLERS[kind] = handler


# -- helpers --------------------------------------------------------------------------------

def _ints(value: Any, count: int) -> list[int]:
    if value is None or value == []:
        return []
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    return values * count if len(values) == 1 else values


def _numel(sizes: Optional[tuple[int, ...]]) -> int:
    return math.prod(sizes) if sizes else 0


def _dim(d: int, rank: int) -> int:
    return d + rank if d < 0 else d


def _axes_of(layout: Layout, dims: Sequence[int]) -> set[int]:
    out: set[int] = set()
    for d in dims:
        out |= layout[_dim(d, len(layout))]
    return out


def _rank(kind: str) -> int:
    """The number of spatial dims an op kind names (``max_pool2d`` -> 2)."""
    return int(re.search(r"(\d)d", kind).group(1))


def _window(call: Call, kernel: list[int], stride: list[int], dilation: list[int], op: str,
            transposed: bool = False, **meta: Any) -> Op:
    """An op sliding a window over the last len(kernel) dims of its input.

    A dim that carries one axis gets the window; a dim that carries several (flattened
    positions) is mixed in an order that is not spatial, so its axes become global.
    """
    n = len(kernel)
    stride = stride or kernel
    dilation = dilation or [1] * n
    window, collapsed = {}, set()
    for axes, k, s, d in zip(call.spatial_dims(n), kernel, stride, dilation):
        if len(axes) == 1:
            window[next(iter(axes))] = (k, s, d)
        elif len(axes) > 1 and (k > 1 or s > 1):
            collapsed |= axes
    if collapsed:
        return Op(op, Transfer.GLOBAL, True, global_axes=sorted(collapsed), **meta)
    transfer = Transfer.TRANSPOSED if transposed else Transfer.WINDOW
    return Op(op, transfer, True, window=window, **meta)


# -- convolution and pooling ----------------------------------------------------------------

def _conv(call: Call, stride: Any, dilation: Any, groups: Any, transposed: bool) -> Op:
    weight = call.sizes[1]
    n = len(weight) - 2
    kernel = list(weight[2:])
    out_ch = weight[1] * groups if transposed else weight[0]
    in_ch = weight[0] if transposed else weight[1] * groups
    params = _numel(weight) + (_numel(call.sizes[2]) if call.sizes[2] else 0)
    op = "conv_transpose" if transposed else "conv"
    return _window(call, kernel, _ints(stride, n), _ints(dilation, n), op, transposed,
                   in_channels=in_ch, out_channels=out_ch, groups=groups, params=params)


@handles("_convolution", "convolution")
def _convolution(call: Call) -> Op:
    _, _, _, stride, _, dilation, transposed, _, groups = call.args[:9]
    return _conv(call, stride, dilation, groups, bool(transposed))


@handles("conv1d", "conv2d", "conv3d")
def _conv_nd(call: Call) -> Op:
    stride, dilation, groups = call.args[3], call.args[5], call.args[6]
    return _conv(call, stride, dilation, groups, False)


@handles("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
def _conv_transpose_nd(call: Call) -> Op:
    stride, groups, dilation = call.args[3], call.args[6], call.args[7]
    return _conv(call, stride, dilation, groups, True)


@handles("max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
         "max_pool2d_with_indices", "max_pool3d_with_indices")
def _max_pool(call: Call) -> Op:
    n = _rank(call.kind)
    kernel = _ints(call.args[1], n)
    return _window(call, kernel, _ints(call.args[2], n), _ints(call.args[4], n), "max_pool")


@handles("avg_pool1d", "avg_pool2d", "avg_pool3d")
def _avg_pool(call: Call) -> Op:
    n = _rank(call.kind)
    kernel = _ints(call.args[1], n)
    return _window(call, kernel, _ints(call.args[2], n), [], "avg_pool")


@handles("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
         "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
def _adaptive_pool(call: Call) -> Op:
    """Global on the axes pooled to 1; elsewhere the window that maps the traced sizes."""
    kind = "avg" if "avg" in call.kind else "max"
    n = _rank(call.kind)
    sizes_in = call.sizes[0][-n:]
    sizes_out = call.out_sizes[0][-n:]
    axes = call.spatial_dims(n)
    collapsed, window = [], {}
    for carried, size_in, size_out in zip(axes, sizes_in, sizes_out):
        if size_out == 1:  # pooled to one position: global whatever the traced input size
            collapsed += sorted(carried)
            continue
        if len(carried) != 1 or size_in == size_out:
            continue
        # PyTorch's windows: [floor(i*I/O), ceil((i+1)*I/O)); the widest one is the kernel
        kernel = max(-((-(i + 1) * size_in) // size_out) - (i * size_in) // size_out
                     for i in range(size_out))
        window[next(iter(carried))] = (kernel, Fraction(size_in, size_out), 1)
    if collapsed:  # (a window on the other axes, if any, is dropped: global dominates there)
        return Op(f"global_{kind}_pool", Transfer.GLOBAL, True, global_axes=collapsed)
    if not window:
        return Op(f"adaptive_{kind}_pool")
    return Op(f"adaptive_{kind}_pool", Transfer.WINDOW, True, window=window)


@handles("pixel_unshuffle")
def _pixel_unshuffle(call: Call) -> Op:
    r = call.args[1]
    return Op("pixel_unshuffle", Transfer.WINDOW, True,
              window={next(iter(a)): (r, r, 1) for a in call.spatial_dims(2) if len(a) == 1})


# -- resampling -----------------------------------------------------------------------------

_MODES = {"nearest": "nearest", "nearest_exact": "nearest", "linear": "linear",
          "bilinear": "bilinear", "trilinear": "trilinear", "bicubic": "bicubic"}


@handles("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
         "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
         "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d",
         "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa")
def _upsample(call: Call) -> Op:
    """The factor per axis is the ratio of the traced sizes (scale or size alike)."""
    name = re.sub(r"^_?upsample_|\d+d(_aa)?$", "", call.kind.split("::")[1])
    n = len(call.sizes[0]) - 2
    factor = {}
    for carried, size_in, size_out in zip(call.spatial_dims(n), call.sizes[0][-n:], call.out_sizes[0][-n:]):
        if len(carried) == 1 and size_in != size_out:
            factor[next(iter(carried))] = Fraction(size_out, size_in)
    if not factor:
        return Op("upsample")
    return Op("upsample", Transfer.UPSAMPLE, True, factor=factor, mode=_MODES.get(name, "linear"))


@handles("pixel_shuffle")
def _pixel_shuffle(call: Call) -> Op:
    r = call.args[1]
    return Op("pixel_shuffle", Transfer.UPSAMPLE, True,
              factor={next(iter(a)): r for a in call.spatial_dims(2) if len(a) == 1})


@handles("slice")
def _slice(call: Call) -> Op:
    """A step on a spatial dim subsamples it (a 1-wide window with that stride)."""
    dim, step = call.args[1], call.args[4]
    axes = call.x.layout[_dim(dim, len(call.x.layout))]
    if step is None or step == 1 or len(axes) != 1:
        return Op("slice")
    axis = next(iter(axes))
    return Op("slice", Transfer.WINDOW, True, window={axis: (1, step, 1)},
              meta={"offset": {axis: call.args[2] or 0}})


# -- ops that mix positions -------------------------------------------------------------------

def _reduced(call: Call, dims: Any, keepdim: bool, op: str) -> Op:
    layout = call.x.layout
    if dims is None or dims == []:
        dims = list(range(len(layout)))
    dims = [_dim(d, len(layout)) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    axes = _axes_of(layout, dims)
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
    if kind in ("max", "min") and isinstance(call.args[1], Tensor):
        return _merge(call)  # elementwise maximum of two tensors
    dims = call.args[1]
    if kind in ("norm", "linalg_vector_norm"):
        dims, keepdim = call.args[2], call.args[3] if len(call.args) > 3 else False
    else:
        keepdim = call.args[2] if len(call.args) > 2 and isinstance(call.args[2], bool) else False
    return _reduced(call, dims, bool(keepdim), f"reduce_{kind}")


@handles("softmax", "log_softmax", "_softmax", "cumsum", "cumprod", "sort", "argsort", "topk")
def _along_dim(call: Call) -> Op:
    """Ops along one dim: global on its axes when it carries any (attention maps)."""
    kind = call.kind.split("::")[1]
    dim = call.args[2] if kind == "topk" else call.args[1]
    axes = _axes_of(call.x.layout, [dim]) if isinstance(dim, int) else set()
    if not axes:
        return Op(kind)
    return Op(kind, Transfer.GLOBAL, True, global_axes=sorted(axes))


@handles("linear")
def _linear(call: Call) -> Op:
    """A dense layer on the last dim: pointwise, or global when that dim carries positions."""
    weight = call.sizes[1]
    params = _numel(weight) + (_numel(call.sizes[2]) if len(call.sizes) > 2 and call.sizes[2] else 0)
    meta = dict(in_channels=weight[-1] if weight else None, out_channels=weight[0] if weight else None,
                params=params or None)
    layout = call.x.layout
    axes = layout[-1]
    out = layout[:-1] + (NONE,)
    if isinstance(call.args[1], Tensor):  # both operands carry positions: a matmul
        return _matmul(call)
    if axes:
        return Op("dense", Transfer.GLOBAL, True, global_axes=sorted(axes), layout=out, **meta)
    return Op("dense", Transfer.NEUTRAL, True, layout=out, **meta)


def _mixing(op: str, contracted: set[int], layout: Layout) -> Op:
    if contracted:
        return Op(op, Transfer.GLOBAL, True, global_axes=sorted(contracted), layout=layout)
    return Op(op, Transfer.NEUTRAL, True, layout=layout)


def _operand_layout(call: Call, i: int) -> Layout:
    arg = call.args[i]
    if isinstance(arg, Tensor):
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
    """Letters summed over (absent from the output) make their axes global."""
    equation = call.args[0].replace(" ", "")
    inputs, _, output = equation.partition("->")
    letters: dict[str, set[int]] = {}
    operands = call.args[1]
    for spec, operand, sizes in zip(inputs.split(","), operands, call.sizes[1] or []):
        layout = operand.layout if isinstance(operand, Tensor) else ()
        for i, letter in enumerate(spec.replace("...", "")):
            if layout and i < len(layout):
                letters.setdefault(letter, set()).update(layout[i])
    contracted = set().union(*(axes for letter, axes in letters.items() if letter not in output))
    out = tuple(frozenset(letters.get(letter, ())) for letter in output)
    return _mixing("einsum", contracted, out)


# -- merges and plumbing ----------------------------------------------------------------------

def _merge(call: Call) -> Op:
    tensors = call.tensors
    if len(tensors) < 2:
        return Op(call.kind.split("::")[1].rstrip("_"))
    rank = len(call.out_sizes[0]) if call.out_sizes and call.out_sizes[0] is not None else 0
    layout = max((t.layout for t in tensors), key=len)
    if rank and len(layout) != rank:
        layout = (NONE,) * (rank - len(layout)) + layout
    return Op(call.kind.split("::")[1].rstrip("_"), Transfer.MERGE, layout=layout)


for _kind in ("add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "maximum",
              "minimum", "where", "addcmul", "addcdiv", "lerp", "pow", "floor_divide",
              "remainder", "fmod", "atan2", "masked_fill", "masked_fill_", "copy_", "expand_as",
              "type_as", "__and__", "__or__", "eq", "ne", "lt", "gt", "le", "ge", "mul_scalar"):
    HANDLERS[f"aten::{_kind}"] = _merge


@handles("cat", "concat", "concatenate")
def _cat(call: Call) -> Op:
    op = _merge(call)
    op.op = "concat"
    return op


@handles("stack")
def _stack(call: Call) -> Op:
    tensors = call.tensors
    dim = _dim(call.args[1], len(tensors[0].layout) + 1)
    layout = tensors[0].layout[:dim] + (NONE,) + tensors[0].layout[dim:]
    return Op("stack", Transfer.MERGE if len(tensors) > 1 else Transfer.NEUTRAL, layout=layout)


class Dim(frozenset):
    """The spatial axes a tensor dim carries, with how it was composed: ``factors`` lists
    (axes, size) from outer to inner, so that splitting a merged dim (windows back into
    rows and columns) gives each part its own axis again."""

    factors: tuple[tuple[frozenset, int], ...]

    def __new__(cls, factors: Sequence[tuple[frozenset, int]]):
        dim = super().__new__(cls, frozenset().union(*(axes for axes, _ in factors)))
        dim.factors = tuple(factors)
        return dim


def _factors(layout: Layout, sizes: Sequence[int]) -> list[tuple[frozenset, int]]:
    out: list[tuple[frozenset, int]] = []
    for dim, size in zip(layout, sizes):
        known = getattr(dim, "factors", None)
        if known is None or math.prod(n for _, n in known) != size:
            known = ((frozenset(dim), size),)
        out += [f for f in known if f[1] != 1]
    return out


def reshape_layout(layout: Layout, before: Sequence[int], after: Sequence[int]) -> Layout:
    """The layout after a reshape from ``before`` to ``after``.

    The input dims are cut into factors of known axes and regrouped into the output sizes, so
    a dim split and merged again keeps its axis. Where the sizes do not factor that way, dims
    are grouped where the products agree and share the group's axes.
    """
    queue = _factors(layout, before)
    out: list[frozenset] = []
    for size in after:
        taken: list[tuple[frozenset, int]] = []
        product = 1
        while product < size and queue:
            axes, n = queue.pop(0)
            need = size // product
            if need > 1 and n > need and n % need == 0:
                queue.insert(0, (axes, n // need))
                n = need
            taken.append((axes, n))
            product *= n
        if product != size:
            return _grouped_layout(layout, before, after)
        out.append(Dim(taken) if taken else NONE)
    return tuple(out)


def _grouped_layout(layout: Layout, before: Sequence[int], after: Sequence[int]) -> Layout:
    out: list[frozenset] = []
    i = j = 0
    while i < len(before) or j < len(after):
        group_in, group_out = [i], [j]
        p_in = before[i] if i < len(before) else 1
        p_out = after[j] if j < len(after) else 1
        i, j = i + 1, j + 1
        while p_in != p_out:
            if p_in < p_out and i < len(before):
                p_in *= before[i]
                group_in.append(i)
                i += 1
            elif j < len(after):
                p_out *= after[j]
                group_out.append(j)
                j += 1
            else:
                break
        axes = frozenset().union(*(layout[k] for k in group_in if k < len(layout)))
        # a size-1 dim carries nothing; dims of a group share its axes
        out += [axes if k < len(after) and after[k] != 1 else NONE for k in group_out if k < len(after)]
    return tuple(out[: len(after)])


@handles("view", "reshape", "flatten", "unflatten", "_unsafe_view", "view_as", "reshape_as",
         "squeeze", "squeeze_", "unsqueeze", "unsqueeze_", "expand", "repeat", "tile",
         "contiguous", "clone", "to", "detach", "type_as", "float", "half", "dropout",
         "feature_dropout", "alpha_dropout", "dropout_", "channel_shuffle", "native_channel_shuffle",
         "flip", "roll", "narrow")
def _view(call: Call) -> Op:
    """Views and copies: neutral; the layout follows the traced shapes."""
    kind = call.kind.split("::")[1]
    before, after = call.sizes[0], call.out_sizes[0]
    layout = call.x.layout
    if after is not None and before is not None and tuple(after) != tuple(before):
        if kind in ("expand", "repeat", "tile") and len(after) >= len(before):
            layout = (NONE,) * (len(after) - len(before)) + layout
        else:
            layout = reshape_layout(layout, before, after)
    short = {"channel_shuffle": "channel_shuffle", "native_channel_shuffle": "channel_shuffle"}
    return Op(short.get(kind, "view" if kind not in ("dropout", "feature_dropout", "alpha_dropout",
                                                    "dropout_") else "dropout"), layout=layout)


@handles("permute", "transpose", "transpose_", "t", "swapaxes", "movedim", "numpy_T")
def _permute(call: Call) -> Op:
    layout = list(call.x.layout)
    kind = call.kind.split("::")[1]
    if kind == "permute":
        order = [_dim(d, len(layout)) for d in call.args[1]]
        layout = [layout[d] for d in order]
    elif kind == "movedim":
        src, dst = call.args[1], call.args[2]
        src = [src] if isinstance(src, int) else list(src)
        dst = [dst] if isinstance(dst, int) else list(dst)
        moved = {_dim(d, len(layout)): layout[_dim(s, len(layout))] for s, d in zip(src, dst)}
        rest = [a for i, a in enumerate(layout) if i not in {_dim(s, len(layout)) for s in src}]
        layout = [moved[i] if i in moved else rest.pop(0) for i in range(len(layout))]
    else:
        a, b = (call.args[1], call.args[2]) if kind != "t" and len(call.args) > 2 else (0, 1)
        a, b = _dim(a, len(layout)), _dim(b, len(layout))
        layout[a], layout[b] = layout[b], layout[a]
    return Op("permute", layout=tuple(layout))


@handles("select", "index_select")
def _select(call: Call) -> Op:
    dim = _dim(call.args[1], len(call.x.layout))
    layout = call.x.layout
    if call.kind.endswith("::select"):
        layout = layout[:dim] + layout[dim + 1:]
    return Op("select", layout=layout)


@handles("chunk", "split", "split_with_sizes", "unbind", "tensor_split", "unsafe_split",
         "unsafe_chunk")
def _split(call: Call) -> Op:
    layout = call.x.layout
    if call.kind.endswith("unbind"):
        dim = _dim(call.args[1], len(layout))
        layout = layout[:dim] + layout[dim + 1:]
    return Op("split", layout=layout)


_NEUTRAL = (
    "relu relu_ relu6 hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ selu celu gelu gelu_ silu "
    "silu_ mish mish_ sigmoid sigmoid_ hardsigmoid hardsigmoid_ hardswish hardswish_ tanh tanh_ "
    "softplus softsign prelu rrelu glu logsigmoid threshold threshold_ clamp clamp_ clamp_min "
    "clamp_max clip neg exp exp_ log log_ log1p sqrt rsqrt square abs sign sin cos erf reciprocal "
    "floor ceil round trunc frac nan_to_num logical_not bitwise_not "
    "batch_norm instance_norm layer_norm group_norm native_batch_norm native_layer_norm "
    "local_response_norm normalize rms_norm "
    "constant_pad_nd pad reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d "
    "replication_pad2d replication_pad3d zero_pad2d circular_pad "
    "detach_"
).split()
_NORMS = {"batch_norm", "instance_norm", "layer_norm", "group_norm", "native_batch_norm",
          "native_layer_norm", "local_response_norm", "normalize", "rms_norm"}
_PADS = {k for k in _NEUTRAL if "pad" in k}


#: Positions of the learned affine parameters of the norms (running statistics are not counted).
_NORM_PARAMS = {"batch_norm": (1, 2), "instance_norm": (1, 2), "native_batch_norm": (1, 2),
                "layer_norm": (2, 3), "native_layer_norm": (2, 3), "group_norm": (2, 3),
                "rms_norm": (2,)}


def _neutral(call: Call) -> Op:
    kind = call.kind.split("::")[1]
    name = "norm" if kind in _NORMS else "pad" if kind in _PADS else kind.rstrip("_")
    rank = len(call.out_sizes[0]) if call.out_sizes and call.out_sizes[0] is not None else None
    layout = call.x.layout
    if rank is not None and rank != len(layout):
        layout = reshape_layout(layout, call.sizes[0], call.out_sizes[0])
    params = sum(_numel(call.sizes[i]) for i in _NORM_PARAMS.get(kind, ())
                 if i < len(call.sizes) and call.args[i] is None and call.sizes[i])
    return Op(name, layout=layout, params=params or None)


for _kind in _NEUTRAL:
    HANDLERS[f"aten::{_kind}"] = _neutral


# -- the walk -----------------------------------------------------------------------------------

#: Ops whose result depends on the input's shape only, not on its values: constants here.
_CREATION = {f"aten::{k}" for k in (
    "new_zeros new_ones new_full new_empty new_tensor zeros_like ones_like full_like empty_like "
    "rand_like randn_like randint_like fill_ zero_ bernoulli_".split())}

_PLUMBING = {"prim::Constant", "prim::GetAttr", "prim::ListConstruct", "prim::TupleConstruct",
             "prim::ListUnpack", "prim::TupleUnpack", "prim::DictConstruct", "prim::TupleIndex",
             "aten::__getitem__", "prim::NumToTensor", "aten::size", "aten::Int", "aten::Float",
             "aten::ScalarImplicit", "aten::dim", "prim::device", "prim::dtype", "aten::len"}


@dataclass
class EncodeOptions:
    """How strict the encoder is about ops it has no handler for."""

    strict: bool = False         #: every unknown op is an error
    allow_unknown: bool = False  #: unknown ops that change the spatial shape are neutral too


def _module_path(scope: str) -> str:
    """The module path of a scope such as ``features/features.conv0`` (the last part)."""
    return scope.rsplit("/", 1)[-1] if scope else ""


def _sizes(value: Any) -> Optional[tuple[int, ...]]:
    try:
        sizes = value.type().sizes()
    except (AttributeError, RuntimeError):
        return None
    return tuple(sizes) if sizes is not None and None not in sizes else None


class _Walker:
    def __init__(self, ndim: int, options: EncodeOptions, name: str):
        self.graph = Graph(ndim, name)
        self.ndim = ndim
        self.options = options
        self.values: dict[int, Any] = {}     # traced value -> Tensor, constant or list
        self.pending: list[tuple[str, str, Op, list[str], Optional[tuple[int, ...]]]] = []
        self.unknown: dict[str, str] = {}

    def value(self, v: Any) -> Any:
        key = v.unique()
        if key in self.values:
            return self.values[key]
        node = v.node()
        if node.kind() == "prim::Constant":
            try:
                const = v.toIValue()
            except RuntimeError:
                const = None
        elif node.kind() in ("prim::ListConstruct", "prim::TupleConstruct"):
            const = [self.value(item) for item in node.inputs()]
        else:
            return None
        self.values[key] = const
        return const

    def tracked(self, inputs: list) -> list[Tensor]:
        """The inputs that depend on a model input (lists of them flattened)."""
        found: list[Tensor] = []
        for v in inputs:
            item = self.values.get(v.unique())
            if isinstance(item, Tensor):
                found.append(item)
            elif isinstance(item, list):
                found += [t for t in item if isinstance(t, Tensor)]
        return found

    def add_input(self, v: Any, name: str) -> None:
        shape = _sizes(v)
        if shape is None or len(shape) != self.ndim + 2:
            return  # not a spatial input: treated like a constant
        layer = Layer(name=name, op="input", transfer=Transfer.INPUT, shape=tuple(shape[1:]))
        self.graph.add(layer)
        layout = (NONE, NONE) + tuple(frozenset([a]) for a in range(self.ndim))
        self.values[v.unique()] = Tensor(name, layout, tuple(shape))

    def walk(self, node: Any) -> None:
        kind = node.kind()
        if kind == "prim::Constant" or kind in _CREATION:
            return  # constants are read when a handler asks for them
        if kind in _PLUMBING:
            self.plumbing(node, kind)
            return
        inputs = list(node.inputs())
        tensors = self.tracked(inputs)
        if not tensors:
            return  # computes on parameters or constants only
        outputs = list(node.outputs())
        call = Call(kind, Lazy(inputs, self.value), Lazy(inputs, _sizes), Lazy(outputs, _sizes),
                    self.ndim, _module_path(node.scopeName()), tensors)
        op = self.handle(call, node)
        name = self.new_node(call, op, outputs)
        layout = op.layout if op.layout is not None else call.x.layout
        for v in outputs:
            shape = _sizes(v)
            self.values[v.unique()] = Tensor(name, layout, shape or ())

    def handle(self, call: Call, node: Any) -> Op:
        handler = HANDLERS.get(call.kind)
        if handler is not None:
            try:
                op = handler(call)
            except (TypeError, IndexError, ValueError, KeyError, AttributeError) as exc:
                raise TraceError(
                    f"cannot read the op {call.kind} in module {call.module or '(top level)'}:"
                    f" {type(exc).__name__}: {exc}"
                ) from None
            return op or Op(call.kind.split("::")[-1])
        return self.unknown_op(call)

    def unknown_op(self, call: Call) -> Op:
        where = call.module or "(top level)"
        keeps = bool(call.out_sizes) and call.out_sizes[0] is not None and _spatial_sizes(
            call.x.layout, call.sizes[0]) == _spatial_sizes(call.x.layout, call.out_sizes[0])
        if self.options.strict or (not keeps and not self.options.allow_unknown):
            change = "" if keeps else " and it changes the spatial shape"
            raise TraceError(
                f"no handler for the op {call.kind} in module {where}{change}; register one with"
                " rfa_toolbox.encoders.torch_jit.register_handler"
                + ("" if self.options.strict else ", or pass --allow-unknown to treat it as neutral")
            )
        self.unknown.setdefault(call.kind, where)
        return Op(call.kind)

    def new_node(self, call: Call, op: Op, outputs: list[Any]) -> str:
        sources = []
        for t in call.tensors:
            if t.node not in sources:
                sources.append(t.node)
        shape = _sizes(outputs[0]) if outputs else None
        self.pending.append((call.module, call.kind, op, sources, shape))
        return f"#{len(self.pending) - 1}"

    def plumbing(self, node: Any, kind: str) -> None:
        outputs = list(node.outputs())
        if kind in ("prim::ListConstruct", "prim::TupleConstruct"):
            items = list(node.inputs())
            if self.tracked(items):  # lists of constants are resolved when a handler reads them
                self.values[outputs[0].unique()] = [self.value(v) for v in items]
        elif kind == "prim::DictConstruct":
            items = [self.value(v) for v in node.inputs()]
            self.values[outputs[0].unique()] = items[1::2]
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            source = self.value(next(node.inputs()))
            for i, v in enumerate(outputs):
                if isinstance(source, list) and i < len(source):
                    self.values[v.unique()] = source[i]
                elif isinstance(source, Tensor):  # chunk/split results share the split node
                    self.values[v.unique()] = Tensor(source.node, source.layout, _sizes(v) or ())
        elif kind in ("prim::TupleIndex", "aten::__getitem__"):
            source, index = [self.value(v) for v in node.inputs()][:2]
            if isinstance(source, list) and isinstance(index, int) and -len(source) <= index < len(source):
                self.values[outputs[0].unique()] = source[index]
            elif isinstance(source, Tensor):
                self.values[outputs[0].unique()] = Tensor(source.node, source.layout, _sizes(outputs[0]) or ())

    def finish(self, output_values: list[Any]) -> Graph:
        names = _node_names(self.pending, reserved=set(self.graph.inputs))
        renamed: dict[str, str] = {f"#{i}": n for i, n in enumerate(names)}
        for i, (module, kind, op, sources, shape) in enumerate(self.pending):
            self.graph.add(_layer(names[i], module, op, self.ndim, shape),
                           [renamed.get(s, s) for s in sources])
        outputs: list[str] = []
        for value in output_values:
            for t in _flatten(value):
                name = renamed.get(t.node, t.node)
                if name not in outputs:
                    outputs.append(name)
        self.graph.outputs = outputs
        self.graph.unknown_ops = [f"{kind} ({where})" for kind, where in self.unknown.items()]
        return self.graph


def _spatial_sizes(layout: Layout, sizes: Optional[tuple[int, ...]]) -> Optional[list]:
    if sizes is None or len(sizes) != len(layout):
        return None
    return [s for s, axes in zip(sizes, layout) if axes]


def _flatten(value: Any) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _flatten(item)]
    return []


def _node_names(pending: list, reserved: set[str]) -> list[str]:
    """Names from module paths: the module itself when it made one op, else module.op[:n];
    ``reserved`` names (the inputs) are never reused."""
    per_module: dict[str, int] = {}
    for module, *_ in pending:
        per_module[module] = per_module.get(module, 0) + 1
    used: dict[str, int] = {name: 1 for name in reserved}
    names = []
    for module, _, op, _, _ in pending:
        if module and (per_module[module] == 1 or module.rsplit(".", 1)[-1] == op.op):
            base = module
        else:
            base = f"{module}.{op.op}" if module else op.op
        count = used.get(base, 0)
        used[base] = count + 1
        names.append(base if count == 0 else f"{base}:{count}")
    return names


def _layer(name: str, module: str, op: Op, ndim: int, shape: Optional[tuple[int, ...]]) -> Layer:
    fields: dict[str, Any] = {}
    if op.transfer in (Transfer.WINDOW, Transfer.TRANSPOSED):
        per = [op.window.get(a, (1, 1, 1)) for a in range(ndim)]
        fields.update(kernel=tuple(k for k, _, _ in per), stride=tuple(s for _, s, _ in per),
                      dilation=tuple(d for _, _, d in per))
    elif op.transfer is Transfer.UPSAMPLE:
        fields.update(factor=tuple(op.factor.get(a, 1) for a in range(ndim)), mode=op.mode)
    elif op.transfer is Transfer.GLOBAL:
        axes = tuple(sorted(set(op.global_axes)))
        fields["global_axes"] = () if len(axes) == ndim else axes
    return Layer(name=name, op=op.op, transfer=op.transfer, computes=op.computes,
                 module=module or None, shape=tuple(shape[1:]) if shape else None,
                 in_channels=op.in_channels, out_channels=op.out_channels, groups=op.groups,
                 params=op.params, meta=dict(op.meta), **fields)


def _slice_chain(graph: Graph, name: str) -> Optional[tuple[str, list[str]]]:
    """(source, strided slice nodes) when ``name`` is a chain of slices of one tensor."""
    chain = []
    while graph[name].op == "slice":  # strided ones, and full-range ones (x[..., ::2, :])
        if "offset" in graph[name].meta:
            chain.append(name)
        sources = graph.predecessors(name)
        if len(sources) != 1:
            return None
        name = sources[0]
    return (name, chain) if chain else None


def join_space_to_depth(graph: Graph) -> None:
    """Strided slices of one tensor at different offsets, concatenated (space-to-depth: Swin's
    patch merging, YOLO's Focus), together read a window as wide as their offsets span; each
    slice gets that window, so the concatenation has the receptive field of the whole block."""
    for name in list(graph.topological_order()):
        if graph[name].op != "concat":
            continue
        chains = [_slice_chain(graph, p) for p in graph.predecessors(name)]
        if len(chains) < 2 or None in chains or len({source for source, _ in chains}) != 1:
            continue
        offsets: dict[int, set] = {}
        for _, chain in chains:
            for node in chain:
                for axis, start in graph[node].meta["offset"].items():
                    offsets.setdefault(axis, set()).add(start)
        for _, chain in chains:
            for node in chain:
                layer = graph[node]
                kernel = list(layer.kernel)
                for axis in layer.meta["offset"]:
                    kernel[axis] = max(offsets[axis]) - min(offsets[axis]) + 1
                graph.replace(layer.with_changes(kernel=tuple(kernel), op="space_to_depth"))


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
def _branches_checked(inputs: tuple):
    """While tracing, turning a tensor that depends on the input values into a Python bool
    (``if x.mean() > 0``) raises: the trace would silently follow one branch. Branches on
    shapes are fine: the graph is for the traced resolution."""
    import torch

    original = torch.Tensor.__bool__

    def checked(tensor):
        if torch._C._get_tracing_state() is not None:
            if _reads_input_values(torch._C._get_value_trace(tensor), len(inputs)):
                caller = traceback.extract_stack(limit=2)[0]
                raise _DataDependentBranch(f"{Path(caller.filename).name}:{caller.lineno}")
        return original(tensor)

    torch.Tensor.__bool__ = checked
    try:
        yield
    finally:
        torch.Tensor.__bool__ = original


def trace(model: Any, inputs: tuple) -> Any:
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
    except Exception as exc:  # noqa: BLE001 - any failure of the user's model
        raise TraceError(_trace_failure(exc, inputs)) from None
    finally:
        torch.jit._trace._trace_module_map = previous


def _trace_failure(exc: Exception, inputs: tuple) -> str:
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


def _input_names(model: Any, count: int) -> list[str]:
    """The names of forward's parameters, or input0, input1, ... when they do not fit."""
    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count and len(set(params[:count])) == count:
        return params[:count]
    return ["input"] if count == 1 else [f"input{i}" for i in range(count)]


def encode(model: Any, inputs: Any, name: str = "model", strict: bool = False,
           allow_unknown: bool = False) -> Graph:
    """The graph of the PyTorch ``model`` traced on ``inputs`` (a tensor or a tuple of them)."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    torch_graph = trace(model, inputs)
    graph_inputs = list(torch_graph.inputs())[: len(inputs)]  # parameters follow
    shapes = [_sizes(v) for v in graph_inputs]
    spatial = [len(s) - 2 for s in shapes if s is not None and len(s) >= 3]
    if not spatial:
        raise TraceError("the model has no input with spatial axes (batch, channels, *spatial)")
    walker = _Walker(spatial[0], EncodeOptions(strict, allow_unknown), name)
    for v, label in zip(graph_inputs, _input_names(model, len(graph_inputs))):
        walker.add_input(v, label)
    for node in torch_graph.nodes():
        walker.walk(node)
    outputs = [walker.value(v) for v in torch_graph.outputs()]
    graph = walker.finish(outputs)
    if not graph.outputs:
        raise TraceError("no output of the model depends on its input")
    join_space_to_depth(graph)
    return graph
