"""Framework-free builders of architectures and design spaces (RegNet, SpineNet)."""
