"""Naming PyTorch models: ``model.py``, ``model.py:NAME``, ``torchvision:NAME``, ``timm:NAME``.

Weights are never downloaded: torchvision models are built with ``weights=None`` (and
``weights_backbone=None``), timm models with ``pretrained=False``.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.util
import inspect
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from rfa_toolbox.errors import RFAError, shown
from rfa_toolbox.graph import Graph
from rfa_toolbox.sources import is_torch_module, is_torch_module_class

FACTORIES = ("build_model", "create_model", "get_model")


class ModelLoadError(RFAError):
    """The named model cannot be found, imported or built."""


@dataclass
class TorchModel:
    """A built module, its display name, and the model file's ``example_inputs`` and
    ``anchors`` if any."""

    module: Any
    name: str
    example_inputs: Optional[Callable[..., Any]] = None
    anchors: Optional[dict[str, list[tuple[float, ...]]]] = None  #: per level, see `file_anchors`


def load(source: str) -> TorchModel:
    """The model named by ``source`` (see the module docstring)."""
    if source.startswith(("torchvision:", "timm:")):
        library, _, rest = source.partition(":")
        name, _, query = rest.partition("?")
        build = _torchvision if library == "torchvision" else _timm
        return TorchModel(build(name, builder_options(query, source)), source)
    path, _, name = source.partition(".py:")
    path = path + ".py" if name else source
    return load_file(Path(path), name or None)


def builder_options(query: str, source: str) -> dict[str, Any]:
    """The keyword options after ``?`` in ``timm:NAME?features_only=True&out_indices=1,2``:
    True, False, None, integers, numbers, comma-separated lists (as tuples), else strings.
    Nothing is evaluated."""
    options: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, equals, text = item.partition("=")
        if not equals or not key.isidentifier():
            raise ModelLoadError(f"{shown(source)}: options after ? are name=value pairs joined by &,"
                                 f" such as features_only=True&out_indices=1,2,3 (not {shown(item)})")
        if key.startswith("_") or key in WEIGHT_OPTIONS:
            why = "weights are never downloaded" if key in WEIGHT_OPTIONS else "names starting with _ are private"
            raise ModelLoadError(f"{shown(source)}: the option {key} is not accepted ({why})")
        if key in options:
            raise ModelLoadError(f"{shown(source)}: the option {key} is given twice")
        values = [_literal(v) for v in text.split(",")] if "," in text else None
        options[key] = tuple(values) if values is not None else _literal(text)
    return options


#: Builder options that would fetch weights: rfa builds every model without them.
WEIGHT_OPTIONS = ("weights", "weights_backbone", "pretrained", "pretrained_cfg", "checkpoint_path")


def _literal(text: str) -> Any:
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    for kind in (int, float):
        try:
            return kind(text) if text.isascii() else text
        except ValueError:
            continue
    return text


def _torchvision(name: str, options: dict[str, Any]) -> Any:
    import torch  # noqa: F401 - torch before torchvision, always
    import torchvision.models as models

    available = models.list_models()
    if name not in available:
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"torchvision has no model {name!r}{hint}")
    builder = models.get_model_builder(name)
    kwargs: dict[str, Any] = {**options, "weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None
    return _built(builder, kwargs, f"torchvision:{name}", options)


def _built(builder: Callable[..., Any], kwargs: dict[str, Any], label: str, options: dict[str, Any]) -> Any:
    """``builder(**kwargs)``, its failure (a wrong option, say) in one line."""
    try:
        with warnings.catch_warnings():  # the library's remarks on odd options; its error is said below
            warnings.simplefilter("ignore")
            return builder(**kwargs)
    except Exception as exc:
        given = f" with the options {', '.join(options)}" if options else ""
        raise ModelLoadError(f"{label} cannot be built{given}: {type(exc).__name__}:"
                             f" {first_line(exc)[:200]}") from None


def _timm(name: str, options: dict[str, Any]) -> Any:
    try:
        import timm
        import torch  # noqa: F401
    except ImportError:
        raise ModelLoadError("timm is not installed: pip install 'rfa-toolbox[timm]'") from None
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(f"timm has no model {name!r}{hint}")
    return _built(timm.create_model, {"model_name": name, **options, "pretrained": False}, f"timm:{name}",
                  options)


def import_file(path: Path) -> Any:
    """Import the Python file at ``path`` as a fresh module."""
    if not path.is_file():
        raise ModelLoadError(f"no such file: {path}")
    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"rfa_model_{key}", path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        if "codec can't decode" in str(exc.msg):
            raise ModelLoadError(f"cannot import {path}: it is not UTF-8 text (line {exc.lineno})") from None
        raise ModelLoadError(f"cannot import {path}: syntax error on line {exc.lineno}: {exc.msg}") from None
    except KeyboardInterrupt:
        raise ModelLoadError(f"{path} raised KeyboardInterrupt while being imported") from None
    except SystemExit as exc:
        raise ModelLoadError(f"{path} called sys.exit({exc.code!r}) while being imported; a model"
                             " file must define the model, not run a program") from None
    except Exception as exc:
        raise ModelLoadError(f"cannot import {path}: {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        with contextlib.suppress(ValueError):  # the file may have rearranged sys.path itself
            sys.path.remove(str(path.resolve().parent))
    return module


def load_file(path: Path, name: Optional[str] = None) -> TorchModel:
    """The model of a Python file: ``name``, else ``model``, a factory, or the only module class."""
    module = import_file(path)
    example = getattr(module, "example_inputs", None)
    anchors = file_anchors(getattr(module, "anchors", None), path)
    label = f"{path}:{name}" if name else str(path)
    if name is not None:
        if not name.isidentifier() or name.startswith("_"):
            raise ModelLoadError(f"{path}:{shown(name)}: NAME must be a public name the file defines")
        if not hasattr(module, name):
            raise ModelLoadError(f"{path} defines no {name!r} ({_found(module)})")
        return TorchModel(_build(getattr(module, name), f"{path}:{name}"), label, example, anchors)
    model = getattr(module, "model", None)
    if model is not None and (is_torch_module(model) or isinstance(model, Graph)):
        return TorchModel(model, label, example, anchors)
    if callable(model):  # a function or class named model: a factory
        return TorchModel(_build(model, f"{path}:model"), label, example, anchors)
    for factory in FACTORIES:
        if callable(getattr(module, factory, None)):
            return TorchModel(_build(getattr(module, factory), f"{path}:{factory}"), label, example, anchors)
    classes = _module_classes(module)
    buildable = []
    for cls in classes:
        try:
            buildable.append(cls())
        except TypeError:
            continue
        except SystemExit as exc:
            raise ModelLoadError(f"{path}: {cls.__name__}() called sys.exit({exc.code!r})") from None
        except Exception as exc:
            raise ModelLoadError(f"{path}: {cls.__name__}() failed: {type(exc).__name__}: {first_line(exc)}") from None
    if len(buildable) == 1:
        return TorchModel(buildable[0], label, example, anchors)
    if len(buildable) > 1:
        names = ", ".join(type(m).__name__ for m in buildable)
        raise ModelLoadError(f"{path} defines several nn.Module classes ({names}): pick one with"
                             f" {path}:NAME")
    raise ModelLoadError(f"no model found in {path}: define `model`, a factory {'/'.join(FACTORIES)}()"
                         f" or one nn.Module class that builds without arguments ({_found(module)})")


def file_anchors(value: Any, path: Path) -> Optional[dict[str, list[tuple[float, ...]]]]:
    """A model file's ``anchors``: per output level (``"P3"``, the first part of the output
    names ``P3/cls``), a list of anchor sizes, each one number (square) or one per axis."""
    if value is None:
        return None
    example = "such as {'P3': [32, (64, 32)]}"
    if not isinstance(value, dict) or not value:
        raise ModelLoadError(f"{path}: anchors must map level names to lists of sizes, {example}")
    out: dict[str, list[tuple[float, ...]]] = {}
    for level, sizes in value.items():
        if not isinstance(level, str) or not level:
            raise ModelLoadError(f"{path}: anchors: the level {shown(level)} is not a name such as 'P3'")
        if not isinstance(sizes, (list, tuple)) or not sizes:
            raise ModelLoadError(f"{path}: anchors[{shown(level)}] must be a list of sizes, {example}")
        items = [size if isinstance(size, (list, tuple)) else (size,) for size in sizes]
        for item in items:
            if not item or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 2**31
                                   for v in item):
                raise ModelLoadError(f"{path}: anchors[{shown(level)}]: {shown(item)} is not a size (a number"
                                     " above 0, or one per axis)")
        out[level] = [tuple(float(v) for v in item) for item in items]
    return out


def _module_classes(module: Any) -> list[type]:
    out = []
    for value in vars(module).values():
        if inspect.isclass(value) and value.__module__ == module.__name__ and is_torch_module_class(value):
            out.append(value)
    return out


def _found(module: Any) -> str:
    modules = [k for k, v in vars(module).items() if is_torch_module(v)]
    classes = [c.__name__ for c in _module_classes(module)]
    functions = [k for k, v in vars(module).items() if inspect.isfunction(v)
                 and v.__module__ == module.__name__]
    parts = [f"{what}: {', '.join(names)}" for what, names in
             (("modules", modules), ("module classes", classes), ("functions", functions)) if names]
    return "found " + "; ".join(parts) if parts else "it defines no module, class or function"


def _build(obj: Any, label: str) -> Any:
    if is_torch_module(obj) or isinstance(obj, Graph):
        return obj
    if callable(obj):
        try:
            built = obj()
        except TypeError as exc:
            raise ModelLoadError(f"{label} cannot be built without arguments: {first_line(exc)}") from None
        except SystemExit as exc:
            raise ModelLoadError(f"{label} called sys.exit({exc.code!r}) while building the model") from None
        except Exception as exc:
            raise ModelLoadError(f"{label} failed to build: {type(exc).__name__}: {first_line(exc)}") from None
        if is_torch_module(built) or isinstance(built, Graph):
            return built
        what = "None" if built is None else f"a {type(built).__name__}"
        raise ModelLoadError(f"{label}() returned {what}, not an nn.Module")
    raise ModelLoadError(f"{label} is a {type(obj).__name__}, not an nn.Module, a Graph, a class or a factory")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
