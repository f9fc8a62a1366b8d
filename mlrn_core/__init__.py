"""MLRN Studio's core: the MLRN network, image I/O, metrics, tiled inference and training (no Qt)."""

from mlrn_core.model import MLRN

__all__ = ["MLRN"]
__version__ = "0.1.0"
