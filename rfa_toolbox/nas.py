"""Filters for neural architecture search: keep the candidates whose receptive field fits the
input resolution, before training any of them.

Everything here is a pure function of picklable inputs (RegNet parameters, graphs, parsed
architecture files, model names), so it runs unchanged in ``multiprocessing`` pools and
distributed executors.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any, Optional

from .analysis import PerAxis, exact_r, for_display, fully_utilized
from .errors import RFAError
from .graph import Number
from .resolution import ResolutionLike, parse_resolution
from .sources import load_graph
from .zoo.regnet import RegNetParams, regnet_r


@dataclass(frozen=True)
class Verdict:
    """The outcome for one candidate: r per axis, and whether it passes."""

    r: PerAxis
    fully_utilized: bool
    in_band: bool

    @property
    def passes(self) -> bool:
        """Fully utilized and, when a band was asked for, r within it."""
        return self.fully_utilized and self.in_band


def candidate_r(candidate: Any) -> tuple[Number | None, ...]:
    """r per axis of a candidate, exact: `RegNetParams` take the fast path, anything else that
    `rfa_toolbox.analyze` reads (a graph, an architecture dict or file, a model) the graph."""
    if isinstance(candidate, RegNetParams):
        return regnet_r(candidate)
    return exact_r(load_graph(candidate))


def evaluate(candidate: Any, resolution: ResolutionLike, band: Optional[float] = None) -> Verdict:
    """The verdict for ``candidate`` at ``resolution``: fully utilized when r < R on every
    axis; with ``band`` (a fraction such as 0.75, Richter et al.'s "just enough" rule) r must
    also be at least band * R on every axis. Decided on exact values; ``r`` is for display."""
    if band is not None and (isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 < band <= 1):
        raise RFAError(f"band must be a fraction of the resolution in (0, 1], not {band!r}")
    r = candidate_r(candidate)
    res = parse_resolution(resolution, len(r))
    fully = fully_utilized(r, res)
    in_band = band is None or all(v is not None and v >= Fraction(band) * R for v, R in zip(r, res))
    return Verdict(for_display(r), fully, in_band)


def keep(candidates: Sequence[Any], resolution: ResolutionLike, band: Optional[float] = None,
         processes: int = 1, progress: bool = False) -> list[Any]:
    """The candidates that pass at ``resolution`` (see `evaluate`), in their order.

    ``processes > 1`` spreads the work over a multiprocessing pool; ``progress`` shows a
    progress bar on standard error.
    """
    return [c for c, v in zip(candidates, verdicts(candidates, resolution, band, processes, progress))
            if v.passes]


def verdicts(candidates: Sequence[Any], resolution: ResolutionLike, band: Optional[float] = None,
             processes: int = 1, progress: bool = False) -> list[Verdict]:
    """`evaluate` for every candidate, in order."""
    work = partial(evaluate, resolution=resolution, band=band)
    results: Iterable[Verdict]
    if processes > 1:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(processes)
        results = pool.imap(work, candidates, chunksize=max(1, len(candidates) // (processes * 16)))
    else:
        pool, results = None, map(work, candidates)
    try:
        if progress:
            from rich.progress import track

            results = track(results, total=len(candidates), description="evaluating",
                            transient=True)
        return list(results)
    finally:
        if pool is not None:
            pool.close()

