"""Shared helpers for the test suite."""

from __future__ import annotations

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


def run_rfa(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real ``rfa`` command in a subprocess and capture its output."""
    return subprocess.run([sys.executable, "-m", "rfa_toolbox.cli", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=600)


@pytest.fixture
def rfa():
    """The ``rfa`` command as a function: ``rfa("analyze", path, "--res", "224")``."""
    return run_rfa
