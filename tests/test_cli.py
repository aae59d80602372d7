"""The `rfa` command run as a subprocess: formats, exit codes, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import EXAMPLES

CHAIN = """\
name: chain
layers:
  - {name: x, op: input}
  - {name: c1, op: conv, kernel: 3}
  - {name: c2, op: conv, kernel: 3, stride: 2}
  - {name: act, op: relu}
  - {name: c3, op: conv, kernel: 5, stride: 2}
  - {name: c4, op: conv, kernel: 3}
  - {name: gap, op: global_avg_pool}
  - {name: fc, op: dense}
"""
# r_min: c1 3, c2 5 (j 2), c3 5 + 4*2 = 13 (j 4), c4 13 + 2*4 = 21.
# At 12: c3 has input RF 5 < 12 but r_min 13 >= 12 -> underutilized; c4 input RF 13 >= 12 -> unproductive.


@pytest.fixture
def chain(tmp_path):
    path = tmp_path / "chain.yaml"
    path.write_text(CHAIN)
    return path


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rfa: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def test_table_has_summary_first_then_layers(rfa, chain):
    result = rfa("analyze", str(chain), "--res", "12")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("r (minimal feasible resolution): 21") < out.index("c4")
    assert "fully utilized at 12: no" in out
    assert "1 unproductive, 1 underutilized, 0 border" in out
    assert "act" not in out  # neutral ops are hidden by default
    assert "act" in rfa("analyze", str(chain), "--res", "12", "--all-layers").stdout


def test_json_follows_schema(rfa, chain):
    result = rfa("analyze", str(chain), "--res", "12", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == "rfa-toolbox/report/v2" and data["exact"] is False
    assert data["resolution"] == [12, 12]
    assert data["r"] == [21, 21]
    assert data["max_resolution"] == [21, 21]
    assert data["fully_utilized"] is False
    assert data["unproductive"] == ["c4"]
    assert data["underutilized"] == ["c3"]
    assert data["border"] == []
    rows = {row["name"]: row for row in data["layers"]}
    assert set(rows["c3"]) >= {"name", "module", "op", "kernel", "stride", "dilation", "r_min",
                               "r_max", "input_r_min", "status", "shape", "jump", "offset", "centre",
                               "aligned"}
    assert rows["c3"]["kernel"] == [5, 5] and rows["c3"]["stride"] == [2, 2]
    assert rows["c3"]["input_r_min"] == [5, 5]
    assert rows["gap"]["r_min"] == [None, None] and rows["gap"]["status"] == "head"


def test_fully_utilized_at_a_larger_resolution(rfa, chain):
    data = json.loads(rfa("analyze", str(chain), "--res", "22", "-f", "json").stdout)
    assert data["fully_utilized"] is True
    assert data["unproductive"] == data["underutilized"] == []


def test_non_square_resolution_gives_border_layers(rfa, chain):
    # 12 rows, 16 columns. c3: r_min 13 >= 12 but < 16 -> border. c4: input RF 13 >= 12 but
    # < 16 -> not unproductive; r_min 21 >= 12 and >= 16 -> underutilized.
    data = json.loads(rfa("analyze", str(chain), "--res", "12x16", "-f", "json").stdout)
    assert data["resolution"] == [12, 16]
    assert data["border"] == ["c3"]
    assert data["underutilized"] == ["c4"]
    assert data["unproductive"] == []


def test_markdown(rfa, chain):
    result = rfa("analyze", str(chain), "--res", "12", "--format", "markdown")
    assert result.returncode == 0
    assert "| 5 | `c4` | conv | k3 s1 | 21 | 21 | 13 | 4 | 0 | **unproductive** |" in result.stdout


def test_output_file(rfa, chain, tmp_path):
    target = tmp_path / "report.json"
    result = rfa("analyze", str(chain), "--res", "12", "-f", "json", "--output", str(target))
    assert result.returncode == 0
    assert result.stdout == ""
    assert json.loads(target.read_text())["r"] == [21, 21]


@pytest.mark.parametrize("fail_on, res, code", [
    ("unproductive", "12", 1),      # c4 is unproductive
    ("unproductive", "14", 0),      # input RF of c4 is 13 < 14: only underutilized
    ("underutilized", "14", 1),
    ("underutilized", "22", 0),
])
def test_fail_on_exit_codes(rfa, chain, fail_on, res, code):
    result = rfa("analyze", str(chain), "--res", res, "--fail-on", fail_on)
    assert result.returncode == code, result.stderr


def test_vgg_example_gives_the_published_r(rfa):
    data = json.loads(rfa("analyze", str(EXAMPLES / "vgg_style.yaml"), "--res", "224", "-f", "json").stdout)
    assert data["r"] == [268, 268]
    assert data["unproductive"]


def test_version(rfa):
    result = rfa("--version")
    assert result.returncode == 0 and "0.1.0" in result.stdout


def test_console_script_is_installed():
    exe = shutil.which("rfa")
    assert exe, "the rfa console script is not on PATH"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "analyze" in result.stdout


# -- bad input: one line, exit 2 ------------------------------------------------------------

def test_missing_file(rfa, tmp_path):
    assert_one_line_error(rfa("analyze", str(tmp_path / "nope.yaml"), "--res", "224"), "no such file")


def test_malformed_yaml(rfa, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("layers:\n  - {name: x, op: input\n  - [oops\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "224"), "malformed YAML", "line")


def test_malformed_json(rfa, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"layers": [ {"name": "x", "op": "input"}, ')
    assert_one_line_error(rfa("analyze", str(path), "--res", "224"), "malformed JSON", "line")


def test_cycle_names_the_nodes(rfa, tmp_path):
    path = tmp_path / "cycle.yaml"
    path.write_text("layers:\n"
                    "  - {name: x, op: input}\n"
                    "  - {name: a, op: conv, kernel: 3, inputs: [x, c]}\n"
                    "  - {name: b, op: conv, kernel: 3}\n"
                    "  - {name: c, op: add, inputs: [b]}\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "224"), "cycle", "a", "b", "c")


def test_unknown_ops_are_listed(rfa, tmp_path):
    path = tmp_path / "unknown.yaml"
    path.write_text("layers:\n"
                    "  - {name: x, op: input}\n"
                    "  - {name: a, op: convolution, kernel: 3}\n"
                    "  - {name: b, op: swish}\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "224"), "unknown ops", "convolution", "swish")


@pytest.mark.parametrize("res", ["0", "-3", "abc", "224x", "1.5", "3x3x3"])
def test_nonsense_resolution(rfa, chain, res):
    assert_one_line_error(rfa("analyze", str(chain), "--res", res), "resolution")


def test_missing_resolution_option(rfa, chain):
    assert_one_line_error(rfa("analyze", str(chain)), "--res")


def test_not_an_architecture_file(rfa, tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    assert_one_line_error(rfa("analyze", str(path), "--res", "224"), "not an architecture file")


def test_unsupported_model_name(rfa, tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("hello")
    assert_one_line_error(rfa("analyze", str(path), "--res", "224"), "cannot read")
