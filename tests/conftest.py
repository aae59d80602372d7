"""Shared helpers for the test suite."""

from __future__ import annotations

import functools
import json
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


DATA = ROOT / "tests" / "data"


@functools.cache
def paper_values() -> dict:
    """The published values of tests/data/paper_values.json (sources in tests/data/README.md;
    a missing file is an error, never a silent skip)."""
    return json.loads((DATA / "paper_values.json").read_text(encoding="utf-8"))


def pairs(paths) -> tuple:
    """The (r, j) of each (r, j, offset) path of a min or max set."""
    return tuple(path[:2] for path in paths)


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
