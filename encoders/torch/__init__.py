"""PyTorch encoder: trace a module with the JIT and turn the traced graph into a `Graph`.

Every tensor that depends on a model input is followed with its *layout*: for each tensor
dimension, the spatial axes it carries. Convolutions and pools act on the axes of their spatial
dimensions; views, permutes and reshapes move axes between dimensions; ops that mix the
positions of a spatial dimension (reductions, softmax, matmul and linear over it, attention)
make those axes global.

The modules, one job each: `ir` (the handler contract: `Call`, handler tables), `handlers`
(one handler per op kind, by family), `walk` (the walk over the trace graph), `trace` (the JIT
trace: the only module importing torch), `encoder` (`encode`), `models` (naming models: files,
torchvision:, timm:) and `edit` (applying suggested edits to a module). What the encoders
share, framework-free, is one level up: `rfa_toolbox.encoders.layout` (tensor layouts),
`rfa_toolbox.encoders.pending` (`Op`, `Traced`, node names and layers) and
`rfa_toolbox.encoders.passes` (graph passes).
"""

from .encoder import encode
from .ir import DEFAULT_HANDLERS, Call, Handler, Op, Traced, TraceError, register_handler

__all__ = ["DEFAULT_HANDLERS", "Call", "Handler", "Op", "TraceError", "Traced", "encode",
           "register_handler"]
