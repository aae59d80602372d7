"""ONNX files, built here with onnx.helper: small valid models analyzed by the real `rfa` command
with r computed by hand, and bad files (damaged, hostile, unsupported) refused with one line of
our own words and exit code 2; then a seeded fuzz of a valid model's bytes."""

from __future__ import annotations

import json
import os
import random
import traceback

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from google.protobuf.message import DecodeError  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from rfa_toolbox.encoders.onnx import OnnxFormatError, graph_from_onnx  # noqa: E402

from rfa_toolbox.errors import RFAError  # noqa: E402
from rfa_toolbox.graph import Graph  # noqa: E402

OPSET = [helper.make_opsetid("", 17)]


# --- building models ----------------------------------------------------------------------------

def make_model(nodes, inputs, outputs, initializers=(), value_info=(), opsets=OPSET):
    graph = helper.make_graph(nodes, "small", inputs, outputs, list(initializers), value_info=list(value_info))
    return helper.make_model(graph, opset_imports=list(opsets))


def tensor(name, dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def weight(name, shape):
    return numpy_helper.from_array(np.full(shape, 0.5, np.float32), name)


def small_model(dims=(1, 3, 32, 32)):
    """x -> Conv 3x3 (pads 1) -> Relu -> MaxPool 2x2 stride 2 -> GlobalAveragePool."""
    out = tensor("y", (dims[0], 8, 1, 1))
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap")]
    return make_model(nodes, [tensor("x", dims)], [out], [weight("w", (8, 3, 3, 3))])


def fuzz_model():
    """A small model touching more of the reader: weights and a bias, a Constant node, an int64
    initializer read as a value (Reshape's target), attributes of several types."""
    scale = helper.make_tensor("scale_value", TensorProto.FLOAT, [1], [2.0])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              strides=[1, 1], dilations=[1, 1], group=1),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2],
                              auto_pad="NOTSET"),
             helper.make_node("Constant", [], ["s"], name="const", value=scale),
             helper.make_node("Mul", ["p", "s"], ["q"], name="mul"),
             helper.make_node("GlobalAveragePool", ["q"], ["g"], name="gap"),
             helper.make_node("Reshape", ["g", "target"], ["y"], name="flatten")]
    target = numpy_helper.from_array(np.array([1, -1], np.int64), "target")
    return make_model(nodes, [tensor("x", (1, 3, 32, 32))], [tensor("y", (1, 8))],
                      [weight("w", (8, 3, 3, 3)), weight("b", (8,)), target])


def save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


# By hand: conv k3 s1 gives r 3 (jump 1); the 2x2 pool adds (2 - 1) * 1: r 4, jump 2; the global
# pool is the head. So r = 4 on both axes.
SMALL_R = [4, 4]


@pytest.fixture(scope="module")
def small_bytes():
    return small_model().SerializeToString()


def analyze_json(rfa, path, *options):
    result = rfa("analyze", str(path), *options, "-f", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_refused(result, *words):
    """Exit code 2 and one line of our own words, naming ``words``; nothing from Python or onnx."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("rfa: error: "), line
    for leak in ("Traceback", "google.protobuf", "onnx_cpp2py_export", "DecodeError", "ValidationError",
                 "InferenceError", "Error parsing message", "unexpected ", "this is a bug"):
        assert leak not in line, line
    for word in words:
        assert word in line, line
    return line


# --- valid models -------------------------------------------------------------------------------

def test_small_model_analyzes_with_hand_computed_r(rfa, tmp_path):
    data = analyze_json(rfa, save(small_model(), tmp_path / "m.onnx"), "--res", "32")
    assert data["resolution"] == [32, 32]
    assert data["r"] == SMALL_R
    assert data["unknown_ops"] == []
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["conv"]["kernel"] == [3, 3] and rows["conv"]["r_min"] == [3, 3]
    assert rows["conv"]["shape"] == [8, 32, 32]
    assert rows["pool"]["r_min"] == [4, 4] and rows["pool"]["jump"] == [2, 2]
    assert rows["pool"]["shape"] == [8, 16, 16]
    assert rows["gap"]["status"] == "head"


def test_symbolic_dims_take_the_resolution(rfa, tmp_path):
    model = small_model(("N", 3, "H", "W"))
    data = analyze_json(rfa, save(model, tmp_path / "sym.onnx"), "--res", "48")
    assert data["resolution"] == [48, 48]
    assert data["r"] == SMALL_R
    rows = {row["name"]: row for row in data["layers"]}
    # 48 through a padded 3x3 conv stays 48; the 2x2 stride-2 pool halves it
    assert rows["x"]["shape"] == [3, 48, 48]
    assert rows["conv"]["shape"] == [8, 48, 48]
    assert rows["pool"]["shape"] == [8, 24, 24]


def test_symbolic_dims_in_process_without_resolution_is_refused():
    with pytest.raises(OnnxFormatError, match="not fixed in the file"):
        graph_from_onnx(small_model(("N", 3, "H", "W")))
    graph = graph_from_onnx(small_model(("N", 3, "H", "W")), 40)
    assert graph["pool"].shape == (8, 20, 20)


# --- files that are not (whole) ONNX models -----------------------------------------------------

def test_random_bytes_are_refused(rfa, tmp_path):
    path = tmp_path / "noise.onnx"
    path.write_bytes(random.Random(0).randbytes(4096))
    assert_refused(rfa("analyze", str(path), "--res", "32"), "noise.onnx", "is not an ONNX model")


def without_opsets(small_bytes):
    """Where a file cut right after its graph ends: its fields are written in order of their
    numbers, the graph (7) before the opsets (8), so a cut there still parses."""
    model = small_model()
    del model.opset_import[:]
    prefix = model.SerializeToString()
    assert small_bytes.startswith(prefix) and len(prefix) < len(small_bytes)
    return len(prefix)


@pytest.mark.parametrize("keep, words", [(1, "is not an ONNX model"), (10, "is not an ONNX model"),
                                         (0.5, "is not an ONNX model"), (-1, "is not an ONNX model"),
                                         ("graph", "names no opset version")])
def test_truncated_file_is_refused(rfa, tmp_path, small_bytes, keep, words):
    if keep == "graph":
        cut = without_opsets(small_bytes)
    else:
        cut = int(len(small_bytes) * keep) if isinstance(keep, float) else keep % len(small_bytes)
    assert 0 < cut < len(small_bytes)
    path = tmp_path / "cut.onnx"
    path.write_bytes(small_bytes[:cut])
    assert_refused(rfa("analyze", str(path), "--res", "32"), "cut.onnx", words)


def test_every_truncation_is_refused_in_process(small_bytes):
    """Every prefix of the file (not only the few the command runs on) is refused as not an
    ONNX model, or not a whole one, in our words."""
    for cut in range(len(small_bytes)):
        with pytest.raises(RFAError) as caught:
            graph_from_onnx(small_bytes[:cut], 32)
        message = str(caught.value)
        assert message.startswith(("the data given is not an ONNX model", "the data given is not a whole ONNX model")
                                  ), (cut, message)
    assert isinstance(graph_from_onnx(small_bytes, 32), Graph)


def test_empty_file_is_refused(rfa, tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert_refused(rfa("analyze", str(path), "--res", "32"), "empty.onnx", "holds no graph with nodes")


def test_folder_named_onnx_is_refused(rfa, tmp_path):
    (tmp_path / "x.onnx").mkdir()
    assert_refused(rfa("analyze", str(tmp_path / "x.onnx"), "--res", "32"), "x.onnx", "is a folder")


def test_missing_file_is_refused(rfa, tmp_path):
    assert_refused(rfa("analyze", str(tmp_path / "gone.onnx"), "--res", "32"), "no such file", "gone.onnx")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_named_pipe_is_refused_without_blocking(rfa, tmp_path):
    os.mkfifo(tmp_path / "pipe.onnx")
    assert_refused(rfa("analyze", str(tmp_path / "pipe.onnx"), "--res", "32"), "not a regular file")


# --- damaged tensors ----------------------------------------------------------------------------

def short_tensor():
    """A float tensor of 4 elements holding 3 bytes of data."""
    value = helper.make_tensor("v", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    del value.float_data[:]
    value.raw_data = b"\x00\x00\x80"
    return value


def damaged_model(case):
    """small_model with a damaged tensor: a Constant (multiplying the pooled map) holding too
    little data or a list instead of a tensor, or an attribute of Relu holding too little."""
    model = small_model()
    if case == "attribute":
        model.graph.node[1].attribute.append(helper.make_attribute("extra", short_tensor()))
        return model
    conv, relu, pool, gap = model.graph.node
    value = short_tensor() if case == "constant" else [1, 2]
    gap.input[0] = "q"
    nodes = [conv, relu, pool, helper.make_node("Constant", [], ["k"], name="const", value=value),
             helper.make_node("Mul", ["p", "k"], ["q"], name="mul"), gap]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


@pytest.mark.parametrize("case, words", [("constant", "the tensor of the attribute 'value' is damaged"),
                                         ("not a tensor", "a constant in the model is damaged"),
                                         ("attribute", "the tensor of the attribute 'extra' is damaged")])
def test_damaged_tensors_are_refused(rfa, tmp_path, case, words):
    path = tmp_path / "damaged.onnx"
    onnx.save(damaged_model(case), str(path))  # unchecked: onnx.checker refuses it, as it should
    assert_refused(rfa("analyze", str(path), "--res", "32"), words)
    with pytest.raises(OnnxFormatError, match=words):
        graph_from_onnx(damaged_model(case), 32)


# --- external data ------------------------------------------------------------------------------

def save_external(model, folder, location="w.bin"):
    """``model`` saved in ``folder`` with every initializer in one external file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "m.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return path


def test_external_data_beside_the_model_is_read(rfa, tmp_path):
    path = save_external(fuzz_model(), tmp_path / "model")
    assert (tmp_path / "model" / "w.bin").stat().st_size > 0
    data = analyze_json(rfa, path, "--res", "32")
    assert data["r"] == SMALL_R


def test_missing_external_data_file_is_refused(rfa, tmp_path):
    path = save_external(small_model(), tmp_path / "model")
    (tmp_path / "model" / "w.bin").unlink()
    assert_refused(rfa("analyze", str(path), "--res", "32"), "'w.bin'", "not beside the model")


def test_external_data_shorter_than_its_tensor_is_refused(rfa, tmp_path):
    """The Reshape target (read as a value) points past the end of a cut data file."""
    path = save_external(fuzz_model(), tmp_path / "model")
    data_file = tmp_path / "model" / "w.bin"
    data_file.write_bytes(data_file.read_bytes()[:-4])
    assert_refused(rfa("analyze", str(path), "--res", "32"), "'target'", "is damaged")


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_external_data_outside_the_folder_is_refused(rfa, tmp_path, where):
    path = save_external(small_model(), tmp_path / "model")
    outside = tmp_path / "w.bin"
    (tmp_path / "model" / "w.bin").rename(outside)  # the file exists: refused for where it is
    location = "../w.bin" if where == "parent" else str(outside)
    shown_as = "'../w.bin'" if where == "parent" else f"'{str(outside)[:40]}"  # long names are cut
    model = onnx.load(str(path), load_external_data=False)
    changed = 0
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
                changed += 1
    assert changed == 1
    onnx.save(model, str(path))
    assert_refused(rfa("analyze", str(path), "--res", "32"), "'w'", "outside the model's folder", shown_as)


# --- models the analysis cannot take ------------------------------------------------------------

def test_model_without_spatial_input_is_refused(rfa, tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [tensor("x", (1, 10))],
                       [tensor("y", (1, 10))])
    assert_refused(rfa("analyze", str(save(model, tmp_path / "flat.onnx")), "--res", "32"),
                   "no input with spatial axes")


def test_fixed_size_model_at_another_resolution_is_refused(rfa, tmp_path):
    path = save(small_model(), tmp_path / "m.onnx")
    assert_refused(rfa("analyze", str(path), "--res", "64"), "'x'", "fixed at 32x32")


def test_cycle_is_refused(rfa, tmp_path):
    nodes = [helper.make_node("Add", ["x", "b"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["b"], name="relu")]
    model = make_model(nodes, [tensor("x", (1, 3, 32, 32))], [tensor("b", (1, 3, 32, 32))])
    path = tmp_path / "cycle.onnx"
    onnx.save(model, str(path))  # unchecked: onnx.checker refuses a cycle
    assert_refused(rfa("analyze", str(path), "--res", "32"), "cycle")


def test_control_flow_on_the_input_is_refused_naming_the_node(rfa, tmp_path):
    then_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                                    [tensor("t", (1, 3, 32, 32))])
    else_branch = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                    [tensor("e", (1, 3, 32, 32))])
    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], name="rmax", keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["cond"], name="gt"),
             helper.make_node("If", ["cond"], ["z"], name="branch", then_branch=then_branch,
                              else_branch=else_branch),
             helper.make_node("Relu", ["z"], ["y"], name="relu")]
    zero = numpy_helper.from_array(np.array(0, np.float32), "zero")
    model = make_model(nodes, [tensor("x", (1, 3, 32, 32))], [tensor("y", (1, 3, 32, 32))], [zero])
    line = assert_refused(rfa("analyze", str(save(model, tmp_path / "if.onnx")), "--res", "32"),
                          "node 'branch'", "an If", "control flow")
    assert "a If" not in line


def warp_model(out_size):
    """x -> Conv 3x3 -> my.ops::Warp (no handler; its output declared out_size square) -> Conv 3x3 -> GAP."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Warp", ["c"], ["u"], name="warp", domain="my.ops"),
             helper.make_node("Conv", ["u", "w2"], ["d"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["d"], ["y"], name="gap")]
    return make_model(nodes, [tensor("x", (1, 3, 32, 32))], [tensor("y", (1, 8, 1, 1))],
                      [weight("w", (8, 3, 3, 3)), weight("w2", (8, 8, 3, 3))],
                      value_info=[tensor("u", (1, 8, out_size, out_size))],
                      opsets=[*OPSET, helper.make_opsetid("my.ops", 1)])


def test_unknown_op_changing_the_size_is_refused_naming_it(rfa, tmp_path):
    path = save(warp_model(16), tmp_path / "warp.onnx")
    assert_refused(rfa("analyze", str(path), "--res", "32"), "'warp'", "my.ops::Warp", "--allow-unknown")


def test_unknown_op_changing_the_size_is_neutral_with_allow_unknown(rfa, tmp_path):
    data = analyze_json(rfa, save(warp_model(16), tmp_path / "warp.onnx"), "--res", "32", "--allow-unknown")
    assert data["unknown_ops"] == ["my.ops::Warp (warp)"]
    # Warp neutral: conv1 r 3, conv2 adds 2 (jump 1): r 5; the shapes are the declared ones
    assert data["r"] == [5, 5]
    rows = {row["name"]: row for row in data["layers"]}
    assert rows["warp"]["shape"] == [8, 16, 16] and rows["conv2"]["shape"] == [8, 16, 16]
    assert rows["conv2"]["r_min"] == [5, 5]


def test_unknown_op_keeping_the_size_is_listed_by_default_and_refused_with_strict(rfa, tmp_path):
    path = save(warp_model(32), tmp_path / "warp.onnx")
    data = analyze_json(rfa, path, "--res", "32")
    assert data["unknown_ops"] == ["my.ops::Warp (warp)"] and data["r"] == [5, 5]
    line = assert_refused(rfa("analyze", str(path), "--res", "32", "--strict"), "'warp'", "my.ops::Warp")
    assert "may change the spatial shape" not in line


# --- fuzz ---------------------------------------------------------------------------------------

FUZZ_SEEDS = range(300)


def mutate(data: bytes, seed: int) -> tuple[str, bytes]:
    """One seeded mutation of ``data``: what was done, and the bytes."""
    rng = random.Random(seed)
    out = bytearray(data)
    kind = rng.choice(["flip", "truncate", "insert", "delete", "duplicate"])
    if kind == "flip":
        spots = [rng.randrange(len(out)) for _ in range(rng.randint(1, 8))]
        for at in spots:
            out[at] ^= 1 << rng.randrange(8)
        kind += f" bits at {spots}"
    elif kind == "truncate":
        at = rng.randrange(len(out))
        del out[at:]
        kind += f" at {at}"
    elif kind == "insert":
        at, run = rng.randrange(len(out) + 1), rng.randbytes(rng.randint(1, 32))
        out[at:at] = run
        kind += f" {len(run)} bytes at {at}"
    elif kind == "delete":
        at, size = rng.randrange(len(out)), rng.randint(1, 32)
        del out[at:at + size]
        kind += f" {size} bytes at {at}"
    else:
        at, size, to = rng.randrange(len(out)), rng.randint(1, 64), rng.randrange(len(out) + 1)
        out[to:to] = out[at:at + size]
        kind += f" {size} bytes from {at} to {to}"
    return kind, bytes(out)


def outcome(data: bytes):
    """``"graph"``, ``"refused: "`` and our message, or the unexpected exception (with the last
    line of its traceback)."""
    try:
        graph = graph_from_onnx(data, 32)
    except RFAError as exc:
        return f"refused: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc} at {traceback.extract_tb(exc.__traceback__)[-1]}"
    assert isinstance(graph, Graph)
    return "graph"


@pytest.fixture(scope="module")
def fuzz_outcomes():
    """seed: (what the mutation did, the mutated bytes, what graph_from_onnx made of them)."""
    data = fuzz_model().SerializeToString()
    outcomes = {}
    for seed in FUZZ_SEEDS:
        kind, mutated = mutate(data, seed)
        outcomes[seed] = (kind, mutated, outcome(mutated))
    return outcomes


def test_fuzzed_bytes_give_a_graph_or_our_error(fuzz_outcomes):
    bad = [f"seed {seed} ({kind}): {result}" for seed, (kind, _, result) in fuzz_outcomes.items()
           if result != "graph" and not result.startswith("refused: ")]
    assert not bad, "\n".join(bad)
    results = [result for _, _, result in fuzz_outcomes.values()]
    # the mutations reach past the protobuf parser: some still analyze, most are refused, and
    # some of those for what they damaged inside a model that parses
    assert results.count("graph") >= 10, results
    assert sum(r.startswith("refused: ") for r in results) >= 100, results
    assert sum("damaged" in r and "not an ONNX model" not in r for r in results) >= 2, results


def test_fuzzed_models_as_protos_give_a_graph_or_our_error(fuzz_outcomes):
    """The same mutations that parse, handed over as a ModelProto."""
    parsed = 0
    for seed, (kind, data, _) in fuzz_outcomes.items():
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except DecodeError:
            continue
        parsed += 1
        try:
            graph_from_onnx(proto, 32)
        except RFAError:
            pass
        except Exception as exc:
            pytest.fail(f"seed {seed} ({kind}): {type(exc).__name__}: {exc}")
    assert parsed >= 30


def test_fuzzed_files_read_without_their_weights_agree_with_the_bytes(tmp_path, fuzz_outcomes):
    """The same mutations as files: the reader that skips the weights' bytes while reading
    (`wire.skim`) gives a graph or our error, the same verdict as parsing the whole bytes."""
    for seed, (kind, data, result) in fuzz_outcomes.items():
        path = tmp_path / f"fuzz{seed}.onnx"
        path.write_bytes(data)
        try:
            graph_from_onnx(path, 32)
            got = "graph"
        except RFAError:
            got = "refused"
        except Exception as exc:
            pytest.fail(f"seed {seed} ({kind}): {type(exc).__name__}: {exc}")
        assert got == ("graph" if result == "graph" else "refused"), f"seed {seed} ({kind})"


def test_fuzzed_files_through_the_command(rfa, tmp_path, fuzz_outcomes):
    """Mutated files through the real command: two that analyze, two refused for damage found
    past the parser (a name that is not UTF-8, a tensor whose data does not fit its shape), and
    one the parser refuses."""
    def first(count, keep):
        return [seed for seed, (_, _, result) in fuzz_outcomes.items() if keep(result)][:count]

    chosen = (first(2, lambda r: r == "graph") + first(1, lambda r: "not UTF-8" in r)
              + first(1, lambda r: "data does not fit" in r) + first(1, lambda r: "not a protobuf" in r))
    assert len(chosen) == 5, chosen
    for seed in chosen:
        kind, data, result = fuzz_outcomes[seed]
        path = tmp_path / f"fuzz{seed}.onnx"
        path.write_bytes(data)
        run = rfa("analyze", str(path), "--res", "32", "-f", "json")
        assert run.returncode in (0, 2), (seed, kind, run.stderr)
        assert "Traceback" not in run.stderr, (seed, kind, run.stderr)
        if result.startswith("refused: ") or run.returncode == 2:
            assert_refused(run, "fuzz")  # the message names the file
        else:
            assert run.stderr == "" and len(json.loads(run.stdout)["r"]) == 2, (seed, kind)
