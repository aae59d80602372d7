"""MkDocs hook: lay out the package as it is installed, for the API reference.

The encoders live in the top-level folder ``encoders/`` and are installed as
``rfa_toolbox.encoders``; mkdocstrings reads sources without installing them, so when the
configuration is read this hook copies ``rfa_toolbox/`` with ``encoders/`` inside it to
``.cache/api-src``, where the API pages find ``rfa_toolbox.encoders...`` under its one name.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".cache" / "api-src"


@event_priority(100)  # before mkdocstrings reads its search paths in its own on_config
def on_config(config: Any) -> Any:
    """Copy the sources into the installed layout (fresh on every build)."""
    shutil.rmtree(TARGET, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "rfa_toolbox", TARGET / "rfa_toolbox", ignore=ignore)
    shutil.copytree(ROOT / "encoders", TARGET / "rfa_toolbox" / "encoders", ignore=ignore)
    return config
