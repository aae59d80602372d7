"""The built-in handlers, one per traced op kind; importing this package fills
`rfa_toolbox.encoders.torch.ir.DEFAULT_HANDLERS`."""

from . import mixing, plumbing, windows

__all__ = ["mixing", "plumbing", "windows"]
