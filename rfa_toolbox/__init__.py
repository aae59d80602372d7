"""rfa-toolbox: static receptive-field analysis for convolutional networks.

Find, before any training, the layers of a network that cannot add context at a given input
resolution, and how to fix them. The core never imports a deep-learning framework.
"""

from .analysis import Analysis, LayerResult, Report, Status
from .api import analysis_of, analyze, diagram, is_fully_utilized, minimal_feasible_resolution, suggest
from .builder import GraphBuilder
from .errors import CycleError, GraphError, ResolutionError, RFAError, SpecError, UnknownOpError
from .graph import Graph, Layer, Transfer
from .receptive_field import propagate
from .spec import graph_from_spec, load_spec, save_spec, spec_from_graph

__version__ = "0.1.0"

__all__ = [
    "Analysis", "CycleError", "Graph", "GraphBuilder", "GraphError", "Layer", "LayerResult",
    "RFAError", "Report", "ResolutionError", "SpecError", "Status", "Transfer", "UnknownOpError",
    "__version__", "analysis_of", "analyze", "diagram", "graph_from_spec", "is_fully_utilized",
    "load_spec", "minimal_feasible_resolution", "propagate", "save_spec", "spec_from_graph", "suggest",
]
