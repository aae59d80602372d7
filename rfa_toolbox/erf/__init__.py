"""Effective receptive fields (Luo et al., NeurIPS 2016) of PyTorch models, next to the
theoretical ones: `effective_receptive_field` measures, `draw_erf` draws (see the docs page
"Effective receptive fields"). Importing this package imports neither torch nor matplotlib."""

from .measure import ERF, ERFMap, effective_receptive_field
from .numbers import SHARES, ERFNumbers, erf_numbers

__all__ = ["ERF", "ERFMap", "ERFNumbers", "SHARES", "effective_receptive_field", "erf_numbers"]
