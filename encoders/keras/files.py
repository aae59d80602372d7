"""Reading Keras models: ``.keras`` archives, JSON files, and keras.applications by name."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from .ir import KerasFormatError


def read_keras_file(path: Path) -> Any:
    """The model configuration of a ``.keras`` archive (its ``config.json``) or a ``.json``
    file holding ``model.to_json()``."""
    if not path.is_file():
        raise KerasFormatError(f"no such file: {path}")
    if path.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    raise KerasFormatError(f"{path} is a zip archive without config.json; save it with model.save()")
                text = archive.read("config.json").decode("utf-8")
        except zipfile.BadZipFile:
            raise KerasFormatError(f"{path} is not a .keras archive (not a zip file)") from None
    else:
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise KerasFormatError(f"malformed JSON in {path}, line {exc.lineno}: {exc.msg}") from None


def import_keras() -> Any:
    """The keras package, imported quietly (TensorFlow's start-up log lines silenced)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # silences a log line; rfa computes nothing
    try:
        import keras
    except ImportError:
        raise KerasFormatError("keras is not installed: pip install 'rfa-toolbox[keras]'") from None
    return keras


def load_keras_application(name: str) -> Any:
    """The JSON configuration of ``keras.applications.NAME(weights=None)``."""
    keras = import_keras()
    builder = getattr(keras.applications, name, None)
    if builder is None or not callable(builder):
        import difflib

        names = [n for n in dir(keras.applications) if n[:1].isupper()]
        close = difflib.get_close_matches(name, names, n=3)
        raise KerasFormatError(f"keras.applications has no model {name!r}"
                               + (f"; did you mean {', '.join(close)}?" if close else ""))
    return json.loads(builder(weights=None).to_json())
