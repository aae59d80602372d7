"""Tensor layouts of the PyTorch encoder (which dims carry which spatial axes), without torch.

`reshape_layout` is pure Python; these properties hold for any sizes hypothesis picks.
"""

from __future__ import annotations

import math
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from rfa_toolbox.encoders.layout import NONE, axes_of, reshape_layout


def _axes(layout):
    return [set(d) for d in layout]


def _image(ndim):
    """The layout of a model input (batch, channels, *spatial)."""
    return (NONE, NONE) + tuple(frozenset([a]) for a in range(ndim))


sizes = st.integers(min_value=2, max_value=7)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 3).flatmap(lambda n: st.tuples(st.just(n), st.lists(sizes, min_size=n, max_size=n))),
       st.integers(1, 4))
def test_identity_reshape_keeps_the_layout(case, channels):
    ndim, spatial = case
    shape = (1, channels, *spatial)
    assert _axes(reshape_layout(_image(ndim), shape, shape)) == _axes(_image(ndim))


@settings(max_examples=200, deadline=None)
@given(st.lists(sizes, min_size=2, max_size=3), st.integers(1, 4), st.data())
def test_flatten_then_unflatten_regains_every_axis(spatial, channels, data):
    ndim = len(spatial)
    shape = (1, channels, *spatial)
    start = data.draw(st.integers(1, len(shape) - 2), label="start")
    stop = data.draw(st.integers(start + 2, len(shape)), label="stop")
    flat = shape[:start] + (math.prod(shape[start:stop]),) + shape[stop:]
    merged = reshape_layout(_image(ndim), shape, flat)
    carried = set().union(*(_image(ndim)[start:stop]))
    assert set(merged[start]) == carried  # a merged dim carries the union of its parts
    assert _axes(reshape_layout(merged, flat, shape)) == _axes(_image(ndim))


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(sizes, min_size=1, max_size=3), st.integers(1, 4), st.data())
def test_no_axis_is_lost_or_invented(spatial, channels, data):
    """Any reshape to the same number of elements: the output carries exactly the input's
    axes (all spatial sizes are > 1, so every axis has positions to carry)."""
    ndim = len(spatial)
    shape = (1, channels, *spatial)
    left = math.prod(shape)
    target = []
    for _ in range(data.draw(st.integers(0, 3), label="cuts")):
        part = data.draw(st.sampled_from(_divisors(left)), label="part")
        target.append(part)
        left //= part
    target.append(left)
    out = reshape_layout(_image(ndim), shape, tuple(target))
    assert len(out) == len(target)
    assert set().union(*out) == set(range(ndim))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 4), st.integers(1, 3))
def test_windows_partitioned_and_merged_back_regain_their_axes(a, b, w, channels):
    """Swin's window partition: (1, H, W, C) -> (1, a, w, b, w, C) -> permute -> (a*b, w*w, C)
    and back; every window dim carries both axes, and the way back regains H and W."""
    h, width = a * w, b * w
    image = (NONE, frozenset([0]), frozenset([1]), NONE)  # channels last
    shape = (1, h, width, channels)
    split = (1, a, w, b, w, channels)
    layout = reshape_layout(image, shape, split)
    if a > 1 and b > 1:  # (a size-1 dim carries nothing)
        assert _axes(layout) == [set(), {0}, {0}, {1}, {1}, set()]
    order = (0, 1, 3, 2, 4, 5)
    permuted = tuple(layout[i] for i in order)
    windows = reshape_layout(permuted, tuple(split[i] for i in order), (a * b, w * w, channels))
    assert set(windows[1]) == {0, 1}
    back = reshape_layout(windows, (a * b, w * w, channels), (1, a, b, w, w, channels))
    unpermuted = tuple(back[i] for i in order)
    restored = reshape_layout(unpermuted, split, shape)
    assert _axes(restored) == [set(), {0}, {1}, set()]


def test_axes_of_negative_dims():
    layout = _image(2)
    assert axes_of(layout, [-1]) == {1} and axes_of(layout, [-2, -1]) == {0, 1}
    assert axes_of(layout, [1]) == set()


def test_the_layout_module_needs_no_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from rfa_toolbox.encoders.layout import reshape_layout, NONE\n"
            "print(reshape_layout((NONE, frozenset([0])), (1, 4), (1, 2, 2)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Dim" in done.stdout or "frozenset" in done.stdout
