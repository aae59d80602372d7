"""Keras encoder: build the graph from a model's JSON configuration, never running its code.

Both formats are read: Keras 3 (``inbound_nodes`` as dicts whose ``args`` hold tensors with a
``keras_history``) and Keras 2 / tf.keras (nested lists ``[layer, node, tensor, kwargs]``).
The modules: `ir` (the handler contract and tables), `handlers` (one per layer class),
`walk` (the JSON walk, `graph_from_keras_json`) and `files` (``.keras`` archives, JSON files,
keras.applications by name). Only `files.import_keras` imports a framework.
"""

from .files import import_keras, load_keras_application, read_keras_file
from .ir import DEFAULT_HANDLERS, Handler, KerasFormatError, KOp, KTensor, register_handler
from .walk import graph_from_keras_json

__all__ = ["DEFAULT_HANDLERS", "Handler", "KOp", "KTensor", "KerasFormatError",
           "graph_from_keras_json", "import_keras", "load_keras_application", "read_keras_file",
           "register_handler"]
