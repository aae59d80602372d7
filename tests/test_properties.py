"""Property tests: propagate() against a brute-force enumeration of every path.

The enumerator below does not use rfa_toolbox.receptive_field: it walks every path from the
input to each node (recursively, memoized per node as the list of all path values, one entry
per path) and applies the table of docs/concepts.md to each path with fractions.Fraction:

    window (conv, pool) k, s, d     r + (d(k-1)+1 - 1)*j      j*s
    transposed conv k, s, d         r + (ceil(k'/s) - 1)*j    j/s     (k' = d(k-1)+1)
    upsample u, nearest             r                         j/u
    upsample u, linear family       r + j                     j/u
    global                          infinite
    neutral, merge                  unchanged (merge: the union of the inputs' paths)

r_min / r_max are the min / max over the finite paths, and the infinite flag says whether
any path is infinite.
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from rfa_toolbox import GraphBuilder, analyze, propagate

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MAX_PATHS = 256  # per node; merges drop inputs to stay below this, keeping enumeration cheap
NEUTRAL_OPS = ("relu", "norm", "identity", "batch_norm", "pad")
MERGE_OPS = ("add", "concat", "mul", "merge")
UPSAMPLE_MODES = ("nearest", "area", "linear", "bilinear", "trilinear", "bicubic")
FACTORS = (2, 3, "3/2", "5/2", 4)


class Node:
    """One drawn layer: op, parameters (per axis lists), inputs."""

    def __init__(self, name, op, inputs, **params):
        self.name = name
        self.op = op
        self.inputs = list(inputs)
        self.params = params

    def __repr__(self):
        return f"Node({self.name!r}, {self.op!r}, {self.inputs}, {self.params})"


# ---------------------------------------------------------------------------------------------
# random DAGs
# ---------------------------------------------------------------------------------------------
@st.composite
def dags(draw, ndim=1, square=True, max_nodes=40, with_globals=True):
    """A random DAG description: a list of Node, the first one the input."""

    def per_axis(strategy):
        if square:
            value = draw(strategy)
            return [value] * ndim
        return [draw(strategy) for _ in range(ndim)]

    n_nodes = draw(st.integers(2, max_nodes))
    nodes = [Node("n0", "input", [])]
    paths = [1]

    def pick_one():
        i = len(nodes)
        if draw(st.booleans()):
            return i - 1  # mostly chains: deeper paths
        return draw(st.integers(max(0, i - 10), i - 1))

    kinds = ["conv", "conv", "conv", "pool", "transposed", "upsample", "neutral", "merge",
             "merge"]
    if with_globals:
        kinds += ["global", "se"]
    while len(nodes) < n_nodes:
        i = len(nodes)
        name = f"n{i}"
        kind = draw(st.sampled_from(kinds))
        if kind == "merge":
            k = draw(st.integers(2, 3))
            inputs = sorted(set(draw(st.lists(st.integers(max(0, i - 12), i - 1),
                                              min_size=k, max_size=k))))
            while len(inputs) > 1 and sum(paths[j] for j in inputs) > MAX_PATHS:
                inputs.pop(0)
            op = draw(st.sampled_from(MERGE_OPS))
            node = Node(name, op, [f"n{j}" for j in inputs])
            count = sum(paths[j] for j in inputs)
        elif kind == "se":
            # a global branch merged back into the finite path by a product
            j = pick_one()
            gp = Node(name, "global_avg_pool", [f"n{j}"])
            nodes.append(gp)
            paths.append(paths[j])
            fc = Node(f"n{i + 1}", "conv", [name], kernel=[1] * ndim, stride=[1] * ndim,
                      dilation=[1] * ndim)
            nodes.append(fc)
            paths.append(paths[j])
            node = Node(f"n{i + 2}", "mul", [f"n{j}", f"n{i + 1}"])
            count = 2 * paths[j]
            if count > MAX_PATHS:
                node.inputs = [f"n{i + 1}"]
                count = paths[j]
        else:
            j = pick_one()
            count = paths[j]
            inputs = [f"n{j}"]
            if kind == "conv":
                node = Node(name, "conv", inputs, kernel=per_axis(st.integers(1, 7)),
                            stride=per_axis(st.integers(1, 3)), dilation=per_axis(st.integers(1, 3)))
            elif kind == "pool":
                kernel = per_axis(st.integers(1, 4))
                stride = [draw(st.integers(1, k)) for k in kernel] if not square else \
                    [draw(st.integers(1, kernel[0]))] * ndim
                node = Node(name, draw(st.sampled_from(["max_pool", "avg_pool"])), inputs,
                            kernel=kernel, stride=stride, dilation=[1] * ndim)
            elif kind == "transposed":
                node = Node(name, "conv_transpose", inputs, kernel=per_axis(st.integers(1, 5)),
                            stride=per_axis(st.integers(1, 3)), dilation=per_axis(st.integers(1, 2)))
            elif kind == "upsample":
                node = Node(name, "upsample", inputs, factor=per_axis(st.sampled_from(FACTORS)),
                            mode=draw(st.sampled_from(UPSAMPLE_MODES)))
            elif kind == "neutral":
                node = Node(name, draw(st.sampled_from(NEUTRAL_OPS)), inputs)
            else:  # global
                op = draw(st.sampled_from(["global_avg_pool", "global_max_pool", "dense",
                                           "flatten", "attention"]))
                params = {}
                if op.startswith("global") and ndim > 1 and draw(st.booleans()):
                    params["axes"] = sorted(set(draw(st.lists(st.integers(0, ndim - 1),
                                                              min_size=1, max_size=ndim))))
                node = Node(name, op, inputs, **params)
        nodes.append(node)
        paths.append(count)
    return nodes


def build(nodes, ndim):
    """The graph of a description; every node that feeds nothing is a declared output."""
    b = GraphBuilder(ndim=ndim, name="random")
    for node in nodes:
        b.layer(node.op, node.inputs, name=node.name, **node.params)
    fed = {source for node in nodes for source in node.inputs}
    return b.build(outputs=[node.name for node in nodes if node.name not in fed])


# ---------------------------------------------------------------------------------------------
# the brute-force enumerator (independent of rfa_toolbox.receptive_field)
# ---------------------------------------------------------------------------------------------
INF = None


def _transfer(node: Node, value, axis: int):
    """One path value (r, j) or INF on one axis, through ``node``."""
    if value is INF:
        return INF
    r, j = value
    op, p = node.op, node.params
    if op in ("global_avg_pool", "global_max_pool"):
        axes = p.get("axes")
        return INF if not axes or axis in axes else value
    if op in ("dense", "flatten", "attention"):
        return INF
    if op in ("conv", "max_pool", "avg_pool"):
        k, s, d = p["kernel"][axis], p["stride"][axis], p["dilation"][axis]
        return (r + (d * (k - 1) + 1 - 1) * j, j * s)
    if op == "conv_transpose":
        k, s, d = p["kernel"][axis], p["stride"][axis], p["dilation"][axis]
        k_eff = d * (k - 1) + 1
        return (r + (ceil(Fraction(k_eff, s)) - 1) * j, j / s)
    if op == "upsample":
        # nearest / area read 1 input position, the linear family 2 (r + j), bicubic 4 (r + 3j)
        u = Fraction(str(p["factor"][axis]))
        taps = {"nearest": 1, "area": 1, "linear": 2, "bilinear": 2, "trilinear": 2,
                "bicubic": 4}[p["mode"]]
        return (r + (taps - 1) * j, j / u)
    # neutral and merge ops, and 1x1 convs are handled above
    return value


def brute_force(nodes, ndim):
    """{name: [per axis (r_min, r_max, infinite)]} by enumerating every path."""
    by_name = {node.name: node for node in nodes}
    memo: dict[str, list] = {}

    def paths(name):
        if name in memo:
            return memo[name]
        node = by_name[name]
        if node.op == "input":
            result = [tuple((Fraction(1), Fraction(1)) for _ in range(ndim))]
        else:
            incoming = [p for source in node.inputs for p in paths(source)]
            result = [tuple(_transfer(node, p[a], a) for a in range(ndim)) for p in incoming]
        memo[name] = result
        return result

    out = {}
    for node in nodes:
        values = paths(node.name)
        per_axis = []
        for a in range(ndim):
            finite = [v[a][0] for v in values if v[a] is not INF]
            per_axis.append((min(finite) if finite else None, max(finite) if finite else None,
                             any(v[a] is INF for v in values)))
        out[node.name] = per_axis
    return out


def summary(rf_node):
    return [(axis.r_min, axis.r_max, axis.infinite) for axis in rf_node]


# ---------------------------------------------------------------------------------------------
# the enumerator itself, on hand-checked values (so the oracle is trusted)
# ---------------------------------------------------------------------------------------------
def test_brute_force_on_the_diamond():
    # conv3 -> {conv3/2, conv5/2} -> add -> conv3: (9, 11) (see test_hand_checked)
    one = dict(dilation=[1])
    nodes = [Node("x", "input", []), Node("c0", "conv", ["x"], kernel=[3], stride=[1], **one),
             Node("a", "conv", ["c0"], kernel=[3], stride=[2], **one),
             Node("b", "conv", ["c0"], kernel=[5], stride=[2], **one),
             Node("m", "add", ["a", "b"]), Node("c1", "conv", ["m"], kernel=[3], stride=[1], **one),
             Node("t", "conv_transpose", ["c1"], kernel=[3], stride=[2], **one),  # +1*2, j 1
             Node("u", "upsample", ["t"], factor=[2], mode="linear"),              # +1, j 1/2
             Node("g", "global_avg_pool", ["c1"]), Node("s", "mul", ["u", "g"])]
    bf = brute_force(nodes, 1)
    assert bf["c1"] == [(9, 11, False)]
    assert bf["t"] == [(11, 13, False)]
    assert bf["u"] == [(12, 14, False)]
    assert bf["g"] == [(None, None, True)]
    assert bf["s"] == [(12, 14, True)]


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(1, 3).flatmap(lambda nd: st.tuples(st.just(nd), dags(ndim=nd, square=False))))
def test_propagate_matches_brute_force(case):
    ndim, nodes = case
    graph = build(nodes, ndim)
    rf = propagate(graph)
    expected = brute_force(nodes, ndim)
    for node in nodes:
        got = summary(rf[node.name])
        assert got == expected[node.name], (node, got, expected[node.name])
        for r_lo, r_hi, _ in got:
            assert (r_lo is None) == (r_hi is None)
            if r_lo is not None:
                assert r_lo <= r_hi
    # the min-only pass gives the same r_min and infinite flags
    fast = propagate(graph, with_max=False)
    for node in nodes:
        assert [(a.r_min, a.infinite) for a in fast[node.name]] == \
            [(lo, inf) for lo, _, inf in expected[node.name]]


@SETTINGS
@given(dags(ndim=2, square=False), st.integers(1, 60), st.integers(1, 60))
def test_statuses_follow_the_definitions(nodes, h, w):
    """analyze() statuses recomputed from the brute-force r_min values and docs/concepts.md.

    Axes on which every path into a layer is infinite (collapsed by a global op) are left out,
    as heads are; a layer infinite on every axis is a head.
    """
    graph = build(nodes, 2)
    bf = brute_force(nodes, 2)
    res = (h, w)
    report = analyze(graph, res, exact=False)
    computes = {"conv", "conv_transpose", "max_pool", "avg_pool", "upsample", "global_avg_pool",
                "global_max_pool", "dense", "attention"}

    for node in nodes:
        r_min = [lo for lo, _, _ in bf[node.name]]
        axes = [a for a in range(2) if r_min[a] is not None]
        if not axes:
            expected = "head"
        elif node.op not in computes:
            expected = "ok"
        else:
            inputs = [min(bf[s][a][0] for s in node.inputs if bf[s][a][0] is not None)
                      for a in axes]
            if all(v >= res[a] for v, a in zip(inputs, axes)):
                expected = "unproductive"
            elif all(r_min[a] >= res[a] for a in axes):
                expected = "underutilized"
            elif any(r_min[a] >= res[a] for a in axes):
                expected = "border"
            else:
                expected = "ok"
        assert report.layer(node.name).status == expected, node
    # r: the largest finite r_min per axis; fully utilized when R > r on every axis
    r = [max(bf[n.name][a][0] for n in nodes if bf[n.name][a][0] is not None) for a in range(2)]
    r_max = [max(bf[n.name][a][1] for n in nodes if bf[n.name][a][1] is not None) for a in range(2)]
    for shown, exact in [*zip(report.r, r), *zip(report.max_resolution, r_max)]:
        if exact.denominator == 1:
            assert shown == exact and isinstance(shown, int)
        else:
            assert isinstance(shown, float) and abs(shown - float(exact)) < 1e-6
    assert report.fully_utilized == all(v < R for R, v in zip(res, r))


def _project(nodes, axis):
    """The 1-D graph description seen by one axis of a 2-D one."""
    out = []
    for node in nodes:
        params = {}
        op = node.op
        for key in ("kernel", "stride", "dilation", "factor"):
            if key in node.params:
                params[key] = [node.params[key][axis]]
        if "mode" in node.params:
            params["mode"] = node.params["mode"]
        if "axes" in node.params:
            op = node.op if axis in node.params["axes"] else "identity"
        out.append(Node(node.name, op, node.inputs, **params))
    return out


@SETTINGS
@given(dags(ndim=2, square=False))
def test_per_axis_results_equal_the_one_dimensional_ones(nodes):
    rf2 = propagate(build(nodes, 2))
    for axis in range(2):
        rf1 = propagate(build(_project(nodes, axis), 1))
        for node in nodes:
            a2, a1 = rf2[node.name][axis], rf1[node.name][0]
            assert (a2.mins, a2.maxs, a2.infinite) == (a1.mins, a1.maxs, a1.infinite), node


NEUTRAL_INSERTS = [
    ("relu", {}), ("identity", {}), ("batch_norm", {}), ("pad", {}), ("dropout", {}),
    ("conv", {"kernel": 1}), ("max_pool", {"kernel": 1, "stride": 1}),
    ("upsample", {"factor": 1}), ("concat", {}),  # a merge with a single input
]


@SETTINGS
@given(st.data())
def test_inserting_a_neutral_layer_changes_nothing(data):
    nodes = data.draw(dags(ndim=2, square=False, max_nodes=30))
    edges = [(source, node.name) for node in nodes for source in node.inputs]
    assume(edges)
    source, target = data.draw(st.sampled_from(edges))
    op, params = data.draw(st.sampled_from(NEUTRAL_INSERTS))
    res = (data.draw(st.integers(1, 80)), data.draw(st.integers(1, 80)))

    extra = Node("inserted", op, [source], **params)
    changed = []
    for node in nodes:
        if node.name == target:
            changed.append(extra)
            node = Node(node.name, node.op, [("inserted" if s == source else s) for s in node.inputs],
                        **node.params)
        changed.append(node)

    before_graph, after_graph = build(nodes, 2), build(changed, 2)
    assert after_graph.predecessors(target) == [
        "inserted" if s == source else s for s in before_graph.predecessors(target)]
    before, after = propagate(before_graph), propagate(after_graph)
    for node in nodes:
        b, a = before[node.name], after[node.name]
        assert [(x.mins, x.maxs, x.infinite) for x in b] == \
            [(x.mins, x.maxs, x.infinite) for x in a], node
    assert [(x.mins, x.maxs, x.infinite) for x in after["inserted"]] == \
        [(x.mins, x.maxs, x.infinite) for x in before[source]]
    # and the analysis of every existing layer is the same
    rb, ra = analyze(before_graph, res, exact=False), analyze(after_graph, res, exact=False)
    for node in nodes:
        assert rb.layer(node.name) == ra.layer(node.name)
    assert (rb.r, rb.max_resolution, rb.fully_utilized) == (ra.r, ra.max_resolution, ra.fully_utilized)
    assert ra.layer("inserted").status in ("ok", "head", "unproductive", "underutilized", "border")
    if op not in ("conv", "max_pool", "upsample"):  # non-computing: never a finding
        assert not ra.layer("inserted").is_finding


@SETTINGS
@given(dags(ndim=1, square=True, with_globals=False))
def test_finite_graphs_have_no_infinite_paths(nodes):
    rf = propagate(build(nodes, 1))
    for node in nodes:
        axis = rf[node.name][0]
        assert axis.finite and not axis.infinite
        assert axis.r_min >= 1
        # mins ascend in r and strictly descend in j; maxs descend in r and strictly in j
        assert all(p[0] < q[0] and p[1] > q[1] for p, q in zip(axis.mins, axis.mins[1:]))
        assert all(p[0] > q[0] and p[1] < q[1] for p, q in zip(axis.maxs, axis.maxs[1:]))
