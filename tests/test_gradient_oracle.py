"""Gradient oracle: the PyTorch encoder's r_max against the true input-gradient extent.

The oracle. Random 2-D CNNs are built from convs (k 1..5 odd or even, s 1..2, d 1..3, per
axis, so kernels are often not square), average pools, residual adds, concats, nearest
upsampling and transposed convs (max pooling is left out: its gradient reaches one position
only). All weights are positive (uniform 0.1..1), biases zero, the input positive, float64.
Then nothing can cancel and every ReLU passes its gradient, so the input gradient of one
output unit is non-zero exactly on that unit's receptive field: along each axis the union
over all paths of the positions the path reads. Its extent (last - first + 1 non-zero
position, after projecting |grad| onto the axis) is compared with the encoder's r_max of the
output node (``encode`` + ``propagate``). The input is sized so that the receptive fields of
the measured units stay clear of the borders, and `measure` asserts that they do.

What is asserted.

1. No upsampling, no strided transposed conv (stride-1 transposed convs are allowed), every
   layer inside a branch centred (d(k-1) even, padding d(k-1)/2; the trunk may use even
   kernels and any padding, which shifts all paths alike): extent == r_max exactly, on
   each axis (`test_extent_equals_r_max_without_resampling`). The rules of docs/concepts.md are
   exact for integer strides: on a path, unit i reads the input interval
   [J i + lo, J i + hi] with hi - lo + 1 = r; centred branches give every path of a merge
   the same centre, so the union is the largest path's interval.

2. Branches that are not centred (even kernels or off-centre padding inside an add or a
   concat): the path intervals of a merge are offset, the gradient extent is the hull of
   their union and can exceed r_max, which is the largest single path (the definition in
   docs/concepts.md). Asserted: r_max == the largest path, extent == the hull, r_max <= extent
   (`test_misaligned_branches_extent_is_the_union`; example: two 2-tap convs padded by 1
   added to a 3-tap conv without padding, r_max 3, extent 5).

3. With upsampling or strided transposed convs the receptive field depends on the unit's
   position, so the extent is measured for every phase (P consecutive output units, P the
   product of the factors) and the bound asserted per axis is

       |extent - r_max| <= sum over resampling layers l of beta_l * J_l

   with J_l the jump at the layer's input (the coarse level) and
   beta = 1 - 1/u for nearest upsampling by u, and beta = 2 (1 - 1/s) d for a transposed
   conv of stride s and dilation d (`resampling_bound`). For the common cases that is half a
   coarse jump per nearest x2 upsampling and one coarse jump per stride-2 transposed conv;
   on an axis without resampling the bound is 0 (exact).

   Derivation (one resampling layer on a chain; the errors of several layers add). A window
   of w consecutive fine units after nearest upsampling by u reads
   floor((a + w - 1)/u) - floor(a/u) + 1 coarse units, that is (w-1)/u + e with
   e in {-q/u, 1 - q/u} where q/u = frac((w-1)/u) (e = 0 when q = 0): the rule's r + (w-1)J/u
   is off by |e| J <= (1 - 1/u) J. A transposed conv k, s (d = 1) read by a window of w fine
   units reads the coarse units at the multiples of s in an integer interval of length
   L = w + k - 1; their count - 1 lies in [(L-1)/s - 2(s-1)/s, (L-1)/s], while the rule
   adds (w-1)/s + ceil(k/s) - 1 with ceil(k/s) - 1 in [(k-1)/s - (s-1)/s, (k-1)/s]: the
   error is in [-2(s-1)/s, (s-1)/s] coarse jumps. With
   dilation d (gcd(s, d) = 1) a single output unit only uses the taps t = t0 mod s, which
   shortens its reach by up to 2(s-1)d/s coarse units. For merges of centred branches the
   same bound held in every measurement (the floors shift a branch's interval by less
   than beta J, which is also what the union can gain).

   Measured (this module's strategies, 800 random architectures with one or two
   resampling layers, about 4,100 unit/axis measurements, r_max often a fraction):
   max |extent - r_max| / bound = 1.0, attained on both sides, never above.
   Examples at the bound: nearest x2 then a 2x2 stride-1 pool, extents 1 and 2 against
   r_max 3/2 (+-1/2 J); a stride-2 transposed conv k3 after a stride-2 conv, extents 3 and 5
   against r_max 5 (-1 J = -2, the estimate is too large there); a U-Net level concatenated
   with the identity, extents 13 and 14 against 13 (+1 = 1/2 J, J = 2); a dilated (d = 3)
   stride-2 transposed conv k3, extents 1 and 4 against 4 (-3 J). So the concepts page's "the exact
   extent can exceed it by about one jump of the coarser level" holds in size (at most half
   a coarse jump above the estimate per nearest x2, one per stride-2 transposed conv), but
   the extent can also fall short of it: the transposed-conv rule counts ceil(k/s) input
   units, the most a unit reads, while half the units read fewer.

Excluded, because there is nothing to compare: transposed convs with k < s or
gcd(s, d) > 1 leave output units that read no input at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from rfa_toolbox.encoders.torch import encode  # noqa: E402

from rfa_toolbox import propagate  # noqa: E402

AXES = 2          # the random networks are 2-D; the two axes get independent parameters
MAX_SIDE = 480    # largest input side the property tests accept (keeps every example fast)


# ---------------------------------------------------------------------------------------------
# architecture descriptions
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conv:
    """A (transposed) convolution, per axis (H, W): kernel, stride, dilation, padding."""

    k: tuple[int, int]
    s: tuple[int, int]
    d: tuple[int, int]
    p: tuple[int, int]
    relu: bool = False
    transposed: bool = False
    out_pad: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Pool:
    """An average pool (the gradient of a max pool reaches one position only)."""

    k: tuple[int, int]
    s: tuple[int, int]
    p: tuple[int, int]


@dataclass(frozen=True)
class Up:
    """Nearest upsampling by an integer factor per axis."""

    f: tuple[int, int]


@dataclass(frozen=True)
class Merge:
    """Two branches on the same input, added or concatenated (cropped to the smaller size)."""

    kind: str  # "add" or "cat"
    a: tuple
    b: tuple


def k_eff(k: int, d: int = 1) -> int:
    """The span of a dilated kernel."""
    return d * (k - 1) + 1


def resampling(arch) -> list:
    """The upsampling layers and transposed convs with a stride above 1, in any branch."""
    found = []
    for block in arch:
        if isinstance(block, Merge):
            found += resampling(block.a) + resampling(block.b)
        elif (isinstance(block, Up) and max(block.f) > 1
              or isinstance(block, Conv) and block.transposed and max(block.s) > 1):
            found.append(block)
    return found


# ---------------------------------------------------------------------------------------------
# the torch model
# ---------------------------------------------------------------------------------------------
class Net(nn.Module):
    """A module that runs an architecture description; positive weights, zero biases, float64.

    Every conv outputs ``channels`` channels; a concat is followed by a 1x1 conv back to that
    width, so that both branches of every add have the same width.
    """

    def __init__(self, arch, channels: int, seed: int = 0):
        super().__init__()
        self.arch = tuple(arch)
        self.width = channels
        self.crops: list[tuple[int, int]] = []
        self.layers = nn.ModuleList()
        self.generator = torch.Generator().manual_seed(seed)
        self._build(self.arch, channels)
        self.double().eval()

    def _conv(self, block: Conv, c_in: int) -> nn.Module:
        cls = nn.ConvTranspose2d if block.transposed else nn.Conv2d
        extra = {"output_padding": block.out_pad} if block.transposed else {}
        conv = cls(c_in, self.width, block.k, stride=block.s, padding=block.p,
                   dilation=block.d, **extra)
        with torch.no_grad():
            conv.weight.copy_(torch.rand(conv.weight.shape, generator=self.generator) * 0.9 + 0.1)
            conv.bias.zero_()
        return conv

    def _build(self, arch, c: int) -> int:
        for block in arch:
            if isinstance(block, Conv):
                self.layers.append(self._conv(block, c))
                c = self.width
            elif isinstance(block, Pool):
                self.layers.append(nn.AvgPool2d(block.k, block.s, block.p))
            elif isinstance(block, Up):
                self.layers.append(nn.Upsample(scale_factor=block.f, mode="nearest"))
            else:
                ca = self._build(block.a, c)
                cb = self._build(block.b, c)
                if block.kind == "cat":
                    self.layers.append(self._conv(POINTWISE, ca + cb))
                    c = self.width
                else:
                    assert ca == cb, "the branches of an add need as many channels"
                    c = ca
        return c

    def fit(self, sides) -> Net:
        """Record the crop of every merge for inputs of spatial size ``sides``.

        The crops are computed from the sizes up front, so that the forward compares no
        sizes: the traced graph then has no shape-dependent control flow at all.
        """
        self.crops = []
        self._sizes(self.arch, tuple(sides))
        return self

    def _sizes(self, arch, n: tuple) -> tuple:
        for block in arch:
            if isinstance(block, Merge):
                a, b = self._sizes(block.a, n), self._sizes(block.b, n)
                self.crops.append((min(a[0], b[0]), min(a[1], b[1])))
                n = self.crops[-1]
                continue
            size = []
            for axis in range(AXES):
                if isinstance(block, Up):
                    size.append(n[axis] * block.f[axis])
                    continue
                d = block.d[axis] if isinstance(block, Conv) else 1
                ke, s, p = k_eff(block.k[axis], d), block.s[axis], block.p[axis]
                if isinstance(block, Conv) and block.transposed:
                    size.append((n[axis] - 1) * s - 2 * p + ke + block.out_pad[axis])
                else:
                    size.append((n[axis] + 2 * p - ke) // s + 1)
            n = tuple(size)
            assert min(n) > 0, "the input is too small for the architecture"
        return n

    def forward(self, x):
        self._next = self._merged = 0
        return self._run(self.arch, x)

    def _take(self) -> nn.Module:
        layer = self.layers[self._next]
        self._next += 1
        return layer

    def _run(self, arch, x):
        for block in arch:
            if isinstance(block, Merge):
                ya = self._run(block.a, x)
                yb = self._run(block.b, x)
                crop = self.crops[self._merged]
                self._merged += 1
                ya, yb = ya[:, :, :crop[0], :crop[1]], yb[:, :, :crop[0], :crop[1]]
                x = ya + yb if block.kind == "add" else self._take()(torch.cat([ya, yb], dim=1))
            else:
                x = self._take()(x)
                if isinstance(block, Conv) and block.relu:
                    x = F.relu(x)
        return x


POINTWISE = Conv((1, 1), (1, 1), (1, 1), (0, 0))


# ---------------------------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------------------------
def path_intervals(arch, axis: int, paths=((1, 0, 0),)) -> list[tuple[int, int, int]]:
    """Per path (J, lo, hi): unit i of the output reads input positions J*i+lo .. J*i+hi.

    Exact for networks without resampling (integer strides): a window layer k, s, d, padding p
    makes unit i read units s*i-p .. s*i-p+d(k-1) of its input; a stride-1 transposed conv
    makes it read units i+p-d(k-1) .. i+p. Used only to size the input and to explain
    misaligned branches; the receptive field under test comes from the encoder.
    """
    out = list(paths)
    for block in arch:
        if isinstance(block, Merge):
            out = path_intervals(block.a, axis, out) + path_intervals(block.b, axis, out)
            continue
        d = block.d[axis] if isinstance(block, Conv) else 1
        ke, s, p = k_eff(block.k[axis], d), block.s[axis], block.p[axis]
        if isinstance(block, Conv) and block.transposed:
            assert s == 1, "path_intervals covers integer strides only"
            out = [(j, lo + j * (p - ke + 1), hi + j * p) for j, lo, hi in out]
        else:
            out = [(j * s, lo - j * p, hi + j * (ke - 1 - p)) for j, lo, hi in out]
    return out


def span_bound(arch, axis: int, state=(1, 0, 0)) -> tuple[int, int, int]:
    """(J, lo, hi) bounding every unit's reach like `path_intervals`, for any network.

    Upsampling and transposed strides are treated as stride 1 (a window of k fine units
    covers at most k coarse ones), so J is the product of the strides and lo/hi are outer
    bounds of the offsets. Only used to choose an input size that keeps borders away.
    """
    j, lo, hi = state
    for block in arch:
        if isinstance(block, Merge):
            ja, loa, hia = span_bound(block.a, axis, (j, lo, hi))
            jb, lob, hib = span_bound(block.b, axis, (j, lo, hi))
            j, lo, hi = max(ja, jb), min(loa, lob), max(hia, hib)
        elif isinstance(block, Up):
            lo -= j
        elif isinstance(block, Conv) and block.transposed:
            ke, p = k_eff(block.k[axis], block.d[axis]), block.p[axis]
            lo, hi = lo - j * (ke - 1), hi + j * (p + 1)
        else:
            d = block.d[axis] if isinstance(block, Conv) else 1
            ke, s, p = k_eff(block.k[axis], d), block.s[axis], block.p[axis]
            lo, hi, j = lo - j * p, hi + j * (ke - 1), j * s
    return j, lo, hi


def phases(arch, axis: int) -> int:
    """How many consecutive output units cover every position-dependent case on an axis.

    A unit's reach repeats when its index moves by the product of the upsampling factors
    (and transposed strides): then every layer's index moves by a whole number of units.
    """
    return math.prod(b.f[axis] if isinstance(b, Up) else b.s[axis] for b in resampling(arch))


def input_side(arch, axis: int) -> int:
    """An input side that keeps the centre units' receptive fields clear of the borders."""
    j, lo, hi = span_bound(arch, axis)
    return (hi - lo + 1) + abs(lo) + abs(hi) + 4 * j * phases(arch, axis) + 16


@dataclass
class Measured:
    """Per axis: the encoder's r_max, and the gradient extent of each measured output unit."""

    r_max: tuple
    extents: tuple[list[int], ...]
    jumps: tuple  # the encoder's output jump per axis


def measure(arch, channels: int = 1, seed: int = 0, sides=None) -> Measured:
    """Encode the model and measure the gradient extents of its centre output units.

    With P phases, P copies of the input go through the model in one batch and copy b
    back-propagates from output unit (ci + b, cj + b): its gradient is that unit's receptive
    field, exactly, because every weight and activation is positive (nothing cancels, the
    ReLUs pass everything), and a union of paths is a union of supports.
    """
    sides = sides or tuple(input_side(arch, a) for a in range(AXES))
    model = Net(arch, channels, seed).fit(sides)
    graph = encode(model, torch.ones(1, channels, *sides, dtype=torch.float64), name="oracle")
    assert len(graph.outputs) == 1
    rf = propagate(graph)[graph.outputs[0]]
    count = max(phases(arch, a) for a in range(AXES))
    gen = torch.Generator().manual_seed(seed + 1)
    x = (torch.rand(count, channels, *sides, generator=gen, dtype=torch.float64) * 0.5 + 0.5)
    x.requires_grad_(True)
    y = model(x)
    ci, cj = y.shape[2] // 2 - count // 2, y.shape[3] // 2 - count // 2
    assert ci >= 0 and cj >= 0 and ci + count <= y.shape[2] and cj + count <= y.shape[3]
    torch.stack([y[b, :, ci + b, cj + b].sum() for b in range(count)]).sum().backward()
    support = x.grad.abs().sum(dim=1) > 0  # (count, H, W)
    extents: tuple[list[int], ...] = ([], [])
    for b in range(count):
        for axis in range(AXES):
            line = support[b].any(dim=1 - axis).nonzero().flatten().tolist()
            assert line, f"output unit {b} reads nothing on axis {axis}"
            assert line[0] > 0 and line[-1] < sides[axis] - 1, (
                f"the receptive field touches the border on axis {axis}: enlarge the input")
            extents[axis].append(line[-1] - line[0] + 1)
    jumps = tuple(rf[a].maxs[0][1] for a in range(AXES))
    return Measured(tuple(rf[a].r_max for a in range(AXES)), extents, jumps)


# ---------------------------------------------------------------------------------------------
# random architectures
# ---------------------------------------------------------------------------------------------
def _per_axis(draw, strategy, square: bool) -> tuple:
    first = draw(strategy)
    return (first, first) if square else (first, draw(strategy))


@st.composite
def convs(draw, centred: bool = False, stride=None, transposed: bool = False) -> Conv:
    """A conv with k in 1..5 (odd or even), d in 1..3, s in 1..2 unless ``stride`` is given.

    ``centred``: d(k-1) even and padding d(k-1)/2, so that unit i of the output is centred on
    unit s*i of the input (even kernels stay possible with an even dilation).
    Transposed convs keep k >= s and gcd(s, d) = 1: otherwise some output units read no input
    at all (every tap of a unit falls between input units) and there is nothing to compare.
    """
    square = draw(st.booleans())
    k, s, d, p, op = [], [], [], [], []
    for axis in range(AXES):
        if square and axis and (stride is None or stride[0] == stride[1]):
            k.append(k[0]), s.append(s[0]), d.append(d[0]), p.append(p[0]), op.append(op[0])
            continue
        kk = draw(st.integers(1, 5))
        dd = draw(st.integers(1, 3)) if kk > 1 else 1
        ss = stride[axis] if stride is not None else draw(st.integers(1, 2))
        if transposed and (math.gcd(ss, dd) > 1 or kk < ss):
            kk, dd = max(kk, ss), 1
        if centred and dd * (kk - 1) % 2:
            kk += 1
        ke = k_eff(kk, dd)
        paddings = sorted({0, (ke - 1) // 2, ke // 2})
        pp = (ke - 1) // 2 if centred else draw(st.sampled_from(paddings))
        k.append(kk), s.append(ss), d.append(dd), p.append(pp)
        op.append(draw(st.integers(0, max(ss, dd) - 1)) if transposed and ss > 1 else 0)
    return Conv(tuple(k), tuple(s), tuple(d), tuple(p), relu=draw(st.booleans()),
                transposed=transposed, out_pad=tuple(op))


@st.composite
def pools(draw, centred: bool = False, stride=None) -> Pool:
    """An average pool, k in 2..3, s in 1..2, padding at most k/2."""
    square = draw(st.booleans())
    k, s, p = [], [], []
    for axis in range(AXES):
        if square and axis and (stride is None or stride[0] == stride[1]):
            k.append(k[0]), s.append(s[0]), p.append(p[0])
            continue
        kk = 3 if centred else draw(st.integers(2, 3))
        ss = stride[axis] if stride is not None else draw(st.integers(1, 2))
        pp = 1 if centred else draw(st.integers(0, kk // 2))
        k.append(kk), s.append(ss), p.append(pp)
    return Pool(tuple(k), tuple(s), tuple(p))


@st.composite
def ups(draw) -> Up:
    return Up(draw(st.sampled_from([(2, 2), (2, 2), (2, 1), (1, 2)])))


@st.composite
def merges(draw, centred: bool = False) -> Merge:
    """Two branches with the same total stride, added or concatenated.

    Branch a: a strided conv or pool (stride 1 or 2 per axis), then maybe a stride-1 conv.
    Branch b: the identity, or a stride-1 conv, or a 1x1 / kxk conv or a pool with branch a's
    stride (a ResNet shortcut). The two branches are swapped at random.
    """
    kind = draw(st.sampled_from(["add", "cat"]))
    stride = _per_axis(draw, st.integers(1, 2), draw(st.booleans()))
    a = [draw(st.one_of(convs(centred, stride=stride), pools(centred, stride=stride)))]
    if draw(st.booleans()):
        a.append(draw(convs(centred, stride=(1, 1))))
    if stride == (1, 1):
        b = [draw(convs(centred, stride=(1, 1)))] if draw(st.booleans()) else []
    else:
        choice = draw(st.sampled_from(["1x1", "conv", "pool"]))
        if choice == "1x1":
            b = [Conv((1, 1), stride, (1, 1), (0, 0))]
        elif choice == "conv":
            b = [draw(convs(centred, stride=stride))]
        else:
            b = [draw(pools(centred, stride=stride))]
    if draw(st.booleans()):
        a, b = b, a
    return Merge(kind, tuple(a), tuple(b))


@st.composite
def unets(draw, centred: bool = True) -> Merge:
    """A U-Net level: down by 2, maybe a conv, up by 2 (nearest or transposed), merged with
    the identity or a stride-1 conv."""
    kind = draw(st.sampled_from(["add", "cat"]))
    down = (2, 2)
    a = [draw(st.one_of(convs(centred, stride=down), pools(centred, stride=down)))]
    if draw(st.booleans()):
        a.append(draw(convs(centred, stride=(1, 1))))
    a.append(draw(st.one_of(st.just(Up((2, 2))), convs(centred, stride=down, transposed=True))))
    b = [draw(convs(centred, stride=(1, 1)))] if draw(st.booleans()) else []
    return Merge(kind, tuple(a), tuple(b))


@st.composite
def architectures(draw, centred_branches: bool = True, resample: bool = False) -> tuple:
    """A trunk of 1..5 blocks (up to 7 with ``resample``): convs (stride-1 transposed ones
    too), pools, merges.

    The trunk's own layers are never forced to be centred: a shift on the trunk moves every
    path alike. ``centred_branches`` makes every layer inside a branch centred.
    ``resample`` inserts one or two upsampling layers, strided transposed convs or U-Net
    levels at random places.
    """
    plain = st.one_of(convs(), convs(stride=(1, 1), transposed=True), pools(),
                      merges(centred_branches))
    arch = draw(st.lists(plain, min_size=0 if resample else 1, max_size=4))
    if resample:
        resamplers = st.one_of(ups(), convs(stride=(2, 2), transposed=True),
                               unets(centred_branches))
        for block in draw(st.lists(resamplers, min_size=1, max_size=2)):
            arch.insert(draw(st.integers(0, len(arch))), block)
    if draw(st.booleans()):
        arch.append(draw(convs()))
    return tuple(arch)


# ---------------------------------------------------------------------------------------------
# the bound with resampling
# ---------------------------------------------------------------------------------------------
def coarse_jumps(arch, axis: int, j=Fraction(1)) -> tuple[Fraction, list[tuple[Fraction, int]]]:
    """The output jump and, per resampling layer, (its input jump, its factor) on an axis."""
    found = []
    for block in arch:
        if isinstance(block, Merge):
            ja, fa = coarse_jumps(block.a, axis, j)
            jb, fb = coarse_jumps(block.b, axis, j)
            assert ja == jb, "the branches of a merge must have the same jump"
            j, found = ja, found + fa + fb
        elif isinstance(block, Up):
            if block.f[axis] > 1:
                found.append((j, block.f[axis]))
            j /= block.f[axis]
        elif isinstance(block, Conv) and block.transposed:
            if block.s[axis] > 1:
                found.append((j, block.s[axis]))
            j /= block.s[axis]
        else:
            j *= block.s[axis]
    return j, found


def resampling_bound(arch, axis: int) -> Fraction:
    """The documented bound on |extent - r_max| on an axis (see the module docstring).

    Per resampling layer with input jump J (the coarse level): (1 - 1/u) J for nearest
    upsampling by u, 2 (1 - 1/s) d J for a transposed conv of stride s and dilation d.
    """
    bound = Fraction(0)
    _, coarse = coarse_jumps(arch, axis)
    layers = [b for b in resampling(arch) if (b.f if isinstance(b, Up) else b.s)[axis] > 1]
    for (j, factor), block in zip(coarse, layers):
        beta = Fraction(factor - 1, factor)
        bound += j * beta * (1 if isinstance(block, Up) else 2 * block.d[axis])
    return bound


SETTINGS = settings(deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def affordable(arch) -> bool:
    """True when the input that keeps the borders away is small enough for a quick test."""
    return max(input_side(arch, a) for a in range(AXES)) <= MAX_SIDE


# ---------------------------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------------------------
@settings(SETTINGS, max_examples=50)
@given(architectures(centred_branches=True), st.integers(1, 2))
def test_extent_equals_r_max_without_resampling(arch, channels):
    """No upsampling, no strided transposed conv, centred branches: extent == r_max exactly."""
    assume(affordable(arch))
    measured = measure(arch, channels)
    for axis in range(AXES):
        assert measured.extents[axis] == [measured.r_max[axis]], (axis, arch)


@settings(SETTINGS, max_examples=30)
@given(architectures(centred_branches=False), st.integers(1, 2))
def test_misaligned_branches_extent_is_the_union(arch, channels):
    """Branches with even kernels or off-centre padding: the extent is the hull of the union
    of the paths' intervals, r_max the largest single path; r_max <= extent, with equality
    exactly when the largest path's interval contains the others."""
    assume(affordable(arch))
    measured = measure(arch, channels)
    for axis in range(AXES):
        paths = path_intervals(arch, axis)
        hull = max(hi for _, _, hi in paths) - min(lo for _, lo, _ in paths) + 1
        largest = max(hi - lo + 1 for _, lo, hi in paths)
        assert measured.r_max[axis] == largest, (axis, arch)
        assert measured.extents[axis] == [hull], (axis, arch)
        assert measured.r_max[axis] <= hull


@settings(SETTINGS, max_examples=40)
@given(architectures(centred_branches=True, resample=True), st.integers(1, 2))
def test_resampling_deviation_is_bounded(arch, channels):
    """With upsampling / strided transposed convs the extent depends on the unit's position;
    every phase stays within `resampling_bound` of r_max (0 on an axis without resampling)."""
    assume(affordable(arch))
    measured = measure(arch, channels)
    for axis in range(AXES):
        out_jump, _ = coarse_jumps(arch, axis)
        assert measured.jumps[axis] == out_jump, (axis, arch)
        bound = resampling_bound(arch, axis)
        for extent in measured.extents[axis]:
            assert abs(extent - measured.r_max[axis]) <= bound, (axis, extent, bound, arch)


# ---------------------------------------------------------------------------------------------
# hand-written cases
# ---------------------------------------------------------------------------------------------
def conv(k, s=1, d=1, p=None, transposed=False, out_pad=0, relu=True) -> Conv:
    """A square conv; padding d(k-1)/2 by default."""
    p = d * (k - 1) // 2 if p is None else p
    return Conv((k, k), (s, s), (d, d), (p, p), relu, transposed, (out_pad, out_pad))


def test_resnet_stem_and_downsampling_block():
    """conv7/2, avgpool3/2, then a basic block with a stride-2 3x3 and a 1x1/2 shortcut.

    r: 7; 7 + 2*2 = 11 (j 4); 11 + 2*4 = 19 (j 8); 19 + 2*8 = 35; the shortcut path: 11.
    """
    arch = (conv(7, 2), Pool((3, 3), (2, 2), (1, 1)),
            Merge("add", (conv(3, 2), conv(3)), (conv(1, 2, relu=False),)))
    measured = measure(arch, channels=2)
    assert measured.r_max == (35, 35)
    assert measured.extents == ([35], [35])


def test_resnet_d_shortcut_with_even_pool():
    """ResNet-D: the shortcut is avgpool 2/2 then 1x1; its interval lies inside the 3x3 path's."""
    arch = (conv(3),
            Merge("add", (conv(3, 2), conv(3)), (Pool((2, 2), (2, 2), (0, 0)), conv(1))))
    measured = measure(arch)
    assert measured.r_max == (3 + 2 + 4, 3 + 2 + 4)
    assert measured.extents == ([9], [9])


def test_dilated_chain_non_square():
    """3x5 kernels with dilations 1, 2, 4, 8 on H and 1, 1, 2, 3 on W."""
    dh, dw = (1, 2, 4, 8), (1, 1, 2, 3)
    arch = tuple(Conv((3, 5), (1, 1), (a, b), (a, 2 * b), relu=True) for a, b in zip(dh, dw))
    measured = measure(arch)
    assert measured.r_max == (1 + 2 * sum(dh), 1 + 4 * sum(dw))
    assert measured.extents == ([31], [29])


def test_even_kernels_and_asymmetric_padding_on_the_trunk():
    """Even kernels shift every path alike on the trunk: still exact.

    H: 2 (j 2); 2 + 1*2 = 4 (j 4); branch conv3, conv5 d2: 4 + 2*4 + 8*4 = 44;
       conv3/2: 44 + 2*4 = 52 (j 8); pool 2: 52 + 8 = 60.
    W: 4 (j 2); 4 + 2*2 = 8; 8 + 2*2 + 8*2 = 28; 28 + 2*2 = 32 (j 4); 32 + 4 = 36.
    """
    arch = (Conv((2, 4), (2, 2), (1, 1), (0, 1)), Conv((2, 2), (2, 1), (1, 2), (1, 0)),
            Merge("cat", (conv(3), conv(5, d=2)), ()), conv(3, 2), Pool((2, 2), (1, 1), (0, 0)))
    measured = measure(arch, channels=2)
    assert measured.r_max == (60, 36)
    assert measured.extents == ([60], [36])


def test_misaligned_branches_exceed_r_max():
    """Two 2-tap convs padded by 1 (unit i reads i-2..i) added to a 3-tap conv without padding
    (unit i reads i..i+2): both paths have r = 3, the union spans i-2..i+2, 5 positions."""
    arch = (Merge("add", (conv(2, p=1), conv(2, p=1)), (conv(3, p=0),)),)
    measured = measure(arch)
    assert measured.r_max == (3, 3)
    assert measured.extents == ([5], [5])


def test_nearest_upsampling_half_a_coarse_jump():
    """Upsample x2 then a 2x2 stride-1 pool: r_max = 1 + 1/2; fine units read 1 or 2 coarse
    units by parity, so the extent is 2 or 1: off by 1/2 = (1 - 1/2) * J (J = 1)."""
    arch = (Up((2, 2)), Pool((2, 2), (1, 1), (0, 0)))
    measured = measure(arch)
    assert measured.r_max == (Fraction(3, 2), Fraction(3, 2))
    assert sorted(measured.extents[0]) == [1, 2]
    assert resampling_bound(arch, 0) == Fraction(1, 2)


def test_transposed_conv_can_fall_short_by_one_coarse_jump():
    """After a stride-2 conv (J = 2), a transposed conv k3/2 reads 1 or 2 coarse units by
    parity while the rule counts ceil(3/2) = 2: every other unit falls short by one coarse
    jump, the most `resampling_bound` allows (2 (1 - 1/2) * 1 * J = 2).

    r: conv3/2: 3 (j 2); transposed k3/2: 3 + (ceil(3/2) - 1) * 2 = 5 (j 1); exact 3 or 5.
    """
    arch = (conv(3, 2), conv(3, 2, p=1, transposed=True, out_pad=1))
    measured = measure(arch)
    assert measured.r_max == (5, 5)
    assert sorted(measured.extents[0]) == [3, 5]
    assert resampling_bound(arch, 0) == 2


def test_unet_level():
    """conv, then a U-Net level (down 2, conv, nearest up 2) concatenated with the identity."""
    arch = (conv(3), Merge("cat", (conv(3, 2), conv(3), Up((2, 2))), ()), conv(3))
    measured = measure(arch, channels=2)
    for axis in range(AXES):
        bound = resampling_bound(arch, axis)
        assert bound == 1
        assert all(abs(e - measured.r_max[axis]) <= bound for e in measured.extents[axis])
    assert measured.r_max == (3 + 2 + 4 + 2, 3 + 2 + 4 + 2)


def test_upsampling_on_one_axis_only_keeps_the_other_exact():
    """Upsampling W only: H stays exact for every unit, W within its bound."""
    arch = (conv(3, 2), Up((1, 2)), Conv((3, 3), (1, 1), (1, 1), (1, 1)))
    measured = measure(arch)
    assert set(measured.extents[0]) == {measured.r_max[0]}
    assert resampling_bound(arch, 0) == 0 and resampling_bound(arch, 1) == 1
    assert all(abs(e - measured.r_max[1]) <= 1 for e in measured.extents[1])


def test_one_dimensional_dilated_chain():
    """A 1-D model (Conv1d, AvgPool1d) through the same oracle, by hand."""
    model = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.ReLU(),
                          nn.Conv1d(2, 2, 2, stride=2, dilation=3),
                          nn.AvgPool1d(3, 2, 1), nn.Conv1d(2, 1, 4, dilation=2)).double().eval()
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Conv1d):
                m.weight.uniform_(0.1, 1.0)
                m.bias.zero_()
    graph = encode(model, torch.ones(1, 1, 200, dtype=torch.float64))
    r_max = propagate(graph)[graph.outputs[0]][0].r_max
    assert r_max == 3 + 3 + 2 * 2 + 6 * 4  # 3; +3 (j 2); +2*2 (j 4); +2*3*4
    x = (torch.rand(1, 1, 200, dtype=torch.float64) + 0.5).requires_grad_(True)
    y = model(x)
    y[0, :, y.shape[2] // 2].sum().backward()
    support = (x.grad[0, 0] != 0).nonzero().flatten().tolist()
    assert support[0] > 0 and support[-1] < 199
    assert support[-1] - support[0] + 1 == r_max
