"""ONNX encoder: build the graph of a ``.onnx`` file from any exporter, never running it.

The modules: `ir` (the handler contract: `OnnxNode`, handler tables), `handlers` (one handler
per op type, by family; most hand the op to the PyTorch encoder's handler of the same
computation), `constants` (values known before the model runs, with numpy), `shapes` (inputs,
layouts, shape inference), `files` (reading the protobuf safely) and `walk` (`graph_from_onnx`).
Only the ``onnx`` package is needed, no runtime and no torch.
"""

from .ir import DEFAULT_HANDLERS, Handler, OnnxFormatError, OnnxNode, Unsupported, register_handler
from .walk import graph_from_onnx, module_path

__all__ = ["DEFAULT_HANDLERS", "Handler", "OnnxFormatError", "OnnxNode", "Unsupported", "graph_from_onnx",
           "module_path", "register_handler"]
