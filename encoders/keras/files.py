"""Reading Keras models: ``.keras`` archives, JSON files, and keras.applications by name."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from rfa_toolbox.files import MAX_BYTES, decode, parse, read_bytes, read_data, reason

from .ir import KerasFormatError


def read_keras_file(path: Path) -> Any:
    """The model configuration of a ``.keras`` archive (its ``config.json``, read up to
    `MAX_BYTES` uncompressed whatever its header claims; the weights are never read) or a
    ``.json`` file holding ``model.to_json()``."""
    if path.suffix.lower() != ".keras":
        return read_data(path, "a Keras model JSON", KerasFormatError)
    if not path.is_file():
        read_bytes(path, "a .keras archive", KerasFormatError)  # says what is wrong
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise KerasFormatError(f"{path} is a zip archive without config.json; save it with model.save()")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_BYTES:
                raise _too_large(path)
            with archive.open(info) as member:
                data = member.read(MAX_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError):
        raise KerasFormatError(f"{path} is not a .keras archive (not a zip file, or a damaged one)") from None
    except (RuntimeError, ValueError) as exc:  # encrypted members, bad compression data
        raise KerasFormatError(f"{path}: config.json cannot be read from the archive ({exc})") from None
    except OSError as exc:
        raise KerasFormatError(f"cannot read {path}: {reason(exc)}") from None
    if len(data) > MAX_BYTES:
        raise _too_large(path)
    return parse(decode(data, f"{path}:config.json", KerasFormatError), path, yaml_too=False,
                 error=KerasFormatError)


def _too_large(path: Path) -> KerasFormatError:
    return KerasFormatError(f"{path}: config.json inflates to more than {MAX_BYTES // 2**20} MB; a model"
                            " configuration is far smaller, so the archive is refused")


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
    builder = getattr(keras.applications, name, None) if name[:1].isupper() else None
    if builder is None or not callable(builder):
        import difflib

        names = [n for n in dir(keras.applications) if n[:1].isupper()]
        close = difflib.get_close_matches(name, names, n=3)
        raise KerasFormatError(f"keras.applications has no model {name!r}"
                               + (f"; did you mean {', '.join(close)}?" if close else ""))
    return json.loads(builder(weights=None).to_json())
