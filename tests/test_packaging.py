"""Packaging: the core imports no framework, and the wheel maps encoders/ into rfa_toolbox."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import ROOT

FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras", "timm")


def test_core_and_cli_import_no_framework(tmp_path):
    code = (
        "import sys, rfa_toolbox, rfa_toolbox.cli, rfa_toolbox.encoders\n"
        f"loaded = [m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_wheel_has_encoders_only_as_a_subpackage(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("rfa_toolbox-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "rfa_toolbox/encoders/__init__.py" in names
    for module in ("layout.py", "pending.py", "torch/encoder.py", "torch/handlers/windows.py", "keras/walk.py",
                   "onnx/walk.py", "onnx/handlers/windows.py"):
        assert f"rfa_toolbox/encoders/{module}" in names
    assert not [n for n in names if n.startswith("encoders/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rfa = rfa_toolbox.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_encoders_have_one_name():
    """From a checkout, ``import encoders`` would give a second copy of every encoder module (a
    handler registered through one copy is unseen by the other): it is refused with a message."""
    result = subprocess.run([sys.executable, "-c", "import encoders.torch"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 1
    assert "ImportError: the encoders are the package rfa_toolbox.encoders" in result.stderr
    same = subprocess.run([sys.executable, "-c", "import rfa_toolbox.encoders.torch as t; print(t.__name__)"],
                          capture_output=True, text=True, cwd=ROOT)
    assert same.returncode == 0 and same.stdout.strip() == "rfa_toolbox.encoders.torch"


def test_reading_an_architecture_file_imports_no_encoder(tmp_path):
    """YAML and JSON architecture files are read by the core alone (a JSON file is told apart
    from a Keras model's JSON without importing the Keras encoder)."""
    code = (
        "import sys\n"
        "from rfa_toolbox import analyze, load_spec, save_spec\n"
        f"graph = load_spec({str(ROOT / 'examples' / 'vgg_style.yaml')!r})\n"
        "save_spec(graph, 'vgg.json')\n"
        "assert analyze('vgg.json', 224).r == (268, 268)\n"
        "print(','.join(m for m in sys.modules if m.startswith('rfa_toolbox.encoders')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
