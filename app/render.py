"""Pure helpers behind the interactive upscale: display conversion, bicubic previews, tile scheduling.

Nothing here imports Qt, so it can be tested and reused without a display. The worker in
:mod:`app.worker` calls these from its thread: :class:`VisibleRegion` is the one object shared with the
GUI thread (a lock-protected snapshot of the LR rectangle on screen), :func:`make_priority` turns it into
the ``priority=`` callable of :func:`mlrn_core.tiling.upscale_array`, and :class:`FinalCells` works out
which parts of a finished tile are final (every overlapping tile blended in) so the viewer never shows
the half-blended, darkened seams of a tile whose neighbours are still pending.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from mlrn_core.imageio import picture_from_array, picture_to_uint8_rgb
from mlrn_core.metrics import imresize
from mlrn_core.tiling import MIN_TILE, Tile, auto_tile_size, plan_tiles

#: LR tile size used for interactive viewing on a CPU: small enough that the first sharp tile of the
#: default MLRN shows up within about a second on two cores.
INTERACTIVE_CPU_TILE = 128

#: Above this many output pixels (or with sides whose dense resize matrices would be large) the bicubic
#: preview uses OpenCV's bicubic instead of the MATLAB-exact one, which builds dense matrices.
EXACT_BICUBIC_MAX_PIXELS = 1_000_000
EXACT_BICUBIC_MAX_MATRIX_BYTES = 16 * 2**20

TILE_CHOICES = (128, 192, 256, 384, 512, 768, 1024)


def to_uint8(rgb: np.ndarray, band_pixels: int = 4_000_000) -> np.ndarray:
    """float32 HxWx3 RGB in [0, 1] -> uint8 HxWx3, rounded exactly as :mod:`mlrn_core.imageio` writes it.

    Converted in bands of rows so a 100-megapixel result does not need several float copies at once.
    """
    h, w = rgb.shape[:2]
    out = np.empty((h, w, 3), np.uint8)
    rows = max(1, band_pixels // max(1, w))
    for y in range(0, h, rows):
        out[y : y + rows] = picture_to_uint8_rgb(picture_from_array(rgb[y : y + rows]))
    return out


def interactive_tile(device: torch.device, model: torch.nn.Module | None = None) -> int:
    """The "Auto" tile size: small on a CPU (visible tiles come back quickly), memory-sized on a GPU."""
    if device.type == "cpu":
        return INTERACTIVE_CPU_TILE
    hp = getattr(model, "hparams", {}) if model is not None else {}
    scale = int(getattr(model, "scale", 2)) if model is not None else 2
    return auto_tile_size(device, hp.get("features", 32), hp.get("blocks", 8), scale)


def bicubic_uint8(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscale of a uint8 HxWx3 image for display: MATLAB-exact when small, OpenCV when large."""
    h, w = lr_uint8.shape[:2]
    oh, ow = h * scale, w * scale
    matrix_bytes = max(oh * h, ow * w) * 8
    if oh * ow <= EXACT_BICUBIC_MAX_PIXELS and matrix_bytes <= EXACT_BICUBIC_MAX_MATRIX_BYTES:
        return imresize(lr_uint8, scale)
    return cv2.resize(lr_uint8, (ow, oh), interpolation=cv2.INTER_CUBIC)


def nearest_uint8(lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """Each LR pixel repeated ``scale`` x ``scale`` times: the original pixels at output size."""
    h, w = lr_uint8.shape[:2]
    return cv2.resize(lr_uint8, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)


class VisibleRegion:
    """The LR rectangle ``(x0, y0, x1, y1)`` on screen, written by the GUI and read by the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rect: tuple[float, float, float, float] | None = None

    def set(self, rect: tuple[float, float, float, float] | None) -> None:
        with self._lock:
            self._rect = rect

    def get(self) -> tuple[float, float, float, float] | None:
        with self._lock:
            return self._rect


def make_priority(
    region: VisibleRegion, default: tuple[float, float, float, float] | None = None
) -> Callable[[Tile], float]:
    """Lowest first: tiles on screen (nearest the centre of the view first), then by distance to it.

    ``default`` stands for the screen until the GUI has said what is visible (the whole image, as a
    view fitted to the window would show it); with neither, tiles go in grid order.
    """

    def priority(t: Tile) -> float:
        rect = region.get() or default
        if rect is None:
            return float(t.index)
        x0, y0, x1, y1 = rect
        dx = max(x0 - t.x1, 0.0, t.x0 - x1)
        dy = max(y0 - t.y1, 0.0, t.y0 - y1)
        centre = math.hypot((t.x0 + t.x1 - x0 - x1) / 2, (t.y0 + t.y1 - y0 - y1) / 2)
        # rounded so that rounding noise in the rectangle (199.99999 vs 200) cannot reorder equidistant tiles
        return round(math.hypot(dx, dy), 1) * 1e4 + round(centre, 2)

    return priority


@dataclass(frozen=True)
class _Segment:
    start: int
    end: int
    cover: tuple[int, ...]  # indices of the row (or column) intervals that overlap it


def _segments(intervals: list[tuple[int, int]]) -> list[_Segment]:
    cuts = sorted({v for iv in intervals for v in iv})
    segs = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        cover = tuple(i for i, (s, e) in enumerate(intervals) if s < b and e > a)
        if cover:
            segs.append(_Segment(a, b, cover))
    return segs


class FinalCells:
    """Tracks finished tiles and says which LR rectangles became final when one more finished.

    A pixel of the blended output is final once every tile covering it has been added. The grid is a
    product of row and column intervals, so the image splits into cells (between consecutive tile
    edges) whose covering tiles are known; a finished tile releases its cells whose tiles are all done.
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int) -> None:
        self.height, self.width, self.overlap = height, width, overlap
        self._plan(tile)

    def _plan(self, tile: int) -> None:
        self.tile = tile
        self.tiles = plan_tiles(self.height, self.width, tile, self.overlap)
        self.rows = sorted({(t.y0, t.y1) for t in self.tiles})
        self.cols = sorted({(t.x0, t.x1) for t in self.tiles})
        self.ysegs, self.xsegs = _segments(self.rows), _segments(self.cols)
        self.done: set[tuple[int, int]] = set()

    def _matches(self, t: Tile) -> bool:
        return t.index < len(self.tiles) and self.tiles[t.index] == t

    def finish(self, t: Tile) -> list[tuple[int, int, int, int]]:
        """Mark ``t`` done; returns the LR rectangles ``(x0, y0, x1, y1)`` inside it that are now final.

        A tile from another grid (the core halved the tile size after running out of memory and
        restarted) re-plans the grid and forgets what was done.
        """
        if not self._matches(t):
            tile = self.tile
            while tile // 2 >= MIN_TILE and not self._matches(t):
                tile //= 2
                self._plan(tile)
            if not self._matches(t):
                raise ValueError(f"tile {t} does not belong to any grid of {self.width}x{self.height}")
        self.done.add((t.row, t.col))
        rects = []
        for ys in self.ysegs:
            if ys.end <= t.y0 or ys.start >= t.y1:
                continue
            run_start = None
            for xs in self.xsegs:
                if xs.end <= t.x0 or xs.start >= t.x1:
                    continue
                final = all((r, c) in self.done for r in ys.cover for c in xs.cover)
                if final and run_start is None:
                    run_start = xs.start
                if not final and run_start is not None:
                    rects.append((run_start, ys.start, xs.start, ys.end))
                    run_start = None
                last_end = xs.end
            if run_start is not None:
                rects.append((run_start, ys.start, last_end, ys.end))
        return rects
