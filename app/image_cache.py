"""Finished renders kept in memory, so flipping back to an image, model or scale is instant.

Entries are keyed by :class:`RenderKey` (which image file and version, which method or model file,
scale, tile, overlap and device, since each changes the pixels) and evicted least-recently-used once
their total size passes a byte budget. An entry larger than the whole budget is not kept: the window
still shows it, it just is not remembered.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.pyramid import Pyramid

DEFAULT_BUDGET_BYTES = 2 * 2**30


@dataclass(frozen=True)
class ImageId:
    """A file at one moment: a re-saved file gets a new id."""

    path: str
    mtime_ns: int
    size: int
    develop: str = ""  # a camera RAW file's development (its colour space): another development, another image

    @classmethod
    def of(cls, path: str | os.PathLike, develop: str = "") -> ImageId:
        p = Path(path)
        try:
            st = p.stat()
            return cls(str(p.resolve()), st.st_mtime_ns, st.st_size, develop)
        except OSError:
            return cls(str(p.absolute()), 0, 0, develop)


@dataclass(frozen=True)
class RenderKey:
    image: ImageId
    method: str  # "bicubic", "nearest" or "model:<path>@<mtime_ns>"
    scale: int
    tile: int = 0
    overlap: int = 0
    device: str = ""
    precision: str = ""  # "auto", "fp32", "bf16", "fp16" for models ("" = auto)
    ensemble: bool = False  # quality "best" (the 8-way self-ensemble) for models


@dataclass
class RenderResult:
    """One finished render: the display pyramid, plus the uint16 result when the source had 16 bits."""

    key: RenderKey
    label: str  # what the viewer caption says, e.g. "Bicubic" or "MLRN mlrn-x2"
    pyramid: Pyramid
    rgb16: np.ndarray | None = None
    seconds: float = 0.0
    device_label: str = ""
    info: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return self.pyramid.nbytes + (self.rgb16.nbytes if self.rgb16 is not None else 0)

    @property
    def image(self) -> np.ndarray:
        """uint8 HxWx3 at output size."""
        return self.pyramid.levels[0]


class ImageCache:
    """A least-recently-used map RenderKey -> RenderResult bounded by bytes."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget_bytes = int(budget_bytes)
        self._entries: OrderedDict[RenderKey, RenderResult] = OrderedDict()
        self._bytes = 0

    def __contains__(self, key: RenderKey) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: RenderKey) -> RenderResult | None:
        result = self._entries.get(key)
        if result is not None:
            self._entries.move_to_end(key)
        return result

    def put(self, result: RenderResult) -> None:
        self.discard(result.key)
        size = result.nbytes
        if size > self.budget_bytes:
            return
        self._entries[result.key] = result
        self._bytes += size
        while self._bytes > self.budget_bytes:
            _key, old = self._entries.popitem(last=False)
            self._bytes -= old.nbytes

    def discard(self, key: RenderKey) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes
