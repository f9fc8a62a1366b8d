"""MLRN Studio's desktop GUI (PySide6). Calls :mod:`mlrn_core`; the core never imports this package."""
