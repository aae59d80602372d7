"""Scanning a whole model library: every model built without weights, encoded and analyzed,
with a time limit per model; failures are kept with their reason."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from rfa_toolbox.analyzer import analyze_graph
from rfa_toolbox.errors import RFAError
from rfa_toolbox.graph import Graph
from rfa_toolbox.timeouts import TimeLimitExceeded, time_limit

LIBRARIES = ("torchvision", "timm", "keras")


@dataclass
class ZooRow:
    """One analyzed model (the columns of table 7 of Richter et al., plus timings)."""

    model: str
    r: tuple[Optional[float], ...]               #: per axis, None where infinite
    max_resolution: tuple[Optional[float], ...]  #: per axis
    fully_utilized: bool
    unproductive: int
    underutilized: int
    build_s: float
    encode_s: float
    unknown_ops: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (per-axis values as lists)."""
        data = asdict(self)
        data["r"], data["max_resolution"] = list(self.r), list(self.max_resolution)
        return data


def model_names(library: str) -> list[str]:
    """Every model name of ``library`` (prefixed, such as ``torchvision:resnet18``)."""
    if library == "torchvision":
        import torch
        import torchvision.models as models

        names = models.list_models(module=models) + models.list_models(module=models.segmentation)
        return [f"torchvision:{n}" for n in names]
    if library == "timm":
        import timm
        import torch  # noqa: F401

        return [f"timm:{n}" for n in timm.list_models()]
    if library == "keras":
        from .keras import import_keras

        keras = import_keras()
        return [f"keras:{n}" for n in sorted(dir(keras.applications))
                if n[:1].isupper() and callable(getattr(keras.applications, n))]
    raise RFAError(f"unknown library {library!r} (one of {', '.join(LIBRARIES)})")


def builder(name: str) -> Callable[[], Any]:
    """A function that builds the model (the part timed as "build")."""
    library, _, model = name.partition(":")
    if library == "keras":
        from .keras import load_keras_application

        return lambda: load_keras_application(model)
    from .torch import models

    return lambda: models.load(name)


def encoder(name: str, resolution: str) -> Callable[[Any], Graph]:
    """A function from the built model to its graph (the part timed as "encode")."""
    if name.startswith("keras:"):
        from .keras import graph_from_keras_json

        return lambda built: graph_from_keras_json(built, name=name)
    from .torch.inputs import encode_model

    return lambda built: encode_model(built, resolution)


def scan_one(name: str, resolution: str, timeout: Optional[float] = None) -> ZooRow:
    """Build, encode and analyze one model; raises on failure or timeout."""
    with time_limit(timeout, name), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the libraries' deprecation notes, once per model
        start = time.perf_counter()
        built = builder(name)()
        built_at = time.perf_counter()
        graph = encoder(name, resolution)(built)
        report = analyze_graph(graph, resolution, model=name).report
        done = time.perf_counter()
    return ZooRow(name, report.r, report.max_resolution, report.fully_utilized,
                  len(report.unproductive), len(report.underutilized),
                  round(built_at - start, 3), round(done - built_at, 3), list(report.unknown_ops))


def scan(names: list[str], resolution: str, timeout: Optional[float] = None,
         progress: str = "none") -> tuple[list[ZooRow], list[tuple[str, str]]]:
    """Every model of ``names``: the rows, sorted by r then name, and the failures with
    their reason. ``progress`` is "bar" (a progress bar on standard error, for a terminal),
    "lines" (one line per model on standard error, for logs) or "none"."""
    rows: list[ZooRow] = []
    failures: list[tuple[str, str]] = []
    names_iter: Iterable[str] = names
    if progress == "bar":
        from rich.console import Console
        from rich.progress import track

        names_iter = track(names, description="analyzing", transient=True, console=Console(stderr=True))
    for number, name in enumerate(names_iter, 1):
        start = time.perf_counter()
        try:
            rows.append(scan_one(name, resolution, timeout))
            outcome = f"r {'x'.join('inf' if v is None else f'{v:g}' for v in rows[-1].r)}"
        except TimeLimitExceeded as exc:
            failures.append((name, str(exc)))
            outcome = "failed"
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            failures.append((name, reason if isinstance(exc, RFAError) else f"{type(exc).__name__}: {reason}"))
            outcome = "failed"
        if progress == "lines":
            sys.stderr.write(f"[{number}/{len(names)}] {name}: {outcome}"
                             f" ({time.perf_counter() - start:.1f} s)\n")
            sys.stderr.flush()
    rows.sort(key=lambda row: (-max((v for v in row.r if v is not None), default=0), row.model))
    return rows, failures
