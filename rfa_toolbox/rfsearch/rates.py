"""The arithmetic of the dilation search, without torch: settings, estimate, expand, padding.

Everything here works on plain Python numbers so that it can be checked by hand and reused by
the structure tools, which must not import a deep-learning framework.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

Rate = tuple[int, ...]  #: a dilation per spatial axis
Pads = tuple[tuple[int, int], ...]  #: (before, after) padding per spatial axis

#: The search settings, with the names and defaults of OpenMMLab's rfsearch.
DEFAULTS: dict[str, Any] = {
    "step": 0,
    "max_step": 11,
    "search_interval": 1,
    "exp_rate": 0.5,
    "init_alphas": 0.01,
    "mmin": 1,
    "mmax": 24,
    "num_branches": 2,
    "skip_layer": [],
}


class RFSearchWarning(UserWarning):
    """A search setting or structure that probably does not do what was meant."""


def make_config(config: Optional[Mapping[str, Any]] = None,
                base: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The full, checked settings: `DEFAULTS`, then ``base``, then ``config``.

    Either mapping may be mmcv-style (``{"search": {...}}``). Unknown keys and impossible
    values raise ``ValueError``.
    """
    out = dict(DEFAULTS)
    out["skip_layer"] = []
    for source in (base, config):
        if not source:
            continue
        if "search" in source and isinstance(source["search"], Mapping):
            source = source["search"]
        unknown = sorted(set(source) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown rfsearch setting(s) {', '.join(unknown)};"
                             f" known: {', '.join(DEFAULTS)}")
        out.update(source)
    skip = out["skip_layer"]
    if skip is None:
        skip = []
    elif isinstance(skip, str):
        skip = [skip]
    out["skip_layer"] = [str(s) for s in skip]
    for key in ("step", "max_step", "search_interval", "mmin", "mmax", "num_branches"):
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                out[key] = int(value)
            else:
                raise ValueError(f"rfsearch setting {key} must be an integer, got {value!r}")
    checks = [
        (out["step"] >= 0, "step must be >= 0"),
        (out["max_step"] >= 0, "max_step must be >= 0"),
        (out["search_interval"] >= 1, "search_interval must be >= 1"),
        (out["mmin"] >= 1, "mmin must be >= 1"),
        (out["mmax"] >= out["mmin"], "mmax must be >= mmin"),
        (out["num_branches"] in (2, 3), "num_branches must be 2 or 3"),
        (0 < float(out["exp_rate"]) < 1, "exp_rate must be in (0, 1)"),
        (math.isfinite(float(out["init_alphas"])) and float(out["init_alphas"]) != 0,
         "init_alphas must be a finite non-zero number"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"rfsearch: {message} (settings: {out})")
    out["exp_rate"] = float(out["exp_rate"])
    out["init_alphas"] = float(out["init_alphas"])
    return out


def clip(value: int, low: int, high: int) -> int:
    """``value`` limited to [low, high]."""
    return min(max(value, low), high)


def estimate_rate(weights: Sequence[float], rates: Sequence[Rate], kernel: Sequence[int],
                  current: Rate, mmin: int, mmax: int) -> Rate:
    """The dilation per axis: clip(round(sum w_i r_i / sum w_i), mmin, mmax).

    ``weights`` are the normalized branch weights as Python floats (computed in float32 by the
    caller); sums are taken in branch order and rounded with Python's ``round`` (half to even),
    as in mmcv. Axes whose kernel is 1 keep ``current``.
    """
    total = 0.0
    for w in weights:
        total += w
    out = []
    for axis, k in enumerate(kernel):
        if k == 1 or not total or not math.isfinite(total):
            out.append(current[axis])
            continue
        acc = 0.0
        for w, rate in zip(weights, rates):
            acc += w * rate[axis]
        out.append(clip(round(acc / total), mmin, mmax))
    return tuple(out)


def expand_rate(dilation: Rate, kernel: Sequence[int], exp_rate: float, num_branches: int,
                mmin: int, mmax: int) -> list[Rate]:
    """The branch dilations around ``dilation``: [lo, hi] (2 branches) or [lo, d, hi] (3),
    lo = clip(round((1 - e) d)), hi = clip(round((1 + e) d)) per axis, duplicates removed in
    order. Axes whose kernel is 1 keep their dilation."""
    low, high = [], []
    for d, k in zip(dilation, kernel):
        if k == 1:
            low.append(d)
            high.append(d)
        else:
            low.append(clip(round((1 - exp_rate) * d), mmin, mmax))
            high.append(clip(round((1 + exp_rate) * d), mmin, mmax))
    ordered = [tuple(low), tuple(high)] if num_branches == 2 else [tuple(low), tuple(dilation), tuple(high)]
    unique: list[Rate] = []
    for rate in ordered:
        if rate not in unique:
            unique.append(rate)
    return unique


def frozen_axes(dilation: Rate, kernel: Sequence[int], exp_rate: float) -> list[int]:
    """The searchable axes (kernel > 1) whose dilation cannot move: e * d < 0.5, so that both
    round((1 - e) d) and round((1 + e) d) are d again."""
    return [axis for axis, (d, k) in enumerate(zip(dilation, kernel)) if k > 1 and exp_rate * d < 0.5]


def shifted_pads(kernel: Sequence[int], base_dilation: Rate, base_pads: Pads, dilation: Rate,
                 same: bool = False) -> Pads:
    """The padding per axis that keeps the output shape of a conv whose dilation changes from
    ``base_dilation`` (padded ``base_pads``) to ``dilation``.

    The window keeps its offset: each side grows by half of (d - d0)(k - 1), the odd unit (even
    kernels) going after. For odd kernels padded ((s - 1) + d0 (k - 1)) // 2 this is mmcv's
    p = ((s - 1) + d (k - 1)) // 2. ``same`` follows PyTorch's ``padding="same"`` instead:
    total d (k - 1), the smaller half before.
    """
    out = []
    for k, d0, (before, after), d in zip(kernel, base_dilation, base_pads, dilation):
        if same:
            total = d * (k - 1)
            out.append((total // 2, total - total // 2))
            continue
        delta = (d - d0) * (k - 1)
        out.append((before + delta // 2, after + delta - delta // 2))
    return tuple(out)
