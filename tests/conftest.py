"""Shared helpers for the test suite."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:  # torch before tensorflow, always: the other order aborts the process (LLVM options)
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:
    pass

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def shared_dir() -> Path:
    """The shared/ folder beside the checkout (override with RFA_SHARED_DIR)."""
    return Path(os.environ.get("RFA_SHARED_DIR", ROOT.parent / "shared"))


@functools.cache
def paper_values() -> dict:
    """The published values of ../shared/reference/paper_values.json (missing file: an error,
    never a silent skip)."""
    return json.loads((shared_dir() / "reference" / "paper_values.json").read_text(encoding="utf-8"))


def rf(graph, name: str) -> tuple:
    """(r_min per axis, r_max per axis) of one node of ``graph``."""
    from rfa_toolbox import propagate

    node = propagate(graph)[name]
    return tuple(a.r_min for a in node), tuple(a.r_max for a in node)


def run_rfa(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real ``rfa`` command in a subprocess and capture its output."""
    return subprocess.run([sys.executable, "-m", "rfa_toolbox.cli", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


@pytest.fixture
def rfa():
    """The ``rfa`` command as a function: ``rfa("analyze", path, "--res", "224")``."""
    return run_rfa
