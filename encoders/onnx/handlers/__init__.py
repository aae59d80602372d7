"""The built-in handlers of the ONNX encoder, by family; importing the package fills
`rfa_toolbox.encoders.onnx.ir.DEFAULT_HANDLERS`."""

from . import plumbing, windows

__all__ = ["plumbing", "windows"]
