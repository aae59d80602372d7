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
    assert not [n for n in names if n.startswith("encoders/")]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rfa = rfa_toolbox.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
