"""MLRN Studio's core: the MLRN network, image I/O, metrics, tiled inference and training (no Qt)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlrn_core.model import MLRN

__all__ = ["MLRN"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``MLRN`` is imported on first use, so that ``import mlrn_core`` (every ``mlrn`` command, ``mlrn --help``
    included) does not import torch, about 2 s of a start-up (``benchmarks/startup.py``)."""
    if name == "MLRN":
        from mlrn_core.model import MLRN

        globals()["MLRN"] = MLRN
        return MLRN
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
