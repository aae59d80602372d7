"""The contract of `rfa` on hostile and wrong input, class by class (issue 11): one line of our
own words on standard error and exit code 2; never a traceback, a hang, foreign error text or a
silently wrong answer. Each class is tried with several inputs, on the real command."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import zipfile

import pytest

from rfa_toolbox import GraphBuilder, RFAError, analyze, load_spec, save_spec, suggest
from rfa_toolbox.formats import format_table

from conftest import EXAMPLES
from test_cli import assert_one_line_error

#: Words of Python's own messages that must never reach a user.
FOREIGN = ("Traceback", "Error:", "Exception", "NoneType", "codec can't", "Errno", "RFA_DEBUG",
           "object is not", "unexpected")

VGG = str(EXAMPLES / "vgg_style.yaml")


def assert_refused(result, *words):
    assert_one_line_error(result, *words)
    for foreign in FOREIGN:
        assert foreign not in result.stderr.split("rfa: error: ", 1)[1], result.stderr


def chain_yaml(tmp_path, name="chain.yaml", **layer):
    """A small architecture file whose second layer has the fields ``layer``."""
    path = tmp_path / name
    fields = ", ".join(f"{key}: {value}" for key, value in {"kernel": 3, **layer}.items())
    path.write_text(f"layers:\n  - {{name: x, op: input}}\n  - {{name: c1, op: conv, {fields}}}\n")
    return path


# -- hangs and super-linear work ----------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    {"kernel": "1" + "0" * 5000},                 # thousands of digits
    {"stride": 10**18},                           # beyond any window
    {"kernel": 2**40},
], ids=["5000 digits", "stride 1e18", "kernel 2^40"])
def test_huge_numbers_are_refused(rfa, tmp_path, layer):
    result = rfa("analyze", str(chain_yaml(tmp_path, **layer)), "--res", "224")
    assert_refused(result)
    assert "digits" in result.stderr or "beyond" in result.stderr


def test_growth_beyond_2_64_is_refused_fast():
    b = GraphBuilder()
    x = b.input()
    for _ in range(300):
        x = b.conv(x, 3, stride=2**20)
    with pytest.raises(RFAError, match="beyond 2\\^64"):
        analyze(b.build(), 224)


def test_a_slow_forward_is_stopped_by_the_timeout(rfa, tmp_path):
    path = tmp_path / "slow.py"
    path.write_text("import time\nfrom torch import nn\n"
                    "class Slow(nn.Module):\n"
                    "    def __init__(self):\n        super().__init__()\n        self.c = nn.Conv2d(3, 3, 3)\n"
                    "    def forward(self, x):\n        time.sleep(30)\n        return self.c(x)\n"
                    "model = Slow()\n")
    pytest.importorskip("torch")
    result = rfa("analyze", str(path), "--res", "32", "--timeout", "5")
    assert_refused(result, "took longer than 5 s")


def test_progress_is_shown_on_a_terminal(tmp_path):
    """With standard error on a terminal, the steps show on a spinner line; the report on
    standard output is unchanged."""
    import pty

    leader, follower = pty.openpty()
    done = subprocess.run([sys.executable, "-m", "rfa_toolbox.cli", "analyze", VGG, "--res", "224", "-f", "json"],
                          stdout=subprocess.PIPE, stderr=follower, timeout=120)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert done.returncode == 0 and json.loads(done.stdout)["r"] == [268, 268]
    assert b" ..." in shown and any(step in shown for step in (b"reading", b"analyzing", b"verifying"))


# -- silently wrong answers ---------------------------------------------------------------------

@pytest.mark.parametrize("res, shape", [("224", "3x100x100"), ("64x64", "1x64x32"), ("32", "3x32x48")])
def test_resolution_and_input_shape_that_disagree(rfa, res, shape):
    assert_refused(rfa("analyze", VGG, "--res", res, "--input-shape", shape), "disagree")


def test_resolution_and_input_shape_that_agree(rfa):
    result = rfa("analyze", VGG, "--res", "224", "--input-shape", "3x224x224", "-f", "json")
    assert result.returncode == 0 and json.loads(result.stdout)["resolution"] == [224, 224]


def test_statuses_are_decided_on_exact_numbers():
    """r = 1 + 2229999999/10^7 = 223.9999999, shown as 224 when rounded: the model is fully
    utilized at 224 (r < R exactly), and the last conv is not underutilized."""
    b = GraphBuilder()
    x = b.upsample(b.input(), factor=10**7, mode="nearest")
    x = b.conv(x, 2**31 - 1)
    b.conv(x, 2230000001 - 2**31 + 1, name="last")
    report = analyze(b.build(), 224)
    assert report.fully_utilized and report.layer("last").status == "ok"
    assert not analyze(b.graph, 223).fully_utilized


@pytest.mark.parametrize("where", ["import", "init", "forward"])
def test_what_a_model_prints_stays_off_the_report(rfa, tmp_path, where):
    pytest.importorskip("torch")
    path = tmp_path / "noisy.py"
    path.write_text(
        "from torch import nn\n" + ("print('hello from import')\n" if where == "import" else "")
        + "class Noisy(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        + ("        print('hello from init')\n" if where == "init" else "")
        + "        self.c = nn.Conv2d(3, 3, 3)\n    def forward(self, x):\n"
        + ("        print('hello from forward')\n" if where == "forward" else "")
        + "        return self.c(x)\nmodel = Noisy()\n")
    result = rfa("analyze", str(path), "--res", "32", "-f", "json")
    assert result.returncode == 0
    assert json.loads(result.stdout)["r"] == [3, 3] and f"hello from {where}" in result.stderr


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_the_input_channels_come_from_what_consumes_the_input(rfa, tmp_path, channels):
    """The first conv is functional (an nn.Parameter weight): its channels are found."""
    pytest.importorskip("torch")
    path = tmp_path / "functional.py"
    path.write_text("import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
                    "class Functional(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                    f"        self.w = nn.Parameter(torch.rand(8, {channels}, 5, 5))\n"
                    "        self.c = nn.Conv2d(8, 8, 3)\n"
                    "    def forward(self, x):\n        return self.c(F.conv2d(x, self.w))\n"
                    "model = Functional()\n")
    result = rfa("analyze", str(path), "--res", "32", "-f", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["r"] == [7, 7] and data["layers"][0]["shape"] == [channels, 32, 32]


# -- exit codes and messages --------------------------------------------------------------------

@pytest.mark.parametrize("where", ["import", "factory", "init", "forward", "example_inputs"])
def test_sys_exit_in_model_code(rfa, tmp_path, where):
    pytest.importorskip("torch")
    exits = {w: (" " * (4 if w in ("factory", "example_inputs") else 8) + "sys.exit(7)\n" if w == where else "")
             for w in ("factory", "init", "forward", "example_inputs")}
    code = ("import sys\nimport torch\nfrom torch import nn\n"
            + ("sys.exit(7)\n" if where == "import" else "")
            + "class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n" + exits["init"]
            + "        self.c = nn.Conv2d(3, 3, 3)\n    def forward(self, x):\n" + exits["forward"]
            + "        return self.c(x)\n")
    if where == "factory":
        code += "def build_model():\n" + exits["factory"] + "    return M()\n"
    elif where == "example_inputs":
        code += ("model = M()\ndef example_inputs(res):\n" + exits["example_inputs"]
                 + "    return torch.rand(1, 3, 8, 8)\n")
    path = tmp_path / "exits.py"
    path.write_text(code)
    assert_refused(rfa("analyze", str(path), "--res", "32"), "sys.exit(7)")


@pytest.mark.parametrize("content, words", [
    (b"\x00\x01\x02\xff\xfe garbage", "not a text file"),
    (b"\xff\xd8\xff\xe0 jpeg", "not a text file"),
    ("layers: " + "[" * 100_000, "nested too deeply"),
    ('{"layers": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    ("layers:\n  - {name: x, op: input}\n  - {name: x, op: input}\nname: a\nname: b\n", "given twice"),
    ('{"layers": [], "layers": []}', "given twice"),
    ("1: x\nlayers: []\n", "unknown top-level keys: 1"),
    ("layers: [{name: [1], op: input}]", "'name' must be non-empty text"),
    ("layers: [{name: x, op: input}, {name: c, op: conv, kernel: 3, in_channels: 0}]", "in_channels must be"),
    ("layers: [{name: x, op: input}, {name: g, op: global_avg_pool, axes: [true]}]", "axes must be"),
    ("layers: [{name: x, op: input}]\noutputs: 0\n", "'outputs' must be"),
], ids=["binary", "jpeg", "deep yaml", "deep json", "duplicate yaml", "duplicate json", "int key",
        "list name", "zero channels", "bool axis", "outputs 0"])
def test_architecture_files_of_the_wrong_shape(rfa, tmp_path, content, words):
    path = tmp_path / ("model.json" if str(content).lstrip("b'").startswith("{") else "model.yaml")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_refused(rfa("analyze", str(path), "--res", "224"), words)


def test_utf16_yaml_is_read(rfa, tmp_path):
    path = tmp_path / "utf16.yaml"
    path.write_bytes((EXAMPLES / "vgg_style.yaml").read_text().encode("utf-16"))
    result = rfa("analyze", str(path), "--res", "224", "-f", "json")
    assert result.returncode == 0 and json.loads(result.stdout)["r"] == [268, 268]


def test_files_that_cannot_be_read(rfa, tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert_refused(rfa("analyze", str(fifo), "--res", "224"), "not a regular file")
    assert_refused(rfa("analyze", str(tmp_path), "--res", "224"), "cannot read")
    assert_refused(rfa("analyze", str(EXAMPLES / "vgg_style.yaml" / "x.yaml"), "--res", "224"))
    assert_refused(rfa("structure", "show", str(fifo)), "not a regular file")


@pytest.mark.parametrize("target, words", [("/dev/full", "the disk is full"), ("{tmp}/", "is a folder"),
                                           ("{tmp}/file.txt/x.json", "a part of the path is a file")])
def test_outputs_that_cannot_be_written(rfa, tmp_path, target, words):
    (tmp_path / "file.txt").write_text("x")
    assert_refused(rfa("analyze", VGG, "--res", "224", "-o", target.format(tmp=tmp_path)), words)


def test_a_render_name_is_checked_before_the_report_is_written(rfa, tmp_path):
    result = rfa("analyze", VGG, "--res", "224", "--render", str(tmp_path / "x.txt"))
    assert_refused(result, ".svg, .png, .pdf, .dot")
    assert result.stdout == ""


def test_closed_standard_streams():
    command = [sys.executable, "-m", "rfa_toolbox.cli", "analyze", VGG, "--res", "224"]
    closed_out = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                close_fds=True, pass_fds=(), timeout=120,
                                preexec_fn=lambda: os.close(1))
    assert_refused(closed_out, "standard output is closed")
    closed_err = subprocess.run(command[:-2] + ["--res", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                timeout=120, preexec_fn=lambda: os.close(2))
    assert closed_err.returncode == 2


@pytest.mark.parametrize("name", ["[bold]x[/bold]", "[link=http://evil]click[/link]", "a|b", "two\nlines",
                                  "\x1b[31mred", "`tick`"])
def test_names_are_data_in_every_format(rfa, tmp_path, name):
    b = GraphBuilder(name=name)
    x = b.input(name=f"in {name}")
    b.conv(x, 3, name=name)
    path = tmp_path / "names.json"
    save_spec(b.build(), path)
    table = rfa("analyze", str(path), "--res", "2").stdout
    markdown = rfa("analyze", str(path), "--res", "2", "-f", "markdown").stdout
    data = json.loads(rfa("analyze", str(path), "--res", "2", "-f", "json").stdout)
    assert data["layers"][1]["name"] == name  # JSON keeps the name as it is
    escaped = name.replace("\n", "\\n").replace("\x1b", "\\x1b")
    assert escaped in table and "\x1b" not in table and "\x1b]8" not in table
    rows = [line for line in markdown.splitlines() if line.startswith("| 2 |")]
    assert len(rows) == 1 and rows[0].count(" | ") == 9  # one row, ten cells: nothing forged
    structure = tmp_path / "s.json"
    structure.write_text(json.dumps({"structure": {name: 2, "other": 1}}))
    shown = rfa("structure", "show", str(structure)).stdout.splitlines()
    assert len(shown) == 4  # header, two layers, count: no forged line
    picture = tmp_path / "names.svg"  # the diagram: dot draws it, and no control character reaches it
    rfa("analyze", str(path), "--res", "2", "--render", str(picture))
    dot_source = tmp_path / "names.dot"
    rfa("analyze", str(path), "--res", "2", "--render", str(dot_source))
    source = dot_source.read_text()
    assert "\x1b" not in source and "\x1b" not in picture.read_text()
    assert html.escape(escaped) in source.replace("\u200b", "")  # the escaped name, as in the table


def test_a_keras_archive_that_inflates_is_refused_early(rfa, tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (80 * 2**20))
    assert path.stat().st_size < 2**20
    assert_refused(rfa("analyze", str(path), "--res", "224"), "more than 64 MB")


@pytest.mark.parametrize("call, words", [
    (lambda: analyze(VGG, 224, colour=True), "unknown option colour"),
    (lambda: analyze(VGG, b"224"), "positive integer"),
    (lambda: analyze(VGG, True), "positive integer"),
    (lambda: analyze(123, 224), "cannot analyze an object of type int"),
    (lambda: analyze(VGG, 224).layer("nothing"), "no layer 'nothing'"),
    (lambda: suggest(VGG, 224, limit=-1), "limit must be a positive number"),
    (lambda: analyze(VGG, 224, timeout=float("nan")), "timeout must be"),
], ids=["option", "bytes", "bool", "int model", "layer", "limit", "timeout"])
def test_api_misuse_raises_library_errors(call, words):
    with pytest.raises(RFAError, match=words):
        call()


def test_api_accepts_numpy_integers():
    numpy = pytest.importorskip("numpy")
    assert analyze(VGG, numpy.int64(224)).r == (268, 268)
    assert analyze(VGG, [numpy.int32(224), 300]).resolution == (224, 300)


@pytest.mark.parametrize("res", ["2_24", "２２４", "1e3", "224x", "-5", "0"])
def test_resolutions_python_would_accept_but_we_do_not(rfa, res):
    assert_refused(rfa("analyze", VGG, "--res", res))


@pytest.mark.parametrize("args, words", [
    (["--strict", "--allow-unknown"], "contradict"),
    (["--timeout", "nan"], "seconds"),
    (["--timeout", "inf"], "seconds"),
])
def test_options_that_make_no_sense(rfa, args, words):
    assert_refused(rfa("analyze", VGG, "--res", "224", *args), words)


def test_band_outside_zero_one_is_refused():
    from rfa_toolbox.nas import evaluate

    with pytest.raises(RFAError, match="band must be"):
        evaluate(load_spec(EXAMPLES / "vgg_style.yaml"), 224, band=-0.5)


# -- the first hour -----------------------------------------------------------------------------

def test_rfa_alone_prints_the_help(rfa):
    result = rfa()
    assert result.returncode == 2 and "Usage: rfa" in result.stderr and "rfa: error" not in result.stderr


@pytest.mark.parametrize("name, words", [("raft_small", "example_inputs")])  # detectors: test_detectors
def test_models_that_need_another_way_say_which(rfa, name, words):
    pytest.importorskip("torchvision")
    assert_refused(rfa("analyze", f"torchvision:{name}", "--res", "224"), words)


@pytest.mark.parametrize("width", [60, 80, 100])
def test_tables_fit_the_terminal(width):
    text = format_table(analyze(VGG, 224, suggestions=True), width=width)
    assert max(len(line) for line in text.splitlines() if not line.startswith(("note", "model"))) <= width
    assert "pool5" in text  # names stay, cut if need be
    assert "…│" not in text.replace(" ", "")  # numbers are never cut: columns are dropped instead


def test_narrow_tables_drop_columns_in_order():
    """Narrow tables drop offset and jump first, then shape and input r_min; every number left
    is whole (conv5_4: r 252, input r_min 220, jump 16, offset -118)."""
    report = analyze(VGG, 224)
    columns = ["#", "layer", "op", "window", "r_min", "r_max"]
    for width, kept, cells in (
            (140, columns + ["input r_min", "jump", "offset", "status", "shape"], ["252", "252", "220", "16", "-118"]),
            (100, columns + ["input r_min", "status", "shape"], ["252", "252", "220"]),
            (80, columns + ["status"], ["252", "252"])):
        lines = format_table(report, width=width).splitlines()
        header = next(line for line in lines if "layer" in line and "r_min" in line)
        assert [c.strip() for c in header.strip("┃").split("┃")] == kept, width
        row = next(line for line in lines if " conv5_4 " in line)
        assert [c.strip() for c in row.strip("│").split("│")][4:4 + len(cells)] == cells, width


def test_suggest_markdown_and_counts(rfa):
    markdown = rfa("suggest", VGG, "--res", "224", "-f", "markdown").stdout
    first = markdown.splitlines()[0]
    assert first.startswith("# Suggestions: ") and "vgg_style.yaml" in first
    assert "| 1 | stride of pool4 to 1 | 196 | yes |" in markdown
    from rfa_toolbox.formats import count

    assert [count(v) for v in (169e9, 2.64e12, 999.6e9, 5.48e6, 12)] == ["169G", "2.64T", "1T", "5.48M", "12"]


def test_squeeze_excitation_pools_are_not_counted_as_heads():
    b = GraphBuilder()
    x = b.conv(b.input(), 3)
    gate = b.conv(b.global_pool(x), 1)
    x = b.mul(x, gate)
    b.dense(b.global_pool(x, name="head_pool"), name="fc")
    report = analyze(b.build(), 224)
    assert report.context_layers == ["global_avg_pool1", "conv2"]  # the pool and the gate's conv
    text = format_table(report)
    assert "2 head layers and 2 global-context layers" in text


def test_report_json_of_many_layers_is_written_fast_enough_to_stay_json():
    b = GraphBuilder()
    x = b.input()
    for _ in range(2000):
        x = b.conv(x, 1)
    text = analyze(b.build(), 8).to_json()
    assert len(json.loads(text)["layers"]) == 2001 and text.count("\n") > 2000


def test_the_zoo_refuses_an_empty_model_list(rfa):
    pytest.importorskip("torchvision")
    assert_refused(rfa("zoo", "torchvision", "--res", "224", "--models", ","), "names no model")
