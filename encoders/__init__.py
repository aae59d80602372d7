"""Framework-specific encoders (installed as ``rfa_toolbox.encoders``); each imports its framework lazily."""
