"""Scanning a whole model library: every model built without weights, encoded and analyzed,
with a time limit per model; failures are kept with their reason."""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from rfa_toolbox.analysis import analyze_graph
from rfa_toolbox.errors import RFAError
from rfa_toolbox.graph import Graph

LIBRARIES = ("torchvision", "timm", "keras")


@dataclass
class ZooRow:
    """One analyzed model (the columns of table 7 of Richter et al., plus timings)."""

    model: str
    r: Optional[float]
    max_resolution: Optional[float]
    fully_utilized: bool
    unproductive: int
    underutilized: int
    build_s: float
    encode_s: float
    unknown_ops: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for JSON and CSV."""
        return asdict(self)


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


def builder(name: str) -> Callable[[], object]:
    """A function that builds the model (the part timed as "build")."""
    library, _, model = name.partition(":")
    if library == "keras":
        from .keras import load_keras_application

        return lambda: load_keras_application(model)
    from .torch import models

    return lambda: models.load(name)


def encoder(name: str, resolution: str) -> Callable[[object], Graph]:
    """A function from the built model to its graph (the part timed as "encode")."""
    if name.startswith("keras:"):
        from .keras import graph_from_keras_json

        return lambda built: graph_from_keras_json(built, name=name)
    from .torch import encode, models

    def encode_built(built: Any) -> Graph:
        inputs = models.make_inputs(built, resolution)
        return encode(built.module, inputs, name=name)
    return encode_built


class ModelTimeout(Exception):
    """A model took longer than the time limit."""


@contextmanager
def time_limit(seconds: Optional[float]) -> Iterator[None]:
    """Raise `ModelTimeout` in the main thread after ``seconds`` (no limit when None)."""
    if not seconds:
        yield
        return

    def expire(signum, frame):
        raise ModelTimeout(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def scan_one(name: str, resolution: str, timeout: Optional[float] = None) -> ZooRow:
    """Build, encode and analyze one model; raises on failure or timeout."""
    with time_limit(timeout), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the libraries' deprecation notes, once per model
        start = time.perf_counter()
        built = builder(name)()
        built_at = time.perf_counter()
        graph = encoder(name, resolution)(built)
        report = analyze_graph(graph, resolution, model=name).report
        done = time.perf_counter()
    return ZooRow(name, report.r[0], report.max_resolution[0], report.fully_utilized,
                  len(report.unproductive), len(report.underutilized),
                  round(built_at - start, 3), round(done - built_at, 3), list(report.unknown_ops))


def scan(names: list[str], resolution: str, timeout: Optional[float] = None,
         progress: bool = True) -> tuple[list[ZooRow], list[tuple[str, str]]]:
    """Every model of ``names``: the rows, sorted by r then name, and the failures with
    their reason."""
    rows: list[ZooRow] = []
    failures: list[tuple[str, str]] = []
    if progress:
        from rich.progress import track

        names_iter = track(names, description="analyzing", transient=True, console=_stderr())
    else:
        names_iter = names
    for name in names_iter:
        try:
            rows.append(scan_one(name, resolution, timeout))
        except ModelTimeout as exc:
            failures.append((name, str(exc)))
        except Exception as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            failures.append((name, reason if isinstance(exc, RFAError) else f"{type(exc).__name__}: {reason}"))
    rows.sort(key=lambda row: (-(row.r or 0), row.model))
    return rows, failures


def _stderr():
    from rich.console import Console

    return Console(stderr=True)
