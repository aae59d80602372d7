"""Tensor layouts: for each dimension of a traced tensor, the spatial axes it carries.

A layout is a tuple with one entry per tensor dimension; the entry is the frozenset of spatial
axes (0, 1, 2 for H, W, D...) whose positions run along that dimension. A model input of shape
(batch, channels, H, W) has the layout ``(∅, ∅, {0}, {1})``; after ``x.flatten(2)`` the last
dimension carries ``{0, 1}``. Reshapes keep how a dimension was composed (`Dim`), so that a
dimension split into windows and merged back regains its axes. Nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Union

Axes = AbstractSet[int]  #: the spatial axes one tensor dimension carries
Layout = tuple[Axes, ...]
NONE: frozenset[int] = frozenset()


class Dim(frozenset[int]):
    """The spatial axes a tensor dim carries, with how it was composed: ``factors`` lists
    (axes, size) from outer to inner, so that splitting a merged dim (windows back into
    rows and columns) gives each part its own axis again."""

    factors: tuple[tuple[frozenset[int], int], ...]

    def __new__(cls, factors: Sequence[tuple[frozenset[int], int]]) -> Dim:
        dim = super().__new__(cls, frozenset[int]().union(*(axes for axes, _ in factors)))
        dim.factors = tuple(factors)
        return dim


def dim_index(d: int, rank: int) -> int:
    """A possibly negative dimension index as a non-negative one."""
    return d + rank if d < 0 else d


def axes_of(layout: Layout, dims: Sequence[int]) -> set[int]:
    """The spatial axes carried by the dims ``dims`` (negative indices allowed)."""
    out: set[int] = set()
    for d in dims:
        out |= layout[dim_index(d, len(layout))]
    return out


def _factors(layout: Layout, sizes: Sequence[int]) -> list[tuple[frozenset[int], int]]:
    out: list[tuple[frozenset[int], int]] = []
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
    out: list[Union[Dim, frozenset[int]]] = []
    for size in after:
        taken: list[tuple[frozenset[int], int]] = []
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
    out: list[Axes] = []
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
        axes = frozenset[int]().union(*(layout[k] for k in group_in if k < len(layout)))
        # a size-1 dim carries nothing; dims of a group share its axes
        out += [axes if k < len(after) and after[k] != 1 else NONE for k in group_out if k < len(after)]
    return tuple(out[: len(after)])


def spatial_sizes(layout: Layout, sizes: Sequence[int] | None) -> list[int] | None:
    """The sizes of the dims that carry spatial axes (None when the shapes do not fit)."""
    if sizes is None or len(sizes) != len(layout):
        return None
    return [s for s, axes in zip(sizes, layout) if axes]
